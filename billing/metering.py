"""Metering: usage by the minute from each stamp's own inventory.

``collect(stamp)`` does one pass for a stamp, from its cursor up to the last whole
minute:

* The stamp answers: the minutes behind the last one are rebuilt from the stamp's
  history (what each VM was at the end of each minute), the last one from its
  inventory (``Driver.usage``: what is metered of each VM now); the rows are upserted,
  then the cursor moves. A crash between the two leaves the cursor behind, and the
  rerun writes the same rows again: a minute is never counted twice (unique
  (subscription, resource, meter, minute)).
* The stamp does not answer: nothing is written and the cursor stays; the minutes are
  recorded as ``MissingUsage`` (shown to the provider, logged as an alert), never as
  zeros (CloudKitty's collector advances its cursor on an empty answer: a silent gap).
  When the stamp answers again they are backfilled from its history, or marked
  ``unrecoverable`` if its driver keeps none.

A minute is ``[m, m + 60 s)``; what is metered for it is the allocation at its end.
Every VM the stamp holds is metered whatever its power state (allocation is what the
quota reserves), unless its subscription's plan meters stopped VMs only for what they
keep (``Plan.meter_stopped_vms`` off: a stopped VM counts its disk, snapshots and DR
protection, not its vCPUs, memory or VM-minutes, and these do not count toward burst);
a replica is not metered (its source is, as ``dr.protected_vms``). ``burst.<dimension>``
is the subscription's allocation above its quota limit (the plan's quotas raised by its
quota add-ons: the ledger's limits), as rows of the subscription. The plan is the one
the subscription has when its minutes are collected.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from billing import rollup
from billing.models import (
    BURST_DIMENSIONS,
    Meter,
    MeterCursor,
    MissingState,
    MissingUsage,
    ResourceType,
    UsageRecord,
    burst_meter,
)
from fabric.models import Stamp

__all__ = ["CollectReport", "collect", "collect_all", "floor_minute"]

log = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)
# Rows written per batch, and about how many one chunk of minutes may produce.
BATCH = 5000
CHUNK_ROWS = 500_000

# The usage of one resource in one minute: (subscription_id, resource_type, resource_id,
# minute, ((meter, quantity), ...)); the writers expand it into one row per meter.
Usage = tuple[str, str, str, datetime, tuple[tuple[str, int], ...]]


@dataclass
class CollectReport:
    stamp: str
    start: datetime | None = None
    until: datetime | None = None
    minutes: int = 0
    backfilled: int = 0
    rows: int = 0
    missing: bool = False
    unrecoverable: int = 0
    unmapped: set[str] = field(default_factory=set)
    detail: str = ""


class _Vm(NamedTuple):
    """What is metered of one VM in one minute (a ``VmUsage`` without its id)."""

    vcpus: int
    memory_mb: int
    disk_gb: int
    checkpoints: int
    protected: bool
    running: bool = True


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


# -- the pass ------------------------------------------------------------------------------
def collect_all(until: datetime | None = None) -> list[CollectReport]:
    """One pass per stamp; a stamp whose pass fails is logged and the others still run."""
    reports = []
    for stamp in Stamp.objects.order_by("name"):
        try:
            reports.append(collect(stamp, until))
        except Exception:
            log.exception("metering of stamp %s failed; its cursor stays", stamp.name)
            reports.append(CollectReport(stamp=stamp.name, missing=True, detail="failed"))
    return reports


def collect(stamp: Stamp, until: datetime | None = None, *, driver=None,
            after_write=None) -> CollectReport:
    """Collect the stamp's usage for every minute from its cursor to ``until`` (default:
    the last whole minute). ``after_write`` runs between writing rows and moving the
    cursor (a test hook: a crash there must not count anything twice)."""
    from fabric.drivers import DriverError
    from fabric.services import driver_for

    until = floor_minute(until or timezone.now())
    cursor = MeterCursor.objects.filter(stamp=stamp).first()
    start = cursor.collected_until if cursor else until - MINUTE
    report = CollectReport(stamp=stamp.name, start=start, until=until)
    if start >= until:
        return report
    try:
        driver = driver or driver_for(stamp)
        current = {vm.id: _Vm(*vm[1:]) for vm in driver.usage()}
    except DriverError as exc:
        report.missing, report.detail = True, str(exc)
        _record_missing(stamp, start, until, str(exc))
        return report
    owners = _owners(stamp)
    terms = _Terms(owners.values())
    live = until - MINUTE
    if start < live and not _backfill(stamp, driver, start, live, owners, terms, report,
                                      after_write=after_write):
        _record_missing(stamp, start, until, report.detail)
        return report
    report.rows += _write(stamp, list(_usage(live, current, owners, terms, report)))
    report.minutes += 1
    if after_write is not None:
        after_write()
    _advance(stamp, until)
    _resolve_missing(stamp, live, until, MissingState.BACKFILLED, "read from the inventory")
    return report


def _backfill(stamp, driver, start, end, owners, terms, report, *, after_write) -> bool:
    """Rebuild ``[start, end)`` from the stamp's history, chunk by chunk, moving the cursor
    after each; without a history those minutes are marked unrecoverable. False if the
    stamp stopped answering (the minutes stay missing, to be tried again)."""
    from fabric.drivers import DriverError, PowerState

    try:
        histories = driver.usage_history(start, end)
    except DriverError as exc:
        if exc.transient:
            report.missing, report.detail = True, str(exc)
            return False
        return _unrecoverable(stamp, start, end, report, exc)
    except (AttributeError, NotImplementedError) as exc:
        return _unrecoverable(stamp, start, end, report, exc)
    per_chunk = max(1, CHUNK_ROWS // max(1, 4 * len(histories)))
    moment = start
    while moment < end:
        chunk_end = min(end, moment + per_chunk * MINUTE)
        rows: list[Usage] = []
        minute = moment
        while minute < chunk_end:
            at = minute + MINUTE - timedelta(microseconds=1)  # the end of the minute
            vms = {}
            for history in histories:
                event = history.at(at)
                if event is not None and event.kind == "normal":
                    vms[history.vm_id] = _Vm(event.vcpus, event.memory_mb, event.disk_gb,
                                             event.checkpoints, event.protected,
                                             event.power_state == PowerState.RUNNING)
            rows.extend(_usage(minute, vms, owners, terms, report))
            minute += MINUTE
        report.rows += _write(stamp, rows)
        minutes = int((chunk_end - moment) / MINUTE)
        report.minutes += minutes
        report.backfilled += minutes
        if after_write is not None:
            after_write()
        _advance(stamp, chunk_end)
        _resolve_missing(stamp, moment, chunk_end, MissingState.BACKFILLED,
                         "rebuilt from the stamp's history")
        moment = chunk_end
    return True


def _unrecoverable(stamp, start, end, report, exc) -> bool:
    report.unrecoverable = int((end - start) / MINUTE)
    _record_missing(stamp, start, end, str(exc))
    _resolve_missing(stamp, start, end, MissingState.UNRECOVERABLE,
                     f"the stamp keeps no usage history: {exc}")
    log.warning("usage of stamp %s from %s to %s is lost: %s", stamp.name, start, end, exc)
    return True


# -- from the stamp's answer to rows -------------------------------------------------------
def _owners(stamp: Stamp) -> dict[str, tuple[str, str]]:
    """fabric id -> (portal VM id, subscription id) of every VM the portal knows. Read as
    text in one query: a stamp may hold a hundred thousand."""
    from provisioning.models import VirtualMachine

    table = VirtualMachine._meta.db_table
    cast = "::text" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT fabric_id, id{cast}, subscription_id{cast} FROM {table}"  # noqa: S608
                       " WHERE fabric_id <> ''")
        rows = cursor.fetchall()
    if connection.vendor == "postgresql":
        return {fabric_id: (vm_id, subscription_id) for fabric_id, vm_id, subscription_id in rows}
    # SQLite keeps UUIDs as 32 hex digits: the portal's ids are their canonical text.
    return {fabric_id: (str(uuid.UUID(vm_id)), str(uuid.UUID(subscription_id)))
            for fabric_id, vm_id, subscription_id in rows}


class _Terms:
    """What the subscriptions of a pass' VMs are metered by: their quota limits in the
    burst dimensions, and which do not meter stopped VMs' compute."""

    def __init__(self, owners: Iterable[tuple[str, object]]):
        from plans.models import QuotaLedger, Subscription

        subscriptions = {subscription_id for _, subscription_id in owners}
        self.limits: dict[str, dict[str, int]] = defaultdict(dict)
        rows = QuotaLedger.objects.filter(subscription_id__in=subscriptions,
                                          dimension__in=BURST_DIMENSIONS)
        for subscription_id, dimension, limit in rows.values_list(
                "subscription_id", "dimension", "limit"):
            self.limits[str(subscription_id)][dimension] = limit
        self.running_only = {str(pk) for pk in Subscription.objects.filter(
            pk__in=subscriptions, plan__meter_stopped_vms=False).values_list("pk", flat=True)}


def _usage(minute, vms: dict[str, _Vm], owners, terms: _Terms, report) -> Iterator[Usage]:
    allocated: dict[str, list[int]] = {}
    running_only = terms.running_only
    for fabric_id, vm in vms.items():
        owner = owners.get(fabric_id)
        if owner is None:  # not the portal's (or not recorded yet): reconciliation's business
            report.unmapped.add(fabric_id)
            continue
        vm_id, subscription_id = owner
        used = allocated.get(subscription_id)
        if used is None:
            used = allocated[subscription_id] = [0, 0, 0, 0, 0]
        used[2] += vm.disk_gb
        used[4] += vm.checkpoints
        if vm.running or subscription_id not in running_only:
            used[0] += vm.vcpus
            used[1] += vm.memory_mb
            used[3] += 1
            meters = ((Meter.VCPUS, vm.vcpus), (Meter.MEMORY_MB, vm.memory_mb),
                      (Meter.STORAGE_GB, vm.disk_gb), (Meter.VMS, 1))
        else:
            meters = ((Meter.STORAGE_GB, vm.disk_gb),)
        if vm.checkpoints:
            meters += ((Meter.SNAPSHOTS, vm.checkpoints),)
        if vm.protected:
            meters += ((Meter.DR_PROTECTED_VMS, 1),)
        yield (subscription_id, ResourceType.VM, vm_id, minute, meters)
    for subscription_id, used in allocated.items():
        quota = terms.limits.get(subscription_id, {})
        over = tuple((burst_meter(dimension), amount - quota[dimension])
                     for dimension, amount in zip(BURST_DIMENSIONS, used, strict=True)
                     if dimension in quota and amount > quota[dimension])
        if over:
            yield (subscription_id, ResourceType.SUBSCRIPTION, subscription_id, minute, over)


# -- writing -------------------------------------------------------------------------------
def _write(stamp: Stamp, usage: list[Usage]) -> int:
    """Upsert the rows (a minute written again replaces itself) and add what they change
    to their hours (``rollup``), in one transaction; how many rows were written."""
    if not usage:
        return 0
    if connection.vendor == "postgresql":
        return _write_postgres(stamp, usage)
    rows = [UsageRecord(subscription_id=s, resource_type=t, resource_id=r, meter=str(m),
                        minute=minute, quantity=Decimal(q), stamp=stamp)
            for s, t, r, minute, meters in usage for m, q in meters]
    deltas = _hour_sums(usage)
    with transaction.atomic():
        replaced = UsageRecord.objects.filter(
            stamp=stamp, minute__in={u[3] for u in usage}).values_list(
            "subscription_id", "minute", "resource_id", "meter", "quantity")
        old = {(str(s), minute, r, m): q for s, minute, r, m, q in replaced}
        for row in rows:
            quantity = old.get((row.subscription_id, row.minute, row.resource_id, row.meter))
            if quantity is not None:
                deltas[(row.subscription_id, row.meter, rollup.floor_hour(row.minute))] -= \
                    quantity
        for i in range(0, len(rows), BATCH):
            UsageRecord.objects.bulk_create(
                rows[i:i + BATCH], update_conflicts=True,
                unique_fields=["subscription", "minute", "resource_id", "meter"],
                update_fields=["quantity", "resource_type", "stamp"])
        rollup.add(stamp, deltas)
    return len(rows)


def _hour_sums(usage: list[Usage]) -> rollup.Deltas:
    sums: rollup.Deltas = defaultdict(Decimal)
    for s, _, _, minute, meters in usage:
        hour = minute.replace(minute=0)
        for m, q in meters:
            sums[(s, str(m), hour)] += q
    return sums


_COLUMNS = ("subscription_id", "resource_type", "resource_id", "meter", "minute", "quantity",
            "stamp_id")


def _write_postgres(stamp: Stamp, usage: list[Usage]) -> int:
    """COPY the rows. Minutes after the stamp's ``written_until`` go straight into the
    table (the unique constraint still guards: a violation runs the upsert instead);
    others through a temporary table and one INSERT ... ON CONFLICT DO UPDATE, the upsert
    ``bulk_create(update_conflicts=True)`` does, after subtracting the rows it replaces
    from the hours. The cursor row is locked meanwhile, so two passes of one stamp write
    one after the other.

    ``synchronous_commit`` is off for this transaction only: PostgreSQL writes its log in
    order, so the cursor's (synchronous) commit that follows makes these rows durable
    too, and a crash before it loses rows that the rerun writes again."""
    import io

    buffer = io.StringIO()
    stamp_id, count = str(stamp.pk), 0
    minutes = set()
    for s, t, r, minute, meters in usage:
        head, tail = f"{s}\t{t}\t{r}\t", f"\t{minute.isoformat()}\t"
        buffer.write("".join(f"{head}{m}{tail}{q}\t{stamp_id}\n" for m, q in meters))
        count += len(meters)
        minutes.add(minute)
    deltas = _hour_sums(usage)
    table = UsageRecord._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")
        mark, _ = MeterCursor.objects.select_for_update().get_or_create(
            stamp=stamp, defaults={"collected_until": min(minutes)})
        fresh = mark.written_until is None or min(minutes) >= mark.written_until
        mark.written_until = max(mark.written_until or max(minutes), max(minutes) + MINUTE)
        mark.save(update_fields=["written_until", "updated_at"])
        if fresh:
            try:
                with transaction.atomic():
                    buffer.seek(0)
                    cursor.cursor.copy_from(buffer, table, columns=_COLUMNS)
                rollup.add(stamp, deltas)
                return count
            except IntegrityError:
                pass  # rows of these minutes exist after all: upsert them
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS usage_incoming ("
            " subscription_id uuid, resource_type varchar(16), resource_id varchar(64),"
            " meter varchar(32), minute timestamptz, quantity numeric(20, 6), stamp_id uuid"
            ") ON COMMIT DELETE ROWS")
        cursor.execute("TRUNCATE usage_incoming")  # inside an outer transaction too
        buffer.seek(0)
        cursor.cursor.copy_from(buffer, "usage_incoming", columns=_COLUMNS)
        cursor.execute(
            "SELECT u.subscription_id::text, u.meter, date_trunc('hour', u.minute, 'UTC'),"  # noqa: S608
            f" SUM(u.quantity) FROM usage_incoming i JOIN {table} u"
            " USING (subscription_id, minute, resource_id, meter) GROUP BY 1, 2, 3")
        for s, m, hour, quantity in cursor.fetchall():
            deltas[(s, m, hour)] -= quantity
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(_COLUMNS)})"  # noqa: S608
            f" SELECT {', '.join(_COLUMNS)} FROM usage_incoming"
            " ON CONFLICT (subscription_id, minute, resource_id, meter) DO UPDATE SET"
            " quantity = EXCLUDED.quantity, resource_type = EXCLUDED.resource_type,"
            " stamp_id = EXCLUDED.stamp_id")
        rollup.add(stamp, deltas)
    return count


def _advance(stamp: Stamp, until: datetime) -> None:
    MeterCursor.objects.update_or_create(stamp=stamp, defaults={"collected_until": until})


# -- missing minutes -----------------------------------------------------------------------
@transaction.atomic
def _record_missing(stamp: Stamp, start: datetime, end: datetime, detail: str) -> None:
    """Mark ``[start, end)`` missing, growing the open range that covers its start."""
    open_range = (MissingUsage.objects.select_for_update()
                  .filter(stamp=stamp, state=MissingState.MISSING, start__lte=start,
                          end__gte=start).order_by("-end").first())
    if open_range is None:
        MissingUsage.objects.create(stamp=stamp, start=start, end=end, detail=detail)
        log.warning("usage of stamp %s is missing from %s: %s", stamp.name, start, detail)
    elif open_range.end < end:
        open_range.end, open_range.detail = end, detail
        open_range.save(update_fields=["end", "detail", "updated_at"])


@transaction.atomic
def _resolve_missing(stamp: Stamp, start: datetime, end: datetime, state: str,
                     detail: str) -> None:
    """Mark what was missing of ``[start, end)`` as ``state``, splitting a range that
    reaches past it (the rest stays missing)."""
    ranges = MissingUsage.objects.select_for_update().filter(
        stamp=stamp, state=MissingState.MISSING, start__lt=end, end__gt=start)
    for missing in ranges:
        if missing.start < start:
            MissingUsage.objects.create(stamp=stamp, start=missing.start, end=start,
                                        detail=missing.detail)
            missing.start = start
        if missing.end > end:
            MissingUsage.objects.create(stamp=stamp, start=end, end=missing.end,
                                        detail=missing.detail)
            missing.end = end
        missing.state, missing.detail = state, detail
        missing.save(update_fields=["start", "end", "state", "detail", "updated_at"])
