"""Shapes of plans, add-ons, subscriptions and quota in the API (provider and tenant)."""

from decimal import Decimal

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from base.api.fields import QuotasSerializer, StrictUUIDField
from fabric.models import Template
from plans.models import AddOn, Plan, Subscription
from tenants.models import Tenant

__all__ = ["AddOnSerializer", "PlanBurstSerializer", "PlanSerializer",
           "ProviderSubscriptionSerializer", "PublicPlanSerializer", "SubscriptionBurstSerializer",
           "SubscriptionSerializer", "SubscriptionUpdateSerializer"]


def _room():
    return serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)


def _price():
    return serializers.DecimalField(max_digits=14, decimal_places=6, min_value=Decimal("0"),
                                    default=Decimal("0"))


class BurstLimitsSerializer(serializers.Serializer):
    vcpus = _room()
    memory_mb = _room()
    storage_gb = _room()
    vms = _room()
    snapshots = _room()


class BurstPricesSerializer(serializers.Serializer):
    vcpus = _price()
    memory_mb = _price()
    storage_gb = _price()
    vms = _price()
    snapshots = _price()


@extend_schema_serializer(description=(
    "Room above the plan's quotas a subscription may opt into (`limits`, per dimension), "
    "and what one unit above the quota costs per started minute (`price_per_minute`)."))
class PlanBurstSerializer(serializers.Serializer):
    limits = BurstLimitsSerializer()
    price_per_minute = BurstPricesSerializer()


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
    burst = PlanBurstSerializer(required=False, allow_null=True,
                                help_text="Burst offered above the quotas; null: none.")

    class Meta:
        model = Plan
        fields = ["id", "name", "description", "state", "cloud", "quotas", "templates",
                  "addons", "offered_to", "max_subscriptions", "max_vm_vcpus",
                  "max_vm_memory_mb", "max_vm_disk_gb", "price_monthly", "meter_stopped_vms",
                  "burst", "subscription_count", "created_at"]


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
    burst = PlanBurstSerializer(read_only=True, allow_null=True,
                                help_text="Burst offered above the quotas; null: none.")

    class Meta:
        model = Plan
        fields = ["id", "name", "description", "state", "quotas", "templates", "addons",
                  "max_vm_vcpus", "max_vm_memory_mb", "max_vm_disk_gb", "price_monthly",
                  "meter_stopped_vms", "burst"]


@extend_schema_serializer(description=(
    "The subscription's burst: opted in (`enabled`) with a `monthly_cap` in the provider's "
    "currency; `spent` this month so far, and `capped` once it reached the cap (no new "
    "burst reservations until next month; running VMs are not touched)."))
class SubscriptionBurstSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(source="burst_enabled")
    monthly_cap = serializers.DecimalField(source="burst_monthly_cap", max_digits=10,
                                           decimal_places=2, allow_null=True)
    spent = serializers.DecimalField(source="burst_spent", max_digits=12, decimal_places=2)
    capped = serializers.BooleanField(source="burst_capped")


class BurstChangeSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    monthly_cap = serializers.DecimalField(max_digits=10, decimal_places=2,
                                           min_value=Decimal("0"), required=False,
                                           allow_null=True)


class SubscriptionUpdateSerializer(serializers.Serializer):
    plan = serializers.UUIDField(
        required=False, help_text=(
            "Move to another plan of the same cloud, from this minute: each plan is billed "
            "its share of the month. 404 for a plan the organisation cannot see; 409 for a "
            "plan of another cloud, or whose quota would not hold what the subscription "
            "uses (`/quota-exceeded`)."))
    burst = BurstChangeSerializer(required=False)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Give `plan`, `burst` or both.")
        return attrs


class SubscriptionSerializer(serializers.ModelSerializer):
    plan = StrictUUIDField(source="plan_id")
    addons = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    burst = SubscriptionBurstSerializer(source="*", read_only=True)

    class Meta:
        model = Subscription
        fields = ["id", "name", "plan", "state", "error", "addons", "burst", "created_at"]
        read_only_fields = ["state", "error"]


class ProviderSubscriptionSerializer(serializers.ModelSerializer):
    addons = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    burst = SubscriptionBurstSerializer(source="*", read_only=True)

    class Meta:
        model = Subscription
        fields = ["id", "name", "tenant", "plan", "state", "error", "addons", "burst",
                  "created_at", "state_changed_at"]
        read_only_fields = fields


class AttachAddOnSerializer(serializers.Serializer):
    addon = StrictUUIDField()


class QuotaUsageSerializer(serializers.Serializer):
    limit = serializers.IntegerField()
    used = serializers.IntegerField()
    burst = serializers.IntegerField(help_text="Room above `limit` open now: the plan's burst "
                                               "room while the subscription is opted in and "
                                               "under its monthly cap, else 0.")


class QuotaSerializer(serializers.Serializer):
    vcpus = QuotaUsageSerializer()
    memory_mb = QuotaUsageSerializer()
    storage_gb = QuotaUsageSerializer()
    vms = QuotaUsageSerializer()
    networks = QuotaUsageSerializer()
    snapshots = QuotaUsageSerializer()
