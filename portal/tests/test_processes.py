"""The supervisor of ``buffet run``: a child that dies is restarted with backoff, and
stopping ends every child within a bounded wait. The children are small real processes;
the backoff runs on a fake clock."""

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from portal import processes
from portal.processes import Backoff, Supervisor


class FakeClock:
    """Time that passes only when the test says so (or the supervisor sleeps)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        time.sleep(0.01)  # let the real children run
        self.now += seconds


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def eventually(predicate, timeout: float = 10.0, message: str = ""):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout}s: {message}"
        time.sleep(0.01)
    return value


@pytest.fixture
def said() -> list[str]:
    return []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def supervisor(tmp_path, said, clock):
    """Backoff of 1 s doubling to 4 s on the fake clock; what it says goes to ``said``."""
    supervisor = Supervisor(cwd=tmp_path, env=dict(os.environ), log_dir=tmp_path,
                            backoff=Backoff(first=1, cap=4, reset_after=60), say=said.append,
                            clock=clock, sleep=clock.sleep)
    yield supervisor
    supervisor.stop(grace=5)


def died(supervisor: Supervisor, name: str) -> bool:
    supervisor.poll()
    return supervisor.process(name) is None


def test_a_child_that_dies_is_restarted_with_doubling_backoff_up_to_the_cap(
        supervisor, said, clock):
    # given a child that exits with code 3 as soon as it starts
    supervisor.start("beat", python("raise SystemExit(3)"))
    for delay in (1, 2, 4, 4, 4):
        # when it dies
        eventually(lambda: died(supervisor, "beat"), message="beat did not exit")
        # then its death is logged with its name, exit code and the wait before the restart
        assert said[-1].startswith(f"beat exited with code 3 after 0s; restarting in {delay}s")
        assert str(supervisor.log_path("beat")) in said[-1]
        # and it is not started again before the wait is over
        clock.advance(delay - 0.1)
        supervisor.poll()
        assert supervisor.process("beat") is None
        # but is once it is
        clock.advance(0.1)
        supervisor.poll()
        assert supervisor.process("beat") is not None
        assert said[-1].startswith(f"beat restarted after {delay}s (pid ")


def test_a_killed_child_is_logged_with_its_signal_and_backoff_resets_once_it_stayed_up(
        supervisor, said, clock):
    # given a long-running child that was killed twice in quick succession
    supervisor.start("worker", python("import time; time.sleep(60)"))
    for delay in (1, 2):
        supervisor.process("worker").send_signal(signal.SIGKILL)
        eventually(lambda: died(supervisor, "worker"), message="worker was not killed")
        assert said[-1].startswith(f"worker was killed by SIGKILL after 0s; restarting in {delay}s")
        clock.advance(delay)
        supervisor.poll()
    # when it has stayed up longer than reset_after before it is killed again
    clock.advance(61)
    supervisor.process("worker").send_signal(signal.SIGTERM)
    eventually(lambda: died(supervisor, "worker"), message="worker was not terminated")
    # then the wait starts again from the first delay
    assert said[-1].startswith("worker was killed by SIGTERM after 61s; restarting in 1s")


def test_what_a_dead_child_leaves_in_its_process_group_is_killed_with_it(supervisor, tmp_path):
    # given a child that starts a process of its own and dies, as a gunicorn master whose
    # workers still hold its port
    supervisor.start("web", python(
        "import subprocess, sys\n"
        "orphan = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(orphan.pid, flush=True)\n"
        "raise SystemExit(1)"))
    log = supervisor.log_path("web")
    orphan = int(eventually(lambda: log.exists() and log.read_text().strip(),
                            message="the child did not say its orphan's pid"))
    # when the supervisor notices the death
    eventually(lambda: died(supervisor, "web"), message="web did not exit")
    # then the orphan is gone too (or a zombie left to be reaped)
    eventually(lambda: not _running(orphan), message=f"pid {orphan} still runs")


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_command_that_cannot_be_started_is_retried_with_backoff(
        supervisor, said, clock, tmp_path):
    # when a child's program does not exist
    supervisor.start("stamp-a", [str(tmp_path / "missing-program")])
    # then that is logged like a death and it is tried again after the first delay
    assert supervisor.process("stamp-a") is None
    assert said[-1].startswith("stamp-a could not be started (")
    assert "restarting in 1s" in said[-1]
    clock.advance(1)
    supervisor.poll()
    assert said[-1].startswith("stamp-a could not be started (")
    assert "restarting in 2s" in said[-1]


def test_run_restarts_until_asked_to_stop(tmp_path, said, clock):
    # given a child that keeps exiting, and a stop asked for after its third restart
    def say(message: str) -> None:
        said.append(message)
        if sum("restarted" in line for line in said) == 3:
            supervisor.request_stop()

    deadline = time.monotonic() + 20

    def sleep(seconds: float) -> None:
        assert time.monotonic() < deadline, f"still running after 20s: {said}"
        clock.sleep(seconds)

    supervisor = Supervisor(cwd=tmp_path, env=dict(os.environ), log_dir=tmp_path,
                            say=say, clock=clock, sleep=sleep)
    supervisor.start("stamp-b", python("raise SystemExit(0)"))
    # when the supervisor runs
    supervisor.run()
    supervisor.stop(grace=5)
    # then it returned after three restarts that waited 1, 2 and 4 s
    restarts = [line.split(" (pid")[0] for line in said if "restarted" in line]
    assert restarts == [f"stamp-b restarted after {delay}s" for delay in (1, 2, 4)]


def test_stop_terminates_children_and_kills_those_that_outlast_the_grace(tmp_path, said):
    # given a child that stops on SIGTERM (leaving a process of its own behind) and one
    # that ignores SIGTERM, both running
    supervisor = Supervisor(cwd=tmp_path, env=dict(os.environ), log_dir=tmp_path,
                            say=said.append)
    ready = "import signal, subprocess, sys, time; {}; print('ready', flush=True); time.sleep(60)"
    supervisor.start("polite", python(ready.format(
        "left = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(left.pid)")))
    supervisor.start("stubborn", python(ready.format(
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)")))
    for name in ("polite", "stubborn"):
        log = supervisor.log_path(name)
        eventually(lambda log=log: log.exists() and "ready" in log.read_text(),
                   message=f"{name} did not start")
    left_behind = int(supervisor.log_path("polite").read_text().split()[0])
    polite, stubborn = supervisor.process("polite"), supervisor.process("stubborn")
    # when the supervisor stops with a grace of one second
    started = time.monotonic()
    supervisor.stop(grace=1)
    # then both are gone within a bounded wait: one terminated, the other killed and logged
    assert time.monotonic() - started < 5
    assert polite.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL
    assert said == ["stubborn did not stop within 1s; killed"]
    # and what the polite one left behind is gone too
    eventually(lambda: not _running(left_behind), message=f"pid {left_behind} still runs")
    # and nothing is started again afterwards
    supervisor.poll()
    assert supervisor.process("polite") is None and supervisor.process("stubborn") is None


def test_an_adopted_process_is_restarted_from_its_command_and_stopped_after_the_others(
        supervisor, said, clock, tmp_path):
    import subprocess

    # given a process started before the supervisor (the embedded broker), adopted with
    # the command that starts it again, and an ordinary child that records its stop
    stops = tmp_path / "stops"
    record = ("import os, signal, sys, time\n"
              "def bye(*_):\n"
              f"    open({str(stops)!r}, 'a').write(sys.argv[1] + ' ' + str(time.time()) + '\\n')\n"
              "    sys.exit(0)\n"
              "signal.signal(signal.SIGTERM, bye)\n"
              f"open({str(tmp_path)!r} + '/ready-' + sys.argv[1] + '-' + str(os.getpid()), 'w')\n"
              "while True: time.sleep(0.01)\n")
    first = subprocess.Popen([*python(record), "broker"])
    supervisor.adopt("broker", [*python(record), "broker"], first, last=True)
    supervisor.start("worker", [*python(record), "worker"])
    # when the adopted process dies
    first.kill()
    eventually(lambda: died(supervisor, "broker"), message="the death was not noticed")
    assert said[-1].startswith("broker was killed by SIGKILL")
    clock.advance(1)
    supervisor.poll()
    # then it runs again, from its command
    again = supervisor.process("broker")
    assert again is not None and again.pid != first.pid
    for name, pid in (("broker", again.pid), ("worker", supervisor.process("worker").pid)):
        eventually(lambda: (tmp_path / f"ready-{name}-{pid}").exists(),  # noqa: B023
                   message=f"{name} did not get ready")
    # and on stop it is stopped after the ordinary child
    supervisor.stop(grace=5)
    order = [line.split()[0] for line in stops.read_text().splitlines()]
    assert order == ["worker", "broker"]


def test_a_worker_can_follow_the_stamps_of_some_driver_kinds():
    # the command `buffet run` starts for libvirt stamps: one process, threads
    assert processes.worker(queues="libvirt.idle", pool="threads",
                            stamp_drivers="libvirt")[-4:] == [
        "--pool", "threads", "--stamp-drivers", "libvirt"]
    # and without them, the command the deployment runs is unchanged
    assert "--stamp-drivers" not in processes.worker(queues="default")
