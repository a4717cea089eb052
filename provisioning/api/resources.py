"""Tenant resources over the API: networks, VMs, checkpoints, templates.

Fabric changes answer 202 with the resource in a transitional state and ``job``.
"""

import django_filters
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers
from rest_framework.decorators import action

from base.api.fields import FieldsBuiltOnce, StrictUUIDField
from base.api.responses import JobAcceptedSerializer, accepted
from base.api.schema import problems
from base.api.viewsets import TenantViewSet
from base.errors import Invalid, NotFound
from base.scoping import current_tenant
from fabric.models import Template
from plans.api.serializers import OfferedTemplateSerializer
from plans.models import Subscription, SubscriptionState
from provisioning import resources
from provisioning.models import (
    Network,
    NetworkState,
    Snapshot,
    SnapshotState,
    VirtualMachine,
    VmState,
)

__all__ = ["NetworkViewSet", "TemplateViewSet", "VmViewSet"]


# --- serializers ----------------------------------------------------------------------

_JOB_HELP = "The job that carries out the change: follow it at GET /api/v1/jobs/<id>/."


class NetworkSerializer(FieldsBuiltOnce, serializers.ModelSerializer):
    subscription = StrictUUIDField(source="subscription_id")
    cidr = serializers.CharField(max_length=43)

    class Meta:
        model = Network
        fields = ["id", "subscription", "name", "cidr", "gateway_address", "state",
                  "is_default", "created_at"]
        read_only_fields = ["gateway_address", "state", "is_default"]


class NetworkAcceptedSerializer(NetworkSerializer):
    job = serializers.UUIDField(read_only=True, help_text=_JOB_HELP)

    class Meta(NetworkSerializer.Meta):
        fields = [*NetworkSerializer.Meta.fields, "job"]


class VmSerializer(FieldsBuiltOnce, serializers.ModelSerializer):
    subscription = StrictUUIDField(source="subscription_id")
    template = StrictUUIDField(source="template_id")
    network = StrictUUIDField(source="network_id", required=False,
                              help_text="Leave out for the subscription's default network.")
    vcpus = serializers.IntegerField(min_value=1, max_value=1024)
    memory_mb = serializers.IntegerField(min_value=1, max_value=16 * 1024 * 1024)
    disk_gb = serializers.IntegerField(min_value=1, max_value=1024 * 1024)

    class Meta:
        model = VirtualMachine
        fields = ["id", "subscription", "name", "template", "vcpus", "memory_mb", "disk_gb",
                  "network", "ip_address", "state", "created_at"]
        read_only_fields = ["ip_address", "state"]


class VmAcceptedSerializer(VmSerializer):
    job = serializers.UUIDField(read_only=True, help_text=_JOB_HELP)

    class Meta(VmSerializer.Meta):
        fields = [*VmSerializer.Meta.fields, "job"]


class ResizeSerializer(serializers.Serializer):
    vcpus = serializers.IntegerField(min_value=1, max_value=1024)
    memory_mb = serializers.IntegerField(min_value=1, max_value=16 * 1024 * 1024)


class SnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = Snapshot
        fields = ["id", "vm", "name", "state", "created_at"]
        read_only_fields = ["vm", "state"]


class SnapshotAcceptedSerializer(SnapshotSerializer):
    job = serializers.UUIDField(read_only=True, help_text=_JOB_HELP)

    class Meta(SnapshotSerializer.Meta):
        fields = [*SnapshotSerializer.Meta.fields, "job"]


def with_job(data, job):
    """202 with the resource as it is now and the job that changes it."""
    return accepted({**data, "job": str(job.pk)}, job.pk)


def answered(serializer, instance) -> dict:
    """``instance`` as the serializer that read the request represents it (as DRF's
    ``save()`` does: its fields are built once a request)."""
    serializer.instance = instance
    return serializer.data


def job_only(job):
    return accepted({"job": str(job.pk)}, job.pk)


# --- viewsets -------------------------------------------------------------------------

class SubscriptionScoped(TenantViewSet):

    def subscription(self, subscription_id) -> Subscription:
        """The caller's subscription, or a 400 naming the field (never another's)."""
        subscription = (Subscription.objects.restrict(self.tenant).select_related("plan")
                        .filter(pk=subscription_id)
                        .exclude(state=SubscriptionState.DELETED).first())
        if subscription is None:
            raise Invalid("No such subscription.",
                          errors={"subscription": ["Not a subscription of yours."]})
        return subscription


@extend_schema_view(
    list=extend_schema(summary="List networks"),
    retrieve=extend_schema(summary="Get a network"),
)
class NetworkViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SubscriptionScoped):
    queryset = Network.objects.exclude(state=NetworkState.DELETED)
    serializer_class = NetworkSerializer
    filterset_fields = ["subscription", "state"]

    @extend_schema(summary="Create a network", responses={202: NetworkAcceptedSerializer},
                   description="A private IPv4 range (/16 to /29) that overlaps no other "
                               "network of the subscription. Answers 202 while its job "
                               "creates it on the fabric.")
    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        network, job = resources.create_network(
            self.subscription(data["subscription_id"]), name=data["name"], cidr=data["cidr"],
            acting_user=request.user)
        return with_job(answered(serializer, network), job)

    @extend_schema(summary="Delete a network",
                   responses={202: JobAcceptedSerializer, **problems(409)},
                   description="Not the subscription's default network, nor one with VMs "
                               "(409).")
    def destroy(self, request, pk=None):
        return job_only(resources.delete_network(self.get_object(), acting_user=request.user))


_VM_STATE_CONFLICT = "An action that makes no sense in the VM's state is 409 `/vm-state`."


@extend_schema_view(
    list=extend_schema(summary="List VMs"),
    retrieve=extend_schema(summary="Get a VM"),
)
class VmViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SubscriptionScoped):
    queryset = VirtualMachine.objects.exclude(state=VmState.DELETED)
    serializer_class = VmSerializer
    filterset_fields = ["subscription", "state", "network"]

    @extend_schema(summary="Create a VM", responses={202: VmAcceptedSerializer},
                   description="From a template of the subscription's plan, within its sizes "
                               "and quota (409 `/quota-exceeded`); without `network`, on the "
                               "subscription's default network. Answers 202 with the VM "
                               "`provisioning` and its job.")
    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        spec = resources.VmSpec(name=data["name"], template_id=data["template_id"],
                                vcpus=data["vcpus"], memory_mb=data["memory_mb"],
                                disk_gb=data["disk_gb"], network_id=data.get("network_id"))
        vm, job = resources.create_vm(data["subscription_id"], spec, acting_user=request.user,
                                      tenant=self.tenant)
        return with_job(answered(serializer, vm), job)

    @extend_schema(summary="Delete a VM", responses={202: VmAcceptedSerializer, **problems(409)},
                   description="Its quota is given back when the job has ended.")
    def destroy(self, request, pk=None):
        return self._accepted(pk, resources.delete_vm, acting_user=request.user)

    def _power(self, request, pk, verb):
        return self._accepted(pk, resources.vm_power, verb, acting_user=request.user)

    def _accepted(self, pk, change, *args, **kwargs):
        """The VM as the change left it: the change reads it under lock (a 404 unless it is
        a live VM of this tenant's) into the instance given, which is what is answered. A
        later read could miss it: the job is published at commit and may end first (a
        deleted VM leaves the view)."""
        vm = VirtualMachine(pk=pk)
        job = change(vm, *args, tenant=self.tenant, **kwargs)
        return with_job(self.get_serializer(vm).data, job)

    @extend_schema(summary="Start a VM", description=_VM_STATE_CONFLICT, request=None,
                   responses={202: VmAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        return self._power(request, pk, "start")

    @extend_schema(summary="Stop a VM", description=_VM_STATE_CONFLICT, request=None,
                   responses={202: VmAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        return self._power(request, pk, "stop")

    @extend_schema(summary="Restart a VM", description=_VM_STATE_CONFLICT, request=None,
                   responses={202: VmAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def restart(self, request, pk=None):
        return self._power(request, pk, "restart")

    @extend_schema(summary="Resize a VM", request=ResizeSerializer,
                   responses={202: VmAcceptedSerializer},
                   description="Quota is checked on the difference (409 `/quota-exceeded`); "
                               "a shrink gives quota back when it has happened.")
    @action(detail=True, methods=["post"])
    def resize(self, request, pk=None):
        self.get_object()  # 404 before 400 for another tenant's VM
        serializer = ResizeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._accepted(pk, resources.resize_vm, acting_user=request.user,
                              **serializer.validated_data)

    # The checkpoints of one VM: not filtered like the list of VMs.
    @extend_schema(methods=["GET"], summary="List a VM's checkpoints",
                   responses=SnapshotSerializer(many=True))
    @extend_schema(methods=["POST"], summary="Take a checkpoint of a VM",
                   request=SnapshotSerializer, responses={202: SnapshotAcceptedSerializer},
                   description="Of a running or stopped VM, within the `snapshots` quota.")
    @action(detail=True, methods=["get", "post"], serializer_class=SnapshotSerializer,
            filter_backends=[])
    def snapshots(self, request, pk=None):
        vm = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(
                vm.snapshots.exclude(state=SnapshotState.DELETED).order_by("-created_at"))
            return self.get_paginated_response(SnapshotSerializer(page, many=True).data)
        serializer = SnapshotSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        snapshot, job = resources.create_snapshot(vm, name=serializer.validated_data["name"],
                                                  acting_user=request.user)
        return with_job(SnapshotSerializer(snapshot).data, job)

    def _snapshot(self, pk, snapshot_id) -> Snapshot:
        return get_object_or_404(self.get_object().snapshots.exclude(
            state=SnapshotState.DELETED), pk=snapshot_id)

    @extend_schema(summary="Restore a checkpoint", request=None,
                   responses={202: SnapshotAcceptedSerializer},
                   description="The VM goes back to the checkpoint; it must be `ready`. The "
                               "answer is the checkpoint, `restoring`, and its job.")
    @action(detail=True, methods=["post"], filter_backends=[],
            url_path=r"snapshots/(?P<snapshot_id>[0-9a-f-]{36})/restore")
    def restore_snapshot(self, request, pk=None, snapshot_id=None):
        snapshot = self._snapshot(pk, snapshot_id)
        job = resources.restore_snapshot(snapshot, acting_user=request.user)
        return with_job(SnapshotSerializer(snapshot).data, job)

    @extend_schema(summary="Delete a checkpoint", request=None,
                   responses={202: SnapshotAcceptedSerializer, **problems(409)},
                   description="The answer is the checkpoint, `deleting`, and its job.")
    @action(detail=True, methods=["delete"], filter_backends=[],
            url_path=r"snapshots/(?P<snapshot_id>[0-9a-f-]{36})")
    def delete_snapshot(self, request, pk=None, snapshot_id=None):
        snapshot = self._snapshot(pk, snapshot_id)
        job = resources.delete_snapshot(snapshot, acting_user=request.user)
        return with_job(SnapshotSerializer(snapshot).data, job)


class TemplateFilter(django_filters.FilterSet):
    subscription = django_filters.UUIDFilter(
        method="in_plan_of", help_text="Only the templates of this subscription's plan.")

    class Meta:
        model = Template
        fields = ["os", "subscription"]

    def in_plan_of(self, queryset, name, value):
        subscription = (Subscription.objects.restrict(current_tenant(self.request.user))
                        .exclude(state=SubscriptionState.DELETED).filter(pk=value).first())
        if subscription is None:
            raise NotFound("No such subscription.")
        return queryset.filter(plans__subscriptions=subscription)


# Templates may be used while a subscription is on its way in or running, not once it goes.
_GONE = [SubscriptionState.DELETING, SubscriptionState.DELETED]


@extend_schema_view(
    list=extend_schema(summary="List the templates a VM can be created from",
                       description="Those of the plans of the caller's subscriptions; with "
                                   "`subscription`, those of that subscription's plan."),
    retrieve=extend_schema(summary="Get a template"),
)
class TemplateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    queryset = Template.objects.all()
    serializer_class = OfferedTemplateSerializer
    filterset_class = TemplateFilter

    def get_queryset(self):
        if self.tenant is None:
            return Template.objects.none()
        subscriptions = Subscription.objects.restrict(self.tenant).exclude(state__in=_GONE)
        return (Template.objects.filter(plans__subscriptions__in=subscriptions)
                .distinct().order_by("name"))
