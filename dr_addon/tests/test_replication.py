"""How fresh each replica is, and when a sync is due, with the clock in the test's hands."""

from datetime import UTC, datetime, timedelta

import pytest

from dr_addon import services
from dr_addon.models import ProtectionState
from dr_addon.tests.factories import ProtectedVmFactory, ProtectionFactory
from provisioning.models import Job
from provisioning.tests.factories import CommissionedSubscriptionFactory

pytestmark = pytest.mark.django_db

NINE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_the_status_measures_each_replicas_lag_against_the_rpo_target(time_machine):
    # given a protection with a 5 min target whose VMs last synced at nine, at 8:48 and never
    time_machine.move_to(NINE, tick=False)
    protection = ProtectionFactory(addon__rpo_seconds=300)
    for name, synced in (("a-fresh", NINE), ("b-stale", NINE - timedelta(minutes=12)),
                         ("c-new", None)):
        ProtectedVmFactory(protection=protection, vm__name=name, last_sync_at=synced)
    # when its status is read 30 s after nine
    time_machine.shift(timedelta(seconds=30))
    status = services.status(protection.subscription)
    # then each lag is exact, and the stale and the never-synced VM are past the target
    assert [(row["name"], row["rpo_seconds"], row["over_rpo"]) for row in status["protected"]
            ] == [("a-fresh", 30.0, False), ("b-stale", 750.0, True), ("c-new", None, True)]
    assert status["rpo_target_seconds"] == 300


def test_a_sync_starts_once_half_the_rpo_has_passed_and_not_twice(time_machine):
    # given a protected subscription with a 5 min target, its VM synced at nine
    time_machine.move_to(NINE, tick=False)
    subscription = CommissionedSubscriptionFactory()
    protection = ProtectionFactory(subscription=subscription, addon__rpo_seconds=300)
    ProtectedVmFactory(protection=protection, last_sync_at=NINE)
    # when two minutes pass, nothing is due yet
    time_machine.shift(timedelta(minutes=2))
    assert services.sync_due() == []
    # when a third minute passes (more than half the target), a sync job starts
    time_machine.shift(timedelta(minutes=1))
    assert services.sync_due() == [str(protection.pk)]
    job = Job.objects.get(runbook="dr.sync")
    assert job.resource_id == str(protection.pk)
    assert job.stamp == subscription.plan.cloud.stamp  # the primary's queue
    # then while it is queued, no second one is started
    assert services.sync_due() == []
    assert Job.objects.filter(runbook="dr.sync").count() == 1


def test_a_protection_that_is_not_protected_is_not_synced(time_machine):
    # given a subscription failing over, its VM long unsynced
    time_machine.move_to(NINE, tick=False)
    protection = ProtectionFactory(subscription=CommissionedSubscriptionFactory(),
                                   state=ProtectionState.FAILING_OVER)
    ProtectedVmFactory(protection=protection, last_sync_at=NINE - timedelta(hours=1))
    # when syncs are looked for / then none starts: the failover owns the replicas now
    assert services.sync_due() == []
    assert not Job.objects.filter(runbook="dr.sync").exists()
