"""Metering from a memory stamp: minutes counted once, outages missing then backfilled."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db.models import Sum
from django.db.models.functions import Trunc

from billing import metering, rollup
from billing.models import MeterCursor, MissingState, MissingUsage, UsageHour, UsageRecord
from fabric.drivers import get_driver, memory
from fabric.tests.factories import CloudFactory, StampFactory
from plans.tests.factories import PlanFactory, SubscriptionFactory
from provisioning.tests.factories import VirtualMachineFactory
from stampsim.handlers import OpKind

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def world():
    memory.reset()
    stamp = StampFactory()
    plan = PlanFactory(cloud=CloudFactory(stamp=stamp), quota_vcpus=8)
    subscription = SubscriptionFactory(plan=plan)
    driver = get_driver("memory", name=stamp.name, endpoint=stamp.endpoint, retries=1,
                        backoff=0)
    container = driver.create_container(key="ctr", name="tenant")

    def vm(name, vcpus=2, memory_mb=1024, disk_gb=10):
        info = driver.create_vm(key=f"vm-{name}", container_id=container.id, name=name,
                                vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb,
                                image="img", network_id=None)
        VirtualMachineFactory(subscription=subscription, fabric_id=info.id, vcpus=vcpus,
                              memory_mb=memory_mb, disk_gb=disk_gb)
        return info

    yield {"stamp": stamp, "subscription": subscription, "driver": driver, "vm": vm}
    memory.reset()


def total(meter, **filters) -> Decimal:
    return UsageRecord.objects.filter(meter=meter, **filters).aggregate(
        s=Sum("quantity"))["s"] or Decimal(0)


def hours_match_records() -> bool:
    """Every hour (what rating reads) is the sum of its records, and none is left over."""
    records = (UsageRecord.objects.annotate(at=Trunc("minute", "hour", tzinfo=UTC))
               .values("subscription_id", "meter", "at").annotate(q=Sum("quantity"))
               .values_list("subscription_id", "meter", "at", "q"))
    hours = UsageHour.objects.exclude(quantity=0).values_list("subscription_id", "meter",
                                                              "hour", "quantity")
    return set(records) == set(hours) and len(hours) > 0


def run(world, at, **options):
    with time_machine.travel(at, tick=False):
        return metering.collect(world["stamp"], driver=world["driver"], **options)


def test_each_minute_is_counted_once_whatever_reruns(world):
    # given a VM of 2 vCPUs created before 10:00
    with time_machine.travel(T0 - timedelta(seconds=30), tick=False):
        world["vm"]("web")
    # when the collection runs for three minutes, and every pass runs twice
    for minute in range(1, 4):
        run(world, T0 + minute * MINUTE + timedelta(seconds=5))
        run(world, T0 + minute * MINUTE + timedelta(seconds=40))
    # then the minutes 10:00 (the first pass's) to 10:02 are counted once each
    assert total("vcpus") == 2 * 3
    assert total("vms") == 3
    assert total("memory_mb") == 1024 * 3
    assert UsageRecord.objects.filter(meter="vcpus").values("minute").distinct().count() == 3
    assert MeterCursor.objects.get(stamp=world["stamp"]).collected_until == T0 + 3 * MINUTE
    assert all(r.minute.second == 0 for r in UsageRecord.objects.all())
    assert hours_match_records()


def test_allocation_above_the_quota_is_burst_of_the_subscription(world):
    # given 10 vCPUs on a plan with 8
    with time_machine.travel(T0 - timedelta(seconds=30), tick=False):
        world["vm"]("a", vcpus=6)
        world["vm"]("b", vcpus=4)
    # when one minute is collected
    run(world, T0 + timedelta(seconds=5))
    # then 2 vCPUs are burst, as one row of the subscription
    burst = UsageRecord.objects.get(meter="burst.vcpus")
    assert burst.quantity == 2
    assert burst.resource_id == str(world["subscription"].pk)
    assert not UsageRecord.objects.filter(meter="burst.vms").exists()


@pytest.mark.parametrize("meter_stopped", [True, False])
def test_a_stopped_vm_is_metered_as_its_plan_says(world, meter_stopped):
    # given a plan that meters stopped VMs (or not), 10 vCPUs on its 8, and one of the VMs
    # (6 vCPUs) stopped at 10:00:30
    plan = world["subscription"].plan
    plan.meter_stopped_vms = meter_stopped
    plan.save()
    with time_machine.travel(T0 - timedelta(seconds=30), tick=False):
        stopped = world["vm"]("batch", vcpus=6, disk_gb=30)
        world["vm"]("web", vcpus=4)
    run(world, T0 + timedelta(seconds=5))
    with time_machine.travel(T0 + timedelta(seconds=30), tick=False):
        world["driver"].stop_vm(key="stop", vm_id=stopped.id)
    # when 10:00 is rebuilt from the history and 10:01 read from the inventory, then the
    # stamp misses a pass and 10:02-10:03 are rebuilt from the history too
    assert run(world, T0 + 2 * MINUTE + timedelta(seconds=5)).backfilled == 1
    memory.set_reachable(world["stamp"].endpoint, False)
    assert run(world, T0 + 3 * MINUTE + timedelta(seconds=5)).missing
    memory.set_reachable(world["stamp"].endpoint, True)
    assert run(world, T0 + 5 * MINUTE + timedelta(seconds=5)).backfilled == 2
    # then from 10:00 (stopped at its end) its disk is metered either way, its vCPUs, memory
    # and VM-minutes (and the burst they make) only if the plan says so
    after = {"minute__gte": T0}
    assert total("storage_gb", **after) == 5 * (30 + 10)
    assert total("vcpus", **after) == 5 * (10 if meter_stopped else 4)
    assert total("vms", **after) == 5 * (2 if meter_stopped else 1)
    assert total("memory_mb", **after) == 5 * 1024 * (2 if meter_stopped else 1)
    assert total("burst.vcpus", **after) == (5 * 2 if meter_stopped else 0)
    # and before it stopped both were metered whole
    assert total("vcpus", minute=T0 - MINUTE) == 10
    assert hours_match_records()


def test_a_crash_between_writing_and_the_cursor_changes_no_total(world):
    # given a VM metered once
    with time_machine.travel(T0 - timedelta(seconds=30), tick=False):
        world["vm"]("web")
    run(world, T0 + timedelta(seconds=5))

    # when the next pass, five minutes later, dies after writing its rows
    def crash():
        raise SystemExit("killed")

    with pytest.raises(SystemExit):
        run(world, T0 + 5 * MINUTE + timedelta(seconds=5), after_write=crash)
    written = total("vcpus")
    # and the pass runs again
    report = run(world, T0 + 5 * MINUTE + timedelta(seconds=20))
    # then the totals are those of the minutes 09:59 to 10:04, each once
    assert written == 2 * 5  # 09:59 and the backfilled 10:00-10:03 were written
    assert report.minutes == 5  # all from the cursor again
    assert total("vcpus") == 2 * 6
    assert MeterCursor.objects.get(stamp=world["stamp"]).collected_until == T0 + 5 * MINUTE
    assert hours_match_records()


def test_a_minute_written_again_with_other_figures_moves_its_hour_by_the_difference(world):
    # given a VM of 2 vCPUs metered from 09:59 to 10:02
    with time_machine.travel(T0 - timedelta(seconds=30), tick=False):
        vm = world["vm"]("web")
    run(world, T0 + timedelta(seconds=5))
    run(world, T0 + 3 * MINUTE + timedelta(seconds=5))
    subscription = world["subscription"]
    assert rollup.sums(T0, T0 + rollup.HOUR, subscription=subscription)["vcpus"] == 2 * 3
    # when it is resized to 4 vCPUs and the minute 10:02 is collected again (a rerun)
    with time_machine.travel(T0 + 3 * MINUTE + timedelta(seconds=10), tick=False):
        fabric = memory.fabric(world["stamp"].endpoint)
        fabric.submit(OpKind.VM_STOP, {"vm_id": vm.id}, "stop")
        fabric.submit(OpKind.VM_RESIZE, {"vm_id": vm.id, "vcpus": 4, "memory_mb": 1024},
                      "resize")
    MeterCursor.objects.filter(stamp=world["stamp"]).update(collected_until=T0 + 2 * MINUTE)
    run(world, T0 + 3 * MINUTE + timedelta(seconds=20))
    # then that minute counts 4 and its hour moved by 2, not by 4
    assert total("vcpus", minute=T0 + 2 * MINUTE) == 4
    assert rollup.sums(T0, T0 + rollup.HOUR, subscription=subscription)["vcpus"] == 2 + 2 + 4
    assert rollup.sums(T0 - MINUTE, T0, subscription=subscription)["vcpus"] == 2
    assert hours_match_records()


def test_a_stamp_down_three_hours_is_missing_then_backfilled_from_its_history(world):
    # given a VM of 2 vCPUs metered up to 10:00
    with time_machine.travel(T0 - timedelta(seconds=30), tick=False):
        vm = world["vm"]("web")
    run(world, T0 + timedelta(seconds=5))
    stamp, fabric = world["stamp"], memory.fabric(world["stamp"].endpoint)
    # when the stamp stops answering for three hours, while the VM is stopped and resized
    # to 4 vCPUs after one hour and deleted after two
    memory.set_reachable(stamp.endpoint, False)
    for minutes in (30, 60, 90, 120, 150, 180):
        at = T0 + minutes * MINUTE + timedelta(seconds=5)
        with time_machine.travel(at - timedelta(seconds=30), tick=False):
            if minutes == 60:
                fabric.submit(OpKind.VM_STOP, {"vm_id": vm.id}, "stop")
                fabric.submit(OpKind.VM_RESIZE, {"vm_id": vm.id, "vcpus": 4,
                                                 "memory_mb": 1024}, "resize")
            if minutes == 120:
                fabric.submit(OpKind.VM_DELETE, {"vm_id": vm.id}, "delete")
        report = run(world, at)
        assert report.missing
    # then those minutes are missing, not zero
    missing = MissingUsage.objects.get(stamp=stamp)
    assert (missing.state, missing.start, missing.end) == (
        MissingState.MISSING, T0, T0 + 180 * MINUTE)
    assert not UsageRecord.objects.filter(minute__gt=T0).exists()
    # when it answers again
    memory.set_reachable(stamp.endpoint, True)
    report = run(world, T0 + 181 * MINUTE + timedelta(seconds=5))
    # then the three hours are rebuilt from the stamp's history
    missing.refresh_from_db()
    assert missing.state == MissingState.BACKFILLED
    assert report.backfilled == 180
    window = {"minute__gte": T0, "minute__lt": T0 + 181 * MINUTE}
    # 10:00-10:59 at 2 vCPUs (resized at 10:59:35: that minute ends at 4), 11:00-11:58 at 4
    assert total("vcpus", **window) == 59 * 2 + 60 * 4
    assert total("vms", **window) == 119
    assert MeterCursor.objects.get(stamp=stamp).collected_until == T0 + 181 * MINUTE
    assert hours_match_records()


class _NoHistory:
    """A driver that answers its inventory but keeps no history."""

    def __init__(self, driver):
        self._driver = driver

    def usage(self):
        return self._driver.usage()


def test_without_a_history_the_missing_minutes_stay_marked(world):
    # given a stamp metered up to 10:00, then down for an hour
    with time_machine.travel(T0 - timedelta(seconds=30), tick=False):
        world["vm"]("web")
    run(world, T0 + timedelta(seconds=5))
    memory.set_reachable(world["stamp"].endpoint, False)
    run(world, T0 + 30 * MINUTE)
    memory.set_reachable(world["stamp"].endpoint, True)
    # when it answers again through a driver with no history
    with time_machine.travel(T0 + 60 * MINUTE + timedelta(seconds=5), tick=False):
        report = metering.collect(world["stamp"], driver=_NoHistory(world["driver"]))
    # then the minutes it missed are marked unrecoverable and only the last one is counted
    assert report.unrecoverable == 59
    states = set(MissingUsage.objects.values_list("state", flat=True))
    assert states == {MissingState.UNRECOVERABLE}
    assert total("vms", minute__gt=T0) == 1


def test_missing_minutes_are_an_alert_in_the_metrics(world, client):
    # given a stamp that has not answered for half an hour
    run(world, T0 + timedelta(seconds=5))
    memory.set_reachable(world["stamp"].endpoint, False)
    run(world, T0 + 30 * MINUTE + timedelta(seconds=5))
    # then /metrics counts its missing minutes
    body = client.get("/metrics").content.decode()
    assert (f'buffet_usage_missing_minutes{{stamp="{world["stamp"].name}",state="missing"}} '
            "30.0") in body


class _HistoryDown(_NoHistory):
    """A driver whose history call finds the stamp gone again."""

    def usage_history(self, since, until):
        from fabric.drivers import StampUnreachable

        raise StampUnreachable("s", "history", "connection refused")


def test_a_stamp_gone_again_before_its_history_is_read_stays_missing(world):
    # given a stamp metered up to 10:00
    with time_machine.travel(T0 - timedelta(seconds=30), tick=False):
        world["vm"]("web")
    run(world, T0 + timedelta(seconds=5))
    # when, an hour later, it answers the snapshot but not the history
    with time_machine.travel(T0 + 60 * MINUTE + timedelta(seconds=5), tick=False):
        report = metering.collect(world["stamp"], driver=_HistoryDown(world["driver"]))
    # then nothing is written, the cursor stays and the hour is missing
    assert report.missing and report.rows == 0
    assert MeterCursor.objects.get(stamp=world["stamp"]).collected_until == T0
    missing = MissingUsage.objects.get()
    assert (missing.state, missing.start, missing.end) == (
        MissingState.MISSING, T0, T0 + 60 * MINUTE)
