"""The web process freezes what it loaded, so that the collector's full passes skip it."""

import gc

from portal import heap


def test_freeze_moves_the_loaded_project_out_of_the_collectors_reach():
    try:
        frozen = heap.freeze()
        # the project's models, URL patterns and views: far more than a bare interpreter
        assert frozen == gc.get_freeze_count() > 50_000
    finally:
        gc.unfreeze()
