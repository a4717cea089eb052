"""Web UI of billing: a subscription's burst switch and this month's burst spending, and
the tenant's invoices (CSV download); for the provider, a month's invoices with revenue
per plan and per tenant, issuing the month and re-rating a window.

Every change calls a service (``plans.services.configure_burst``, ``billing.invoices``),
as the API does.
"""

from collections import defaultdict
from datetime import UTC
from decimal import Decimal
from functools import cached_property

from django.contrib import messages
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django.views.generic import DetailView, FormView, ListView

from base.errors import ServiceError
from base.web.forms import add_service_errors
from base.web.views import ProviderPortalMixin, ServiceFormMixin, TenantPortalMixin
from billing import invoices
from billing.collection import WINDOW_HOURS, collection_status
from billing.forms import BurstForm, PeriodForm, ReprocessForm
from billing.prices import currency
from billing.rating import month_of
from billing.rating_models import MONTHLY, Invoice, InvoiceState
from plans import quota
from plans import services as plan_services
from plans.models import Plan, Subscription, SubscriptionPlanPeriod

__all__ = ["BurstView", "InvoiceCsvView", "InvoiceDetailView", "InvoiceListView",
           "ProviderInvoiceListView", "ProviderIssueView", "ProviderReprocessView"]


def _csv_response(invoice_list, filename: str) -> HttpResponse:
    response = HttpResponse(invoices.to_csv(invoice_list), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- Tenant ---------------------------------------------------------------------------

class BurstView(TenantPortalMixin, ServiceFormMixin, FormView):
    """A subscription's burst: the plan's offer, the switch with its cap, this month's
    spending."""

    template_name = "billing/invoices_burst.html"
    form_class = BurstForm
    section = "subscriptions"
    write_permission = "plans.manage_subscriptions"
    success_message = "Burst settings saved."

    @cached_property
    def subscription(self) -> Subscription:
        return get_object_or_404(Subscription.objects.restrict(self.tenant)
                                 .select_related("plan"), pk=self.kwargs["pk"])

    def get_initial(self):
        return {"enabled": self.subscription.burst_enabled,
                "monthly_cap": self.subscription.burst_monthly_cap}

    def perform(self, form):
        return plan_services.configure_burst(
            self.subscription, enabled=form.cleaned_data["enabled"],
            monthly_cap=form.cleaned_data["monthly_cap"], acting_user=self.request.user)

    def get_success_url(self):
        return reverse("subscription_burst", args=[self.subscription.pk])

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        plan = self.subscription.plan
        room = quota.burst_room(self.subscription)
        context.update(
            subscription=self.subscription, plan=plan, currency=currency(),
            offer=[{"dimension": d, "room": n, "open": room.get(d, 0),
                    "price": plan.burst_prices()[d]}
                   for d, n in plan.burst_limits().items() if n],
            can_change=self.can("plans.manage_subscriptions"))
        return context


class InvoiceListView(TenantPortalMixin, ListView):
    template_name = "billing/invoices.html"
    section = "invoices"
    paginate_by = 24

    def get_queryset(self):
        return Invoice.objects.restrict(self.tenant).order_by("-period_start")


class InvoiceDetailView(TenantPortalMixin, DetailView):
    template_name = "billing/invoices_detail.html"
    section = "invoices"
    context_object_name = "invoice"

    def get_queryset(self):
        return Invoice.objects.restrict(self.tenant).prefetch_related("lines__subscription")


class InvoiceCsvView(TenantPortalMixin, View):
    def get(self, request, pk):
        invoice = get_object_or_404(Invoice.objects.restrict(self.tenant), pk=pk)
        return _csv_response([invoice], f"invoice-{invoice.period_start:%Y-%m}.csv")


# --- Provider -------------------------------------------------------------------------

def _revenue(invoice_list) -> tuple[list, list]:
    """A month's revenue per plan (a line's plan: a monthly line's own, a usage line's the
    subscription had then) and per tenant."""
    per_tenant: dict = defaultdict(Decimal)
    per_plan: dict = defaultdict(Decimal)
    periods = defaultdict(list)
    lines = [line for invoice in invoice_list for line in invoice.lines.all()]
    for period in SubscriptionPlanPeriod.objects.filter(
            subscription_id__in={line.subscription_id for line in lines}):
        periods[period.subscription_id].append(period)
    plans = {str(p.pk): p.name for p in Plan.objects.all()}
    names = {invoice.tenant_id: invoice.tenant.name for invoice in invoice_list}
    for invoice in invoice_list:
        for line in invoice.lines.all():
            per_tenant[invoice.tenant_id] += line.amount
            plan_id = line.item if line.meter == MONTHLY and line.item in plans else next(
                (str(p.plan_id) for p in periods[line.subscription_id]
                 if p.start <= line.period_start and (p.end is None
                                                      or line.period_start < p.end)), "")
            per_plan[plans.get(plan_id, "Add-ons and other")] += line.amount
    return (sorted(per_plan.items(), key=lambda kv: -kv[1]),
            sorted(((names[t], a) for t, a in per_tenant.items()), key=lambda kv: -kv[1]))


class ProviderInvoiceListView(ProviderPortalMixin, ListView):
    template_name = "billing/invoices_provider.html"
    section = "invoices"
    paginate_by = 50

    @cached_property
    def period(self):
        form = PeriodForm(self.request.GET)
        if form.is_valid():
            return invoices.parse_period(form.cleaned_data["period"])
        return month_of(timezone.now())

    def get_queryset(self):
        return (Invoice.objects.filter(period_start=self.period).select_related("tenant")
                .prefetch_related("lines").order_by("tenant__name"))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        per_plan, per_tenant = _revenue(list(self.get_queryset()))
        month = f"{self.period:%Y-%m}"
        context.update(period=month, per_plan=per_plan, per_tenant=per_tenant,
                       currency=currency(), issue_form=PeriodForm(initial={"period": month}),
                       reprocess_form=ReprocessForm(initial={"start": self.period}),
                       total=sum((i.total for i in self.get_queryset()), Decimal("0")),
                       closed=self.period < month_of(timezone.now()),
                       drafts=self.get_queryset().filter(state=InvoiceState.DRAFT).count(),
                       collection=collection_status(), window_hours=WINDOW_HOURS)
        return context

    def render_to_response(self, context, **kwargs):
        if self.request.GET.get("format") == "csv":
            return _csv_response(self.get_queryset(), f"invoices-{context['period']}.csv")
        return super().render_to_response(context, **kwargs)


class _ProviderPost(ProviderPortalMixin, View):
    form_class = PeriodForm

    def post(self, request):
        form = self.form_class(request.POST)
        back = reverse("provider-billing:invoice_list")
        if not form.is_valid():
            messages.error(request, " ".join(m for ms in form.errors.values() for m in ms))
            return HttpResponseRedirect(back)
        try:
            message, back = self.perform(form.cleaned_data, back)
        except ServiceError as exc:
            add_service_errors(form, exc)
            messages.error(request, exc.detail)
        else:
            messages.success(request, message)
        return HttpResponseRedirect(back)


class ProviderIssueView(_ProviderPost):
    def perform(self, data, back):
        issued = invoices.issue_period(invoices.parse_period(data["period"]),
                                       acting_user=self.request.user)
        return (f"{data['period']}: {len(issued)} invoices issued.",
                f"{back}?period={data['period']}")


class ProviderReprocessView(_ProviderPost):
    form_class = ReprocessForm

    def perform(self, data, back):
        start, end = (data[k].astimezone(UTC) for k in ("start", "end"))
        invoices.reprocess(start, end, acting_user=self.request.user)
        return f"Rated {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} again with today's " \
               "prices.", f"{back}?period={start:%Y-%m}"
