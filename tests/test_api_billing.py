"""Burst, prices and invoices at the API, black-box against API.md "Usage, burst and
invoices": the plan's burst and prices, opting in, the quota's burst room, a VM above the
quota, invoices in JSON and CSV, another tenant's invoice, issuing and re-rating."""

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from billing import invoices
from billing.tests.factories import usage
from fabric.tests.factories import CloudFactory, TemplateFactory
from plans.tests.factories import PlanFactory
from provisioning.tests.factories import CommissionedSubscriptionFactory
from tenants.models import Role
from tenants.tests.factories import MembershipFactory, token_key

pytestmark = pytest.mark.django_db

BURST = {"limits": {"vcpus": 1, "memory_mb": 1024},
         "price_per_minute": {"vcpus": "0.021000", "memory_mb": "0.000020"}}


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_key(user)}")
    return client


@pytest.fixture
def world(db):
    """A tenant's commissioned subscription of a 1 vCPU / 1 GB plan that offers burst,
    its owner, reader and operator, and another tenant's owner."""
    cloud = CloudFactory()
    template = TemplateFactory(cloud=cloud, min_memory_mb=512)
    with time_machine.travel(utc(2026, 11, 1), tick=False):
        plan = PlanFactory(cloud=cloud, templates=[template], quota_vcpus=1,
                           quota_memory_mb=1024, price_monthly=Decimal("30.00"), burst=BURST)
        owner = MembershipFactory(owner=True)
        subscription = CommissionedSubscriptionFactory(tenant=owner.tenant, plan=plan)
    other = MembershipFactory(owner=True)
    return {"plan": plan, "template": template, "subscription": subscription,
            "owner": client_for(owner.user), "tenant": owner.tenant,
            "reader": client_for(MembershipFactory(tenant=owner.tenant, role=Role.READER).user),
            "operator": client_for(MembershipFactory(tenant=owner.tenant,
                                                     role=Role.OPERATOR).user),
            "other": client_for(other.user), "other_tenant": other.tenant}


def burst_on(client, sid, cap="5.00"):
    return client.patch(f"/api/v1/subscriptions/{sid}/",
                        {"burst": {"enabled": True, "monthly_cap": cap}}, format="json")


def vm(client, w, vcpus=2, memory_mb=2048, name="big"):
    return client.post("/api/v1/vms/", {
        "subscription": str(w["subscription"].pk), "name": name, "vcpus": vcpus,
        "template": str(w["template"].pk), "memory_mb": memory_mb, "disk_gb": 10},
        format="json")


def test_plans_show_their_burst_offer(world):
    plans = world["owner"].get("/api/v1/plans/").json()["results"]
    offered = next(p for p in plans if p["id"] == str(world["plan"].pk))
    assert offered["burst"]["limits"]["vcpus"] == 1
    assert offered["burst"]["price_per_minute"]["vcpus"] == "0.021000"
    PlanFactory(name="No burst")
    plans = world["owner"].get("/api/v1/plans/").json()["results"]
    assert next(p for p in plans if p["name"] == "No burst")["burst"] is None


def test_a_vm_above_the_quota_is_409_until_the_owner_opts_in(world):
    w, sid = world, world["subscription"].pk
    # without opting in: quota-exceeded, as before
    refused = vm(w["operator"], w)
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/quota-exceeded")
    assert refused.json()["errors"]["vcpus"] == {"requested": 2, "used": 0, "limit": 1}
    # an operator or a reader may not opt in; another tenant does not see it
    assert burst_on(w["operator"], sid).status_code == 403
    assert burst_on(w["reader"], sid).status_code == 403
    assert burst_on(w["other"], sid).status_code == 404
    # the owner opts in with a cap
    response = burst_on(w["owner"], sid)
    assert response.status_code == 200, response.content
    assert response.json()["burst"] == {"enabled": True, "monthly_cap": "5.00",
                                        "spent": "0.00", "capped": False}
    quota = w["owner"].get(f"/api/v1/subscriptions/{sid}/quota/").json()
    assert quota["vcpus"] == {"limit": 1, "used": 0, "burst": 1}
    assert quota["networks"]["burst"] == 0
    # then the VM is accepted, within quota + burst room
    accepted = vm(w["operator"], w)
    assert accepted.status_code == 202, accepted.content
    assert w["owner"].get(f"/api/v1/subscriptions/{sid}/quota/").json()["vcpus"]["used"] == 2


def test_opting_in_needs_a_plan_with_burst_and_a_cap(world):
    sid = world["subscription"].pk
    missing = world["owner"].patch(f"/api/v1/subscriptions/{sid}/",
                                   {"burst": {"enabled": True}}, format="json")
    assert missing.status_code == 400 and "burst.monthly_cap" in missing.json()["errors"]
    negative = burst_on(world["owner"], sid, cap="-1")
    assert negative.status_code == 400
    plain = CommissionedSubscriptionFactory(tenant=world["tenant"], plan=PlanFactory())
    assert burst_on(world["owner"], plain.pk).status_code == 400


def test_at_the_cap_a_new_burst_vm_is_409_and_the_running_one_stays(world):
    w, sid = world, world["subscription"].pk
    assert burst_on(w["owner"], sid, cap="0.05").status_code == 200
    running = vm(w["operator"], w, vcpus=2, memory_mb=1024)
    assert running.status_code == 202
    usage(w["subscription"], "burst.vcpus", 1, start=utc(2026, 11, 2, 10), minutes=3)
    with time_machine.travel(utc(2026, 11, 2, 10, 5), tick=False):
        invoices.refresh_drafts()
    subscription = w["owner"].get(f"/api/v1/subscriptions/{sid}/").json()
    assert subscription["burst"]["capped"] and subscription["burst"]["spent"] == "0.06"
    # a new burst VM: refused, the room is closed
    refused = vm(w["operator"], w, vcpus=1, memory_mb=512, name="more")
    assert refused.status_code == 409 and refused.json()["type"].endswith("/quota-exceeded")
    # the running VM is untouched
    assert w["operator"].get(f"/api/v1/vms/{running.json()['id']}/").json()["state"] != \
        "deleting"
    quota = w["owner"].get(f"/api/v1/subscriptions/{sid}/quota/").json()
    assert quota["vcpus"] == {"limit": 1, "used": 2, "burst": 0}


def test_invoices_in_json_and_csv_and_another_tenants_is_404(world):
    w = world
    with time_machine.travel(utc(2026, 11, 16), tick=False):
        invoices.refresh_drafts()
    listed = w["owner"].get("/api/v1/invoices/").json()
    assert listed["count"] == 1
    invoice = listed["results"][0]
    assert (invoice["state"], invoice["currency"], invoice["total"]) == ("draft", "USD",
                                                                         "15.00")
    assert invoice["period_start"].startswith("2026-11-01T00:00:00")
    [line] = invoice["lines"]
    assert line == {**line, "subscription": str(w["subscription"].pk), "meter": "monthly",
                    "quantity": "0.500000", "unit": "month", "unit_price": "30.000000",
                    "amount": "15.00"}
    # CSV: one row per line
    response = w["owner"].get(f"/api/v1/invoices/{invoice['id']}/", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["meter"], r["amount"], r["invoice"]) for r in rows] == [
        ("monthly", "15.00", invoice["id"])]
    listed_csv = w["owner"].get("/api/v1/invoices/", HTTP_ACCEPT="text/csv")
    assert len(list(csv.DictReader(io.StringIO(listed_csv.content.decode())))) == 1
    # another tenant: not in its list, and 404 in JSON and in CSV
    assert w["other"].get("/api/v1/invoices/").json()["count"] == 0
    assert w["other"].get(f"/api/v1/invoices/{invoice['id']}/").status_code == 404
    missing = w["other"].get(f"/api/v1/invoices/{invoice['id']}/", HTTP_ACCEPT="text/csv")
    assert missing.status_code == 404
    assert w["reader"].get(f"/api/v1/invoices/{invoice['id']}/").status_code == 200


def test_the_provider_issues_a_closed_month_once(world, staff):
    with time_machine.travel(utc(2026, 11, 20), tick=False):
        invoices.refresh_drafts()
        running = staff.post("/api/v1/admin/invoices/issue/", {"period": "2026-11"},
                             format="json")
        assert running.status_code == 409
        assert running.json()["type"].endswith("/invoice-period-open")
    assert staff.post("/api/v1/admin/invoices/issue/", {"period": "2026-13"},
                      format="json").status_code == 400
    with time_machine.travel(utc(2026, 12, 1, 0, 10), tick=False):
        first = staff.post("/api/v1/admin/invoices/issue/", {"period": "2026-11"},
                           format="json")
        assert first.status_code == 200, first.content
        [issued] = first.json()["invoices"]
        assert (issued["state"], issued["total"], issued["tenant"]) == (
            "issued", "30.00", str(world["tenant"].pk))
        usage(world["subscription"], "burst.vcpus", 1, start=utc(2026, 11, 30, 12))
        again = staff.post("/api/v1/admin/invoices/issue/", {"period": "2026-11"},
                           format="json").json()["invoices"]
    assert again == [issued]
    listed = staff.get("/api/v1/admin/invoices/", {"period": "2026-11"}).json()
    assert [i["id"] for i in listed["results"]] == [issued["id"]]
    assert staff.get("/api/v1/admin/invoices/", {"period": "11/2026"}).status_code == 400
    assert world["owner"].get("/api/v1/admin/invoices/").status_code == 403


def test_the_provider_sets_usage_prices_and_reprocesses_a_window(world, staff):
    plan_url = f"/api/v1/admin/plans/{world['plan'].pk}/"
    with time_machine.travel(utc(2026, 11, 10), tick=False):
        changed = staff.patch(plan_url, {"prices": [{"meter": "vcpus", "unit_price": "0.5"}]},
                              format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["prices"] == [{"meter": "vcpus", "unit_price": "0.500000"}]
    usage(world["subscription"], "vcpus", 1, start=utc(2026, 11, 5))   # before: free
    usage(world["subscription"], "vcpus", 1, start=utc(2026, 11, 12))  # after: 0.50
    with time_machine.travel(utc(2026, 11, 20), tick=False):
        draft = invoices.refresh_invoice(world["tenant"], utc(2026, 11, 1))
        usage_lines = draft.lines.filter(meter="vcpus")
        assert [line.amount for line in usage_lines] == [Decimal("0.50")]
        for window in [{"from": "2026-11-10T00:00:00Z", "to": "2026-11-01T00:00:00Z"},
                       {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
                       {"from": "2026-11-01T00:00:30Z", "to": "2026-11-10T00:00:00Z"},
                       {"from": "yesterday", "to": "2026-11-10T00:00:00Z"}]:
            bad = staff.post("/api/v1/admin/rating/reprocess/", window, format="json")
            assert bad.status_code == 400, window
        assert world["owner"].post("/api/v1/admin/rating/reprocess/", {
            "from": "2026-11-01T00:00:00Z", "to": "2026-11-10T00:00:00Z"},
            format="json").status_code == 403
        done = staff.post("/api/v1/admin/rating/reprocess/", {
            "from": "2026-11-01T00:00:00Z", "to": "2026-11-10T00:00:00Z"}, format="json")
    assert done.status_code == 200, done.content
    assert [line.amount for line in draft.lines.filter(meter="vcpus")] == [Decimal("1.00")]


def test_the_provider_publishes_a_plan_with_burst_and_prices(catalog, staff):
    created = catalog["post"]("plans", {
        "name": "Burst S", "state": "public", "cloud": catalog["cloud_a"]["id"],
        "quotas": {"vcpus": 1, "memory_mb": 1024}, "price_monthly": "4.00", "burst": BURST,
        "prices": [{"meter": "dr.protected_vms", "unit_price": "0.0003"}]})
    assert created["burst"]["limits"] == {"vcpus": 1, "memory_mb": 1024, "storage_gb": 0,
                                          "vms": 0, "snapshots": 0}
    assert created["prices"] == [{"meter": "dr.protected_vms", "unit_price": "0.000300"}]
    bad = staff.post("/api/v1/admin/plans/", {
        "name": "Bad", "cloud": catalog["cloud_a"]["id"],
        "prices": [{"meter": "bogus", "unit_price": "-1"}]}, format="json")
    assert bad.status_code == 400 and {"prices.0.meter", "prices.0.unit_price"} <= set(
        bad.json()["errors"])
    # burst off again: null
    off = staff.patch(f"/api/v1/admin/plans/{created['id']}/", {"burst": None}, format="json")
    assert off.status_code == 200 and off.json()["burst"] is None


def test_the_owner_changes_plan_and_each_plan_is_billed_its_share(world):
    w, sid = world, world["subscription"].pk
    larger = PlanFactory(cloud=w["plan"].cloud, templates=[w["template"]], quota_vcpus=4,
                         quota_memory_mb=4096, price_monthly=Decimal("60.00"))
    assert vm(w["operator"], w, vcpus=1, memory_mb=1024).status_code == 202
    # an operator may not change plan; another tenant does not see the subscription
    assert w["operator"].patch(f"/api/v1/subscriptions/{sid}/", {"plan": str(larger.pk)},
                               format="json").status_code == 403
    assert w["other"].patch(f"/api/v1/subscriptions/{sid}/", {"plan": str(larger.pk)},
                            format="json").status_code == 404
    # the owner moves to the larger plan on the 16th of November (30 days) at 00:00 UTC
    with time_machine.travel(utc(2026, 11, 16), tick=False):
        moved = w["owner"].patch(f"/api/v1/subscriptions/{sid}/", {"plan": str(larger.pk)},
                                 format="json")
    assert moved.status_code == 200, moved.content
    assert moved.json()["plan"] == str(larger.pk)
    quota = w["owner"].get(f"/api/v1/subscriptions/{sid}/quota/").json()
    assert quota["vcpus"] == {"limit": 4, "used": 1, "burst": 0}
    # then November bills 15 days of each plan: 15.00 + 30.00, the 16th once
    with time_machine.travel(utc(2026, 12, 1, 1), tick=False):
        invoice = invoices.refresh_invoice(w["tenant"], utc(2026, 11, 1))
    monthly = sorted(line.amount for line in invoice.lines.filter(meter="monthly"))
    assert monthly == [Decimal("15.00"), Decimal("30.00")]
    activity = w["owner"].get("/api/v1/activity/").json()["results"]
    assert "subscription.plan_changed" in {e["event"] for e in activity}


def test_a_plan_change_that_would_not_hold_the_usage_or_leaves_the_cloud_is_409(world):
    w, sid = world, world["subscription"].pk
    assert burst_on(w["owner"], sid).status_code == 200
    assert vm(w["operator"], w, vcpus=2, memory_mb=1024).status_code == 202  # 1 in burst
    tiny = PlanFactory(cloud=w["plan"].cloud, quota_vcpus=1, quota_memory_mb=1024)
    refused = w["owner"].patch(f"/api/v1/subscriptions/{sid}/",
                               {"plan": str(tiny.pk), "burst": {"enabled": False}},
                               format="json")
    assert refused.status_code == 409 and refused.json()["type"].endswith("/quota-exceeded")
    assert refused.json()["errors"]["vcpus"] == {"used": 2, "limit": 1}
    elsewhere = PlanFactory(quota_vcpus=8)
    assert w["owner"].patch(f"/api/v1/subscriptions/{sid}/", {"plan": str(elsewhere.pk)},
                            format="json").status_code == 409
    hidden = PlanFactory(cloud=w["plan"].cloud, quota_vcpus=8, state="private")
    assert w["owner"].patch(f"/api/v1/subscriptions/{sid}/", {"plan": str(hidden.pk)},
                            format="json").status_code == 404
    assert w["owner"].patch(f"/api/v1/subscriptions/{sid}/", {}, format="json").status_code \
        == 400
    # nothing changed: the plan, the burst switch and the limits are as they were
    after = w["owner"].get(f"/api/v1/subscriptions/{sid}/").json()
    assert after["plan"] == str(w["plan"].pk) and after["burst"]["enabled"] is True
    assert w["owner"].get(f"/api/v1/subscriptions/{sid}/quota/").json()["vcpus"]["limit"] == 1
