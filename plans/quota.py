"""The quota ledger and the cloud capacity ledger: reserve and release.

A reservation is one conditional ``UPDATE ... SET used = used + d WHERE used + d <= limit``
per ledger row, taken in a fixed order (dimension name) so two reservations never
deadlock. If any row refuses, the surrounding savepoint is rolled back and the
error names every dimension that is over, with requested, used and limit.

A subscription that opted in to its plan's burst (and has not reached its monthly cap)
may go above its quota by the plan's burst room: the condition is then ``used + d <=
limit + room``, and the limit an error names is that sum.
"""

from collections.abc import Mapping

from django.db import transaction
from django.db.models import F

from base.errors import QuotaExceeded
from fabric.models import CloudCapacity
from plans.models import BURST_DIMENSIONS, QuotaDimension, QuotaLedger, Subscription

__all__ = ["burst_room", "release", "reserve", "set_limits", "summary"]


def burst_room(subscription: Subscription, *, fresh: bool = True) -> dict[str, int]:
    """The room above the quota open to new reservations now, per dimension: the plan's
    burst room for an opted-in subscription under its cap, else nothing.

    ``fresh`` reads the flags from the database (a reservation must: the rating pass may
    have capped the subscription since it was loaded); a page showing many subscriptions
    reads the instance it has, without a query each."""
    if not fresh:
        if not subscription.burst_enabled or subscription.burst_capped:
            return {}
        return {d: n for d, n in subscription.plan.burst_limits().items() if n}
    fields = [f"plan__burst_{d}" for d in BURST_DIMENSIONS]
    row = Subscription.objects.filter(pk=subscription.pk).values(
        "burst_enabled", "burst_capped", *fields).first()
    if row is None or not row["burst_enabled"] or row["burst_capped"]:
        return {}
    return {d: row[f"plan__burst_{d}"] for d in BURST_DIMENSIONS if row[f"plan__burst_{d}"]}


def _reserve_rows(model, owner_field: str, owner_id, deltas: Mapping[str, int],
                  *, error_title: str, room: Mapping[str, int] | None = None) -> None:
    over: dict[str, dict[str, int]] = {}
    nonzero = {d: n for d, n in sorted(deltas.items()) if n}
    room = room or {}
    with transaction.atomic():
        for dimension, amount in nonzero.items():
            rows = model.objects.filter(**{owner_field: owner_id}, dimension=dimension)
            if amount > 0:
                extra = room.get(dimension, 0)
                updated = rows.filter(used__lte=F("limit") + extra - amount).update(
                    used=F("used") + amount)
            else:
                updated = rows.update(used=F("used") + amount)
            if not updated:
                over[dimension] = {"requested": amount}
        if over:
            current = {r.dimension: r for r in model.objects.filter(
                **{owner_field: owner_id}, dimension__in=list(over))}
            for dimension, info in over.items():
                row = current.get(dimension)
                info["used"] = row.used if row else 0
                info["limit"] = (row.limit if row else 0) + room.get(dimension, 0)
            transaction.set_rollback(True)
    if over:
        names = ", ".join(sorted(over))
        raise QuotaExceeded(f"{error_title}: {names}.", errors=over)


def reserve(subscription: Subscription, deltas: Mapping[str, int], *, cloud_id=None) -> None:
    """Reserve quota (and, with ``cloud_id``, cloud capacity) or raise QuotaExceeded."""
    with transaction.atomic():
        room = burst_room(subscription) if any(n > 0 for n in deltas.values()) else {}
        _reserve_rows(QuotaLedger, "subscription_id", subscription.pk, deltas, room=room,
                      error_title="The subscription's quota would be exceeded")
        if cloud_id is not None:
            capacity = {d: n for d, n in deltas.items() if d in {
                QuotaDimension.VCPUS, QuotaDimension.MEMORY_MB, QuotaDimension.STORAGE_GB,
                QuotaDimension.VMS}}
            _reserve_rows(CloudCapacity, "cloud_id", cloud_id, capacity,
                          error_title="The provider's cloud has no capacity left for")


def release(subscription: Subscription, deltas: Mapping[str, int], *, cloud_id=None) -> None:
    """Give back what ``reserve`` took. Never refused (the CHECK guards against < 0)."""
    with transaction.atomic():
        for dimension, amount in sorted(deltas.items()):
            if amount:
                QuotaLedger.objects.filter(subscription_id=subscription.pk,
                                           dimension=dimension).update(used=F("used") - amount)
                if cloud_id is not None and dimension in {
                        QuotaDimension.VCPUS, QuotaDimension.MEMORY_MB,
                        QuotaDimension.STORAGE_GB, QuotaDimension.VMS}:
                    CloudCapacity.objects.filter(cloud_id=cloud_id, dimension=dimension).update(
                        used=F("used") - amount)


def set_limits(subscription: Subscription, limits: Mapping[str, int]) -> None:
    """Write the limits of every dimension, creating the rows on first use."""
    for dimension in QuotaDimension.values:
        QuotaLedger.objects.update_or_create(
            subscription=subscription, dimension=dimension,
            defaults={"limit": limits.get(dimension, 0)})


def summary(subscription: Subscription) -> dict[str, dict[str, int]]:
    """Each dimension's ``limit``, ``used`` and ``burst`` (the room above the limit open
    to it now)."""
    rows = {r.dimension: r for r in subscription.quota_rows.all()}
    room = burst_room(subscription, fresh=False)
    return {d: {"limit": rows[d].limit if d in rows else 0,
                "used": rows[d].used if d in rows else 0,
                "burst": room.get(d, 0)}
            for d in QuotaDimension.values}
