"""The engine's sense of time, injectable: what "now" is and how a retry waits.

The runner waits between transient retries of a step with ``clock.sleep``; tests replace
it (``use_clock``) so that a retried step costs them no wall time.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

__all__ = ["Clock", "backoff", "clock", "use_clock"]


@dataclass
class Clock:
    now: Callable[[], datetime] = field(default=timezone.now)
    sleep: Callable[[float], None] = field(default=time.sleep)


clock = Clock()


def backoff(attempt: int) -> float:
    """Seconds before retry ``attempt + 1`` of a transient error: 0.5, 1, 2, 4, 8, 8, ..."""
    return min(8.0, 0.5 * 2**attempt)


@contextmanager
def use_clock(*, now: Callable[[], datetime] | None = None,
              sleep: Callable[[float], None] | None = None) -> Iterator[Clock]:
    """Run the engine with another clock for a while (tests)."""
    saved = (clock.now, clock.sleep)
    clock.now = now or clock.now
    clock.sleep = sleep or clock.sleep
    try:
        yield clock
    finally:
        clock.now, clock.sleep = saved
