"""Billing's pages: the tenant's burst switch with its spending and invoices (CSV), another
tenant's are 404; the provider's month with revenue per plan and tenant, issue, reprocess."""

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from billing import invoices
from billing.rating_models import Invoice, InvoiceState, RatingReprocess
from billing.tests.factories import usage
from conftest import web_login
from plans.tests.factories import PlanFactory, SubscriptionFactory
from tenants.models import Role
from tenants.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

BURST = {"limits": {"vcpus": 1}, "price_per_minute": {"vcpus": Decimal("0.021")}}


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def world(db):
    with time_machine.travel(utc(2026, 11, 1), tick=False):
        plan = PlanFactory(name="Burstable", quota_vcpus=1, price_monthly=Decimal("30.00"),
                           burst=BURST)
        owner = MembershipFactory(owner=True)
        subscription = SubscriptionFactory(tenant=owner.tenant, plan=plan, name="prod")
    return {"subscription": subscription, "owner": web_login(owner.user),
            "reader": web_login(MembershipFactory(tenant=owner.tenant, role=Role.READER).user),
            "other": web_login(MembershipFactory(owner=True).user)}


def test_the_owner_switches_burst_on_with_a_cap_and_sees_this_months_spend(world):
    sub = world["subscription"]
    url = f"/subscriptions/{sub.pk}/burst/"
    page = world["owner"].get(url)
    assert page.status_code == 200 and b"0.021" in page.content
    response = world["owner"].post(url, {"enabled": "on", "monthly_cap": "2.50"})
    assert response.status_code == 302
    sub.refresh_from_db()
    assert sub.burst_enabled and sub.burst_monthly_cap == Decimal("2.50")
    usage(sub, "burst.vcpus", 1, start=utc(2026, 11, 2, 10), minutes=10)
    with time_machine.travel(utc(2026, 11, 2, 11), tick=False):
        invoices.refresh_drafts()
    page = world["owner"].get(url).content.decode()
    assert "0.21 USD" in page and "2.50 USD" in page
    detail = world["owner"].get(f"/subscriptions/{sub.pk}/").content.decode()
    assert "0.21 of 2.50 spent this month" in detail
    # a reader sees it but may not change it; another tenant does not find it
    assert world["reader"].post(url, {"enabled": ""}).status_code == 403
    assert world["other"].get(url).status_code == 404


def test_the_tenant_lists_its_invoices_and_downloads_csv_and_not_anothers(world):
    with time_machine.travel(utc(2026, 11, 16), tick=False):
        invoices.refresh_drafts()
    invoice = Invoice.objects.get()
    listing = world["owner"].get("/invoices/").content.decode()
    assert "November 2026" in listing and "15.00 USD" in listing
    assert world["owner"].get(f"/invoices/{invoice.pk}/").status_code == 200
    download = world["owner"].get(f"/invoices/{invoice.pk}/csv/")
    assert download["Content-Type"] == "text/csv"
    assert "attachment" in download["Content-Disposition"]
    [row] = csv.DictReader(io.StringIO(download.content.decode()))
    assert (row["meter"], row["amount"]) == ("monthly", "15.00")
    assert world["other"].get(f"/invoices/{invoice.pk}/").status_code == 404
    assert world["other"].get(f"/invoices/{invoice.pk}/csv/").status_code == 404
    assert "November 2026" not in world["other"].get("/invoices/").content.decode()


def test_the_provider_sees_revenue_issues_the_month_and_reprocesses(world, staff):
    provider = web_login(staff.user)
    with time_machine.travel(utc(2026, 12, 1, 1), tick=False):
        invoices.refresh_invoice(world["subscription"].tenant, utc(2026, 11, 1))
        page = provider.get("/admin/billing/?period=2026-11").content.decode()
        assert "Revenue per plan" in page and "Burstable" in page and "30.00 USD" in page
        assert provider.post("/admin/billing/issue/", {"period": "2026-11"}).status_code == 302
        assert Invoice.objects.get().state == InvoiceState.ISSUED
        response = provider.post("/admin/billing/reprocess/", {
            "start": "2026-11-01 00:00", "end": "2026-11-02 00:00"})
        assert response.status_code == 302 and RatingReprocess.objects.count() == 1
        csv_download = provider.get("/admin/billing/?period=2026-11&format=csv")
        assert csv_download["Content-Type"] == "text/csv"
    assert world["owner"].get("/admin/billing/").status_code in (302, 403, 404)


def test_the_provider_sees_each_stamps_missing_minutes_as_an_alert_and_on_a_timeline(staff):
    from billing.models import MeterCursor, MissingState, MissingUsage
    from fabric.tests.factories import StampFactory

    down, fine = StampFactory(name="stamp-down"), StampFactory(name="stamp-fine")
    now = utc(2026, 11, 20, 12)
    MeterCursor.objects.create(stamp=down, collected_until=utc(2026, 11, 20, 9))
    MeterCursor.objects.create(stamp=fine, collected_until=utc(2026, 11, 20, 12))
    MissingUsage.objects.create(stamp=down, start=utc(2026, 11, 20, 9),
                                end=utc(2026, 11, 20, 12), detail="stamp unreachable")
    MissingUsage.objects.create(stamp=fine, start=utc(2026, 11, 20, 0),
                                end=utc(2026, 11, 20, 6), state=MissingState.BACKFILLED)
    MissingUsage.objects.create(stamp=fine, start=utc(2026, 11, 1), end=utc(2026, 11, 2),
                                state=MissingState.UNRECOVERABLE)  # outside the day: not drawn
    provider = web_login(staff.user)
    with time_machine.travel(now, tick=False):
        page = provider.get("/admin/billing/").content.decode()
    rows = page.split('data-stamp="')[1:]
    # the stamp with missing minutes comes first, as an alert, with its range and lag
    assert rows[0].startswith("stamp-down") and 'class="table-danger"' in page
    assert "180 minutes missing" in rows[0] and "(180 min behind)" in rows[0]
    assert "stamp unreachable" in rows[0]
    assert 'class="seg-missing" style="left: 87.50%; width: 12.50%"' in rows[0]
    # the other has nothing missing; its backfilled night is drawn, last month is not
    assert "none" in rows[1] and "min behind" not in rows[1]
    assert 'class="seg-backfilled" style="left: 50.00%; width: 25.00%"' in rows[1]
    assert "seg-unrecoverable\" style" not in rows[1]
