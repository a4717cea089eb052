"""The web process freezes what it loaded, so that the collector's full passes skip it."""

import gc

from django.urls import get_resolver

from portal import heap
from provisioning.api.resources import VmViewSet
from provisioning.models import VirtualMachine


def _tracked(*objects) -> list[bool]:
    """Whether the collector's generations hold each object (the permanent generation,
    where ``gc.freeze`` moves objects, is not one of them)."""
    ids = {id(o) for o in gc.get_objects()}
    return [id(o) in ids for o in objects]


def test_freeze_moves_the_loaded_project_out_of_the_collectors_reach():
    loaded = (get_resolver(), VirtualMachine, VmViewSet)
    assert _tracked(*loaded) == [True, True, True]
    try:
        frozen = heap.freeze()
        # the project's models, URL patterns and views: far more than a bare interpreter
        assert frozen > 50_000
        assert _tracked(*loaded) == [False, False, False]
    finally:
        gc.unfreeze()
    assert _tracked(*loaded) == [True, True, True]
