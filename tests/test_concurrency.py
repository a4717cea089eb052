"""Invariants under real concurrency: PostgreSQL, one connection per thread."""

import pytest
from rest_framework.test import APIClient

from conftest import unique
from tests.processes import race

pytestmark = pytest.mark.services


def test_max_subscriptions_holds_under_concurrent_subscribers(postgres, transactional_db,
                                                               signup, catalog):
    from base.errors import Conflict
    from plans.models import Subscription
    from provisioning import lifecycle
    from tenants.models import Membership

    # given a plan with room for three, and ten tenants
    plan = catalog["post"]("plans", {"name": unique("Scarce "), "state": "public",
                                     "cloud": catalog["cloud_a"]["id"],
                                     "max_subscriptions": 3})
    owners = [Membership.objects.select_related("tenant", "user").get(user__email=signup().email)
              for _ in range(10)]
    # when all ten subscribe at once
    results = race(10, lambda i: lifecycle.subscribe(owners[i].tenant, plan_id=plan["id"],
                                                     name="race", acting_user=owners[i].user))
    # then exactly three got in
    assert sum(isinstance(r, tuple) and isinstance(r[0], Subscription) for r in results) == 3
    assert sum(isinstance(r, Conflict) for r in results) == 7
    assert Subscription.objects.filter(plan_id=plan["id"]).count() == 3


def test_one_idempotency_key_sent_concurrently_creates_once(postgres, transactional_db, signup,
                                                           catalog):
    owner = signup()
    auth = owner.client._credentials["HTTP_AUTHORIZATION"]
    body = {"plan": catalog["plan"]["id"], "name": "burst"}

    def post(_):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=auth)
        return client.post("/api/v1/subscriptions/", body, format="json",
                           HTTP_IDEMPOTENCY_KEY="burst-1")

    responses = race(8, post)
    ids = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(ids) == 1
    # a request that arrived while the first was still working is told to retry (409)
    assert all(r.status_code in {201, 409} for r in responses)
    assert owner.get("/api/v1/subscriptions/").json()["count"] == 1
