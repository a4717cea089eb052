"""Web UI of subscriptions: the tenant's subscriptions and their add-ons, the provider's
list of every subscription with suspend and resume. Every change goes through
``provisioning.lifecycle``."""

from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.generic import DetailView, FormView

from base.web import ui
from base.web.views import (
    ProviderPortalMixin,
    SearchListMixin,
    ServiceActionView,
    ServiceFormMixin,
    TenantPortalMixin,
)
from plans import quota, services
from plans.forms import AddOnChoiceForm, PlanChoiceForm, SubscribeForm
from plans.models import Subscription, SubscriptionAddOn, SubscriptionState
from provisioning import lifecycle
from provisioning.forms import TAKES_NEW_WORK
from provisioning.models import NetworkState, VmState
from provisioning.views.resources import commission_pending, live_vm_count, live_vm_counts

__all__ = [
    "AddOnAttachView",
    "AddOnDetachView",
    "PlanChangeView",
    "ProviderSubscriptionListView",
    "ProviderSubscriptionResumeView",
    "ProviderSubscriptionSuspendView",
    "SubscribeView",
    "SubscriptionDetailView",
    "SubscriptionListView",
]

_LIVE = ~Q(state=SubscriptionState.DELETED)
SUBSCRIPTION_VMS_SHOWN = 10


# --- Tenant ---------------------------------------------------------------------------

class SubscribeView(TenantPortalMixin, ServiceFormMixin, FormView):
    section = "plans"
    template_name = "plans/subscribe.html"
    form_class = SubscribeForm
    permission_required = write_permission = "plans.manage_subscriptions"
    success_message = ("You subscribed to {object.plan}: “{object.name}” is being set up on "
                       "its stamp.")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        plan = get_object_or_404(services.visible_plans(self.tenant)
                                 .prefetch_related("templates", "addons"), pk=self.kwargs["pk"])
        context.update(plan=plan, quota_bars=ui.bars(
            {d: {"used": 0, "limit": n} for d, n in plan.quotas().items()}))
        return context

    def perform(self, form):
        subscription, _ = lifecycle.subscribe(self.tenant, plan_id=self.kwargs["pk"],
                                              name=form.cleaned_data["name"],
                                              acting_user=self.request.user)
        return subscription

    def get_success_url(self):
        return reverse("subscription_detail", args=[self.object.pk])


class SubscriptionListView(TenantPortalMixin, SearchListMixin):
    section = "subscriptions"
    template_name = "plans/subscription_list.html"
    search_fields = ("name", "plan__name", "state")

    def get_queryset(self):
        return self.search(Subscription.objects.filter(_LIVE).restrict(self.tenant)
                           .select_related("plan")
                           .annotate(addon_count=Count("addon_links", distinct=True),
                                     vm_count=live_vm_count())
                           .order_by("-created_at"))


class SubscriptionDetailView(TenantPortalMixin, DetailView):
    section = "subscriptions"
    template_name = "plans/subscription_detail.html"

    def get_queryset(self):
        return Subscription.objects.select_related("plan").restrict(self.tenant)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        subscription = self.object
        links = list(subscription.addon_links.select_related("addon"))
        attached = {link.addon_id for link in links}
        vms = subscription.vms.exclude(state=VmState.DELETED)
        context.update(
            quota_bars=ui.bars(quota.summary(subscription)),
            links=links,
            offered=[a for a in subscription.plan.addons.all() if a.pk not in attached],
            other_plans=services.visible_plans(self.tenant)
            .filter(cloud_id=subscription.plan.cloud_id).exclude(pk=subscription.plan_id)
            .order_by("price_monthly", "name"),
            is_active=subscription.state == SubscriptionState.ACTIVE,
            takes_new_work=subscription.state in TAKES_NEW_WORK,
            vms=vms.select_related("network", "template")
            .order_by("-created_at")[:SUBSCRIPTION_VMS_SHOWN],
            vm_count=vms.count(),
            networks=subscription.networks.exclude(state=NetworkState.DELETED)
            .annotate(vm_count=Count("vms", filter=~Q(vms__state=VmState.DELETED)))
            .order_by("-is_default", "name"),
            commission=commission_pending(subscription),
        )
        return context


class SubscriptionActionView(TenantPortalMixin, ServiceActionView):
    section = "subscriptions"
    permission_required = write_permission = "plans.manage_subscriptions"

    def get_object(self):
        return get_object_or_404(Subscription.objects.select_related("plan").restrict(self.tenant),
                                 pk=self.kwargs["pk"])

    def get_success_url(self):
        return reverse("subscription_detail", args=[self.kwargs["pk"]])


class AddOnAttachView(SubscriptionActionView):
    confirm_label = "Attach add-on"
    form_class = AddOnChoiceForm

    def perform(self, subscription):
        link, _ = lifecycle.attach_addon(subscription, addon_id=self.data["addon"],
                                        acting_user=self.request.user)
        return f"“{link.addon}” is attached to {subscription.name}."


class PlanChangeView(SubscriptionActionView):
    """Move the subscription to another plan of its cloud (``services.change_plan``): its
    resources stay; the new quota must hold what it uses."""

    confirm_label = "Change plan"
    form_class = PlanChoiceForm

    def perform(self, subscription):
        changed = services.change_plan(subscription, plan_id=self.data["plan"],
                                       acting_user=self.request.user)
        return f"{subscription.name} is on {changed.plan.name} from now on."


class SubscriptionRetryView(SubscriptionActionView):
    confirm = ("Set “{object.name}” up on its stamp again? The job starts from the "
               "beginning; what the failed run made was undone.")
    confirm_label = "Retry setup"

    def perform(self, subscription):
        lifecycle.retry_commission(subscription, acting_user=self.request.user)
        return f"“{subscription.name}” is being set up on its stamp again."


class AddOnDetachView(SubscriptionActionView):
    confirm = ("Detach “{object.addon}” from {object.subscription.name}? What it adds is "
               "taken away at once; resources above the lower quota keep running, but no "
               "new ones fit until usage drops.")
    confirm_label = "Detach add-on"

    def get_object(self):
        return get_object_or_404(
            SubscriptionAddOn.objects.restrict(self.tenant).select_related("addon", "subscription"),
            subscription_id=self.kwargs["pk"], addon_id=self.kwargs["addon_id"])

    def perform(self, link):
        lifecycle.detach_addon(link.subscription, addon_id=link.addon_id,
                              acting_user=self.request.user)
        return f"“{link.addon}” was detached."


# --- Provider: subscriptions ----------------------------------------------------------

class ProviderSubscriptionListView(ProviderPortalMixin, SearchListMixin):
    section = "subscriptions"
    template_name = "plans/provider/subscription_list.html"
    search_fields = ("name", "tenant__name", "plan__name")

    def get_queryset(self):
        subscriptions = Subscription.objects.select_related("tenant", "plan").order_by(
            "-created_at", "-pk")
        if state := self.request.GET.get("state"):
            subscriptions = subscriptions.filter(state=state)
        return self.search(subscriptions)

    def annotate_page(self, rows):
        counts = live_vm_counts(rows)
        for subscription in rows:
            subscription.vm_count = counts.get(subscription.pk, 0)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(states=SubscriptionState.choices, state=self.request.GET.get("state", ""))
        return context


class ProviderSubscriptionActionView(ProviderPortalMixin, ServiceActionView):
    section = "subscriptions"

    def get_object(self):
        return get_object_or_404(Subscription.objects.select_related("tenant", "plan"),
                                 pk=self.kwargs["pk"])

    def get_success_url(self):
        return reverse("provider:subscription_list")


class ProviderSubscriptionSuspendView(ProviderSubscriptionActionView):
    confirm = ("Suspend “{object.name}” of {object.tenant}? The tenant cannot create "
               "anything in it until it is resumed.")
    confirm_label = "Suspend"

    def perform(self, subscription):
        lifecycle.suspend(subscription, acting_user=self.request.user)
        return f"“{subscription.name}” of {subscription.tenant} is suspended."


class ProviderSubscriptionResumeView(ProviderSubscriptionActionView):
    confirm_label = "Resume"

    def perform(self, subscription):
        lifecycle.resume(subscription, acting_user=self.request.user)
        return f"“{subscription.name}” of {subscription.tenant} is active again."
