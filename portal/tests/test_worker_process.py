"""A worker process keeps its connection between tasks, and asks whether it is alive only
when it may not be."""

import threading
from types import SimpleNamespace

import pytest
from django.db import OperationalError, connection, connections

from portal import worker_process

pytestmark = pytest.mark.django_db(transaction=True)

TASK = SimpleNamespace(request=SimpleNamespace(is_eager=False))


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(worker_process, "_monotonic", clock)
    monkeypatch.setattr(worker_process, "_ended", threading.local())
    return clock


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _kill(pid: int) -> None:
    """The server drops the connection, as on a restart or a failover."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()


def _one_task(clock, seconds: float = 0.01) -> int:
    worker_process._before_task(task=TASK)
    pid = _backend_pid()
    clock.now += seconds
    worker_process._after_task(task=TASK, state="SUCCESS")
    return pid


def test_tasks_one_after_another_use_one_connection(postgres, clock):
    # given a task that ran in the worker
    first = _one_task(clock)
    # when more follow
    pids = {first, *(_one_task(clock) for _ in range(5))}
    # then all of them used the one connection: one PostgreSQL session, not one a task
    assert pids == {first}


def test_a_connection_idle_past_the_moment_is_checked_and_replaced(postgres, clock):
    # given a task that ended, and the server dropping its connection while it was idle
    first = _one_task(clock)
    _kill(first)
    clock.now += worker_process.FRESH_SECONDS + 1
    # when the next task starts, then its first query works, on a new connection
    second = _one_task(clock)
    assert second != first


def test_a_connection_a_task_ended_with_a_moment_ago_is_not_asked(postgres, clock):
    # given a task that ended a moment ago, and the server dropping its connection
    first = _one_task(clock)
    _kill(first)
    # when the next task starts at once, then no health check ran before its query: the
    # query meets the dropped connection (the task is delivered again)
    worker_process._before_task(task=TASK)
    with pytest.raises(OperationalError):
        _backend_pid()
    worker_process._after_task(task=TASK, state="FAILURE")
    # and the failed task closed it: the one after works on a new connection
    assert connection.connection is None
    assert _one_task(clock) != first


def test_a_task_another_thread_ended_a_moment_ago_does_not_vouch_for_this_ones(postgres,
                                                                               clock):
    # given a thread of a thread pool whose connection sat idle, and the server dropping it
    first = _one_task(clock)
    clock.now += worker_process.FRESH_SECONDS + 1
    _kill(first)

    # and a task another thread of the pool ended a moment ago, on its own connection
    def other_thread():
        _one_task(clock)
        connection.close()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    # when this thread's next task starts, then its connection is checked and replaced
    assert _one_task(clock) != first


def test_a_task_run_in_the_callers_process_leaves_its_connection_alone(postgres, clock):
    # given the caller's connection
    pid = _backend_pid()
    eager = SimpleNamespace(request=SimpleNamespace(is_eager=True))
    # when a task runs eagerly in its process, and fails
    worker_process._before_task(task=eager)
    worker_process._after_task(task=eager, state="FAILURE")
    # then the caller's connection is still open, still the same
    assert connection.connection is not None and _backend_pid() == pid
