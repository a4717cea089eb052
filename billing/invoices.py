"""Invoices: one per tenant and month; the draft of a month is rated again from scratch at
each refresh (beat, cheap: a few sums per subscription), an issued one never changes.

Late usage of an issued month (or a re-rated window) is found by rating that month again
and comparing with what its invoices already billed: the difference becomes adjustment
lines on the next draft, so an issued invoice stays what the tenant was sent.
"""

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from base.errors import Conflict, ErrorCode, Invalid
from billing.prices import BURST_PREFIX, PriceBook, currency
from billing.rating import Charge, month_of, next_month, rate, round_money
from billing.rating_models import Invoice, InvoiceLine, InvoiceState, RatingReprocess
from plans import services as plan_services
from plans.models import Subscription, SubscriptionPlanPeriod, SubscriptionState
from tenants.models import Tenant, User

__all__ = ["issue_period", "parse_period", "refresh_drafts", "refresh_invoice", "reprocess",
           "to_csv"]

# How many issued months back late usage is looked for at each refresh (a re-rated
# window reaches further: the months it covers).
LATE_USAGE_MONTHS = 2
CSV_COLUMNS = ["invoice", "period_start", "period_end", "state", "currency", "subscription",
               "description", "meter", "quantity", "unit", "unit_price", "amount",
               "line_period_start", "line_period_end", "adjustment"]


def parse_period(value: str) -> datetime:
    """``YYYY-MM`` as the month's first instant (UTC); Invalid otherwise."""
    try:
        return datetime.strptime(value or "", "%Y-%m").replace(tzinfo=UTC)
    except (TypeError, ValueError) as exc:
        raise Invalid("A period is a month: YYYY-MM.",
                      errors={"period": ["Give a month as YYYY-MM."]}) from exc


def _subscriptions_in(tenant: Tenant, start: datetime, end: datetime) -> list[Subscription]:
    """The tenant's subscriptions that held a plan at some moment of ``[start, end)``."""
    ids = SubscriptionPlanPeriod.objects.filter(
        Q(end__isnull=True) | Q(end__gt=start), subscription__tenant=tenant,
        start__lt=end).values("subscription_id")
    return list(Subscription.objects.filter(Q(pk__in=ids) | Q(
        tenant=tenant, created_at__lt=end, plan_periods__isnull=True)).exclude(
        Q(state=SubscriptionState.DELETED) & Q(state_changed_at__lt=start))
        .select_related("plan").distinct().order_by("created_at"))


def _line(invoice: Invoice, charge: Charge, *, usage_period: datetime,
          adjustment: bool = False, quantity: Decimal | None = None) -> InvoiceLine:
    quantity = charge.quantity if quantity is None else quantity
    exact = charge.exact if quantity is charge.quantity else quantity * charge.unit_price
    description = charge.description
    if adjustment:
        description = f"Adjustment for {usage_period:%Y-%m}: {description}"
    return InvoiceLine(invoice=invoice, subscription=charge.subscription,
                       description=description[:200], meter=charge.meter, item=charge.item,
                       quantity=quantity, unit=charge.unit, unit_price=charge.unit_price,
                       amount=round_money(exact), period_start=charge.period_start,
                       period_end=charge.period_end, usage_period=usage_period,
                       adjustment=adjustment)


def _month_charges(tenant: Tenant, start: datetime, *, now: datetime,
                   book: PriceBook) -> list[Charge]:
    end = next_month(start)
    return [charge for subscription in _subscriptions_in(tenant, start, end)
            for charge in rate(subscription, start, end, now=now, book=book)]


def _adjustments(invoice: Invoice, *, now: datetime, book: PriceBook) -> list[InvoiceLine]:
    """What issued months of the tenant owe now beyond what their invoices billed."""
    earliest = invoice.period_start
    for _ in range(LATE_USAGE_MONTHS):
        earliest = month_of(earliest - timedelta(days=1))
    issued = Invoice.objects.filter(tenant=invoice.tenant, state=InvoiceState.ISSUED,
                                    period_start__lt=invoice.period_start)
    months = set(issued.filter(period_start__gte=earliest).values_list("period_start",
                                                                       flat=True))
    for window in RatingReprocess.objects.filter(start__lt=invoice.period_start):
        for done in issued.filter(period_start__lt=window.end,
                                  period_end__gt=window.start, issued_at__lt=window.created_at):
            months.add(done.period_start)
    lines = []
    for month in sorted(months):
        billed: dict[tuple, Decimal] = defaultdict(Decimal)
        for line in InvoiceLine.objects.filter(invoice__tenant=invoice.tenant,
                                               invoice__state=InvoiceState.ISSUED,
                                               usage_period=month):
            billed[(line.subscription_id, line.meter, line.item, line.unit_price)] += \
                line.quantity
        charges = {c.key: c for c in _month_charges(invoice.tenant, month, now=now,
                                                    book=book)}
        for key in sorted(set(billed) | set(charges), key=str):
            owed = charges[key].quantity if key in charges else Decimal("0")
            difference = owed - billed.get(key, Decimal("0"))
            if not difference:
                continue
            charge = charges.get(key) or _charge_billed(invoice.tenant, month, key)
            lines.append(_line(invoice, charge, usage_period=month, adjustment=True,
                               quantity=difference))
    return lines


def _charge_billed(tenant: Tenant, month: datetime, key: tuple) -> Charge:
    """A charge billed before that rating no longer finds (re-rated at another price)."""
    line = InvoiceLine.objects.filter(
        invoice__tenant=tenant, invoice__state=InvoiceState.ISSUED, usage_period=month,
        subscription_id=key[0], meter=key[1], item=key[2], unit_price=key[3]).select_related(
        "subscription").first()
    return Charge(line.subscription, line.meter, line.item,
                  line.description.split(": ", 1)[-1] if line.adjustment else line.description,
                  line.unit_price, line.period_start, line.period_end)


@transaction.atomic
def refresh_invoice(tenant: Tenant, month: datetime, *, now: datetime | None = None) -> Invoice:
    """Rate the tenant's month again into its draft (created on first use); an issued
    invoice is returned unchanged."""
    now = now or timezone.now()
    month = month_of(month)
    invoice, _ = Invoice.objects.select_for_update().get_or_create(
        tenant=tenant, period_start=month,
        defaults={"period_end": next_month(month), "currency": currency()})
    if invoice.state == InvoiceState.ISSUED:
        return invoice
    book = PriceBook()
    lines = [_line(invoice, charge, usage_period=month)
             for charge in _month_charges(tenant, month, now=now, book=book)]
    lines += _adjustments(invoice, now=now, book=book)
    invoice.lines.all().delete()
    InvoiceLine.objects.bulk_create(lines)
    invoice.total = sum((line.amount for line in lines), Decimal("0.00"))
    invoice.currency = currency()
    invoice.refreshed_at = now
    invoice.save(update_fields=["total", "currency", "refreshed_at"])
    return invoice


def _tenants_in(start: datetime, end: datetime):
    ids = SubscriptionPlanPeriod.objects.filter(
        Q(end__isnull=True) | Q(end__gt=start), start__lt=end).values("subscription__tenant")
    return Tenant.objects.filter(Q(pk__in=ids) | Q(invoices__period_start=start)).distinct()


def _burst_spending(invoice: Invoice) -> dict:
    spent: dict = defaultdict(Decimal)
    for line in invoice.lines.filter(adjustment=False, meter__startswith=BURST_PREFIX):
        spent[line.subscription_id] += line.amount
    return spent


def refresh_drafts(*, now: datetime | None = None) -> int:
    """Beat: refresh every draft of the running month (and drafts of closed months not yet
    issued), then keep each subscription's burst spending and cap (``plans``)."""
    now = now or timezone.now()
    month = month_of(now)
    count = 0
    spent: dict = defaultdict(Decimal)
    for tenant in _tenants_in(month, next_month(month)):
        invoice = refresh_invoice(tenant, month, now=now)
        spent.update(_burst_spending(invoice))
        count += 1
    for stale in Invoice.objects.filter(state=InvoiceState.DRAFT, period_start__lt=month) \
            .select_related("tenant"):
        refresh_invoice(stale.tenant, stale.period_start, now=now)
        count += 1
    watched = Subscription.objects.filter(Q(pk__in=list(spent)) | Q(burst_spent__gt=0)
                                          | Q(burst_capped=True))
    for subscription_id in watched.values_list("pk", flat=True):
        plan_services.record_burst_spending(subscription_id, spent.get(subscription_id,
                                                                      Decimal("0")))
    return count


@transaction.atomic
def issue_period(period: datetime, *, acting_user: User | None,
                 now: datetime | None = None) -> list[Invoice]:
    """Issue every tenant's invoice of a closed month (rated one last time, in full).
    Once: a month's issued invoices never change; the running month is 409."""
    now = now or timezone.now()
    start = month_of(period)
    end = next_month(start)
    if end > now:
        raise Conflict("Only a closed month can be issued: this one has not ended.",
                       code=ErrorCode.INVOICE_PERIOD_OPEN)
    invoices = []
    for tenant in _tenants_in(start, end):
        invoice = refresh_invoice(tenant, start, now=now)
        if invoice.state == InvoiceState.DRAFT:
            invoice.state = InvoiceState.ISSUED
            invoice.issued_at = now
            invoice.save(update_fields=["state", "issued_at"])
        invoices.append(invoice)
    return invoices


@transaction.atomic
def reprocess(start: datetime, end: datetime, *, acting_user: User | None,
              now: datetime | None = None) -> RatingReprocess:
    """Rate ``[start, end)`` again with today's prices: drafts at once; issued months get
    the difference on the next draft."""
    now = now or timezone.now()
    errors = {}
    for name, value in (("from", start), ("to", end)):
        if value.second or value.microsecond:
            errors[name] = ["Give a whole minute."]
        elif value > now:
            errors[name] = ["Not in the future."]
    if not errors and end <= start:
        errors["to"] = ["Must be after `from`."]
    if errors:
        raise Invalid("The window to rate again is not valid.", errors=errors)
    window = RatingReprocess.objects.create(start=start, end=end, created_at=now,
                                            requested_by=acting_user)
    month = month_of(now)
    for tenant in _tenants_in(month_of(start), next_month(month)):
        refresh_invoice(tenant, month, now=now)
    for stale in Invoice.objects.filter(state=InvoiceState.DRAFT, period_start__lt=month,
                                        period_end__gt=start).select_related("tenant"):
        refresh_invoice(stale.tenant, stale.period_start, now=now)
    return window


def to_csv(invoices) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for invoice in invoices:
        for line in invoice.lines.all():
            writer.writerow([invoice.pk, invoice.period_start.isoformat(),
                             invoice.period_end.isoformat(), invoice.state, invoice.currency,
                             line.subscription_id, line.description, line.meter,
                             line.quantity, line.unit, line.unit_price, line.amount,
                             line.period_start.isoformat(), line.period_end.isoformat(),
                             "yes" if line.adjustment else "no"])
    return out.getvalue()
