"""Rating and invoices on their own: burst minutes, proration of a plan change, prices that
take effect when they change, issuing, late usage, rounding (API.md "Usage, burst and
invoices")."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from base.errors import Conflict, Invalid, QuotaExceeded
from base.models import AuditEvent
from billing import invoices, prices, rating
from billing.models import UsageRecord
from billing.rating_models import InvoiceState
from billing.tests.factories import usage
from plans import quota, services
from plans.models import Plan
from plans.tests.factories import AddOnFactory, PlanFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

BURST = {"limits": {"vcpus": 1, "memory_mb": 1024},
         "price_per_minute": {"vcpus": Decimal("0.021"), "memory_mb": Decimal("0.00002")}}


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def lines_of(invoice):
    return {(line.meter, line.adjustment): line for line in invoice.lines.all()}


def burst_subscription(*, cap="10.00"):
    with time_machine.travel(utc(2026, 11, 1), tick=False):
        plan = PlanFactory(quota_vcpus=1, quota_memory_mb=1024, price_monthly=Decimal("0"),
                           burst=BURST)
        subscription = SubscriptionFactory(plan=plan)
        if cap is not None:
            subscription = services.configure_burst(
                subscription, enabled=True, monthly_cap=Decimal(cap), acting_user=None)
    return subscription


def test_a_burst_vm_is_billed_its_started_minutes_above_the_quota():
    # given a 1 vCPU / 1 GB plan with burst, opted in
    subscription = burst_subscription()
    # when a 2 vCPU / 2 GB VM is reserved: quota + burst room allows it
    quota.reserve(subscription, {"vcpus": 2, "memory_mb": 2048, "vms": 1})
    # and it runs from 10:00:30 to 10:03:10: 3 started minutes of 1 vCPU and 1024 MB above
    usage(subscription, "burst.vcpus", 1, start=utc(2026, 11, 2, 10, 0), minutes=3)
    usage(subscription, "burst.memory_mb", 1024, start=utc(2026, 11, 2, 10, 0), minutes=3)
    invoice = invoices.refresh_invoice(subscription.tenant, utc(2026, 11, 1),
                                       now=utc(2026, 11, 2, 10, 5))
    # then each dimension is billed 3 unit-minutes of its excess at its price
    lines = lines_of(invoice)
    assert lines[("burst.vcpus", False)].quantity == 3
    assert lines[("burst.vcpus", False)].amount == Decimal("0.06")  # 3 x 0.021 = 0.063
    assert lines[("burst.memory_mb", False)].quantity == 3072
    assert lines[("burst.memory_mb", False)].amount == Decimal("0.06")  # 0.06144
    assert invoice.total == Decimal("0.12")  # the sum of the rounded lines


def test_without_opting_in_the_burst_room_is_closed():
    # given a plan with burst, and a subscription that has not opted in
    subscription = burst_subscription(cap=None)
    # when more than the quota is asked
    with pytest.raises(QuotaExceeded) as refused:
        quota.reserve(subscription, {"vcpus": 2})
    # then it is refused as before, against the quota alone
    assert refused.value.errors["vcpus"] == {"requested": 2, "used": 0, "limit": 1}
    assert quota.summary(subscription)["vcpus"]["burst"] == 0


def test_at_the_cap_new_burst_is_refused_and_what_runs_is_untouched():
    # given an opted-in subscription with a 0.05 cap running 2 vCPUs (1 above its quota)
    subscription = burst_subscription(cap="0.05")
    quota.reserve(subscription, {"vcpus": 2})
    assert quota.summary(subscription)["vcpus"]["burst"] == 1
    usage(subscription, "burst.vcpus", 1, start=utc(2026, 11, 2, 10, 0), minutes=3)
    # when the beat's rating pass finds 0.06 of burst this month
    with time_machine.travel(utc(2026, 11, 2, 10, 5), tick=False):
        invoices.refresh_drafts()
    subscription.refresh_from_db()
    # then the subscription is capped, told so, and new burst is 409
    assert subscription.burst_capped and subscription.burst_spent == Decimal("0.06")
    assert AuditEvent.objects.filter(event="burst.capped", tenant=subscription.tenant,
                                     object_id=str(subscription.pk)).count() == 1
    with pytest.raises(QuotaExceeded):
        quota.reserve(subscription, {"vcpus": 1})
    # and what runs keeps its quota: the cap releases nothing
    assert quota.summary(subscription)["vcpus"] == {"limit": 1, "used": 2, "burst": 0}
    # and the next pass does not tell the tenant again
    with time_machine.travel(utc(2026, 11, 2, 10, 10), tick=False):
        invoices.refresh_drafts()
    assert AuditEvent.objects.filter(event="burst.capped").count() == 1
    # and next month the room opens again
    with time_machine.travel(utc(2026, 12, 1, 0, 5), tick=False):
        invoices.refresh_drafts()
    subscription.refresh_from_db()
    assert not subscription.burst_capped and subscription.burst_spent == 0
    quota.release(subscription, {"vcpus": 1})
    quota.reserve(subscription, {"vcpus": 1})
    assert quota.summary(subscription)["vcpus"]["used"] == 2


@pytest.mark.parametrize(("switch", "first", "second"), [
    (utc(2026, 11, 16), Decimal("4.50"), Decimal("15.00")),         # 15 days each
    (utc(2026, 11, 16, 12), Decimal("4.65"), Decimal("14.50")),     # 15.5 and 14.5 days
])
def test_a_plan_change_bills_each_plan_its_share_and_the_switch_day_once(switch, first,
                                                                         second):
    # given a subscription of a 9.00 plan from the 1st of a 30-day month
    with time_machine.travel(utc(2026, 11, 1), tick=False):
        small = PlanFactory(price_monthly=Decimal("9.00"))
        large = PlanFactory(price_monthly=Decimal("30.00"), cloud=small.cloud)
        subscription = SubscriptionFactory(plan=small)
    # when it changes to a 30.00 plan on the 16th
    services.change_plan(subscription, plan_id=large.pk, acting_user=None, at=switch)
    # then the closed month bills each plan exactly its minutes' share
    invoice = invoices.refresh_invoice(subscription.tenant, utc(2026, 11, 1),
                                       now=utc(2026, 12, 2))
    amounts = {line.item: line.amount for line in invoice.lines.all()}
    assert amounts == {str(small.pk): first, str(large.pk): second}
    assert invoice.total == first + second
    quantities = sorted(line.quantity for line in invoice.lines.all())
    assert sum(quantities) == 1  # the whole month, once


def test_the_draft_grows_with_the_running_month_and_a_month_is_utc():
    with time_machine.travel(utc(2026, 11, 1), tick=False):
        subscription = SubscriptionFactory(plan=PlanFactory(price_monthly=Decimal("30.00")))
    # at 23:30 UTC on the 10th: 9 days and 23.5 hours of 30
    draft = invoices.refresh_invoice(subscription.tenant, utc(2026, 11, 10),
                                     now=utc(2026, 11, 10, 23, 30))
    assert draft.total == Decimal("9.98")  # 30 x 14370 / 43200 = 9.979
    # usage at 23:59 UTC on the 30th is November's, at 00:00 on the 1st December's
    usage(subscription, "vcpus", 2, start=utc(2026, 11, 30, 23, 59))
    usage(subscription, "vcpus", 2, start=utc(2026, 12, 1, 0, 0))
    prices.record_plan_prices(subscription.plan, before=None,
                              usage=[{"meter": "vcpus", "unit_price": "1"}],
                              at=utc(2026, 11, 1))
    november = invoices.refresh_invoice(subscription.tenant, utc(2026, 11, 1),
                                        now=utc(2026, 12, 1, 0, 1))
    assert lines_of(november)[("vcpus", False)].quantity == 2


def test_a_price_change_on_the_10th_does_not_rerate_the_days_before_unless_reprocessed():
    # given 1 vCPU-minute a day at 1.00 on the 5th and the 12th
    with time_machine.travel(utc(2026, 11, 1), tick=False):
        plan = PlanFactory(price_monthly=Decimal("0"))
        subscription = SubscriptionFactory(plan=plan)
    prices.record_plan_prices(plan, before=None, usage=[{"meter": "vcpus", "unit_price": "1"}],
                              at=utc(2026, 11, 1))
    usage(subscription, "vcpus", 1, start=utc(2026, 11, 5, 8))
    usage(subscription, "vcpus", 1, start=utc(2026, 11, 12, 8))
    # when the price becomes 3.00 on the 10th
    prices.record_plan_prices(plan, before=None, usage=[{"meter": "vcpus", "unit_price": "3"}],
                              at=utc(2026, 11, 10))
    draft = invoices.refresh_invoice(subscription.tenant, utc(2026, 11, 1),
                                     now=utc(2026, 11, 20))
    # then the 5th keeps 1.00 and the 12th costs 3.00
    assert sorted((line.unit_price, line.amount) for line in draft.lines.all()) == [
        (Decimal("1"), Decimal("1.00")), (Decimal("3"), Decimal("3.00"))]
    # and a reprocess of the 1st to the 9th rates them with today's price
    invoices.reprocess(utc(2026, 11, 1), utc(2026, 11, 10), acting_user=None,
                       now=utc(2026, 11, 20))
    draft.refresh_from_db()
    assert draft.total == Decimal("6.00")


def test_issuing_a_closed_month_twice_changes_nothing_and_the_running_month_is_refused():
    with time_machine.travel(utc(2026, 10, 20), tick=False):
        subscription = SubscriptionFactory(plan=PlanFactory(price_monthly=Decimal("31.00")))
    with pytest.raises(Conflict):
        invoices.issue_period(utc(2026, 10, 1), acting_user=None, now=utc(2026, 10, 31, 23))
    first = invoices.issue_period(utc(2026, 10, 1), acting_user=None, now=utc(2026, 11, 1, 1))
    assert [(i.state, i.total) for i in first] == [(InvoiceState.ISSUED, Decimal("12.00"))]
    issued_at, lines = first[0].issued_at, list(first[0].lines.values())
    # when issued again, later, with more usage
    usage(subscription, "vcpus", 5, start=utc(2026, 10, 25))
    again = invoices.issue_period(utc(2026, 10, 1), acting_user=None, now=utc(2026, 11, 3))
    # then nothing changed
    assert again[0].pk == first[0].pk and again[0].issued_at == issued_at
    assert list(again[0].lines.values()) == lines and again[0].total == Decimal("12.00")


def test_a_late_usage_row_for_an_issued_month_is_an_adjustment_on_the_next_draft():
    with time_machine.travel(utc(2026, 10, 1), tick=False):
        plan = PlanFactory(price_monthly=Decimal("0"))
        subscription = SubscriptionFactory(plan=plan)
    prices.record_plan_prices(plan, before=None,
                              usage=[{"meter": "vcpus", "unit_price": "0.5"}],
                              at=utc(2026, 10, 1))
    usage(subscription, "vcpus", 2, start=utc(2026, 10, 30, 12), minutes=2)
    [october] = invoices.issue_period(utc(2026, 10, 1), acting_user=None,
                                      now=utc(2026, 11, 1, 1))
    assert october.total == Decimal("2.00")
    # when a row of October arrives late
    usage(subscription, "vcpus", 2, start=utc(2026, 10, 31, 23, 59))
    november = invoices.refresh_invoice(subscription.tenant, utc(2026, 11, 1),
                                        now=utc(2026, 11, 2))
    # then October is unchanged and November carries the difference, once
    october.refresh_from_db()
    assert october.total == Decimal("2.00")
    adjustment = lines_of(november)[("vcpus", True)]
    assert (adjustment.quantity, adjustment.amount) == (2, Decimal("1.00"))
    assert adjustment.usage_period == utc(2026, 10, 1)
    invoices.refresh_invoice(subscription.tenant, utc(2026, 11, 1), now=utc(2026, 11, 3))
    assert november.lines.filter(adjustment=True).count() == 1


def test_each_line_rounds_half_up_and_the_total_is_their_sum():
    with time_machine.travel(utc(2026, 11, 1), tick=False):
        plan = PlanFactory(price_monthly=Decimal("0"))
        subscription = SubscriptionFactory(plan=plan)
    prices.record_plan_prices(plan, before=None, usage=[
        {"meter": "vcpus", "unit_price": "0.005"}, {"meter": "vms", "unit_price": "0.005"}],
        at=utc(2026, 11, 1))
    usage(subscription, "vcpus", 1, start=utc(2026, 11, 2))   # 0.005 -> 0.01
    usage(subscription, "vms", 1, start=utc(2026, 11, 2))     # 0.005 -> 0.01
    invoice = invoices.refresh_invoice(subscription.tenant, utc(2026, 11, 1),
                                       now=utc(2026, 11, 3))
    assert [line.amount for line in invoice.lines.all()] == [Decimal("0.01")] * 2
    assert invoice.total == Decimal("0.02")  # not round(0.010) = 0.01


def test_a_reprocess_window_must_be_whole_minutes_in_the_past_and_in_order():
    now = utc(2026, 11, 20)
    for start, end in [(utc(2026, 11, 2), utc(2026, 11, 1)),
                       (utc(2026, 11, 1), utc(2026, 11, 21)),
                       (utc(2026, 11, 1, 0, 0, 30), utc(2026, 11, 2))]:
        with pytest.raises(Invalid):
            invoices.reprocess(start, end, acting_user=None, now=now)


def test_a_plan_price_change_keeps_the_old_price_for_the_minutes_before_it():
    with time_machine.travel(utc(2026, 11, 1), tick=False):
        plan = PlanFactory(price_monthly=Decimal("30.00"))
        subscription = SubscriptionFactory(plan=plan)
    before = {"monthly": plan.price_monthly}
    plan = Plan.objects.get(pk=plan.pk)
    plan.price_monthly = Decimal("60.00")
    plan.save()
    prices.record_plan_prices(plan, before=before, at=utc(2026, 11, 16))
    invoice = invoices.refresh_invoice(subscription.tenant, utc(2026, 11, 1),
                                       now=utc(2026, 12, 1))
    assert invoice.total == Decimal("45.00")  # 15 days at 30, 15 days at 60


def test_price_usage_names_each_meters_quantity_included_billable_and_amount():
    # given a plan that prices vCPU-minutes, not memory, and burst at its burst price
    subscription = burst_subscription()
    prices.record_plan_prices(subscription.plan, before=None,
                              usage=[{"meter": "vcpus", "unit_price": "0.001"}],
                              at=utc(2026, 11, 1))
    usage(subscription, "vcpus", 2, start=utc(2026, 11, 3), minutes=5)
    usage(subscription, "memory_mb", 512, start=utc(2026, 11, 3), minutes=5)
    usage(subscription, "burst.vcpus", 1, start=utc(2026, 11, 3), minutes=2)
    rows = UsageRecord.objects.filter(subscription=subscription)
    # when the usage endpoint prices a window's rows (a queryset, or any rows)
    for given in (rows, list(rows)):
        meters = {m["meter"]: m for m in rating.price_usage(subscription, given)}
        # then each meter says what the monthly price covers and what it costs
        assert meters["vcpus"] == {"meter": "vcpus", "unit": "vCPU-minute",
                                   "quantity": Decimal("10"), "included": Decimal("0"),
                                   "billable": Decimal("10"), "amount": Decimal("0.01")}
        assert (meters["memory_mb"]["included"], meters["memory_mb"]["amount"]) == (
            Decimal("2560"), Decimal("0.00"))
        assert meters["burst.vcpus"]["amount"] == Decimal("0.04")  # 2 x 0.021 = 0.042
    assert rating.price_usage(subscription, UsageRecord.objects.none()) == []


def test_an_addon_detached_mid_month_is_billed_the_minutes_it_was_attached():
    # given a 30.00 add-on attached on the 1st of a 30-day month and detached on the 11th
    with time_machine.travel(utc(2026, 11, 1), tick=False):
        addon = AddOnFactory(price_monthly=Decimal("30.00"))
        subscription = SubscriptionFactory(plan=PlanFactory(price_monthly=Decimal("0"),
                                                            addons=[addon]))
        services.attach_addon(subscription, addon_id=addon.pk, acting_user=None)
    with time_machine.travel(utc(2026, 11, 11), tick=False):
        services.detach_addon(subscription, addon_id=addon.pk, acting_user=None)
    # when the month is rated
    invoice = invoices.refresh_invoice(subscription.tenant, utc(2026, 11, 1),
                                       now=utc(2026, 12, 1))
    # then the add-on is billed its ten days
    [line] = invoice.lines.all()
    assert (line.item, line.amount) == (str(addon.pk), Decimal("10.00"))
