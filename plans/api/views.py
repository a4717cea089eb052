from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from plans import quota, services
from plans.api.serializers import (
    AddOnSerializer,
    AttachAddOnSerializer,
    DecommissionSerializer,
    PlanSerializer,
    ProviderSubscriptionSerializer,
    PublicPlanSerializer,
    QuotaSerializer,
    SubscriptionSerializer,
)
from plans.models import AddOn, Plan, Subscription, SubscriptionState
from portal.api.viewsets import ProviderViewSet, TenantViewSet, current_tenant
from provisioning import runbooks
from provisioning.api.views import CatalogViewSet
from tenants.api.serializers import TenantSerializer
from tenants.models import Tenant

__all__ = ["AddOnViewSet", "PlanViewSet", "ProviderSubscriptionViewSet", "ProviderTenantViewSet",
           "PublicPlanViewSet", "SubscriptionViewSet"]


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


class ProviderSubscriptionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                                  mixins.DestroyModelMixin, ProviderViewSet):
    queryset = Subscription.objects.prefetch_related("addons")
    serializer_class = ProviderSubscriptionSerializer
    filterset_fields = ["state", "tenant", "plan"]

    @extend_schema(responses={202: DecommissionSerializer})
    def destroy(self, request, *args, **kwargs):
        """Decommission: remove everything the subscription has on the fabric (a job)."""
        subscription, job = runbooks.decommission(self.get_object(), acting_user=request.user)
        body = {"subscription": self.get_serializer(subscription).data,
                "job": str(job.pk) if job else None}
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        subscription = services.suspend_subscription(self.get_object(), acting_user=request.user)
        return Response(self.get_serializer(subscription).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        subscription = services.resume_subscription(self.get_object(), acting_user=request.user)
        return Response(self.get_serializer(subscription).data)


# --- Tenant ---------------------------------------------------------------------------

class PublicPlanViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Plans the caller may subscribe to."""

    serializer_class = PublicPlanSerializer
    queryset = Plan.objects.all()

    def get_queryset(self):
        return (services.visible_plans(current_tenant(self.request.user))
                .prefetch_related("templates", "addons").order_by("price_monthly", "name"))


class SubscriptionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                          mixins.CreateModelMixin, TenantViewSet):
    queryset = Subscription.objects.prefetch_related("addons")
    serializer_class = SubscriptionSerializer
    write_permission = "plans.manage_subscriptions"
    filterset_fields = ["state", "plan"]

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.subscribe(
            self.tenant, plan_id=data["plan_id"], name=data.get("name", ""),
            acting_user=self.request.user)

    @extend_schema(responses=QuotaSerializer)
    @action(detail=True, methods=["get"])
    def quota(self, request, pk=None):
        return Response(quota.summary(self.get_object()))

    @extend_schema(request=AttachAddOnSerializer, responses={201: SubscriptionSerializer})
    @action(detail=True, methods=["post"], url_path="addons")
    def attach_addon(self, request, pk=None):
        subscription = self.get_object()
        serializer = AttachAddOnSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.attach_addon(subscription, addon_id=serializer.validated_data["addon"],
                              acting_user=request.user)
        subscription.refresh_from_db()
        return Response(SubscriptionSerializer(subscription).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"addons/(?P<addon_id>[0-9a-f-]{36})")
    def detach_addon(self, request, pk=None, addon_id=None):
        subscription = self.get_object()
        get_object_or_404(subscription.addon_links, addon_id=addon_id)
        services.detach_addon(subscription, addon_id=addon_id, acting_user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
