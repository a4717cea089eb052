"""Shapes of plans, add-ons, subscriptions and quota in the API (provider and tenant)."""

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from base.api.fields import QuotasSerializer, StrictUUIDField
from fabric.models import Template
from plans.models import AddOn, Plan, Subscription
from tenants.models import Tenant

__all__ = ["AddOnSerializer", "PlanSerializer", "ProviderSubscriptionSerializer",
           "PublicPlanSerializer", "SubscriptionSerializer"]


class AddOnSerializer(serializers.ModelSerializer):
    quotas = QuotasSerializer(source="*", required=False)

    class Meta:
        model = AddOn
        fields = ["id", "name", "description", "kind", "quotas", "recovery_cloud",
                  "rpo_seconds", "price_monthly", "created_at"]


class PlanSerializer(serializers.ModelSerializer):
    quotas = QuotasSerializer(source="*", required=False)
    templates = serializers.PrimaryKeyRelatedField(many=True, required=False,
                                                   queryset=Template.objects.all())
    addons = serializers.PrimaryKeyRelatedField(many=True, required=False,
                                                queryset=AddOn.objects.all())
    offered_to = serializers.PrimaryKeyRelatedField(
        many=True, required=False, queryset=Tenant.objects.all(),
        help_text="Tenants that see the plan while it is private.")
    subscription_count = serializers.IntegerField(
        read_only=True, help_text="Subscriptions of the plan that are not deleted.")

    class Meta:
        model = Plan
        fields = ["id", "name", "description", "state", "cloud", "quotas", "templates",
                  "addons", "offered_to", "max_subscriptions", "max_vm_vcpus",
                  "max_vm_memory_mb", "max_vm_disk_gb", "price_monthly", "subscription_count",
                  "created_at"]


class OfferedAddOnSerializer(serializers.ModelSerializer):
    quotas = QuotasSerializer(source="*", read_only=True)

    class Meta:
        model = AddOn
        fields = ["id", "name", "description", "kind", "quotas", "rpo_seconds", "price_monthly"]


@extend_schema_serializer(component_name="Template")
class OfferedTemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Template
        fields = ["id", "name", "os", "min_vcpus", "min_memory_mb", "min_disk_gb"]


class PublicPlanSerializer(serializers.ModelSerializer):
    """What a tenant sees of a plan: no cloud, no stamp, no other tenants."""

    quotas = QuotasSerializer(source="*", read_only=True)
    templates = OfferedTemplateSerializer(many=True, read_only=True)
    addons = OfferedAddOnSerializer(many=True, read_only=True)

    class Meta:
        model = Plan
        fields = ["id", "name", "description", "state", "quotas", "templates", "addons",
                  "max_vm_vcpus", "max_vm_memory_mb", "max_vm_disk_gb", "price_monthly"]


class SubscriptionSerializer(serializers.ModelSerializer):
    plan = StrictUUIDField(source="plan_id")
    addons = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)

    class Meta:
        model = Subscription
        fields = ["id", "name", "plan", "state", "error", "addons", "created_at"]
        read_only_fields = ["state", "error"]


class ProviderSubscriptionSerializer(serializers.ModelSerializer):
    addons = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Subscription
        fields = ["id", "name", "tenant", "plan", "state", "error", "addons", "created_at",
                  "state_changed_at"]
        read_only_fields = fields


class AttachAddOnSerializer(serializers.Serializer):
    addon = StrictUUIDField()


class QuotaUsageSerializer(serializers.Serializer):
    limit = serializers.IntegerField()
    used = serializers.IntegerField()


class QuotaSerializer(serializers.Serializer):
    vcpus = QuotaUsageSerializer()
    memory_mb = QuotaUsageSerializer()
    storage_gb = QuotaUsageSerializer()
    vms = QuotaUsageSerializer()
    networks = QuotaUsageSerializer()
    snapshots = QuotaUsageSerializer()
