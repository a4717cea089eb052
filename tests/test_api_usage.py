"""The usage API (API.md "Usage, burst and invoices"): windows, sums, scoping."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from billing import rollup
from billing.models import MissingUsage, UsageRecord
from fabric.models import Stamp

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def metered(catalog, signup):
    """A tenant's subscription with 2 vCPUs metered each minute from 10:00 to 12:00 on
    March 10, and a day earlier too."""
    owner = signup()
    response = owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"],
                                                     "name": "prod"}, format="json")
    assert response.status_code == 201, response.content
    subscription = response.json()["id"]
    stamp = Stamp.objects.get(pk=catalog["stamp_a"]["id"])
    minutes = [NOW.replace(hour=10, minute=0) + timedelta(minutes=i) for i in range(120)]
    minutes += [m - timedelta(days=1) for m in minutes]
    UsageRecord.objects.bulk_create(
        [UsageRecord(subscription_id=subscription, resource_type="vm", resource_id="vm-1",
                     meter=meter, minute=minute, quantity=quantity, stamp=stamp)
         for minute in minutes for meter, quantity in (("vcpus", 2), ("vms", 1))])
    rollup.rebuild(NOW - timedelta(days=2), NOW)  # as the collector keeps them
    return {"owner": owner, "subscription": subscription, "stamp": stamp}


def usage(client, subscription, **params):
    return client.get(f"/api/v1/subscriptions/{subscription}/usage/", params)


def test_a_window_sums_each_meter_by_hour(metered):
    # when the tenant asks for 10:00-12:00 by the hour
    response = usage(metered["owner"], metered["subscription"], **{
        "from": "2026-03-10T10:00:00Z", "to": "2026-03-10T12:00:00Z", "granularity": "hour"})
    # then each meter is summed over the window and per hour
    assert response.status_code == 200, response.content
    body = response.json()
    meters = {m["meter"]: m for m in body["meters"]}
    assert Decimal(meters["vcpus"]["quantity"]) == 240
    assert Decimal(meters["vms"]["quantity"]) == 120
    assert meters["vcpus"]["amount"] == "0.00"
    assert [(p["start"][:16], p["meter"], Decimal(p["quantity"])) for p in body["series"]] == [
        ("2026-03-10T10:00", "vcpus", 120), ("2026-03-10T10:00", "vms", 60),
        ("2026-03-10T11:00", "vcpus", 120), ("2026-03-10T11:00", "vms", 60)]
    assert body["granularity"] == "hour" and body["total"] == "0.00"


def test_without_a_window_it_is_the_running_month_by_day(metered):
    body = usage(metered["owner"], metered["subscription"]).json()
    assert body["from"].startswith("2026-03-01T00:00:00")
    assert body["granularity"] == "day"
    assert [(p["start"][:10], Decimal(p["quantity"])) for p in body["series"]
            if p["meter"] == "vcpus"] == [("2026-03-09", 240), ("2026-03-10", 240)]


@pytest.mark.parametrize("params, field", [
    ({"from": "2026-03-10T10:30:00Z", "to": "2026-03-10T12:00:00Z"}, "from"),
    ({"from": "2026-03-10T10:00:00Z", "to": "2026-03-10T11:00:05Z"}, "to"),
    ({"from": "2026-03-10T12:00:00Z", "to": "2026-03-10T10:00:00Z"}, "from"),
    ({"from": "2026-03-10T10:00:00Z", "to": "2026-03-10T13:00:00Z"}, "to"),
    ({"from": "yesterday", "to": "2026-03-10T10:00:00Z"}, "from"),
    ({"from": "2026-03-10T10:00:00Z", "to": "2026-03-10T11:00:00Z", "granularity": "week"},
     "granularity"),
])
def test_a_window_not_hour_aligned_reversed_or_in_the_future_is_400(metered, params, field):
    response = usage(metered["owner"], metered["subscription"], **params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert field in response.json()["errors"]


@pytest.mark.parametrize("params", [
    {}, {"from": "2026-03-10T10:00:00Z", "to": "2026-03-10T12:00:00Z"},
    {"from": "2026-03-10T12:00:00Z", "to": "2026-03-10T10:00:00Z"},
])
def test_another_tenants_subscription_is_404(metered, signup, params):
    response = usage(signup(), metered["subscription"], **params)
    assert response.status_code == 404


def test_the_provider_sees_usage_per_tenant_and_stamp_and_the_missing_minutes(
        metered, staff, signup):
    # given a stamp that missed an hour
    MissingUsage.objects.create(stamp=metered["stamp"], start=NOW - 2 * H, end=NOW - H)
    window = {"from": "2026-03-10T00:00:00Z", "to": "2026-03-10T12:00:00Z"}
    # when the provider asks for the tenant's usage on that stamp
    response = staff.get("/api/v1/admin/usage/", {
        **window, "tenant": metered["owner"].tenant["id"], "stamp": str(metered["stamp"].pk)})
    # then it is there with the missing hour
    assert response.status_code == 200, response.content
    body = response.json()
    assert {m["meter"]: Decimal(m["quantity"]) for m in body["meters"]} == {
        "vcpus": 240, "vms": 120}
    assert [(m["state"], m["start"][:16]) for m in body["missing"]] == [
        ("missing", "2026-03-10T10:30")]
    # and another tenant's filter shows nothing of it
    other = signup()
    body = staff.get("/api/v1/admin/usage/", {**window, "tenant": other.tenant["id"]}).json()
    assert body["meters"] == []
    # and a tenant may not ask
    assert metered["owner"].get("/api/v1/admin/usage/", window).status_code == 403
    assert staff.get("/api/v1/admin/usage/", {**window, "stamp": "x"}).status_code == 400
