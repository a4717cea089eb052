"""Invoices through the API: the tenant's own (JSON, or CSV with ``Accept: text/csv``) and
every tenant's for the provider, who issues closed months."""

import csv
import io
import json

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from base.api.schema import problems
from base.api.viewsets import ProviderViewSet, TenantViewSet
from billing import invoices
from billing.rating_models import Invoice, InvoiceLine

__all__ = ["InvoiceViewSet", "ProviderInvoiceViewSet"]

LINE_COLUMNS = ["subscription", "description", "meter", "quantity", "unit", "unit_price",
                "amount", "period_start", "period_end", "adjustment", "usage_period"]
INVOICE_COLUMNS = ["id", "tenant", "period_start", "period_end", "state", "currency", "total"]


class InvoiceCsvRenderer(BaseRenderer):
    """One row per invoice line, with its invoice's columns in front."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if not isinstance(data, dict) or not ({"lines", "results"} & set(data)):
            return json.dumps(data).encode()  # a problem: it stays JSON
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([f"invoice_{c}" if c != "id" else "invoice" for c in INVOICE_COLUMNS]
                        + LINE_COLUMNS)
        for invoice in data.get("results", [data]):
            head = [invoice.get(c, "") for c in INVOICE_COLUMNS]
            for line in invoice.get("lines", []):
                writer.writerow(head + [line.get(c, "") for c in LINE_COLUMNS])
        return out.getvalue().encode()


class InvoiceLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = InvoiceLine
        fields = ["subscription", "description", "meter", "quantity", "unit", "unit_price",
                  "amount", "period_start", "period_end", "adjustment", "usage_period"]
        extra_kwargs = {
            "adjustment": {"help_text": "Late usage (or a re-rated window) of an issued "
                                        "month, named by `usage_period`."},
            "usage_period": {"help_text": "The first instant of the month the usage belongs "
                                          "to."},
        }


class InvoiceSerializer(serializers.ModelSerializer):
    lines = InvoiceLineSerializer(many=True, read_only=True)

    class Meta:
        model = Invoice
        fields = ["id", "period_start", "period_end", "state", "currency", "total", "lines",
                  "refreshed_at", "issued_at"]
        read_only_fields = fields


class ProviderInvoiceSerializer(InvoiceSerializer):
    class Meta(InvoiceSerializer.Meta):
        fields = ["id", "tenant", *InvoiceSerializer.Meta.fields[1:]]
        read_only_fields = fields


class IssueSerializer(serializers.Serializer):
    period = serializers.RegexField(r"^\d{4}-(0[1-9]|1[0-2])$", help_text="YYYY-MM (UTC).")


class IssuedSerializer(serializers.Serializer):
    period = serializers.CharField()
    invoices = ProviderInvoiceSerializer(many=True)


_CSV = ("Send `Accept: text/csv` for CSV: one row per line, with its invoice's columns "
        "in front.")
_PERIOD = OpenApiParameter("period", str, description="A month, YYYY-MM (UTC).")
# CSV is asked for with the Accept header (API.md); ``?format=`` is left undocumented.
_NO_FORMAT = OpenApiParameter("format", exclude=True)


def _lines(queryset):
    return queryset.select_related("tenant").prefetch_related("lines")


@extend_schema_view(
    list=extend_schema(summary="List the organisation's invoices", parameters=[_NO_FORMAT],
                       description="One per month; the running month is a `draft` that "
                                   "grows. " + _CSV),
    retrieve=extend_schema(summary="Get an invoice", description=_CSV,
                           parameters=[_NO_FORMAT]),
)
class InvoiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    queryset = _lines(Invoice.objects.all())
    serializer_class = InvoiceSerializer
    renderer_classes = [JSONRenderer, InvoiceCsvRenderer]
    filterset_fields = ["state"]


@extend_schema_view(
    list=extend_schema(summary="List every tenant's invoices", parameters=[_PERIOD, _NO_FORMAT],
                       description="`?period=YYYY-MM` for one month. " + _CSV),
    retrieve=extend_schema(summary="Get any invoice", description=_CSV,
                           parameters=[_NO_FORMAT]),
)
class ProviderInvoiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                             ProviderViewSet):
    queryset = _lines(Invoice.objects.all())
    serializer_class = ProviderInvoiceSerializer
    renderer_classes = [JSONRenderer, InvoiceCsvRenderer]
    filterset_fields = ["state", "tenant"]

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "list" and "period" in self.request.query_params:
            start = invoices.parse_period(self.request.query_params["period"])
            queryset = queryset.filter(period_start=start)
        return queryset

    @extend_schema(summary="Issue a closed month", request=IssueSerializer,
                   responses={200: IssuedSerializer, **problems(409)},
                   description="Rate every tenant's month one last time and issue it. Once: "
                               "a month already issued changes nothing; the running month "
                               "(or a later one) is 409.")
    @action(detail=False, methods=["post"], renderer_classes=[JSONRenderer])
    def issue(self, request):
        serializer = IssueSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        period = serializer.validated_data["period"]
        issued = invoices.issue_period(invoices.parse_period(period), acting_user=request.user)
        queryset = self.get_queryset().filter(pk__in=[i.pk for i in issued])
        return Response({"period": period, "invoices": ProviderInvoiceSerializer(
            queryset.order_by("tenant"), many=True).data})
