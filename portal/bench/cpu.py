"""Where the CPU went during a phase: the stack's processes, the benchmark's own
clients, and the machine as a whole (the database, the broker and anything else
running), read from ``/proc``. On a system without ``/proc`` the figures are empty.
"""

import os
import time
from pathlib import Path

__all__ = ["Meter"]

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_ticks(pid: int) -> tuple[int, int]:
    """(process group, user + system ticks) of one process; (0, 0) if it is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return 0, 0
    fields = stat[stat.rindex(")") + 2:].split()  # the name may hold spaces and ")"
    return int(fields[2]), int(fields[11]) + int(fields[12])


def _group_seconds(pgid: int) -> float:
    ticks = 0
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            group, used = _process_ticks(int(entry.name))
            if group == pgid:
                ticks += used
    return ticks / TICKS


def _machine_busy_seconds() -> float:
    """CPU seconds all cores spent on anything but idling since boot."""
    fields = [int(v) for v in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS


class Meter:
    """``reading = meter.read()`` now, ``meter.cores(before, after)`` later: the cores
    each part used on average in between.

    ``groups`` names process groups (a child of the stack and its children), ``pids``
    single processes; the benchmark's own process (its clients) is ``bench``.
    """

    def __init__(self, *, groups: dict[str, int], pids: dict[str, int]):
        self.groups, self.pids = groups, pids
        self.enabled = (PROC / "stat").exists()

    def read(self) -> dict[str, float]:
        if not self.enabled:
            return {}
        reading = {name: _group_seconds(pgid) for name, pgid in self.groups.items()}
        reading |= {name: _process_ticks(pid)[1] / TICKS for name, pid in self.pids.items()}
        reading["bench"] = time.process_time()
        reading["machine"] = _machine_busy_seconds()
        reading["wall"] = time.monotonic()
        return reading

    @staticmethod
    def cores(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """Average cores used per part; ``other`` is what the machine used beyond the
        parts measured (the database, the broker, other programs)."""
        if not before or not after:
            return {}
        wall = after["wall"] - before["wall"]
        used = {name: (after[name] - before[name]) / wall
                for name in before if name not in ("wall", "machine")}
        machine = (after["machine"] - before["machine"]) / wall
        used["other"] = max(0.0, machine - sum(used.values()))
        used["machine"] = machine
        return {name: round(value, 2) for name, value in used.items()}
