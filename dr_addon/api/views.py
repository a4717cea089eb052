"""DR over the API: network mappings (provider), status and drills (tenant), failover
and failback (provider)."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from base.api.responses import JobAcceptedSerializer
from base.api.responses import accepted as accepted_response
from base.api.viewsets import CatalogViewSet, ProviderViewSet, TenantViewSet
from dr_addon import services
from dr_addon.models import (
    ActiveSite,
    DrillKind,
    NetworkMapping,
    ProtectedVmState,
    ProtectionState,
)
from plans.models import Subscription

__all__ = ["FAILOVER_MODES", "DrViewSet", "NetworkMappingViewSet", "ProviderDrViewSet"]

# The two kinds of failover a provider may start (the ``FailoverMode`` enum of the schema).
FAILOVER_MODES = [(kind.value, kind.label) for kind in (DrillKind.PLANNED, DrillKind.UNPLANNED)]


class NetworkMappingSerializer(serializers.ModelSerializer):
    class Meta:
        model = NetworkMapping
        fields = ["id", "addon", "primary_network", "recovery_network"]


class ProtectedVmSerializer(serializers.Serializer):
    vm = serializers.UUIDField()
    name = serializers.CharField()
    state = serializers.ChoiceField(choices=ProtectedVmState.choices)
    last_sync_at = serializers.DateTimeField(allow_null=True)
    sequence = serializers.IntegerField()
    rpo_seconds = serializers.FloatField(allow_null=True, help_text="Current lag.")
    rpo_target_seconds = serializers.IntegerField()
    over_rpo = serializers.BooleanField()


class DrReportSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=DrillKind.choices)
    job = serializers.UUIDField(allow_null=True)
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    outcome = serializers.CharField()
    data_loss_seconds = serializers.FloatField(allow_null=True)
    details = serializers.DictField()


class DrStatusSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=ProtectionState.choices)
    recovery_cloud = serializers.UUIDField()
    active_site = serializers.ChoiceField(choices=ActiveSite.choices)
    rpo_target_seconds = serializers.IntegerField()
    protected = ProtectedVmSerializer(many=True)
    reports = DrReportSerializer(many=True)


class FailoverSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=FAILOVER_MODES)


def accepted(job) -> Response:
    return accepted_response({"job": str(job.pk)}, job.pk)


_STATUS = ("How the subscription is protected: its state, where it runs now "
           "(`active_site`), each protected VM's replication lag against the RPO target, "
           "and the latest drills and failovers.")
_DRILL = ("Start recovery copies in an isolated network, check them and clean up; production "
          "keeps running. Needs a `protected` subscription; one drill at a time (409).")


@extend_schema_view(
    list=extend_schema(summary="List network mappings"),
    retrieve=extend_schema(summary="Get a network mapping"),
    create=extend_schema(summary="Map a network for DR",
                         description="Which network of the recovery cloud a primary network "
                                     "of a DR add-on's plans recovers to."),
    update=extend_schema(summary="Replace a network mapping"),
    partial_update=extend_schema(summary="Change a network mapping"),
    destroy=extend_schema(summary="Delete a network mapping"),
)
class NetworkMappingViewSet(mixins.DestroyModelMixin, CatalogViewSet):
    queryset = NetworkMapping.objects.select_related("addon")
    serializer_class = NetworkMappingSerializer
    filterset_fields = ["addon"]

    def save(self, instance, serializer):
        return services.save_mapping(instance, fields=serializer.validated_data,
                                     acting_user=self.request.user)

    def perform_destroy(self, instance):
        services.delete_mapping(instance, acting_user=self.request.user)


class DrViewSet(TenantViewSet):
    """``/subscriptions/<id>/dr/``: the tenant's view of its protection."""

    queryset = Subscription.objects.all()
    serializer_class = DrStatusSerializer
    write_permission = "provisioning.operate"
    lookup_url_kwarg = "subscription_pk"

    @extend_schema(summary="A subscription's DR status", description=_STATUS,
                   responses=DrStatusSerializer)
    def retrieve(self, request, subscription_pk=None):
        return Response(DrStatusSerializer(services.status(self.get_object())).data)

    @extend_schema(summary="Start a DR drill", description=_DRILL, request=None,
                   responses={202: JobAcceptedSerializer})
    @action(detail=True, methods=["post"], url_path="test-failover")
    def test_failover(self, request, subscription_pk=None):
        return accepted(services.test_failover(self.get_object(), acting_user=request.user))


class ProviderDrViewSet(ProviderViewSet):
    """``/admin/subscriptions/<id>/dr/``: status, drills, failover and failback."""

    queryset = Subscription.objects.all()
    serializer_class = DrStatusSerializer
    lookup_url_kwarg = "subscription_pk"

    @extend_schema(summary="Any subscription's DR status", description=_STATUS,
                   responses=DrStatusSerializer)
    def retrieve(self, request, subscription_pk=None):
        return Response(DrStatusSerializer(services.status(self.get_object())).data)

    @extend_schema(summary="Start a DR drill for a subscription", description=_DRILL,
                   request=None, responses={202: JobAcceptedSerializer})
    @action(detail=True, methods=["post"], url_path="test-failover")
    def test_failover(self, request, subscription_pk=None):
        return accepted(services.test_failover(self.get_object(), acting_user=request.user))

    @extend_schema(summary="Fail a subscription over", request=FailoverSerializer,
                   responses={202: JobAcceptedSerializer},
                   description="Run the subscription on its recovery site. `planned` stops "
                               "the primary VMs and replicates their last changes first "
                               "(409 while VMs have jobs in flight); `unplanned` starts from "
                               "the last replica without asking a primary that may be gone.")
    @action(detail=True, methods=["post"])
    def failover(self, request, subscription_pk=None):
        serializer = FailoverSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return accepted(services.failover(self.get_object(), acting_user=request.user,
                                          mode=serializer.validated_data["mode"]))

    @extend_schema(summary="Fail a subscription back", request=None,
                   responses={202: JobAcceptedSerializer},
                   description="Bring a failed-over subscription back to its primary site.")
    @action(detail=True, methods=["post"])
    def failback(self, request, subscription_pk=None):
        return accepted(services.failback(self.get_object(), acting_user=request.user))
