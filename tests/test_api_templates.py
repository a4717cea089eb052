"""GET /api/v1/templates/: the images a tenant may create VMs from (API.md, Tenant)."""

import pytest

PROBLEM = "application/problem+json"


@pytest.fixture
def two_plans(staff, catalog):
    """The catalog's plan (template debian-12) and a second plan with another template."""
    post = catalog["post"]
    alpine = post("templates", {"name": "alpine-3", "os": "Alpine", "image": "img-alpine",
                                "cloud": catalog["cloud_a"]["id"]})
    second = post("plans", {"name": "Alpine only", "state": "public",
                            "cloud": catalog["cloud_a"]["id"], "quotas": catalog["quotas"],
                            "templates": [alpine["id"]]})
    return {"first": catalog["plan"], "second": second, "debian": catalog["template"],
            "alpine": alpine}


def subscribe(client, plan) -> dict:
    response = client.post("/api/v1/subscriptions/", {"plan": plan["id"]}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [t["name"] for t in response.json()["results"]]


def test_without_a_subscription_the_templates_of_all_the_callers_plans(signup, two_plans):
    # given a tenant subscribed to both plans, and one subscribed to none
    owner, newcomer = signup(), signup()
    subscribe(owner, two_plans["first"])
    subscribe(owner, two_plans["second"])
    # then the first sees both plans' templates, the second none
    assert names(owner.get("/api/v1/templates/")) == ["alpine-3", "debian-12"]
    assert names(newcomer.get("/api/v1/templates/")) == []


def test_with_a_subscription_the_templates_of_its_plan(signup, two_plans):
    # given a tenant with a subscription on each plan
    owner = signup()
    first = subscribe(owner, two_plans["first"])
    second = subscribe(owner, two_plans["second"])
    # when it asks per subscription
    # then each lists its own plan's templates only
    assert names(owner.get("/api/v1/templates/", {"subscription": first["id"]})) == [
        "debian-12"]
    assert names(owner.get("/api/v1/templates/", {"subscription": second["id"]})) == [
        "alpine-3"]
    assert names(owner.get("/api/v1/templates/", {"subscription": second["id"],
                                                  "os": "Debian 12"})) == []


def test_a_subscription_of_another_tenant_is_not_found(signup, two_plans):
    # given two tenants
    alice, bob = signup(), signup()
    subscribe(alice, two_plans["first"])
    bobs = subscribe(bob, two_plans["second"])
    # when alice names bob's subscription
    response = alice.get("/api/v1/templates/", {"subscription": bobs["id"]})
    # then it does not exist for her
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM
    assert response.json()["type"].endswith("/not-found")


def test_a_subscription_that_is_not_a_uuid_is_a_400_naming_it(signup, two_plans):
    owner = signup()
    subscribe(owner, two_plans["first"])
    response = owner.get("/api/v1/templates/", {"subscription": "first"})
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert list(response.json()["errors"]) == ["subscription"]
