"""Shapes of the fabric catalog in the provider API: stamps (write-only credentials), clouds
with capacity and allocation, templates, stamp health checks."""

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from fabric.models import Cloud, Stamp, StampCheck, Template

__all__ = ["CloudSerializer", "StampCheckSerializer", "StampSerializer", "TemplateSerializer"]


class StampSerializer(serializers.ModelSerializer):
    credentials = serializers.DictField(
        write_only=True, required=False, help_text="Stored encrypted; never returned."
    )
    capabilities = serializers.SerializerMethodField(
        help_text="What the stamp's driver can do beyond VMs, networks and checkpoints "
        "(gateways, firewall, nat, replication, guest-files, usage-history); plans, add-ons "
        "and runbooks that need one it lacks are refused."
    )

    class Meta:
        model = Stamp
        fields = [
            "id",
            "name",
            "region",
            "driver",
            "endpoint",
            "credentials",
            "enabled",
            "health",
            "health_detail",
            "last_checked_at",
            "capacity",
            "capabilities",
            "created_at",
        ]
        read_only_fields = ["health", "health_detail", "last_checked_at", "capacity"]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_capabilities(self, stamp: Stamp) -> list[str]:
        return sorted(str(c) for c in stamp.capabilities)


class CapacitySerializer(serializers.ModelSerializer):
    """The cloud's own capacity columns, with the model's bounds (at least 1 of each)."""

    class Meta:
        model = Cloud
        fields = ["vcpus", "memory_mb", "storage_gb", "vms"]


class OvercommitSerializer(serializers.Serializer):
    cpu = serializers.DecimalField(
        source="overcommit_cpu", max_digits=5, decimal_places=2, min_value=1, required=False
    )
    memory = serializers.DecimalField(
        source="overcommit_memory", max_digits=5, decimal_places=2, min_value=1, required=False
    )


class AllocationSerializer(serializers.Serializer):
    limit = serializers.IntegerField()
    used = serializers.IntegerField()


class CloudSerializer(serializers.ModelSerializer):
    capacity = CapacitySerializer(source="*")
    overcommit = OvercommitSerializer(source="*", required=False)
    allocated = serializers.SerializerMethodField(
        help_text="Per dimension: what subscriptions hold (used) of what may be "
        "allocated with overcommit (limit)."
    )

    class Meta:
        model = Cloud
        fields = [
            "id",
            "name",
            "stamp",
            "capacity",
            "overcommit",
            "allocated",
            "default_network_cidr",
            "external_pool_cidr",
            "provider_networks",
            "created_at",
        ]

    @extend_schema_field(serializers.DictField(child=AllocationSerializer()))
    def get_allocated(self, cloud):
        return {
            row.dimension: {"limit": row.limit, "used": row.used}
            for row in cloud.capacity_rows.all()
        }


@extend_schema_serializer(component_name="ProviderTemplate")
class TemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Template
        fields = ["id", "name", "os", "cloud", "image", "min_vcpus", "min_memory_mb", "min_disk_gb"]


class StampCheckSerializer(serializers.ModelSerializer):
    class Meta:
        model = StampCheck
        fields = ["at", "health", "detail", "latency_ms", "capacity"]
