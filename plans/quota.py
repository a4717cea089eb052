"""The quota ledger and the cloud capacity ledger: reserve and release.

A reservation is one ``UPDATE ... SET used = used + d WHERE used + d <= limit`` per
ledger over the rows of every dimension it needs, each row checked against its own limit
(PostgreSQL re-checks a row that a concurrent reservation changed before it updates it);
on PostgreSQL the quota's and the cloud's are one statement, the cloud's rows locked only
once the quota has taken all. If a row refuses, the error names every dimension that is
over, with requested, used and limit, and the caller's transaction rolls back.

A subscription that opted in to its plan's burst (and has not reached its monthly cap)
may go above its quota by the plan's burst room: the condition is then ``used + d <=
limit + room``, and the limit an error names is that sum.
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace

from django.db import connection, transaction

from base import prepared
from base.batch import Pending
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


@dataclass(frozen=True)
class _Ledger:
    """What one reservation asks of one ledger: ``deltas`` of the rows of ``owner_id``."""

    model: type
    owner_field: str
    owner_id: object
    deltas: Mapping[str, int]
    room: Mapping[str, int]
    refused_title: str = ""

    def back(self, taken) -> "_Ledger":
        """What gives back the ``taken`` dimensions of this reservation."""
        return replace(self, deltas={d: -self.deltas[d] for d in taken}, room={})


def _update(ledger: _Ledger, *, only_if: str = "") -> tuple[str, list]:
    """``UPDATE ... RETURNING dimension``: each row of the ledger's deltas that stays within
    its limit (and room) takes its share (a negative share always does). ``only_if``, a
    condition without parameters, must hold for any row to be locked or changed.

    Raw SQL, because the ORM's ``update`` cannot say which rows it changed, and this is
    the statement every create in a cloud waits on: one round trip, not one a row."""
    model = ledger.model
    quote = connection.ops.quote_name
    owner = model._meta.get_field(ledger.owner_field.removesuffix("_id"))
    dimension, used, limit = quote("dimension"), quote("used"), quote("limit")
    add, fits, add_params, fit_params = [], [], [], []
    for name, amount in ledger.deltas.items():
        # The amount's type said (a prepared statement's parameter takes it from its
        # place, and a CASE branch names none).
        add.append("WHEN %s THEN CAST(%s AS bigint)")
        add_params += [name, amount]
        if amount > 0:
            fits.append(f"({dimension} = %s AND {used} + %s <= {limit} + %s)")
            fit_params += [name, amount, ledger.room.get(name, 0)]
        else:
            fits.append(f"{dimension} = %s")
            fit_params.append(name)
    table, key = quote(model._meta.db_table), quote(model._meta.pk.column)
    owner_value = owner.target_field.get_db_prep_value(ledger.owner_id, connection)
    where, where_params = f"{quote(owner.column)} = %s", [owner_value]
    if connection.vendor == "postgresql":
        # Rows are locked in the order of their dimension before any is changed: an
        # UPDATE alone would lock them in the order it finds them, which moves as their
        # versions do, and two reservations would deadlock.
        names = ", ".join(["%s"] * len(ledger.deltas))
        where = (f"{key} IN (SELECT {key} FROM {table} WHERE {where} "  # noqa: S608
                 f"AND {dimension} IN ({names}){only_if} ORDER BY {dimension} FOR UPDATE)")
        where_params += list(ledger.deltas)
    # Names come from the model's meta; every value is a parameter.
    sql = (f"UPDATE {table} "  # noqa: S608
           f"SET {used} = {used} + CASE {dimension} {' '.join(add)} END "
           f"WHERE {where} AND ({' OR '.join(fits)}) RETURNING {dimension}")
    return sql, [*add_params, *where_params, *fit_params]


def _take(ledger: _Ledger) -> set[str]:
    """The dimensions of the ledger that took their share."""
    sql, params = _update(ledger)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def _take_in_turn(ledgers: list[_Ledger], writes: Pending) -> list[set[str]]:
    """What each ledger took, each only if every one before it took all it asked for
    (else nothing: a later one is not even locked), once ``writes`` are written.

    On PostgreSQL one statement: the writes and each ledger's ``UPDATE`` are
    data-modifying ``WITH`` queries, and the next ledger's rows are locked only once the
    count of the rows the one before returned says it took all. Elsewhere the writes,
    then one statement a ledger."""
    if connection.vendor != "postgresql" or (len(ledgers) == 1 and not writes):
        writes.save()
        taken, refused = [], False
        for ledger in ledgers:
            got = set() if refused else _take(ledger)
            refused = refused or len(got) < len(ledger.deltas)
            taken.append(got)
        return taken
    # Only the ledgers' indexes and counts go into the text; every value is a parameter.
    parts, params = writes.ctes()
    for i, ledger in enumerate(ledgers):
        only_if = (f" AND (SELECT count(*) FROM taken_{i - 1}) = "  # noqa: S608
                   f"{len(ledgers[i - 1].deltas)}") if i else ""
        sql, ledger_params = _update(ledger, only_if=only_if)
        parts.append(f"taken_{i} AS ({sql})")
        params += ledger_params
    dimension = connection.ops.quote_name("dimension")
    union = " UNION ALL ".join(f"SELECT {i}, {dimension} FROM taken_{i}"  # noqa: S608
                               for i in range(len(ledgers)))
    with connection.cursor() as cursor:
        prepared.execute(cursor, f"WITH {', '.join(parts)} {union}", params)
        writes.written()
        taken = [set() for _ in ledgers]
        for i, dimension in cursor.fetchall():
            taken[i].add(dimension)
        return taken


def _reserve_in_turn(ledgers: list[_Ledger], writes: Pending) -> QuotaExceeded | None:
    """Take the deltas of every ledger, or take nothing and return the first refusal
    (``writes`` are written either way: the caller's transaction rolls them back)."""
    ledgers = [replace(ledger, deltas={d: n for d, n in sorted(ledger.deltas.items()) if n})
               for ledger in ledgers]
    ledgers = [ledger for ledger in ledgers if ledger.deltas]
    if not ledgers:
        writes.save()
        return None
    taken = _take_in_turn(ledgers, writes)
    for i, ledger in enumerate(ledgers):
        refused = [d for d in ledger.deltas if d not in taken[i]]
        if not refused:
            continue
        for earlier, its_taken in zip(ledgers[:i + 1], taken, strict=False):
            if its_taken:  # ours and locked by us: giving it back is exact
                _take(earlier.back(its_taken))
        return _refusal(ledger, refused)
    return None


def _refusal(ledger: _Ledger, refused: list[str]) -> QuotaExceeded:
    current = {r.dimension: r for r in ledger.model.objects.filter(
        **{ledger.owner_field: ledger.owner_id}, dimension__in=refused)}
    over = {}
    for dimension in refused:
        row = current.get(dimension)
        over[dimension] = {"requested": ledger.deltas[dimension],
                           "used": row.used if row else 0,
                           "limit": (row.limit if row else 0) + ledger.room.get(dimension, 0)}
    return QuotaExceeded(f"{ledger.refused_title}: {', '.join(over)}.", errors=over)


def reserve(subscription: Subscription, deltas: Mapping[str, int], *, cloud_id=None,
            writes: Pending | None = None) -> None:
    """Reserve quota (and, with ``cloud_id``, cloud capacity) or raise QuotaExceeded,
    having taken nothing.

    Without a savepoint: in the caller's transaction that is one statement on PostgreSQL
    (one per ledger elsewhere). Callers reserve last, so that the rows every other
    request of the subscription and of the cloud waits on stay locked only until the
    commit. ``writes``: the caller's new rows, written in the same statement (they are
    written before a refusal is raised: the caller's transaction must roll back)."""
    writes = writes if writes is not None else Pending()
    with transaction.atomic(savepoint=False):
        room = _burst_room(subscription) if any(n > 0 for n in deltas.values()) else {}
        ledgers = [_Ledger(QuotaLedger, "subscription_id", subscription.pk, deltas, room,
                           "The subscription's quota would be exceeded")]
        if cloud_id is not None:
            ledgers.append(_Ledger(CloudCapacity, "cloud_id", cloud_id, _capacity(deltas), {},
                                   "The provider's cloud has no capacity left for"))
        refusal = _reserve_in_turn(ledgers, writes)
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
    # Both or neither; inside the caller's transaction no savepoint of its own (a failure
    # is the caller's, whose transaction it ends).
    with transaction.atomic(savepoint=False):
        if back:
            _take(_Ledger(QuotaLedger, "subscription_id", subscription.pk, back, {}))
        capacity = _capacity(back)
        if cloud_id is not None and capacity:
            _take(_Ledger(CloudCapacity, "cloud_id", cloud_id, capacity, {}))


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
