"""The catalog through the API: the provider's plans, add-ons and tenants; the plans a
tenant may subscribe to. (Subscriptions: ``provisioning.api.subscriptions``.)"""

from django.db.models import Count, Q
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins

from base.api.schema import problems
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

@extend_schema_view(
    list=extend_schema(summary="List plans"),
    retrieve=extend_schema(summary="Get a plan"),
    create=extend_schema(summary="Publish a plan"),
    update=extend_schema(summary="Replace a plan",
                         responses={200: PlanSerializer, **problems(409)},
                         description="The cloud of a plan with subscriptions cannot change "
                                     "(409)."),
    partial_update=extend_schema(summary="Change a plan",
                                 responses={200: PlanSerializer, **problems(409)},
                                 description="The cloud of a plan with subscriptions cannot "
                                             "change (409)."),
)
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
        plan = services.save_plan(
            instance, templates=data.pop("templates", None), addons=data.pop("addons", None),
            offered_to=data.pop("offered_to", None), fields=data, acting_user=self.request.user)
        return self.get_queryset().get(pk=plan.pk)  # with its subscription_count


@extend_schema_view(
    list=extend_schema(summary="List add-ons"),
    retrieve=extend_schema(summary="Get an add-on"),
    create=extend_schema(summary="Create an add-on",
                         description="`quota` add-ons add `quotas`; `dr` add-ons recover to "
                                     "`recovery_cloud`, on another stamp."),
    update=extend_schema(summary="Replace an add-on"),
    partial_update=extend_schema(summary="Change an add-on"),
)
class AddOnViewSet(CatalogViewSet):
    queryset = AddOn.objects.select_related("recovery_cloud")
    serializer_class = AddOnSerializer
    filterset_fields = ["kind"]

    def save(self, instance, serializer):
        return services.save_addon(instance, fields=serializer.validated_data,
                                   acting_user=self.request.user)


@extend_schema_view(
    list=extend_schema(summary="List tenants"),
    retrieve=extend_schema(summary="Get a tenant"),
)
class ProviderTenantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProviderViewSet):
    queryset = Tenant.objects.all()
    serializer_class = TenantSerializer


# --- Tenant ---------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="List the plans on offer",
                       description="Public plans, and private plans offered to the caller's "
                                   "organisation."),
    retrieve=extend_schema(summary="Get a plan on offer"),
)
class PublicPlanViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Plans the caller may subscribe to."""

    serializer_class = PublicPlanSerializer
    queryset = Plan.objects.all()

    def get_queryset(self):
        return (services.visible_plans(current_tenant(self.request.user))
                .prefetch_related("templates", "addons").order_by("price_monthly", "name"))
