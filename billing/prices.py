"""Prices and when they take effect.

A plan's monthly price, its usage prices (per meter and unit-minute) and its burst prices
(per unit-minute above the quota), and an add-on's monthly price, each as ``Price`` rows
with ``valid_from``: the price of a moment is the latest row that took effect by then. A
plan or add-on with no row yet has had its current fields' price all along (its first
change records those as the price until then), so a change on the 10th never re-rates
the 1st to the 9th.
"""

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.rating_models import MONTHLY, Price
from plans.models import BURST_DIMENSIONS, AddOn, Plan

__all__ = ["MONTHLY", "USAGE_METERS", "PriceBook", "currency", "record_addon_price",
           "record_plan_prices", "unit_of", "usage_prices"]

# Meters and the unit their quantity is counted in (a quantity is per minute).
USAGE_METERS = {
    "vcpus": "vCPU-minute",
    "memory_mb": "MB-minute",
    "storage_gb": "GB-minute",
    "vms": "VM-minute",
    "snapshots": "snapshot-minute",
    "dr.protected_vms": "VM-minute",
}
USAGE_METER_CHOICES = sorted(USAGE_METERS)
BURST_PREFIX = "burst."


def currency() -> str:
    return getattr(settings, "BUFFET_CURRENCY", "USD")


def unit_of(meter: str) -> str:
    if meter == MONTHLY:
        return "month"
    return USAGE_METERS.get(meter.removeprefix(BURST_PREFIX), "unit-minute")


def _plan_fields(plan: Plan) -> dict[str, Decimal]:
    """The prices a plan's own fields hold now: monthly and burst."""
    prices = {MONTHLY: plan.price_monthly}
    for dimension, price in plan.burst_prices().items():
        prices[f"{BURST_PREFIX}{dimension}"] = price
    return prices


def usage_prices(plan: Plan, at: datetime | None = None) -> dict[str, Decimal]:
    """The usage prices of a plan at a moment (now by default), by meter."""
    book = PriceBook(plans=[plan])
    at = at or timezone.now()
    return {m: p for m in USAGE_METERS if (p := book.price(plan, m, at))}


@transaction.atomic
def record_plan_prices(plan: Plan, *, before: Mapping[str, Decimal] | None,
                       usage: Iterable[Mapping] | None = None, at: datetime | None = None
                       ) -> None:
    """Record what changed in a plan's prices as taking effect ``at`` (now).

    ``before`` is what the plan's fields held before the change (None: a new plan);
    ``usage`` (``[{meter, unit_price}]``) replaces its usage prices when given: a meter
    left out is free from then on."""
    at = at or timezone.now()
    book = PriceBook(plans=[plan])
    wanted = dict(_plan_fields(plan))
    if usage is not None:
        given = {row["meter"]: Decimal(row["unit_price"]) for row in usage}
        for meter in USAGE_METERS:
            wanted[meter] = given.get(meter, Decimal("0"))
    for meter, price in wanted.items():
        if book.has_rows(plan, meter):
            if book.price(plan, meter, at) != price:
                Price.objects.update_or_create(plan=plan, meter=meter, valid_from=at,
                                               defaults={"unit_price": price})
            continue
        # No row yet: the price so far is what the plan's fields held (0 for usage).
        old = (before or {}).get(meter, Decimal("0")) if before is not None else price
        if meter in USAGE_METERS and before is None:
            old = Decimal("0") if price else price
            if price:  # a new plan: its usage prices hold from its creation
                Price.objects.create(plan=plan, meter=meter, valid_from=plan.created_at,
                                     unit_price=price)
            continue
        if old != price:
            Price.objects.get_or_create(plan=plan, meter=meter, valid_from=plan.created_at,
                                        defaults={"unit_price": old})
            Price.objects.update_or_create(plan=plan, meter=meter, valid_from=at,
                                           defaults={"unit_price": price})


@transaction.atomic
def record_addon_price(addon: AddOn, *, before: Decimal | None,
                       at: datetime | None = None) -> None:
    at = at or timezone.now()
    book = PriceBook(addons=[addon])
    has_rows = book.has_rows(addon, MONTHLY)
    current = book.price(addon, MONTHLY, at) if has_rows else before
    if current == addon.price_monthly:
        return
    if not has_rows and before is not None:
        Price.objects.get_or_create(addon=addon, meter=MONTHLY, valid_from=addon.created_at,
                                    defaults={"unit_price": before})
    Price.objects.update_or_create(addon=addon, meter=MONTHLY, valid_from=at,
                                   defaults={"unit_price": addon.price_monthly})


class PriceBook:
    """Every price row of some plans and add-ons, loaded once, asked by moment."""

    def __init__(self, *, plans: Iterable[Plan] = (), addons: Iterable[AddOn] = ()):
        self._owners: dict[tuple[str, object], Plan | AddOn] = {}
        for plan in plans:
            self._owners[("plan", plan.pk)] = plan
        for addon in addons:
            self._owners[("addon", addon.pk)] = addon
        self._rows: dict[tuple, list[tuple[datetime, Decimal]]] = defaultdict(list)
        plan_ids = [k[1] for k in self._owners if k[0] == "plan"]
        addon_ids = [k[1] for k in self._owners if k[0] == "addon"]
        rows = list(Price.objects.filter(plan_id__in=plan_ids)) + list(
            Price.objects.filter(addon_id__in=addon_ids))
        for row in sorted(rows, key=lambda r: r.valid_from):
            owner = ("plan", row.plan_id) if row.plan_id else ("addon", row.addon_id)
            self._rows[(*owner, row.meter)].append((row.valid_from, row.unit_price))

    @staticmethod
    def _key(owner: Plan | AddOn) -> tuple[str, object]:
        return ("plan" if isinstance(owner, Plan) else "addon", owner.pk)

    def add(self, owner: Plan | AddOn) -> None:
        if self._key(owner) not in self._owners:
            self._owners[self._key(owner)] = owner
            self._rows.update(PriceBook(plans=[owner] if isinstance(owner, Plan) else [],
                                        addons=[owner] if isinstance(owner, AddOn) else [])
                              ._rows)

    def has_rows(self, owner: Plan | AddOn, meter: str) -> bool:
        return bool(self._rows.get((*self._key(owner), meter)))

    def price(self, owner: Plan | AddOn, meter: str, at: datetime) -> Decimal:
        rows = self._rows.get((*self._key(owner), meter))
        if not rows:
            return self._fallback(owner, meter)
        index = bisect_right([r[0] for r in rows], at)
        # Before its first row a plan had the first row's price (its price when created).
        return rows[max(index - 1, 0)][1]

    def changes(self, owner: Plan | AddOn, start: datetime, end: datetime) -> list[datetime]:
        """The moments inside ``(start, end)`` at which one of the owner's prices changes."""
        kind, pk = self._key(owner)
        return sorted({moment for (k, p, _), rows in self._rows.items() if (k, p) == (kind, pk)
                       for moment, _ in rows if start < moment < end})

    @staticmethod
    def _fallback(owner: Plan | AddOn, meter: str) -> Decimal:
        if meter == MONTHLY:
            return owner.price_monthly
        if isinstance(owner, Plan) and meter.startswith(BURST_PREFIX):
            dimension = meter.removeprefix(BURST_PREFIX)
            if dimension in BURST_DIMENSIONS:
                return getattr(owner, f"burst_price_{dimension}")
        return Decimal("0")
