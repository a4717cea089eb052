"""``kept_driver``: a worker's jobs on one stamp share one keep-alive client per thread."""

import threading

import pytest

from fabric import services
from fabric.models import DriverKind
from fabric.tests.factories import StampFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def simulated():
    # an HTTP stamp (nothing is called: building a driver connects to nothing)
    return StampFactory(driver=DriverKind.SIMULATED, endpoint="http://127.0.0.1:9",
                        credentials={"token": "first"})


def test_a_stamp_as_it_is_gets_the_driver_kept_for_it(simulated):
    first = services.kept_driver(simulated)
    # the same stamp read again (another job's copy of the row)
    again = services.kept_driver(type(simulated).objects.get(pk=simulated.pk))
    assert again is first and first.reusable


def test_changed_credentials_or_endpoint_build_a_new_driver_and_close_the_old(simulated):
    first = services.kept_driver(simulated)
    simulated.credentials = {"token": "rotated"}
    second = services.kept_driver(simulated)
    assert second is not first and second._token == "rotated"
    assert first._client.is_closed and not second._client.is_closed
    simulated.endpoint = "http://127.0.0.1:10"
    third = services.kept_driver(simulated)
    assert third is not second and third.endpoint == "http://127.0.0.1:10"
    assert second._client.is_closed


def test_each_thread_keeps_its_own(simulated):
    mine = services.kept_driver(simulated)
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(services.kept_driver(simulated)))
    thread.start()
    thread.join(timeout=10)
    assert theirs and theirs[0] is not mine


def test_a_kind_that_keeps_nothing_is_built_for_each_call():
    stamp = StampFactory()  # the in-memory driver
    assert services.kept_driver(stamp) is not services.kept_driver(stamp)
