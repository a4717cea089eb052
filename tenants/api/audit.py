"""The audit trail through the API: a tenant's own Activity, and every row for the
provider with filters and a CSV export (``Accept: text/csv`` or ``?format=csv``)."""

import csv
from collections.abc import Iterator

import django_filters
from django.conf import settings
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, renderers, serializers

from base.api.filters import UtcDateTimeFilter
from base.api.viewsets import ProviderViewSet, TenantViewSet
from base.models import AuditEvent

__all__ = ["ActivityFilter", "ActivityViewSet", "AuditCsvRenderer", "AuditFilter",
           "ProviderAuditViewSet", "csv_rows"]

EVENTS = AuditEvent.objects.select_related("actor", "tenant")


class ActivityFilter(django_filters.FilterSet):
    """What the trail is narrowed by; every filter has an index behind it."""

    actor = django_filters.CharFilter(field_name="actor__email", lookup_expr="iexact",
                                      label="The acting user's email.")
    event = django_filters.CharFilter(method="filter_event",
                                      label="An event (`vm.starting`), or every event of "
                                            "a kind with a trailing dot (`vm.`).")
    object_type = django_filters.CharFilter(label="e.g. `provisioning.virtualmachine`.")
    object_id = django_filters.CharFilter()
    request_id = django_filters.CharFilter()
    from_ = UtcDateTimeFilter(field_name="at", lookup_expr="gte",
                              label="From this time (UTC) on, inclusive.")
    to = UtcDateTimeFilter(field_name="at", lookup_expr="lt", label="Before this time (UTC).")

    class Meta:
        model = AuditEvent
        fields = ["actor", "event", "object_type", "object_id", "request_id"]

    def filter_event(self, queryset, name, value):
        if value.endswith("."):
            return queryset.filter(event__startswith=value)
        return queryset.filter(event=value)


class AuditFilter(ActivityFilter):
    """The provider's filters: a tenant's rows too."""

    tenant = django_filters.UUIDFilter(field_name="tenant_id")

    class Meta(ActivityFilter.Meta):
        fields = ["tenant", *ActivityFilter.Meta.fields]


# ``from`` is a Python keyword: the attribute is ``from_``, the query parameter ``from``.
for _filterset in (ActivityFilter, AuditFilter):
    _filterset.base_filters["from"] = _filterset.base_filters.pop("from_")


def _actor(event: AuditEvent, *, for_tenant: bool) -> str | None:
    if event.actor is None:
        return None
    # A tenant learns that the provider acted, not who of its staff did.
    if for_tenant and event.actor.is_staff:
        return "provider"
    return event.actor.email


class ActivitySerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uid", read_only=True)
    actor = serializers.SerializerMethodField()
    before = serializers.DictField(read_only=True)
    after = serializers.DictField(read_only=True)
    detail = serializers.DictField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "at", "event", "actor", "object_type", "object_id", "before", "after",
                  "detail", "request_id"]

    def get_actor(self, event) -> str | None:
        return _actor(event, for_tenant=True)


class ProviderAuditSerializer(ActivitySerializer):
    tenant = serializers.UUIDField(source="tenant_id", allow_null=True, read_only=True)
    tenant_name = serializers.SerializerMethodField()

    class Meta(ActivitySerializer.Meta):
        fields = [*ActivitySerializer.Meta.fields, "tenant", "tenant_name", "address", "face"]

    def get_actor(self, event) -> str | None:
        return _actor(event, for_tenant=False)

    def get_tenant_name(self, event) -> str | None:
        return event.tenant.name if event.tenant is not None else None


CSV_COLUMNS = ["at", "event", "actor", "tenant", "tenant_name", "object_type", "object_id",
               "before", "after", "detail", "request_id", "address", "face"]


class _Echo:
    def write(self, value):
        return value


def _cell(value) -> str:
    text = "" if value is None else str(value)
    # A cell a spreadsheet would run as a formula is quoted (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_rows(queryset) -> Iterator[str]:
    """The rows of ``queryset`` as CSV lines, header first, read in chunks and capped at
    ``BUFFET_AUDIT_CSV_MAX_ROWS``: a year of rows never sits in memory at once."""
    import json

    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    limit = settings.BUFFET_AUDIT_CSV_MAX_ROWS
    for event in queryset[:limit].iterator(chunk_size=1000):
        yield writer.writerow([_cell(v) for v in (
            event.at.isoformat(), event.event, _actor(event, for_tenant=False),
            event.tenant_id, event.tenant.name if event.tenant else "", event.object_type,
            event.object_id, json.dumps(event.before, sort_keys=True),
            json.dumps(event.after, sort_keys=True), json.dumps(event.detail, sort_keys=True),
            event.request_id, event.address, event.face)])


class AuditCsvRenderer(renderers.BaseRenderer):
    """Selected by ``Accept: text/csv`` or ``?format=csv``; the list streams its rows
    itself (``ProviderAuditViewSet.list``), so this renders only what is not a list."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return b""  # errors are problem details in JSON (``finalize_response``)


_CSV = ("With `Accept: text/csv` or `?format=csv`: every filtered row (up to a bound), "
        "streamed as CSV with the columns " + ", ".join(f"`{c}`" for c in CSV_COLUMNS) + ".")


@extend_schema_view(
    list=extend_schema(
        summary="List the audit trail",
        description="Every change in the portal, the latest first: who (`actor`, `address`, "
                    "`face`), which tenant, which object, what (`event`; `before` and "
                    "`after` hold only the fields that changed, never a secret), and the "
                    "`request_id` of the call that did it (`job:<id>` for a job). Filters: "
                    "`tenant`, `actor` (email), `event` (or a kind: `vm.`), `object_type`, "
                    "`object_id`, `request_id`, `from`, `to`. " + _CSV,
        responses={(200, "application/json"): ProviderAuditSerializer(many=True),
                   (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR)}),
    retrieve=extend_schema(summary="Get an audit row"),
)
class ProviderAuditViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProviderViewSet):
    """Every audit row, with filters and a CSV export."""

    queryset = EVENTS
    serializer_class = ProviderAuditSerializer
    filterset_class = AuditFilter
    lookup_field = "uid"
    renderer_classes = [renderers.JSONRenderer, AuditCsvRenderer]

    def get_renderers(self):
        if self.action == "list":
            return super().get_renderers()
        return [renderers.JSONRenderer()]  # one row is JSON only

    def list(self, request, *args, **kwargs):
        if request.accepted_renderer.format != "csv":
            return super().list(request, *args, **kwargs)
        rows = self.filter_queryset(self.get_queryset())
        response = StreamingHttpResponse(csv_rows(rows), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        return response

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code >= 400 and isinstance(
                getattr(response, "accepted_renderer", None), AuditCsvRenderer):
            # A refusal of a CSV export is a problem details document like any other.
            response.accepted_renderer = renderers.JSONRenderer()
            response.accepted_media_type = "application/json"
        return response


@extend_schema_view(
    list=extend_schema(
        summary="List the organisation's activity",
        description="What was done in the organisation, the latest first: by whom (the "
                    "provider's staff show as `provider`), to which object, what changed "
                    "(`before` and `after`: only the fields that changed, never a "
                    "secret), and the `request_id` of the call. Filters: `actor` (email), "
                    "`event` (or a kind: `vm.`), `object_type`, `object_id`, `request_id`, "
                    "`from`, `to`."),
    retrieve=extend_schema(summary="Get an activity row",
                           description="Another organisation's row is 404."),
)
class ActivityViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """The caller's tenant's own audit rows."""

    queryset = EVENTS
    serializer_class = ActivitySerializer
    filterset_class = ActivityFilter
    lookup_field = "uid"
