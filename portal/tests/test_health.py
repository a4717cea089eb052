"""``/readyz`` answers for this process's own dependencies (database, broker); the stamps
are reported, in its body and in ``/metrics``, but never make the portal unready."""

import socket

import pytest
from django.db import connections

from portal import health
from portal.celery import app
from stampsim.testing import free_port

pytestmark = pytest.mark.django_db


def register(staff, name: str, endpoint: str) -> dict:
    response = staff.post("/api/v1/admin/stamps/", {
        "name": name, "region": "west", "driver": "simulated", "endpoint": endpoint},
        format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_stamp_that_does_not_answer_is_reported_but_the_portal_is_ready(anon, staff):
    # given a stamp registered at an endpoint where nothing listens, and checked
    stamp = register(staff, "gone", f"http://127.0.0.1:{free_port()}")
    checked = staff.post(f"/api/v1/admin/stamps/{stamp['id']}/check/").json()
    assert checked["health"] == "unreachable"
    # and one never checked
    register(staff, "new", f"http://127.0.0.1:{free_port()}")
    # when the load balancer asks
    response = anon.get("/readyz")
    # then the portal is ready, and the body says what is wrong with the stamp
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "broker": "ok"}
    assert body["stamps"]["gone"].startswith("unreachable at ")
    assert "connection refused" in body["stamps"]["gone"]
    assert body["stamps"]["new"] == "not checked yet"
    # and so do the metrics
    metrics = anon.get("/metrics").content.decode()
    assert 'buffet_stamp_healthy{stamp="gone"} 0.0' in metrics
    assert 'buffet_stamp_last_check_timestamp_seconds{stamp="gone"}' in metrics


def test_readiness_never_calls_a_stamp(anon, staff):
    # given a stamp whose endpoint accepts connections but never answers
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent.setblocking(False)
        register(staff, "silent", f"http://127.0.0.1:{silent.getsockname()[1]}")
        # when the load balancer asks
        response = anon.get("/readyz")
        # then it is answered from what the checks recorded: nobody connected to the stamp
        assert response.status_code == 200
        assert response.json()["stamps"]["silent"] == "not checked yet"
        with pytest.raises(BlockingIOError):
            silent.accept()


def test_a_disabled_stamp_is_reported_as_taking_no_new_work(anon, staff):
    stamp = register(staff, "retiring", "http://127.0.0.1:9")
    staff.patch(f"/api/v1/admin/stamps/{stamp['id']}/", {"enabled": False}, format="json")
    assert anon.get("/readyz").json()["stamps"]["retiring"].endswith("(takes no new work)")
    assert 'buffet_stamp_enabled{stamp="retiring"} 0.0' in anon.get("/metrics").content.decode()


def test_an_unreachable_broker_makes_the_portal_unready(anon, monkeypatch):
    # given a broker URL where nothing listens
    connect = app.connection_for_write
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setattr(app, "connection_for_write", lambda: connect(url=nowhere))
    # when
    response = anon.get("/readyz")
    # then
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"] == "ok" and body["checks"]["broker"] != "ok"


def test_an_unreachable_database_makes_the_portal_unready(anon, monkeypatch, tmp_path):
    # given a connection to a database that is not there (a closed port, or a file in a
    # directory that does not exist)
    default = connections["default"]
    unreachable = dict(default.settings_dict)
    if default.vendor == "postgresql":
        unreachable.update(HOST="127.0.0.1", PORT=str(free_port()))
    else:
        unreachable.update(NAME=str(tmp_path / "missing" / "db.sqlite3"))
    wrapper = type(default)(unreachable, alias="unreachable")
    monkeypatch.setattr(health, "connection", wrapper)
    # when
    try:
        response = anon.get("/readyz")
    finally:
        wrapper.close()
    # then the portal is not ready, and says why
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] != "ok" and body["checks"]["broker"] == "ok"
    assert body["stamps"] == {}
