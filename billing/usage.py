"""Reading usage: windows (hour-aligned UTC, never in the future) and their sums.

Like Azure Stack's usage API, a window starts and ends on a whole hour in UTC and may
not end after now: a reader never sees a partial hour as if it were final.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from base.errors import Invalid
from billing import rating, rollup
from billing.models import Meter, MissingUsage, UsageRecord

__all__ = ["GRANULARITIES", "MAX_WINDOW", "Granularity", "Window", "parse_window", "summary"]

class Granularity(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


GRANULARITIES = tuple(Granularity.values)
MAX_WINDOW = timedelta(days=366)
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    granularity: str


def _moment(name: str, value: str, errors: dict) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        errors[name] = ["Give an ISO 8601 time, e.g. 2026-03-01T00:00:00Z."]
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    if (moment.minute, moment.second, moment.microsecond) != (0, 0, 0):
        errors[name] = ["Give a whole hour in UTC (minutes and seconds 0)."]
        return None
    return moment


def parse_window(params, *, now: datetime | None = None) -> Window:
    """``from``, ``to`` and ``granularity`` of a query: without ``from`` and ``to``, the
    running month up to now. Raises ``Invalid`` naming each bad parameter."""
    now = now or timezone.now()
    errors: dict[str, list[str]] = {}
    granularity = params.get("granularity") or "day"
    if granularity not in GRANULARITIES:
        errors["granularity"] = [f"One of {', '.join(GRANULARITIES)}."]
    raw_from, raw_to = params.get("from"), params.get("to")
    if not raw_from and not raw_to:
        start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = now.astimezone(UTC).replace(second=0, microsecond=0)
    else:
        end = _moment("to", raw_to, errors) if raw_to else now.astimezone(UTC).replace(
            minute=0, second=0, microsecond=0)
        start = _moment("from", raw_from, errors) if raw_from else (
            end.replace(day=1, hour=0) if end else None)
        if end is not None and end > now:
            errors.setdefault("to", []).append("The window may not end in the future.")
        if start is not None and end is not None and start >= end:
            errors.setdefault("from", []).append("The window must start before it ends.")
        if start is not None and end is not None and end - start > MAX_WINDOW:
            errors.setdefault("to", []).append("A window spans at most 366 days.")
    if errors:
        raise Invalid("The usage window is not valid.", errors=errors)
    return Window(start, end, granularity)


def _records(window: Window, **filters):
    return UsageRecord.objects.filter(minute__gte=window.start, minute__lt=window.end,
                                      **filters)


def summary(window: Window, *, subscription=None, **filters) -> dict:
    """The usage API's body: per meter (quantity, and what rating makes of it), per
    period, and the total. ``subscription`` prices the meters; without it (a provider's
    view over many) the amounts are not computed."""
    if subscription is not None:
        filters["subscription"] = subscription
    records = _records(window, **filters)
    totals = [{"meter": meter, "quantity": quantity} for meter, quantity in
              sorted(rollup.sums(window.start, window.end, **filters).items())]
    series = rollup.series(window.start, window.end, window.granularity, **filters)
    priced = ({m["meter"]: m for m in rating.price_usage(
        subscription, records, start=window.start, end=window.end)}
        if subscription is not None else {})
    labels = dict(Meter.choices)
    meters = []
    for row in totals:
        price = priced.get(row["meter"], {})
        meters.append({
            "meter": row["meter"],
            "unit": labels.get(row["meter"], row["meter"]),
            "quantity": row["quantity"],
            "included": price.get("included", ZERO),
            "billable": price.get("billable", ZERO),
            "amount": price.get("amount", ZERO),
        })
    return {
        "from": window.start,
        "to": window.end,
        "granularity": window.granularity,
        "currency": getattr(settings, "BUFFET_CURRENCY", "EUR"),
        "meters": meters,
        "series": list(series),
        "total": sum((m["amount"] for m in meters), ZERO),
    }


def missing(window: Window, **filters):
    """The missing (or backfilled, or lost) ranges of usage that overlap the window."""
    return MissingUsage.objects.filter(start__lt=window.end, end__gt=window.start,
                                       **filters).select_related("stamp").order_by("start")
