"""Subscriptions through the API: the tenant's own and the provider's view of all of them.
Every change goes through ``provisioning.lifecycle``."""

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from base.api.responses import accepted
from base.api.schema import problems
from base.api.viewsets import ProviderViewSet, TenantViewSet
from plans import quota
from plans import services as plan_services
from plans.api.serializers import (
    AttachAddOnSerializer,
    QuotaSerializer,
    SubscriptionUpdateSerializer,
)
from plans.api.serializers import ProviderSubscriptionSerializer as PlanProviderSubscription
from plans.api.serializers import SubscriptionSerializer as PlanSubscription
from plans.models import Subscription
from provisioning import lifecycle
from provisioning.models import Job
from provisioning.runbooks.subscription import COMMISSION

__all__ = ["ProviderSubscriptionViewSet", "SubscriptionViewSet"]


def _with_commission_job(queryset):
    latest = (Job.objects.filter(subscription=OuterRef("pk"), runbook=COMMISSION.name)
              .order_by("-created_at").values("pk")[:1])
    return queryset.annotate(commission_job_id=Subquery(latest))


class SubscriptionSerializer(PlanSubscription):
    job = serializers.UUIDField(
        source="commission_job_id", read_only=True, allow_null=True,
        help_text="The job that commissions the subscription on its stamp: while it runs the "
                  "subscription is `provisioning`.")

    class Meta(PlanSubscription.Meta):
        fields = [*PlanSubscription.Meta.fields, "job"]


class AttachedAddOnSerializer(SubscriptionSerializer):
    """The subscription once an add-on is attached; ``job`` is the attachment's."""

    job = serializers.UUIDField(
        source="attach_job_id", read_only=True, allow_null=True,
        help_text="The job the add-on started (a DR add-on's protection of the "
                  "subscription), or null when it started none.")


class ProviderSubscriptionSerializer(PlanProviderSubscription):
    job = serializers.UUIDField(source="commission_job_id", read_only=True, allow_null=True)

    class Meta(PlanProviderSubscription.Meta):
        fields = [*PlanProviderSubscription.Meta.fields, "job"]
        read_only_fields = fields


class DecommissionSerializer(serializers.Serializer):
    subscription = ProviderSubscriptionSerializer()
    job = serializers.UUIDField(allow_null=True, help_text="The job that removes it from the "
                                                           "fabric; null when nothing was there.")


@extend_schema_view(
    list=extend_schema(summary="List every subscription"),
    retrieve=extend_schema(summary="Get any subscription"),
)
class ProviderSubscriptionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                                  mixins.DestroyModelMixin, ProviderViewSet):
    queryset = _with_commission_job(Subscription.objects.prefetch_related("addons"))
    serializer_class = ProviderSubscriptionSerializer
    filterset_fields = ["state", "tenant", "plan"]

    @extend_schema(summary="Decommission a subscription",
                   responses={202: DecommissionSerializer, 200: DecommissionSerializer,
                              **problems(409)},
                   description="Remove everything the subscription has on the fabric: 202 "
                               "and the job that does it, or 200 and `job: null` when it "
                               "had nothing there and is deleted at once.")
    def destroy(self, request, *args, **kwargs):
        subscription, job = lifecycle.decommission(self.get_object(), acting_user=request.user)
        subscription = self.get_queryset().get(pk=subscription.pk)
        body = {"subscription": self.get_serializer(subscription).data,
                "job": str(job.pk) if job else None}
        if job is None:
            return Response(body, status=status.HTTP_200_OK)
        return accepted(body, job.pk)

    @extend_schema(summary="Suspend a subscription", request=None,
                   description="Its running VMs are stopped (a job); nothing new can be "
                               "created or started in it until it is resumed.")
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        subscription = lifecycle.suspend(self.get_object(), acting_user=request.user)
        return Response(self.get_serializer(subscription).data)

    @extend_schema(summary="Resume a subscription", request=None,
                   description="Its VMs stay stopped until the tenant starts them.")
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        subscription = lifecycle.resume(self.get_object(), acting_user=request.user)
        return Response(self.get_serializer(subscription).data)


@extend_schema_view(
    list=extend_schema(summary="List the organisation's subscriptions"),
    retrieve=extend_schema(summary="Get a subscription"),
    create=extend_schema(
        summary="Subscribe to a plan", responses={201: SubscriptionSerializer, **problems(404)},
        description="A plan the organisation cannot see is 404; a decommissioned or full plan "
                    "is 409. The subscription's commission job then sets it up on its "
                    "stamp."),
)
class SubscriptionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                          mixins.CreateModelMixin, TenantViewSet):
    queryset = _with_commission_job(Subscription.objects.prefetch_related("addons"))
    serializer_class = SubscriptionSerializer
    write_permission = "plans.manage_subscriptions"
    filterset_fields = ["state", "plan"]

    @extend_schema(summary="Change a subscription's plan or burst",
                   request=SubscriptionUpdateSerializer,
                   responses={200: SubscriptionSerializer, **problems(404, 409)},
                   description="`plan`: move to another plan of the same cloud (its quota "
                               "must hold what the subscription uses). `burst`: opt in to "
                               "the plan's burst room with a `monthly_cap` (needed to opt "
                               "in; 400 when the plan offers no burst), or out. Both in one "
                               "call: the plan changes first, all or nothing. Owner or admin "
                               "only.")
    @transaction.atomic
    def partial_update(self, request, pk=None):
        subscription = self.get_object()
        serializer = SubscriptionUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "plan" in data:
            subscription = plan_services.change_plan(subscription, plan_id=data["plan"],
                                                     acting_user=request.user)
        if "burst" in data:
            plan_services.configure_burst(subscription, enabled=data["burst"]["enabled"],
                                          monthly_cap=data["burst"].get("monthly_cap"),
                                          acting_user=request.user)
        subscription = self.get_queryset().get(pk=subscription.pk)
        return Response(self.get_serializer(subscription).data)

    def perform_create(self, serializer):
        data = serializer.validated_data
        subscription, job = lifecycle.subscribe(
            self.tenant, plan_id=data["plan_id"], name=data.get("name", ""),
            acting_user=self.request.user)
        subscription.commission_job_id = job.pk
        serializer.instance = subscription

    @extend_schema(summary="Retry a failed subscription", request=None,
                   responses={202: SubscriptionSerializer},
                   description="Run the failed commission again: the subscription is "
                               "`provisioning` until its job ends. Only a `failed` "
                               "subscription can be retried (409).")
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        subscription = self.get_object()
        job = lifecycle.retry_commission(subscription, acting_user=request.user)
        subscription = self.get_queryset().get(pk=subscription.pk)
        return accepted(self.get_serializer(subscription).data, job.pk)

    @extend_schema(summary="A subscription's quota", responses=QuotaSerializer,
                   description="Every dimension with its `limit`, what is `used`, and the "
                               "`burst` room above the limit open to it now.")
    @action(detail=True, methods=["get"])
    def quota(self, request, pk=None):
        return Response(quota.summary(self.get_object()))

    @extend_schema(summary="Attach an add-on", request=AttachAddOnSerializer,
                   responses={201: AttachedAddOnSerializer},
                   description="An add-on offered with the subscription's plan; a DR add-on "
                               "also starts protecting the subscription: `job` is the job "
                               "that does it (null for an add-on that starts none).")
    @action(detail=True, methods=["post"], url_path="addons")
    def attach_addon(self, request, pk=None):
        subscription = self.get_object()
        serializer = AttachAddOnSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        _, job = lifecycle.attach_addon(
            subscription, addon_id=serializer.validated_data["addon"], acting_user=request.user)
        subscription = self.get_queryset().get(pk=subscription.pk)
        subscription.attach_job_id = None if job is None else job.pk
        return Response(AttachedAddOnSerializer(subscription).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(summary="Detach an add-on", request=None,
                   responses={204: None, **problems(409)})
    @action(detail=True, methods=["delete"], url_path=r"addons/(?P<addon_id>[0-9a-f-]{36})")
    def detach_addon(self, request, pk=None, addon_id=None):
        subscription = self.get_object()
        get_object_or_404(subscription.addon_links, addon_id=addon_id)
        lifecycle.detach_addon(subscription, addon_id=addon_id, acting_user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
