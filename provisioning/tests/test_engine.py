"""The runbook engine, run in-process against the memory driver."""

import json

import pytest
from django.utils import timezone

from base import prepared
from fabric.drivers import Conflict as FabricConflict
from fabric.drivers import StampUnreachable
from fabric.models import Stamp
from provisioning import engine
from provisioning.engine import Runbook, Step
from provisioning.models import Job, JobState, StepState

CALLS: list[str] = []
FAIL: dict[str, Exception] = {}


def _step(name):
    def do(ctx):
        CALLS.append(f"do {name} {ctx.key()}")
        if name in FAIL:
            raise FAIL.pop(name)
        return {name: f"made-{name}"}

    def undo(ctx):
        CALLS.append(f"undo {name}")
        assert ctx.outputs[name] == f"made-{name}"
        if f"undo {name}" in FAIL:
            raise FAIL.pop(f"undo {name}")

    return Step(name, do, undo, transient_retries=2)


ROLLED_BACK: list[str] = []
TEST_RUNBOOK = engine.register(Runbook(
    name="test.three-steps",
    steps=(_step("one"), _step("two"), _step("three")),
    on_rollback=lambda job: ROLLED_BACK.append(str(job.pk)),
))
FORWARD_RUNBOOK = engine.register(Runbook(
    name="test.forward", steps=(_step("a"), _step("b")), compensate=False))


SLEPT: list[float] = []


@pytest.fixture(autouse=True)
def _clean(settings):
    settings.BUFFET_JOB_LEASE_SECONDS = 600  # no heartbeat thread writes during a test
    CALLS.clear()
    FAIL.clear()
    ROLLED_BACK.clear()
    SLEPT.clear()
    # The engine waits between transient retries with its clock: record, do not wait.
    with engine.use_clock(sleep=SLEPT.append):
        yield


@pytest.fixture
def stamp(db):
    return Stamp.objects.create(name="unit", region="r", driver="memory", endpoint="mem://unit")


def new_job(stamp, runbook=TEST_RUNBOOK.name):
    return engine.enqueue(runbook, stamp=stamp, inputs={"n": 1})


def test_a_job_runs_its_steps_in_order_and_succeeds(stamp):
    job = new_job(stamp)
    # when
    engine.run(job.pk, worker="w1")
    # then
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert [c.split()[1] for c in CALLS] == ["one", "two", "three"]
    assert job.outputs == {"one": "made-one", "two": "made-two", "three": "made-three"}
    assert [s.state for s in job.steps.all()] == [StepState.SUCCEEDED] * 3
    assert all(s.started_at and s.finished_at for s in job.steps.all())


def test_a_failed_step_undoes_the_finished_ones_in_reverse(stamp):
    FAIL["three"] = FabricConflict("unit", "thing.create", "refused", code="capacity")
    job = new_job(stamp)
    engine.run(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.ROLLED_BACK
    assert "Step 'three' failed" in job.error and "refused" in job.error
    assert [c.split()[0:2] for c in CALLS] == [["do", "one"], ["do", "two"], ["do", "three"],
                                               ["undo", "two"], ["undo", "one"]]
    assert [s.state for s in job.steps.all()] == [StepState.UNDONE, StepState.UNDONE,
                                                  StepState.FAILED]
    assert [str(job.pk)] == ROLLED_BACK


def test_a_transient_error_is_retried_in_place_with_the_same_key(stamp):
    FAIL["two"] = StampUnreachable("unit", "thing.create", "connection refused")
    job = new_job(stamp)
    engine.run(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    two = [c for c in CALLS if c.startswith("do two")]
    assert len(two) == 2 and two[0] == two[1]  # same idempotency key
    assert "transient error, retrying" in job.steps.get(index=2).log


def test_undo_that_fails_leaves_a_failed_job_that_says_so(stamp):
    FAIL["three"] = FabricConflict("unit", "x", "no", code="state")
    FAIL["undo one"] = FabricConflict("unit", "x", "cannot delete", code="in-use")
    job = new_job(stamp)
    engine.run(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert "Undo of step 'one' failed too" in job.error


def test_a_resumed_job_skips_finished_steps_and_redoes_the_interrupted_one(stamp):
    # given a job whose worker died while step two was running
    job = new_job(stamp)
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING, attempts=1,
                                         heartbeat_at=timezone.now() - timezone.timedelta(
                                             hours=1))
    job.steps.filter(index=1).update(state=StepState.SUCCEEDED)
    job.steps.filter(index=2).update(state=StepState.RUNNING, attempts=1)
    Job.objects.filter(pk=job.pk).update(outputs={"one": "made-one"})
    # when another worker gets it
    engine.run(job.pk, worker="w2")
    # then
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and job.attempts == 2 and job.worker == "w2"
    assert [c.split()[1] for c in CALLS] == ["two", "three"]
    assert job.steps.get(index=2).attempts == 2


def test_a_duplicate_delivery_of_a_live_job_does_nothing(stamp):
    job = new_job(stamp)
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING, attempts=1,
                                         heartbeat_at=timezone.now())
    assert engine.run(job.pk) is None
    assert CALLS == []


def test_a_finished_job_is_never_run_again(stamp):
    job = new_job(stamp)
    engine.run(job.pk)
    CALLS.clear()
    assert engine.run(job.pk) is None
    assert CALLS == []


def test_a_poison_job_gives_up_after_max_attempts(stamp):
    job = new_job(stamp)
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING, attempts=job.max_attempts,
                                         heartbeat_at=None)
    job.steps.filter(index=1).update(state=StepState.SUCCEEDED)
    Job.objects.filter(pk=job.pk).update(outputs={"one": "made-one"})
    engine.run(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.ROLLED_BACK
    assert "Gave up after 5 deliveries" in job.error
    assert CALLS == ["undo one"]


def test_cancel_a_queued_job_and_retry_it_with_new_keys(stamp):
    job = new_job(stamp)
    engine.cancel(job)
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED and [str(job.pk)] == ROLLED_BACK
    engine.retry(job)
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and job.run == 2
    engine.run(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert all(f"{job.pk}:2:" in c for c in CALLS)


def test_cancel_while_running_undoes_what_was_done(stamp):
    job = new_job(stamp)
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING, outputs={"one": "made-one"})
    job.steps.filter(index=1).update(state=StepState.SUCCEEDED)
    engine.cancel(job)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=None)
    engine.run(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert CALLS == ["undo one"]


def test_a_forward_only_runbook_stops_failed_and_a_retry_resumes_it(stamp):
    FAIL["b"] = FabricConflict("unit", "x", "busy", code="state")
    job = new_job(stamp, FORWARD_RUNBOOK.name)
    engine.run(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.FAILED and "busy" in job.error
    engine.retry(job)
    engine.run(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert [c.split()[1] for c in CALLS] == ["a", "b", "b"]
    assert CALLS[-1].split()[2].startswith(f"{job.pk}:2:")


@pytest.mark.parametrize("state", [JobState.RUNNING, JobState.SUCCEEDED])
def test_only_ended_jobs_can_be_retried(stamp, state):
    from base.errors import Conflict

    job = new_job(stamp)
    Job.objects.filter(pk=job.pk).update(state=state)
    with pytest.raises(Conflict):
        engine.retry(Job.objects.get(pk=job.pk))


def test_sweep_publishes_what_was_never_published(stamp, monkeypatch, settings):
    published = []
    monkeypatch.setattr(engine.outbox, "publish", lambda job_id: published.append(job_id) or True)
    settings.BUFFET_OUTBOX_GRACE_SECONDS = 0
    # given a job the broker refused a minute ago (marked not published), and one just
    # written published at its commit
    job, fresh = new_job(stamp), new_job(stamp)
    assert fresh.published_at is not None
    Job.objects.filter(pk=job.pk).update(published_at=None, created_at=timezone.now()
                                         - timezone.timedelta(minutes=1))
    report = engine.sweep()
    assert published == [job.pk] and report.published == [str(job.pk)]


def test_a_job_is_written_published_at_its_commit_and_marked_not_if_the_broker_refuses(
        stamp, monkeypatch, django_capture_on_commit_callbacks):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    sent = []
    monkeypatch.setattr(engine.delivery.run_job, "apply_async",
                        lambda args, queue: sent.append((args[0], queue)))
    # when a job is committed and the broker takes its message
    with CaptureQueriesContext(connection) as queries, \
            django_capture_on_commit_callbacks(execute=True) as published:
        job = new_job(stamp)
    # then it was sent to its stamp's queue at commit, written published, and nothing is
    # written after the commit
    assert len(published) == 1 and sent == [(str(job.pk), stamp.queue)]
    stored = Job.objects.get(pk=job.pk)
    assert stored.published_at is not None and stored.published_at == job.published_at
    assert not [q for q in prepared.as_written(queries) if q.startswith("UPDATE")]

    # when the broker refuses the next one
    def refused(args, queue):
        raise ConnectionError("broker down")

    monkeypatch.setattr(engine.delivery.run_job, "apply_async", refused)
    with django_capture_on_commit_callbacks(execute=True):
        refused_job = new_job(stamp)
    # then it is marked not published, for the relay to publish after the grace
    assert Job.objects.get(pk=refused_job.pk).published_at is None


def test_sweep_publishes_again_a_queued_job_whose_message_is_out_longer_than_a_lease(
        stamp, monkeypatch, settings):
    # given a job published a lease and more ago and still queued (the broker lost its
    # message: restarted without it, or a dead worker holds it unacknowledged), and one
    # published just now
    published = []
    monkeypatch.setattr(engine.outbox, "publish", lambda job_id: published.append(job_id) or True)
    settings.BUFFET_JOB_LEASE_SECONDS = 30
    lost, fresh = new_job(stamp), new_job(stamp)
    Job.objects.filter(pk=lost.pk).update(published_at=timezone.now() - timezone.timedelta(
        seconds=31))
    Job.objects.filter(pk=fresh.pk).update(published_at=timezone.now())
    # when the relay sweeps
    report = engine.sweep()
    # then only the lost one is published again
    assert published == [lost.pk] and report.published == [str(lost.pk)]


def test_bad_inputs_are_refused_before_anything_is_recorded(stamp):
    from rest_framework import serializers

    from base.errors import Invalid

    class Inputs(serializers.Serializer):
        size = serializers.IntegerField(min_value=1)

    engine.register(Runbook(name="test.inputs", steps=(_step("x"),), inputs=Inputs))
    with pytest.raises(Invalid) as error:
        engine.enqueue("test.inputs", stamp=stamp, inputs={"size": 0})
    assert "size" in error.value.errors
    assert not Job.objects.filter(runbook="test.inputs").exists()


def test_a_beat_schedule_starts_a_runbook_as_a_job(stamp, monkeypatch):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from provisioning.tasks import run_runbook

    monkeypatch.setattr(engine.outbox, "publish", lambda job_id: True)
    every, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.HOURS)
    task = PeriodicTask.objects.create(
        name="hourly three steps", task="provisioning.run_runbook", interval=every,
        kwargs=json.dumps({"runbook": TEST_RUNBOOK.name, "stamp": stamp.name,
                           "inputs": {"n": 2}}))
    # when beat fires it
    job_id = run_runbook(**json.loads(task.kwargs))
    # then it is an ordinary job of that runbook
    job = Job.objects.get(pk=job_id)
    assert job.runbook == TEST_RUNBOOK.name and job.inputs == {"n": 2}
    assert job.steps.count() == 3


def test_a_transient_retry_waits_with_the_engines_clock_and_backs_off(stamp):
    # given a step whose stamp is unreachable once, then answers
    FAIL["two"] = StampUnreachable("unit", "thing.create", "connection refused")
    job = new_job(stamp)
    # when the job runs
    engine.run(job.pk)
    # then it waited once, 0.5 s, through the injected sleep (no wall time in the test)
    assert SLEPT == [0.5]
    assert Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED


def test_a_call_the_stamp_lost_in_a_restart_is_made_again_under_the_next_key(stamp):
    # given a step whose first call the stamp cut short by restarting (nothing changed,
    # and the stamp keeps that failure on the key)
    from fabric.drivers import OperationFailed

    FAIL["two"] = OperationFailed("unit", "thing.create", "the stamp restarted",
                                  code="interrupted")
    job = new_job(stamp)
    # when the job runs
    engine.run(job.pk)
    # then the step was asked again under a key of its own and the job succeeded
    assert Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED
    base = f"{job.pk}:1:2"
    assert [c for c in CALLS if c.startswith("do two")] == [f"do two {base}",
                                                          f"do two {base}~1"]


def test_a_stamp_that_keeps_restarting_under_a_step_fails_it_in_the_end(stamp):
    from fabric.drivers import OperationFailed

    restarts = [OperationFailed("unit", "thing.create", "restarted", code="interrupted")
                for _ in range(10)]

    def always_interrupted(ctx):
        CALLS.append(ctx.key())
        raise restarts.pop()

    engine.register(Runbook(name="test.restarting", steps=(Step("x", always_interrupted),),
                            compensate=False))
    job = engine.enqueue("test.restarting", stamp=stamp, inputs={})
    engine.run(job.pk)
    assert Job.objects.get(pk=job.pk).state == JobState.FAILED
    assert len(CALLS) == 6


def test_a_database_gone_under_a_step_leaves_the_job_to_be_resumed(stamp):
    # given a step during which the database connection is killed
    from django.db import OperationalError

    FAIL["two"] = OperationalError("server closed the connection unexpectedly")
    job = new_job(stamp)
    # when the job runs
    assert engine.run(job.pk, worker="w1") is None
    # then it is not failed: it stays running, and the worker after its lease resumes it
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.error == ""
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timezone.timedelta(
        hours=1))
    engine.run(job.pk, worker="w2")
    assert Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED
    assert [c.split()[1] for c in CALLS] == ["one", "two", "two", "three"]


def test_retry_and_cancel_leave_audit_rows_naming_who(stamp, django_user_model):
    from base.models import AuditEvent

    # given a provider admin and a rolled-back job
    admin = django_user_model.objects.create_user(email="ops@example.test", password="x",
                                                  is_staff=True)
    FAIL["one"] = FabricConflict("unit", "x", "no", code="state")
    job = new_job(stamp)
    engine.run(job.pk)
    # when the provider retries it, then cancels it before it runs
    engine.retry(Job.objects.get(pk=job.pk), acting_user=admin)
    engine.cancel(Job.objects.get(pk=job.pk), acting_user=admin)
    # then both actions are in the audit trail, with the actor and the job
    rows = list(AuditEvent.objects.filter(object_id=str(job.pk)).order_by("at", "pk"))
    assert [r.event for r in rows] == ["job.retried", "job.cancelled"]
    assert {r.actor_id for r in rows} == {admin.pk}
    assert rows[0].detail == {"runbook": "test.three-steps", "run": "2"}


def test_a_retry_whose_resource_moved_on_is_a_conflict_that_changes_nothing(stamp):
    from django_fsm import TransitionNotAllowed

    from base.errors import Conflict

    # given a rolled-back job whose retry hook finds its resource in another state
    def moved_on(job):
        raise TransitionNotAllowed("the resource was deleted meanwhile")

    runbook = engine.register(Runbook(name="test.moved-on", steps=(_step("m"),),
                                      on_retry=moved_on))
    FAIL["m"] = FabricConflict("unit", "x", "no", code="state")
    job = new_job(stamp, runbook.name)
    engine.run(job.pk)
    # when the provider retries it / then it is refused as a conflict, and stays as it was
    with pytest.raises(Conflict):
        engine.retry(Job.objects.get(pk=job.pk))
    job.refresh_from_db()
    assert job.state == JobState.ROLLED_BACK and job.run == 1


def test_a_stamp_that_comes_back_within_the_driver_timeout_is_retried_not_failed(
        stamp, settings):
    # given a stamp that does not answer for 20 s (of the engine's clock), within a driver
    # timeout of 30 s: more tries than the step's transient_retries
    settings.BUFFET_DRIVER_TIMEOUT = 30
    down_for = 20.0

    def do(ctx):
        CALLS.append("flaky")
        if sum(SLEPT) < down_for:
            raise StampUnreachable("unit", "thing.create", "connection refused")
        return {"flaky": "made"}

    engine.register(Runbook(name="test.outage", steps=(
        Step("flaky", do, lambda ctx: None, transient_retries=2),)))
    job = engine.enqueue("test.outage", stamp=stamp, inputs={})
    # when the job runs
    engine.run(job.pk)
    # then it succeeded once the stamp answered, every try with the same key
    assert Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED
    assert len(CALLS) > 3 and sum(SLEPT) >= down_for


def test_a_stamp_down_longer_than_the_driver_timeout_fails_the_step(stamp, settings):
    settings.BUFFET_DRIVER_TIMEOUT = 10

    def do(ctx):
        CALLS.append("down")
        raise StampUnreachable("unit", "thing.create", "connection refused")

    engine.register(Runbook(name="test.down", steps=(
        Step("down", do, lambda ctx: None, transient_retries=2),)))
    job = engine.enqueue("test.down", stamp=stamp, inputs={})
    engine.run(job.pk)
    job = Job.objects.get(pk=job.pk)
    assert job.state in (JobState.FAILED, JobState.ROLLED_BACK)
    assert "connection refused" in job.error
    # it waited the driver timeout out, and not much longer
    assert 10 <= sum(SLEPT) < 10 + 8.5


QUIET_RUNBOOK = engine.register(Runbook(
    name="test.quiet", steps=(Step("nothing to say", lambda ctx: None),)))


def test_a_step_that_outputs_nothing_costs_its_own_row_only(stamp):
    # given a one-step job whose step returns nothing
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    job = new_job(stamp, runbook=QUIET_RUNBOOK.name)
    # when a worker runs it
    with CaptureQueriesContext(connection) as queries:
        engine.run(job.pk, worker="w1")
    # then it succeeds, its step says so, and nothing was read under a lock, no
    # transaction opened, no look made for jobs waiting (no job can wait for one of a
    # runbook that is not awaited)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and job.outputs == {}
    assert [s.state for s in job.steps.all()] == [StepState.SUCCEEDED]
    steps = list(job.steps.all())
    assert steps[0].started_at <= steps[0].finished_at <= job.finished_at
    assert steps[0].log.endswith("done") and steps[0].attempts == 1
    sql = prepared.as_written(queries)
    assert not [s for s in sql if "FOR UPDATE" in s], sql
    assert not [s for s in sql if s.startswith(("BEGIN", "SAVEPOINT"))], sql
    if connection.vendor == "postgresql":
        # the claim with its read of the job, stamp and steps (one statement), the step
        # started (one), the step done with the job's end (one)
        assert [s.split(" ", 1)[0] for s in sql] == ["WITH", "UPDATE", "WITH"], sql
        assert "RETURNING" in sql[0] and "JOIN" in sql[0], sql
    else:
        # claim it, read it with its stamp and steps, start and end the step, end the job
        assert [s.split(" ", 1)[0] for s in sql] == ["UPDATE", "SELECT", "UPDATE", "UPDATE",
                                                    "UPDATE"], sql


SEEN_AT_END: list[tuple[dict, str]] = []


def _made(ctx):
    CALLS.append(f"do made {ctx.key()}")
    return {"made": ctx.key()}


def _seen_at_end(job):
    # what the job's end finds in the database in its own transaction
    stored = Job.objects.get(pk=job.pk)
    SEEN_AT_END.append((stored.outputs, stored.steps.get().state))
    if "end" in FAIL:
        raise FAIL.pop("end")


ENDS_WITH_OUTPUTS = engine.register(Runbook(
    name="test.ends-with-outputs", steps=(Step("make", _made),), on_success=_seen_at_end))


def test_the_last_step_and_its_outputs_are_written_with_the_jobs_end(stamp):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    SEEN_AT_END.clear()
    job = new_job(stamp, runbook=ENDS_WITH_OUTPUTS.name)
    # when a worker runs a job whose last step outputs something and whose runbook has an
    # end hook
    with CaptureQueriesContext(connection) as queries:
        engine.run(job.pk, worker="w1")
    # then the hook finds the outputs and the step done, and so does everyone after
    job.refresh_from_db()
    made = CALLS[0].removeprefix("do made ")
    assert [({"made": made}, StepState.SUCCEEDED)] == SEEN_AT_END
    assert job.state == JobState.SUCCEEDED and job.outputs == {"made": made}
    assert job.steps.get().output == {"made": made} and job.steps.get().log.endswith("done")
    if connection.vendor == "postgresql":
        # the claim, the step started, and in the end's transaction the step done with the
        # job's end and outputs, in one statement
        sql = prepared.as_written(queries)
        shapes = [s.split(" ", 1)[0] for s in sql]
        assert shapes == ["WITH", "UPDATE", "SAVEPOINT", "WITH", "SELECT", "SELECT",
                          "RELEASE"], sql
        assert '"outputs"' in sql[3]


def test_an_end_that_fails_still_records_the_last_step_and_its_outputs(stamp):
    SEEN_AT_END.clear()
    job = new_job(stamp, runbook=ENDS_WITH_OUTPUTS.name)
    FAIL["end"] = RuntimeError("the end hook broke")
    # when the job's end hook fails once
    with pytest.raises(RuntimeError):
        engine.run(job.pk, worker="w1")
    # then the end is not kept (the job runs on, its worker's until the lease ends), but
    # its last step is recorded done, with its outputs, for a resume or an undo to find
    job.refresh_from_db()
    made = CALLS[0].removeprefix("do made ")
    assert job.state == JobState.RUNNING and job.finished_at is None
    assert job.outputs == {"made": made}
    step = job.steps.get()
    assert step.state == StepState.SUCCEEDED and step.output == {"made": made}
    assert step.log.endswith("done")
    # when another worker resumes it after the lease
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timezone.timedelta(
        hours=1))
    engine.run(job.pk, worker="w2")
    # then the step is not done again, and the job ends with its outputs
    job.refresh_from_db()
    assert len(CALLS) == 1
    assert job.state == JobState.SUCCEEDED and job.outputs == {"made": made}
