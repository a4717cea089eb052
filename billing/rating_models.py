"""Prices with the moment they take effect, re-rated windows, and invoices with their lines.

Amounts are ``Decimal``; a line's amount is rounded half-up to the cent and an invoice's
total is the sum of its lines (API.md "Usage, burst and invoices").
"""

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models

from base.scoping import RestrictedQuerySet
from plans.models import AddOn, Plan, Subscription
from tenants.models import Tenant

__all__ = ["Invoice", "InvoiceLine", "InvoiceState", "Price", "RatingReprocess"]

MONTHLY = "monthly"  # the meter name of a plan's or an add-on's monthly price


class Price(models.Model):
    """What one unit of a meter costs on a plan (or an add-on's monthly price) from
    ``valid_from`` on, until the next row of the same plan and meter.

    A change takes effect from the moment it is made: the minutes before it keep the
    price they had, unless the provider re-rates a window (``RatingReprocess``)."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, null=True, blank=True,
                             related_name="prices")
    addon = models.ForeignKey(AddOn, on_delete=models.CASCADE, null=True, blank=True,
                              related_name="prices")
    meter = models.CharField(max_length=32, help_text="A usage meter, burst.<dimension>, or "
                                                      f"'{MONTHLY}'.")
    unit_price = models.DecimalField(max_digits=20, decimal_places=6)
    valid_from = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["valid_from"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(plan__isnull=False, addon__isnull=True)
                           | models.Q(plan__isnull=True, addon__isnull=False, meter=MONTHLY)),
                name="price_of_a_plan_or_an_addon",
                violation_error_message="A price is a plan's, or an add-on's monthly price."),
            models.CheckConstraint(condition=models.Q(unit_price__gte=0),
                                   name="price_unit_price_not_negative",
                                   violation_error_message="A price is not negative."),
            models.UniqueConstraint(fields=["plan", "addon", "meter", "valid_from"],
                                    name="price_once_per_moment"),
        ]

    def __str__(self):
        return f"{self.plan_id or self.addon_id} {self.meter} {self.unit_price} " \
               f"from {self.valid_from}"


class RatingReprocess(models.Model):
    """The provider asked to rate ``[start, end)`` again with the prices of ``created_at``.

    Drafts covering it are rated so at their next refresh; an issued month covered by it
    gets the difference as adjustment lines on the next draft."""

    start = models.DateTimeField()
    end = models.DateTimeField()
    created_at = models.DateTimeField()
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                     null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(end__gt=models.F("start")),
                                   name="reprocess_window_not_empty",
                                   violation_error_message="A window ends after it starts."),
        ]

    def __str__(self):
        return f"{self.start}..{self.end} at {self.created_at}"


class InvoiceState(models.TextChoices):
    DRAFT = "draft", "Draft"
    ISSUED = "issued", "Issued"


class Invoice(models.Model):
    """A tenant's calendar month (UTC): a draft that grows while it runs, then issued."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="invoices")
    period_start = models.DateTimeField(help_text="The first instant of the month (UTC).")
    period_end = models.DateTimeField(help_text="The first instant of the next month.")
    state = models.CharField(max_length=8, choices=InvoiceState.choices,
                             default=InvoiceState.DRAFT)
    currency = models.CharField(max_length=3)
    total = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    refreshed_at = models.DateTimeField(null=True, blank=True)
    issued_at = models.DateTimeField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "tenant"

    class Meta:
        ordering = ["-period_start", "tenant"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "period_start"],
                                    name="invoice_once_per_tenant_and_month",
                                    violation_error_message="A tenant has one invoice a month."),
            models.CheckConstraint(condition=models.Q(state__in=InvoiceState.values),
                                   name="invoice_state_valid"),
            models.CheckConstraint(
                condition=models.Q(state=InvoiceState.DRAFT) | models.Q(issued_at__isnull=False),
                name="invoice_issued_has_a_date"),
        ]

    def __str__(self):
        return f"{self.tenant_id} {self.period_start:%Y-%m} ({self.state})"


class InvoiceLine(models.Model):
    """One priced item: a plan's or add-on's share of the month, or a meter's billable
    quantity at one unit price. ``adjustment`` lines carry late usage (or re-rated
    prices) of an issued month, ``usage_period`` names that month."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT,
                                     related_name="invoice_lines")
    description = models.CharField(max_length=200)
    meter = models.CharField(max_length=32)
    item = models.CharField(max_length=64, blank=True,
                            help_text="The plan or add-on a monthly line is for.")
    quantity = models.DecimalField(max_digits=20, decimal_places=6)
    unit = models.CharField(max_length=32)
    unit_price = models.DecimalField(max_digits=20, decimal_places=6)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    usage_period = models.DateTimeField(help_text="The first instant of the month the line's "
                                                  "usage belongs to.")
    adjustment = models.BooleanField(default=False)

    class Meta:
        ordering = ["adjustment", "usage_period", "subscription", "meter", "period_start", "pk"]

    def __str__(self):
        return f"{self.description}: {self.amount}"
