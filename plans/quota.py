"""The quota ledger and the cloud capacity ledger: reserve and release.

A reservation is one statement per ledger: ``UPDATE ... SET used = used + d WHERE used +
d <= limit`` over the rows of every dimension it needs, each row checked against its own
limit (PostgreSQL re-checks a row that a concurrent reservation changed before it
updates it). If a row refuses, the error names every dimension that is over, with
requested, used and limit, and the caller's transaction rolls back.

A subscription that opted in to its plan's burst (and has not reached its monthly cap)
may go above its quota by the plan's burst room: the condition is then ``used + d <=
limit + room``, and the limit an error names is that sum.
"""

from collections.abc import Mapping

from django.db import connection, transaction

from base.errors import QuotaExceeded
from fabric.models import CloudCapacity
from plans.models import BURST_DIMENSIONS, QuotaDimension, QuotaLedger, Subscription

CAPACITY_DIMENSIONS = frozenset({QuotaDimension.VCPUS, QuotaDimension.MEMORY_MB,
                                 QuotaDimension.STORAGE_GB, QuotaDimension.VMS})

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


def _take(model, owner_field: str, owner_id, deltas: Mapping[str, int],
          room: Mapping[str, int]) -> set[str]:
    """One ``UPDATE ... RETURNING``: each row of ``deltas`` that stays within its limit
    (and room) takes its share (a negative share always does), and the dimensions that
    did are returned.

    Raw SQL, because the ORM's ``update`` cannot say which rows it changed, and this is
    the statement every create in a cloud waits on: one round trip, not one a row."""
    quote = connection.ops.quote_name
    owner = model._meta.get_field(owner_field.removesuffix("_id"))
    dimension, used, limit = quote("dimension"), quote("used"), quote("limit")
    add, fits, add_params, fit_params = [], [], [], []
    for name, amount in deltas.items():
        add.append("WHEN %s THEN %s")
        add_params += [name, amount]
        if amount > 0:
            fits.append(f"({dimension} = %s AND {used} + %s <= {limit} + %s)")
            fit_params += [name, amount, room.get(name, 0)]
        else:
            fits.append(f"{dimension} = %s")
            fit_params.append(name)
    table, key = quote(model._meta.db_table), quote(model._meta.pk.column)
    owner_value = owner.target_field.get_db_prep_value(owner_id, connection)
    where, where_params = f"{quote(owner.column)} = %s", [owner_value]
    if connection.vendor == "postgresql":
        # Rows are locked in the order of their dimension before any is changed: an
        # UPDATE alone would lock them in the order it finds them, which moves as their
        # versions do, and two reservations would deadlock.
        names = ", ".join(["%s"] * len(deltas))
        where = (f"{key} IN (SELECT {key} FROM {table} WHERE {where} "  # noqa: S608
                 f"AND {dimension} IN ({names}) ORDER BY {dimension} FOR UPDATE)")
        where_params += list(deltas)
    # Names come from the model's meta; every value is a parameter.
    sql = (f"UPDATE {table} "  # noqa: S608
           f"SET {used} = {used} + CASE {dimension} {' '.join(add)} END "
           f"WHERE {where} AND ({' OR '.join(fits)}) RETURNING {dimension}")
    with connection.cursor() as cursor:
        cursor.execute(sql, [*add_params, *where_params, *fit_params])
        return {row[0] for row in cursor.fetchall()}


def _reserve_rows(model, owner_field: str, owner_id, deltas: Mapping[str, int],
                  *, error_title: str, room: Mapping[str, int]) -> QuotaExceeded | None:
    """Take ``deltas`` from the rows, or take nothing and return the refusal."""
    nonzero = {d: n for d, n in sorted(deltas.items()) if n}
    if not nonzero:
        return None
    taken = _take(model, owner_field, owner_id, nonzero, room)
    refused = [d for d in nonzero if d not in taken]
    if not refused:
        return None
    if taken:  # ours and locked by us: giving it back is exact
        _take(model, owner_field, owner_id, {d: -nonzero[d] for d in taken}, {})
    current = {r.dimension: r for r in model.objects.filter(
        **{owner_field: owner_id}, dimension__in=refused)}
    over = {}
    for dimension in refused:
        row = current.get(dimension)
        over[dimension] = {"requested": nonzero[dimension], "used": row.used if row else 0,
                           "limit": (row.limit if row else 0) + room.get(dimension, 0)}
    return QuotaExceeded(f"{error_title}: {', '.join(over)}.", errors=over)


def reserve(subscription: Subscription, deltas: Mapping[str, int], *, cloud_id=None) -> None:
    """Reserve quota (and, with ``cloud_id``, cloud capacity) or raise QuotaExceeded,
    having taken nothing.

    Without a savepoint: in the caller's transaction that is two statements (one per
    ledger). Callers reserve last, so that the rows every other request of the
    subscription and of the cloud waits on stay locked only until the commit."""
    with transaction.atomic(savepoint=False):
        room = _burst_room(subscription) if any(n > 0 for n in deltas.values()) else {}
        refusal = _reserve_rows(QuotaLedger, "subscription_id", subscription.pk, deltas,
                                room=room,
                                error_title="The subscription's quota would be exceeded")
        if refusal is None and cloud_id is not None:
            refusal = _reserve_rows(CloudCapacity, "cloud_id", cloud_id, _capacity(deltas),
                                    room={}, error_title="The provider's cloud has no "
                                                         "capacity left for")
            if refusal is not None:
                back = {d: -n for d, n in deltas.items() if n}
                if back:
                    _take(QuotaLedger, "subscription_id", subscription.pk, back, {})
    if refusal is not None:
        raise refusal


def _burst_room(subscription: Subscription) -> dict[str, int]:
    """``burst_room`` as a reservation needs it, without its query when the plan (loaded
    with the subscription) offers no burst at all."""
    if Subscription.plan.is_cached(subscription) and not subscription.plan.offers_burst:
        return {}
    return burst_room(subscription)


def _capacity(deltas: Mapping[str, int]) -> dict[str, int]:
    return {d: n for d, n in deltas.items() if d in CAPACITY_DIMENSIONS}


def release(subscription: Subscription, deltas: Mapping[str, int], *, cloud_id=None) -> None:
    """Give back what ``reserve`` took. Never refused (the CHECK guards against < 0)."""
    back = {d: -n for d, n in deltas.items() if n}
    with transaction.atomic():
        if back:
            _take(QuotaLedger, "subscription_id", subscription.pk, back, {})
        capacity = _capacity(back)
        if cloud_id is not None and capacity:
            _take(CloudCapacity, "cloud_id", cloud_id, capacity, {})


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
