"""Jobs that wait their turn behind another (``enqueue(after=...)``), run in-process
against the memory driver; what is sent to a stamp's queue is recorded, not sent."""

import pytest
from django.utils import timezone

from base import prepared
from base.errors import Conflict
from fabric.models import Stamp
from provisioning import engine
from provisioning.engine import Runbook, Step
from provisioning.models import Job, JobState

FAIL: set[str] = set()
ROLLED_BACK: list[str] = []


def _do(ctx):
    if ctx.inputs["name"] in FAIL:
        raise RuntimeError(f"{ctx.inputs['name']} broke")
    return {}


WAITING_RUNBOOK = engine.register(Runbook(
    name="test.waiting", steps=(Step("only", _do, lambda ctx: None),),
    on_rollback=lambda job: ROLLED_BACK.append(job.inputs["name"]), awaited=True))


@pytest.fixture(autouse=True)
def _clean(settings, monkeypatch):
    settings.BUFFET_JOB_LEASE_SECONDS = 600
    FAIL.clear()
    ROLLED_BACK.clear()
    sent: list[str] = []
    monkeypatch.setattr(engine.delivery.run_job, "apply_async",
                        lambda args, queue: sent.append(args[0]))
    with engine.use_clock(sleep=lambda seconds: None):
        yield sent


@pytest.fixture
def sent(_clean):
    return _clean


@pytest.fixture
def stamp(db):
    return Stamp.objects.create(name="unit", region="r", driver="memory", endpoint="mem://unit")


def job(stamp, name, after=None) -> Job:
    return engine.enqueue(WAITING_RUNBOOK, stamp=stamp, inputs={"name": name}, after=after)


def state(job_: Job) -> str:
    job_.refresh_from_db()
    return job_.state


def test_a_waiting_job_is_not_sent_and_not_run_until_its_turn(stamp, sent):
    first = job(stamp, "first")
    second = job(stamp, "second", after=first)
    # when the waiting job is published or delivered early
    assert engine.publish(second.pk) is False
    assert engine.run(second.pk) is None
    # then it is neither sent nor started
    assert sent == [] and state(second) == JobState.QUEUED and second.is_waiting


def test_when_the_job_waited_for_succeeds_the_waiting_one_is_sent_and_runs(stamp, sent):
    first = job(stamp, "first")
    second = job(stamp, "second", after=first)
    # when the first job runs to its end
    engine.run(first.pk)
    # then the waiting one was sent to the stamp's queue, and runs
    assert state(first) == JobState.SUCCEEDED
    assert sent == [str(second.pk)]
    engine.run(second.pk)
    assert state(second) == JobState.SUCCEEDED


def test_when_the_job_waited_for_fails_the_chain_behind_it_is_rolled_back(stamp, sent):
    # given a chain: third waits for second, which waits for first
    first = job(stamp, "first")
    second = job(stamp, "second", after=first)
    third = job(stamp, "third", after=second)
    FAIL.add("first")
    # when the first job fails and is undone
    engine.run(first.pk)
    # then the jobs behind it never start: rolled back, each giving back what it held
    assert state(first) == JobState.ROLLED_BACK
    assert (state(second), state(third)) == (JobState.ROLLED_BACK, JobState.ROLLED_BACK)
    assert ROLLED_BACK == ["first", "second", "third"]
    assert sent == []
    second.refresh_from_db()
    assert second.error == ("Not started: the job it waited for (test.waiting) ended "
                            "rolled_back: Step 'only' failed: first broke")
    assert second.finished_at is not None
    assert not second.steps.exclude(state="pending").exists()


def test_a_job_asked_to_wait_for_one_that_already_failed_is_rolled_back_when_published(
        stamp, sent):
    first = job(stamp, "first")
    FAIL.add("first")
    engine.run(first.pk)
    # when a job is recorded behind it anyway (the request read it before it ended)
    late = job(stamp, "late", after=first)
    engine.publish(late.pk)
    # then it ends rolled back, not sent
    assert state(late) == JobState.ROLLED_BACK and ROLLED_BACK == ["first", "late"]
    assert sent == []


def test_cancelling_a_queued_job_rolls_back_what_waits_for_it(stamp, sent,
                                                              django_capture_on_commit_callbacks):
    first = job(stamp, "first")
    second = job(stamp, "second", after=first)
    with django_capture_on_commit_callbacks(execute=True):
        engine.cancel(first)
    assert (state(first), state(second)) == (JobState.CANCELLED, JobState.ROLLED_BACK)


def test_a_waiting_job_whose_turn_came_unseen_is_sent_by_the_relay(stamp, sent, settings):
    settings.BUFFET_OUTBOX_GRACE_SECONDS = 0
    first = job(stamp, "first")
    second = job(stamp, "second", after=first)
    # given the first job ended but the process died before it delivered the second
    Job.objects.filter(pk=first.pk).update(state=JobState.SUCCEEDED,
                                           finished_at=timezone.now())
    # when the relay sweeps
    report = engine.sweep()
    # then the second is sent
    assert str(second.pk) in report.published and str(second.pk) in sent


def test_the_relay_does_not_report_a_job_waiting_its_turn_as_stuck(stamp, settings):
    settings.BUFFET_JOB_STUCK_SECONDS = 0
    first = job(stamp, "first")
    second = job(stamp, "second", after=first)
    report = engine.sweep()
    assert str(first.pk) in report.stuck and str(second.pk) not in report.stuck


def test_a_waiting_job_cannot_be_retried_before_the_job_it_waits_for(stamp, sent):
    first = job(stamp, "first")
    second = job(stamp, "second", after=first)
    FAIL.add("first")
    engine.run(first.pk)
    assert state(second) == JobState.ROLLED_BACK
    # when the waiting job is retried while the first stays failed
    with pytest.raises(Conflict) as refused:
        engine.retry(second)
    # then the error says to retry the first
    assert "retry that one first" in refused.value.detail
    # and once the first is retried and succeeds, the second can be retried and runs
    FAIL.clear()
    engine.retry(first)
    engine.run(first.pk)
    engine.retry(second)
    engine.run(second.pk)
    assert state(second) == JobState.SUCCEEDED


PLAIN_RUNBOOK = engine.register(Runbook(
    name="test.not-awaited", steps=(Step("only", _do, lambda ctx: None),)))


def test_no_job_can_wait_for_a_job_whose_runbook_is_not_awaited(stamp, sent):
    # given a job of a runbook no job is meant to wait for
    plain = engine.enqueue(PLAIN_RUNBOOK, stamp=stamp, inputs={"name": "plain"})
    # when a job is enqueued to wait for it, then it is refused and nothing is recorded
    # (its end would never look for the waiting job)
    with pytest.raises(ValueError, match="not declared awaited"):
        job(stamp, "waiting", after=plain)
    assert list(Job.objects.values_list("runbook", flat=True)) == [PLAIN_RUNBOOK.name]


def test_the_end_of_a_job_no_job_can_wait_for_does_not_look_for_any(stamp, sent):
    # given a job of a runbook that is not awaited, and one that is
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    plain = engine.enqueue(PLAIN_RUNBOOK, stamp=stamp, inputs={"name": "plain"})
    awaited = job(stamp, "awaited")
    # when each runs to its end
    ran = {}
    for one in (plain, awaited):
        with CaptureQueriesContext(connection) as queries:
            engine.run(one.pk)
        ran[one.pk] = prepared.as_written(queries)
    # then only the awaited one's end read the jobs waiting for it
    assert state(plain) == state(awaited) == JobState.SUCCEEDED
    assert not _reads_of_waiting_jobs(ran[plain.pk])
    assert len(_reads_of_waiting_jobs(ran[awaited.pk])) == 1


def _reads_of_waiting_jobs(sql: list[str]) -> list[str]:
    return [s for s in sql if '"after_id" = ' in s and s.startswith("SELECT")]
