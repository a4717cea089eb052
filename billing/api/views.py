"""Usage over the API: a subscription's own (tenant) and anyone's (provider)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from base.api.schema import problems
from base.api.viewsets import ProviderViewSet, TenantViewSet
from base.errors import Invalid
from billing import usage
from billing.models import Meter, MissingState, UsageRecord
from plans.models import Subscription

__all__ = ["ProviderUsageViewSet", "SubscriptionUsageViewSet"]

_MONEY = {"max_digits": 20, "decimal_places": 2, "coerce_to_string": True}


class MeterUsageSerializer(serializers.Serializer):
    meter = serializers.ChoiceField(choices=Meter.choices)
    unit = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=26, decimal_places=6,
                                        help_text="Unit-minutes in the window.")
    included = serializers.DecimalField(max_digits=26, decimal_places=6,
                                        help_text="What the plan includes of it.")
    billable = serializers.DecimalField(max_digits=26, decimal_places=6,
                                        help_text="What is charged of it.")
    amount = serializers.DecimalField(**_MONEY)


class UsagePointSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="The hour or day (UTC) it sums.")
    meter = serializers.ChoiceField(choices=Meter.choices)
    quantity = serializers.DecimalField(max_digits=26, decimal_places=6)


class UsageSerializer(serializers.Serializer):
    def get_fields(self):
        # ``from`` is a Python keyword: the field is declared here, not as an attribute.
        return {
            "from": serializers.DateTimeField(),
            "to": serializers.DateTimeField(),
            "granularity": serializers.ChoiceField(choices=usage.Granularity.choices),
            "currency": serializers.CharField(),
            "meters": MeterUsageSerializer(many=True),
            "series": UsagePointSerializer(many=True),
            "total": serializers.DecimalField(**_MONEY),
        }


class MissingUsageSerializer(serializers.Serializer):
    stamp = serializers.UUIDField(source="stamp_id")
    stamp_name = serializers.CharField(source="stamp.name")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    state = serializers.ChoiceField(choices=MissingState.choices)
    detail = serializers.CharField()


class ProviderUsageSerializer(UsageSerializer):
    def get_fields(self):
        return {**super().get_fields(),
                "missing": MissingUsageSerializer(
                    many=True, help_text="Minutes a stamp did not answer for: `missing` "
                                         "until backfilled from its history.")}


class ProviderUsageFilter(serializers.Serializer):
    tenant = serializers.UUIDField(required=False)
    stamp = serializers.UUIDField(required=False)


_WINDOW = [
    OpenApiParameter("from", str, description="Start, a whole hour in UTC (ISO 8601); "
                     "without `from` and `to`: the running month."),
    OpenApiParameter("to", str, description="End (excluded), a whole hour in UTC, not in "
                     "the future."),
    OpenApiParameter("granularity", str, enum=usage.Granularity.values,
                     description="Periods of `series`; default `day`."),
]
_DESCRIPTION = ("Usage metered by the minute from the stamps, summed per meter and per "
                "hour or day of the window, with what it costs so far. A window that is not "
                "hour-aligned, ends before it starts or ends in the future is 400.")


class SubscriptionUsageViewSet(TenantViewSet):
    """``/subscriptions/<id>/usage/``: the tenant's own usage."""

    queryset = Subscription.objects.all()
    serializer_class = UsageSerializer
    lookup_url_kwarg = "subscription_pk"
    write_permission = "plans.manage_subscriptions"

    @extend_schema(summary="A subscription's usage", description=_DESCRIPTION,
                   parameters=_WINDOW, responses={200: UsageSerializer, **problems(400)})
    def retrieve(self, request, subscription_pk=None):
        subscription = self.get_object()
        window = usage.parse_window(request.query_params)
        return Response(UsageSerializer(usage.summary(window, subscription=subscription)).data)


class ProviderUsageViewSet(ProviderViewSet):
    """``/admin/usage/``: every subscription's usage, per tenant or per stamp."""

    queryset = UsageRecord.objects.none()
    serializer_class = ProviderUsageSerializer

    @extend_schema(summary="Usage of every tenant", description=_DESCRIPTION + (
                       " `tenant` and `stamp` narrow it; `missing` lists the minutes of "
                       "stamps that did not answer."),
                   parameters=[*_WINDOW, ProviderUsageFilter],
                   responses={200: ProviderUsageSerializer, **problems(400)})
    def report(self, request):
        query = ProviderUsageFilter(data=request.query_params)
        if not query.is_valid():
            raise Invalid("The filters are not valid.", errors=query.errors)
        window = usage.parse_window(request.query_params)
        filters, missing = {}, {}
        if "tenant" in query.validated_data:
            filters["subscription__tenant_id"] = query.validated_data["tenant"]
        if "stamp" in query.validated_data:
            filters["stamp_id"] = missing["stamp_id"] = query.validated_data["stamp"]
        body = {**usage.summary(window, **filters),
                "missing": usage.missing(window, **missing)}
        return Response(ProviderUsageSerializer(body).data)
