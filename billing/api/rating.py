"""Rating through the API: the provider's plans with their usage prices (and the moment a
price change takes effect), and re-rating a window with today's prices."""

from decimal import Decimal

from drf_spectacular.utils import extend_schema, extend_schema_serializer, extend_schema_view
from rest_framework import serializers
from rest_framework.response import Response

from base.api.schema import problems
from base.api.viewsets import ProviderViewSet
from billing import invoices, prices
from plans.api.serializers import PlanSerializer
from plans.api.views import AddOnViewSet, PlanViewSet

__all__ = ["PricedAddOnViewSet", "PricedPlanViewSet", "ReprocessViewSet"]


@extend_schema_serializer(description="What one unit of a usage meter costs per minute.")
class UsagePriceSerializer(serializers.Serializer):
    meter = serializers.ChoiceField(choices=prices.USAGE_METER_CHOICES)
    unit_price = serializers.DecimalField(max_digits=20, decimal_places=6,
                                          min_value=Decimal("0"))


@extend_schema_serializer(component_name="Plan")
class PricedPlanSerializer(PlanSerializer):
    prices = UsagePriceSerializer(
        many=True, required=False, source="usage_prices",
        help_text="Usage prices per meter (unit-minutes); a meter left out is included in "
                  "the monthly price. A change takes effect now: minutes before it keep "
                  "their price unless re-rated.")

    class Meta(PlanSerializer.Meta):
        fields = [*PlanSerializer.Meta.fields, "prices"]

    def to_representation(self, instance):
        instance.usage_prices = [{"meter": m, "unit_price": p}
                                 for m, p in prices.usage_prices(instance).items()]
        return super().to_representation(instance)


@extend_schema_view(
    list=extend_schema(summary="List plans"),
    retrieve=extend_schema(summary="Get a plan"),
    create=extend_schema(summary="Publish a plan"),
    update=extend_schema(summary="Replace a plan",
                         responses={200: PricedPlanSerializer, **problems(409)},
                         description="The cloud of a plan with subscriptions cannot change "
                                     "(409). Price changes take effect now."),
    partial_update=extend_schema(summary="Change a plan",
                                 responses={200: PricedPlanSerializer, **problems(409)},
                                 description="The cloud of a plan with subscriptions cannot "
                                             "change (409). Price changes take effect now."),
)
class PricedPlanViewSet(PlanViewSet):
    serializer_class = PricedPlanSerializer

    def save(self, instance, serializer):
        usage = serializer.validated_data.pop("usage_prices", None)
        before = None if instance is None else {
            "monthly": instance.price_monthly,
            **{f"burst.{d}": p for d, p in instance.burst_prices().items()}}
        plan = super().save(instance, serializer)
        prices.record_plan_prices(plan, before=before, usage=usage)
        return plan


class PricedAddOnViewSet(AddOnViewSet):
    def save(self, instance, serializer):
        before = None if instance is None else instance.price_monthly
        addon = super().save(instance, serializer)
        prices.record_addon_price(addon, before=before)
        return addon


class ReprocessSerializer(serializers.Serializer):
    # ``from`` is a keyword: the fields are named in ``get_fields``.
    def get_fields(self):
        return {"from": serializers.DateTimeField(help_text="Start of the window (UTC, a "
                                                            "whole minute)."),
                "to": serializers.DateTimeField(help_text="End of the window, not in the "
                                                          "future.")}


@extend_schema_serializer(component_name="Reprocess")
class ReprocessedSerializer(ReprocessSerializer):
    def get_fields(self):
        return {**super().get_fields(),
                "requested_at": serializers.DateTimeField(
                    help_text="The moment whose prices now rate the window.")}


class ReprocessViewSet(ProviderViewSet):
    serializer_class = ReprocessSerializer

    @extend_schema(summary="Rate a window again", request=ReprocessSerializer,
                   responses={200: ReprocessedSerializer},
                   description="Rate `[from, to)` again with today's prices: drafts at once; "
                               "the difference for a month already issued becomes adjustment "
                               "lines on the next draft. 400 for a window that is not whole "
                               "minutes, ends in the future or ends before it starts.")
    def create(self, request):
        serializer = ReprocessSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        window = invoices.reprocess(data["from"], data["to"], acting_user=request.user)
        return Response({"from": window.start, "to": window.end,
                         "requested_at": window.created_at})
