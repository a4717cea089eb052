"""The catalog through the API: the provider's plans, add-ons and tenants; the plans a
tenant may subscribe to. (Subscriptions: ``provisioning.api.subscriptions``.)"""

from django.db.models import Count, Q
from rest_framework import mixins

from base.api.viewsets import CatalogViewSet, ProviderViewSet, TenantViewSet
from base.scoping import current_tenant
from plans import services
from plans.api.serializers import (
    AddOnSerializer,
    PlanSerializer,
    PublicPlanSerializer,
)
from plans.models import AddOn, Plan, SubscriptionState
from tenants.api.serializers import TenantSerializer
from tenants.models import Tenant

__all__ = ["AddOnViewSet", "PlanViewSet", "ProviderTenantViewSet", "PublicPlanViewSet"]


# --- Provider -------------------------------------------------------------------------

class PlanViewSet(CatalogViewSet):
    queryset = (Plan.objects.select_related("cloud")
                .prefetch_related("templates", "addons", "offered_to")
                .annotate(subscription_count=Count(
                    "subscriptions", filter=~Q(subscriptions__state=SubscriptionState.DELETED)))
                .order_by("price_monthly", "name"))
    serializer_class = PlanSerializer
    filterset_fields = ["state", "cloud"]

    def save(self, instance, serializer):
        data = dict(serializer.validated_data)
        return services.save_plan(
            instance, templates=data.pop("templates", None), addons=data.pop("addons", None),
            offered_to=data.pop("offered_to", None), fields=data, acting_user=self.request.user)


class AddOnViewSet(CatalogViewSet):
    queryset = AddOn.objects.select_related("recovery_cloud")
    serializer_class = AddOnSerializer
    filterset_fields = ["kind"]

    def save(self, instance, serializer):
        return services.save_addon(instance, fields=serializer.validated_data,
                                   acting_user=self.request.user)


class ProviderTenantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProviderViewSet):
    queryset = Tenant.objects.all()
    serializer_class = TenantSerializer


# --- Tenant ---------------------------------------------------------------------------

class PublicPlanViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Plans the caller may subscribe to."""

    serializer_class = PublicPlanSerializer
    queryset = Plan.objects.all()

    def get_queryset(self):
        return (services.visible_plans(current_tenant(self.request.user))
                .prefetch_related("templates", "addons").order_by("price_monthly", "name"))
