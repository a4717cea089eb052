"""What beat runs: every schedule names a task a worker knows, and ``ensure_schedules``
writes each one once."""

import pytest

from portal.celery import app
from portal.schedules import SCHEDULES, ensure_schedules


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_schedule_runs_a_registered_task(name):
    app.loader.import_default_modules()  # what a worker does when it starts
    task, seconds = SCHEDULES[name]
    assert task in app.tasks, f"{name}: no task {task}"
    assert seconds > 0


def test_the_stuck_resource_sweeper_is_scheduled():
    assert "provisioning.reset_stuck_resources" in {task for task, _ in SCHEDULES.values()}


def test_ensure_schedules_writes_each_schedule_once(db):
    from django_celery_beat.models import PeriodicTask

    ensure_schedules()
    ensure_schedules()
    for name, (task, _) in SCHEDULES.items():
        assert PeriodicTask.objects.filter(name=name).count() == 1
        assert PeriodicTask.objects.get(name=name).task == task


def test_migrate_writes_the_schedules(db):
    # given a database whose schedules are gone
    from django.core.management.sql import emit_post_migrate_signal
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.all().delete()
    # when migrate ends, as it does: post_migrate for every app that has models
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    # then beat has every schedule to run
    assert set(PeriodicTask.objects.values_list("name", flat=True)) >= set(SCHEDULES)
