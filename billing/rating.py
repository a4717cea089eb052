"""Rating: what a subscription's month (or any window) costs, from its plan periods, its
add-ons, its usage records and the prices in effect.

A window is cut into segments at every moment something changes: the plan (a change of
plan), a price (``Price.valid_from``), a re-rated window (``RatingReprocess``). Inside a
segment one plan and one set of prices hold, so its usage is one ``SUM`` per meter and
its share of a monthly price is its minutes over the month's. Amounts round half-up to
the cent on each line (never per minute, so nothing drifts).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Max, Min, QuerySet
from django.utils import timezone

from billing import rollup
from billing.models import UsageRecord
from billing.prices import BURST_PREFIX, MONTHLY, USAGE_METERS, PriceBook, unit_of
from billing.rating_models import RatingReprocess
from plans.models import Plan, Subscription, SubscriptionState

__all__ = ["Charge", "month_of", "next_month", "price_usage", "rate", "round_money"]

CENT = Decimal("0.01")
QUANTITY = Decimal("0.000001")


def round_money(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def month_of(moment: datetime) -> datetime:
    """The first instant (UTC) of the calendar month of ``moment``."""
    moment = moment.astimezone(UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: datetime) -> datetime:
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def _minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _minutes(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds()) // 60


@dataclass
class Charge:
    """One priced item of a subscription in a window, before it becomes an invoice line."""

    subscription: Subscription
    meter: str
    item: str  # the plan or add-on of a monthly charge; "" for usage
    description: str
    unit_price: Decimal
    period_start: datetime
    period_end: datetime
    quantity: Decimal = Decimal("0")
    minutes: int = 0  # of a monthly charge
    exact: Decimal = Decimal("0")  # the amount before rounding

    @property
    def unit(self) -> str:
        return unit_of(self.meter)

    @property
    def amount(self) -> Decimal:
        return round_money(self.exact)

    @property
    def key(self) -> tuple:
        return (self.subscription.pk, self.meter, self.item, self.unit_price)


@dataclass
class _Segment:
    start: datetime
    end: datetime
    plan: Plan
    priced_at: datetime  # the moment whose prices apply (a re-rated window's: its request)


@dataclass
class _Periods:
    """A subscription's plan periods, clipped to minutes."""

    spans: list[tuple[datetime, datetime | None, Plan]] = field(default_factory=list)

    @classmethod
    def of(cls, subscription: Subscription) -> "_Periods":
        periods = list(subscription.plan_periods.select_related("plan").order_by("start"))
        deleted_at = (_minute(subscription.state_changed_at)
                      if subscription.state == SubscriptionState.DELETED else None)
        if not periods:  # a subscription from before plan periods were kept
            return cls([(_minute(subscription.created_at), deleted_at, subscription.plan)])
        spans = []
        for period in periods:
            end = _minute(period.end) if period.end else deleted_at
            spans.append((_minute(period.start), end, period.plan))
        return cls(spans)

    def clipped(self, start: datetime, end: datetime):
        for p_start, p_end, plan in self.spans:
            a, b = max(p_start, start), min(p_end or end, end)
            if a < b:
                yield a, b, plan


def _reprocesses(start: datetime, end: datetime) -> list[RatingReprocess]:
    return list(RatingReprocess.objects.filter(start__lt=end, end__gt=start)
                .order_by("created_at"))


def _segments(periods: _Periods, start: datetime, end: datetime, book: PriceBook,
              reprocesses: list[RatingReprocess]) -> list[_Segment]:
    segments = []
    for a, b, plan in periods.clipped(start, end):
        book.add(plan)
        cuts = {a, b, *book.changes(plan, a, b)}
        for r in reprocesses:
            cuts |= {m for m in (r.start, r.end) if a < m < b}
        points = sorted(cuts)
        for s, e in zip(points, points[1:], strict=False):
            covering = [r for r in reprocesses if r.start <= s and r.end >= e]
            priced_at = covering[-1].created_at if covering else s
            segments.append(_Segment(s, e, plan, priced_at))
    return segments


def _usage_sums(subscription: Subscription, segment: _Segment) -> dict[str, Decimal]:
    return rollup.sums(segment.start, segment.end, subscription=subscription)


def _usage_price(book: PriceBook, segment: _Segment, meter: str) -> Decimal:
    return book.price(segment.plan, meter, segment.priced_at)


def _describe(meter: str) -> str:
    if meter.startswith(BURST_PREFIX):
        return f"Burst above quota: {meter.removeprefix(BURST_PREFIX)}"
    return f"Usage: {meter}"


def rate(subscription: Subscription, start: datetime, end: datetime, *,
         now: datetime | None = None, book: PriceBook | None = None) -> list[Charge]:
    """Every charge of ``subscription`` in ``[start, end)`` (a month, for an invoice):
    its plans' and add-ons' shares of their monthly prices up to ``now`` (the draft of a
    running month grows), and its usage at the prices in effect, free meters left out."""
    now = _minute(now or timezone.now())
    book = book or PriceBook()
    month = month_of(start)
    month_minutes = _minutes(month, next_month(month))
    reprocesses = _reprocesses(start, end)
    periods = _Periods.of(subscription)
    charges: dict[tuple, Charge] = {}

    def add(charge: Charge, *, minutes=0, quantity=Decimal("0"), exact=Decimal("0")):
        existing = charges.setdefault(charge.key, charge)
        existing.minutes += minutes
        existing.quantity += quantity
        existing.exact += exact
        existing.period_start = min(existing.period_start, charge.period_start)
        existing.period_end = max(existing.period_end, charge.period_end)

    # The monthly prices, by the minute, up to now.
    for segment in _segments(periods, start, min(end, now), book, reprocesses):
        price = book.price(segment.plan, MONTHLY, segment.priced_at)
        minutes = _minutes(segment.start, segment.end)
        if price and minutes:
            add(Charge(subscription, MONTHLY, str(segment.plan.pk),
                       f"Plan {segment.plan.name}", price, segment.start, segment.end),
                minutes=minutes, exact=price * minutes / month_minutes)
    addon_spans = [(p.addon, p.start, p.end) for p in
                   subscription.addon_periods.select_related("addon").order_by("start")]
    if not addon_spans:  # add-ons attached before their periods were kept
        addon_spans = [(link.addon, link.attached_at, None) for link in
                       subscription.addon_links.select_related("addon")]
    ends_at = periods.spans[-1][1] if periods.spans else None
    for addon, attached, detached in addon_spans:
        book.add(addon)
        a = max(_minute(attached), start)
        b = min(end, now, *(m for m in (_minute(detached) if detached else None, ends_at) if m))
        if a >= b:
            continue
        cuts = sorted({a, b, *book.changes(addon, a, b),
                       *(m for r in reprocesses for m in (r.start, r.end) if a < m < b)})
        for s, e in zip(cuts, cuts[1:], strict=False):
            covering = [r for r in reprocesses if r.start <= s and r.end >= e]
            price = book.price(addon, MONTHLY, covering[-1].created_at if covering else s)
            minutes = _minutes(s, e)
            if price and minutes:
                add(Charge(subscription, MONTHLY, str(addon.pk), f"Add-on {addon.name}", price,
                           s, e), minutes=minutes, exact=price * minutes / month_minutes)
    # Usage, at the prices of each segment.
    for segment in _segments(periods, start, end, book, reprocesses):
        for meter, quantity in _usage_sums(subscription, segment).items():
            price = _usage_price(book, segment, meter)
            if price:
                add(Charge(subscription, meter, "", _describe(meter), price, segment.start,
                           segment.end), quantity=quantity, exact=quantity * price)
    for charge in charges.values():
        if charge.meter == MONTHLY:
            charge.quantity = (Decimal(charge.minutes) / month_minutes).quantize(QUANTITY)
    return sorted(charges.values(), key=lambda c: (c.meter != MONTHLY, c.meter, c.item,
                                                   c.period_start))


def price_usage(subscription: Subscription, rows: QuerySet | Iterable[UsageRecord],
                *, start: datetime | None = None, end: datetime | None = None) -> list[dict]:
    """The usage endpoint's ``meters``: per meter ``quantity`` (unit-minutes of ``rows``),
    what of it the plan's monthly price covers (``included``: meters without a price),
    what is ``billable`` and its ``amount``, at the prices in effect at each minute.

    ``rows`` is a queryset of the subscription's usage records (its window, ``start`` to
    ``end`` or the first to the last of them, is summed by the hour, segment by segment)
    or any iterable of them."""
    book = PriceBook()
    periods = _Periods.of(subscription)
    reprocesses = []
    totals: dict[str, dict] = {}

    def add(meter: str, quantity: Decimal, price: Decimal):
        entry = totals.setdefault(meter, {"meter": meter, "unit": unit_of(meter),
                                          "quantity": Decimal("0"), "included": Decimal("0"),
                                          "billable": Decimal("0"), "exact": Decimal("0")})
        entry["quantity"] += quantity
        entry["billable" if price else "included"] += quantity
        entry["exact"] += quantity * price

    if isinstance(rows, QuerySet):
        if start is None or end is None:
            bounds = rows.aggregate(first=Min("minute"), last=Max("minute"))
            if bounds["first"] is None:
                return []
            start, end = bounds["first"], bounds["last"] + timedelta(minutes=1)
        reprocesses = _reprocesses(start, end)
        for segment in _segments(periods, _minute(start), end, book, reprocesses):
            for meter, quantity in _usage_sums(subscription, segment).items():
                add(meter, quantity, _usage_price(book, segment, meter))
    else:
        rows = list(rows)
        if rows:
            first, last = min(r.minute for r in rows), max(r.minute for r in rows)
            segments = _segments(periods, first, last + timedelta(minutes=1), book,
                                 _reprocesses(first, last + timedelta(minutes=1)))
            for row in rows:
                segment = next((s for s in segments if s.start <= row.minute < s.end), None)
                price = _usage_price(book, segment, row.meter) if segment else Decimal("0")
                add(row.meter, row.quantity, price)
    result = []
    for meter in sorted(totals, key=lambda m: (m not in USAGE_METERS, m)):
        entry = totals[meter]
        entry["amount"] = round_money(entry.pop("exact"))
        result.append(entry)
    return result
