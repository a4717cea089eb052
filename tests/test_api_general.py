"""What API.md says of every endpoint: problem details, pagination, idempotency, health."""

import json

import pytest

PROBLEM = "application/problem+json"


def test_malformed_json_is_a_400_problem(signup):
    owner = signup()
    response = owner.client.generic("POST", "/api/v1/subscriptions/", "{not json",
                                    content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert set(response.json()) >= {"type", "title", "status", "detail"}


def test_wrong_types_are_400_not_500(signup):
    owner = signup()
    for body in ([], "text", {"plan": {"a": 1}}, {"plan": None}, {"plan": 7}):
        response = owner.client.post("/api/v1/subscriptions/", json.dumps(body),
                                     content_type="application/json")
        assert response.status_code == 400, (body, response.content)


def test_unknown_api_url_is_a_problem_404(anon, db):
    response = anon.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM


def test_lists_paginate_up_to_500(signup, staff, catalog):
    for i in range(3):
        catalog["post"]("templates", {"name": f"t{i}", "os": "x", "image": "x",
                                      "cloud": catalog["cloud_a"]["id"]})
    page = staff.get("/api/v1/admin/templates/", {"page_size": 2}).json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == 4 and len(page["results"]) == 2 and page["next"]
    assert len(staff.get("/api/v1/admin/templates/", {"page_size": 100000}).json()[
        "results"]) == 4


class TestIdempotencyKey:
    def test_same_key_and_body_replays_and_creates_nothing_new(self, signup, catalog):
        owner = signup()
        body = {"plan": catalog["plan"]["id"], "name": "once"}
        first = owner.post("/api/v1/subscriptions/", body, format="json",
                           HTTP_IDEMPOTENCY_KEY="k-1")
        second = owner.post("/api/v1/subscriptions/", body, format="json",
                            HTTP_IDEMPOTENCY_KEY="k-1")
        assert first.status_code == second.status_code == 201
        assert first.json() == second.json()
        assert second["Idempotent-Replayed"] == "true"
        assert owner.get("/api/v1/subscriptions/").json()["count"] == 1

    def test_same_key_with_another_body_is_409(self, signup, catalog):
        owner = signup()
        owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"], "name": "a"},
                   format="json", HTTP_IDEMPOTENCY_KEY="k-2")
        response = owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"],
                                                         "name": "b"},
                              format="json", HTTP_IDEMPOTENCY_KEY="k-2")
        assert response.status_code == 409
        assert response.json()["type"].endswith("/idempotency-key-reused")
        assert owner.get("/api/v1/subscriptions/").json()["count"] == 1

    def test_keys_belong_to_their_caller(self, signup, catalog):
        alice, bob = signup(), signup()
        body = {"plan": catalog["plan"]["id"], "name": "same"}
        a = alice.post("/api/v1/subscriptions/", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
        b = bob.post("/api/v1/subscriptions/", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
        assert a.status_code == b.status_code == 201
        assert a.json()["id"] != b.json()["id"]

    def test_a_refused_request_is_not_remembered(self, signup, staff, catalog):
        owner = signup()
        staff.patch(f"/api/v1/admin/plans/{catalog['plan']['id']}/",
                    {"state": "decommissioned"}, format="json")
        body = {"plan": catalog["plan"]["id"], "name": "later"}
        assert owner.post("/api/v1/subscriptions/", body, format="json",
                          HTTP_IDEMPOTENCY_KEY="k-3").status_code == 409
        staff.patch(f"/api/v1/admin/plans/{catalog['plan']['id']}/", {"state": "public"},
                    format="json")
        assert owner.post("/api/v1/subscriptions/", body, format="json",
                          HTTP_IDEMPOTENCY_KEY="k-3").status_code == 201

    def test_provider_posts_take_keys_too(self, staff, db):
        body = {"name": "st-idem", "region": "r", "driver": "memory", "endpoint": "mem://i"}
        first = staff.post("/api/v1/admin/stamps/", body, format="json",
                           HTTP_IDEMPOTENCY_KEY="s-1")
        second = staff.post("/api/v1/admin/stamps/", body, format="json",
                            HTTP_IDEMPOTENCY_KEY="s-1")
        assert first.json()["id"] == second.json()["id"]
        assert staff.get("/api/v1/admin/stamps/").json()["count"] == 1


def test_healthz_and_metrics_need_no_auth(anon, db):
    assert anon.get("/healthz").json() == {"status": "ok"}
    metrics = anon.get("/metrics")
    assert metrics.status_code == 200
    assert b"buffet_http_requests_total" in metrics.content


def test_readyz_reports_each_stamp(anon, staff, catalog):
    response = anon.get("/readyz")
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert set(body["stamps"]) == {catalog["stamp_a"]["name"], catalog["stamp_b"]["name"]}
    assert response.status_code == (200 if body["checks"]["broker"] == "ok" else 503)


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_schema_and_docs_are_served(anon, db, path):
    assert anon.get(path).status_code == 200


def test_metrics_count_jobs_and_subscriptions_by_state(anon, signup, catalog):
    owner = signup()
    owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"]}, format="json")
    text = anon.get("/metrics").content.decode()
    assert 'buffet_subscriptions{state="provisioning"} 1.0' in text
    assert 'buffet_jobs{state="queued"} 1.0' in text
