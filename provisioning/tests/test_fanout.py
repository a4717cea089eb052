"""A step's per-item calls with bounded concurrency (``provisioning.engine.fanout``).

Overlap is shown by counting the calls in flight, never by timing them: a ``Gauge``
holds each call until ``limit`` calls are in flight together (or a deadline passes), so
calls made one after another show a peak of one, and bounded calls a peak of the bound.
"""

import threading
import time

import pytest

from fabric.drivers import OperationFailed, StampUnreachable
from provisioning.engine.fanout import each_done, fan_out

__all__ = ["Gauge"]


class Gauge:
    """Counts the calls in flight; each one waits (up to ``deadline`` seconds after the
    first) until ``limit`` of them are in flight at once, so that the peak shows how many
    can be."""

    def __init__(self, limit: int, deadline: float = 10.0):
        self.limit, self.deadline = limit, deadline
        self.now = self.peak = self.calls = 0
        self.threads: set[str] = set()
        self._until: float | None = None
        self._cond = threading.Condition()

    def __enter__(self):
        with self._cond:
            self.now += 1
            self.calls += 1
            self.peak = max(self.peak, self.now)
            self.threads.add(threading.current_thread().name)
            self._until = self._until or time.monotonic() + self.deadline
            self._cond.notify_all()
            self._cond.wait_for(lambda: self.peak >= self.limit,
                                timeout=max(0.0, self._until - time.monotonic()))
        return self

    def __exit__(self, *exc):
        with self._cond:
            self.now -= 1

    def wrap(self, call):
        def gauged(*args, **kwargs):
            with self:
                return call(*args, **kwargs)
        return gauged


class Ctx:
    """What ``each_done`` needs of a step context: its log."""

    def __init__(self):
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(message)


def test_calls_overlap_up_to_the_limit_and_never_beyond_it():
    # given twenty calls and a bound of four
    gauge = Gauge(limit=4)
    # when they fan out
    done = list(fan_out(range(20), gauge.wrap(lambda n: n * n), limit=4))
    # then four were in flight together, never more, and every answer came back
    assert gauge.peak == 4
    assert sorted(d.result for d in done) == [n * n for n in range(20)]
    assert all(d.error is None for d in done)


def test_the_bound_is_the_setting_by_default(settings):
    settings.BUFFET_STEP_CONCURRENCY = 3
    gauge = Gauge(limit=3)
    list(fan_out(range(10), gauge.wrap(lambda n: n)))
    assert gauge.peak == 3


def test_one_at_a_time_runs_on_the_callers_thread_in_order():
    gauge = Gauge(limit=1)
    done = list(fan_out(range(5), gauge.wrap(lambda n: n), limit=1))
    assert [d.item for d in done] == [0, 1, 2, 3, 4]
    assert gauge.peak == 1 and gauge.threads == {threading.current_thread().name}


def test_answers_reach_the_callers_thread():
    seen = {d.result: threading.current_thread().name
            for d in fan_out(range(6), lambda n: n, limit=3)}
    assert set(seen.values()) == {threading.current_thread().name}


def test_the_successes_are_handed_over_then_the_failures_are_logged_and_raised():
    # given six VMs of which two fail
    errors = {2: OperationFailed("s", "replication.failover", "boom", code="injected"),
              4: OperationFailed("s", "replication.failover", "bang", code="injected")}

    def call(n):
        if n in errors:
            raise errors[n]
        return f"vm-{n}"

    ctx, recorded = Ctx(), []
    # when the step records what succeeded
    with pytest.raises(OperationFailed) as raised:
        for item, result in each_done(ctx, range(6), call, name=lambda n: f"vm-{n}", limit=3):
            recorded.append((item, result))
    # then the four others were recorded, the first failure raised, both logged
    assert sorted(recorded) == [(n, f"vm-{n}") for n in (0, 1, 3, 5)]
    assert raised.value is errors[2]
    assert ctx.lines[:2] == [f"vm-2: {errors[2]}", f"vm-4: {errors[4]}"]
    assert ctx.lines[2] == "2 of 6 calls failed; the others are done"


@pytest.mark.parametrize(("kinds", "raised"), [
    (["transient", "interrupted", "permanent"], "permanent"),
    (["transient", "interrupted"], "interrupted"),
    (["transient", "transient"], "transient-0"),
])
def test_the_error_raised_is_the_one_that_decides_what_the_engine_does(kinds, raised):
    # a permanent error fails the step at once; a restart asks again under new keys; a
    # transient error is retried in place
    made = {
        "transient": lambda i: StampUnreachable("s", "op", f"transient-{i}"),
        "interrupted": lambda i: OperationFailed("s", "op", f"interrupted-{i}",
                                                 code="interrupted"),
        "permanent": lambda i: OperationFailed("s", "op", f"permanent-{i}", code="state"),
    }
    errors = [made[kind](i) for i, kind in enumerate(kinds)]

    def call(i):
        raise errors[i]

    with pytest.raises(Exception) as caught:
        list(each_done(Ctx(), range(len(kinds)), call, limit=3))
    assert caught.value.message.startswith(raised)


def test_a_bug_in_a_call_is_raised_too():
    def call(n):
        if n == 1:
            raise KeyError("network")
        return n

    with pytest.raises(KeyError):
        list(each_done(Ctx(), range(3), call, limit=2))


def test_a_step_that_stops_early_waits_for_the_calls_under_way():
    # given a step whose recording of the first answer fails while other calls run
    running, lock, release = [0], threading.Lock(), threading.Event()

    def call(n):
        with lock:
            running[0] += 1
        try:
            if n:
                release.wait(timeout=10)
            return n
        finally:
            with lock:
                running[0] -= 1

    # when it stops at the first answer
    with pytest.raises(RuntimeError):
        for _ in fan_out(range(10), call, limit=3):
            release.set()
            raise RuntimeError("the database went away")
    # then no call is left running behind the step
    assert running[0] == 0
