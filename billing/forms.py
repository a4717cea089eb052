"""Forms of billing's pages: a subscription's burst, a month, a window to rate again."""

from decimal import Decimal

from django import forms

__all__ = ["BurstForm", "PeriodForm", "ReprocessForm"]


class BurstForm(forms.Form):
    enabled = forms.BooleanField(required=False, label="Burst above the quota")
    monthly_cap = forms.DecimalField(required=False, min_value=Decimal("0"), max_digits=10,
                                     decimal_places=2, label="Monthly cap",
                                     help_text="Burst stops once this month's burst costs "
                                               "reach it; running VMs keep running.")


class PeriodForm(forms.Form):
    period = forms.RegexField(r"^\d{4}-(0[1-9]|1[0-2])$", label="Month",
                              help_text="YYYY-MM (UTC).")


class ReprocessForm(forms.Form):
    start = forms.DateTimeField(label="From (UTC)")
    end = forms.DateTimeField(label="To (UTC)")
