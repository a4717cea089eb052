"""Metering against a real stampsim, in real processes: a pass killed between writing
usage and moving the cursor, then run again, counts every minute once."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from billing.metering import floor_minute
from billing.models import MeterCursor, UsageRecord
from fabric.models import DriverKind, Stamp
from fabric.services import driver_for
from fabric.tests.factories import CloudFactory
from plans.tests.factories import PlanFactory, SubscriptionFactory
from provisioning.tests.factories import VirtualMachineFactory
from tests import processes


def collect_usage(stamp, until, *extra):
    return subprocess.run(
        [sys.executable, "manage.py", "collect_usage", "--stamp", stamp.name,
         "--until", until.isoformat(), *extra],
        cwd=processes.ROOT, env={**os.environ, "DATABASE_URL": processes.test_database_url()},
        capture_output=True, text=True, timeout=120, check=False)


def totals(stamp):
    return dict(UsageRecord.objects.filter(stamp=stamp).values_list("meter")
                .annotate(total=Sum("quantity")).order_by("meter"))


@pytest.mark.worker
def test_a_pass_killed_between_the_rows_and_the_cursor_counts_nothing_twice(
        transactional_db, stampsims):
    # given a real stampsim with two VMs the portal knows
    sim = stampsims("meter")
    stamp = Stamp.objects.create(name=sim.name, region="west", driver=DriverKind.SIMULATED,
                                 endpoint=sim.url)
    subscription = SubscriptionFactory(plan=PlanFactory(cloud=CloudFactory(stamp=stamp),
                                                        quota_vcpus=4))
    driver = driver_for(stamp)
    container = driver.create_container(key="c", name="tenant")
    for name, vcpus in (("a", 2), ("b", 3)):
        vm = driver.create_vm(key=name, container_id=container.id, name=name, vcpus=vcpus,
                              memory_mb=512, disk_gb=10, image="img", network_id=None)
        VirtualMachineFactory(subscription=subscription, fabric_id=vm.id, vcpus=vcpus)
    until = floor_minute(timezone.now()) + timedelta(minutes=2)
    start = until - timedelta(minutes=6)
    MeterCursor.objects.create(stamp=stamp, collected_until=start)

    # when a pass dies after writing its rows, before the cursor moves
    crashed = collect_usage(stamp, until, "--crash-after-write")
    assert crashed.returncode == 75, crashed.stderr
    assert UsageRecord.objects.filter(stamp=stamp).exists()
    assert MeterCursor.objects.get(stamp=stamp).collected_until == start
    # and the pass runs again
    rerun = collect_usage(stamp, until)
    assert rerun.returncode == 0, rerun.stderr
    after_crash = totals(stamp)

    # then the totals are those of one clean pass over the same minutes
    UsageRecord.objects.filter(stamp=stamp).delete()
    MeterCursor.objects.filter(stamp=stamp).update(collected_until=start, written_until=None)
    clean = collect_usage(stamp, until)
    assert clean.returncode == 0, clean.stderr
    assert after_crash == totals(stamp)
    assert after_crash["vms"] >= 2 * 2  # both VMs, in at least two minutes
    assert after_crash["burst.vcpus"] == after_crash["vms"] // 2  # 5 vCPUs on a quota of 4
    assert MeterCursor.objects.get(stamp=stamp).collected_until == until
