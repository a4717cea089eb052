"""The lag chart of the DR pages, drawn from the rows ``services.status`` reports."""

import pytest

from dr_addon.presenters import PLOT_LEFT, PLOT_RIGHT, VmRow, lag_chart


def test_the_lag_chart_scales_to_the_target_and_clips_what_runs_far_past_it():
    # given a 300 s target, a VM hours behind and one never synced
    rows = [VmRow("a", "fresh", "protected", None, 1, 60.0, False),
            VmRow("b", "stale", "protected", None, 1, 7200.0, True),
            VmRow("c", "new", "enabling", None, 0, None, True)]
    # when
    drawn = lag_chart(rows, 300)
    # then the axis stops at 3 times the target and the far bar is clipped
    fresh, stale, new = drawn.bars
    assert drawn.ticks[-1].label == "15 min" and len(drawn.ticks) == 7
    axis = PLOT_RIGHT - PLOT_LEFT
    assert drawn.target_x - PLOT_LEFT == pytest.approx(axis / 3, abs=0.1)
    assert fresh.width == pytest.approx(axis / 15, abs=0.1)
    assert stale.clipped and stale.width == new.width == axis
    assert not new.clipped and new.row.lag_text == "never synced"
    assert [bar.row.over for bar in drawn.bars] == [False, True, True]
    assert drawn.over_count == 2 and "2 past the target" in drawn.summary
