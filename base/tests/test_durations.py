"""One way to write how long something took or lags (``base.web.ui.duration_text``):
job and step times, drill reports, replication lags and RPO targets."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from base.web.ui import duration, duration_text


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0.0 s"), (0.42, "0.4 s"), (9.94, "9.9 s"),  # under 10 s, a tenth tells something
    (10, "10 s"), (42.4, "42 s"), (59.4, "59 s"),
    (60, "1 min 0 s"), (60.2, "1 min 0 s"), (100, "1 min 40 s"), (300, "5 min 0 s"),
    (3599, "59 min 59 s"), (3600, "1 h 0 min"), (7830, "2 h 10 min"),
    (-3, "0.0 s"),  # clocks of two machines: never a negative time
])
def test_a_duration_in_words(seconds, text):
    assert duration_text(seconds) == text


def test_a_duration_between_two_moments_and_one_still_running():
    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    # a finished span, and one still running (until now)
    assert duration(start, start + timedelta(minutes=3, seconds=5)) == "3 min 5 s"
    with time_machine.travel(start + timedelta(seconds=12), tick=False):
        assert duration(start, None) == "12 s"
    # what has not started has no duration
    assert duration(None, None) == ""
