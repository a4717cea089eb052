"""Web UI of the catalog: the tenant's plan catalogue; the provider's plans and add-ons.
(Subscriptions: ``provisioning.views.subscriptions``.)"""

from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from django.urls import reverse, reverse_lazy

from base.web.views import (
    ProviderPortalMixin,
    SearchListMixin,
    ServiceActionView,
    ServiceObjectFormView,
    TenantPortalMixin,
)
from plans import services
from plans.forms import AddOnForm, PlanForm
from plans.models import AddOn, Plan, PlanState, SubscriptionState

__all__ = [
    "PlanCatalogueView",
    "ProviderAddOnFormView",
    "ProviderAddOnListView",
    "ProviderPlanDecommissionView",
    "ProviderPlanFormView",
    "ProviderPlanListView",
    "ProviderPlanPublishView",
]

# --- Tenant: catalogue ---------------------------------------------------------------

class PlanCatalogueView(TenantPortalMixin, SearchListMixin):
    section = "plans"
    template_name = "plans/catalogue.html"
    search_fields = ("name", "description")
    paginate_by = 12

    def get_queryset(self):
        return self.search(services.visible_plans(self.tenant)
                           .prefetch_related("templates", "addons")
                           .order_by("price_monthly", "name"))


# --- Provider: plans and add-ons ------------------------------------------------------

class ProviderPlanListView(ProviderPortalMixin, SearchListMixin):
    section = "plans"
    template_name = "plans/provider/plan_list.html"
    search_fields = ("name", "cloud__name", "state")

    def get_queryset(self):
        plans = (Plan.objects.select_related("cloud")
                 .annotate(subscription_count=Count("subscriptions",
                                                    filter=~Q(subscriptions__state=
                                                              SubscriptionState.DELETED)))
                 .order_by("price_monthly", "name"))
        if state := self.request.GET.get("state"):
            plans = plans.filter(state=state)
        return self.search(plans)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(states=PlanState.choices, state=self.request.GET.get("state", ""))
        return context


class ProviderPlanFormView(ProviderPortalMixin, ServiceObjectFormView):
    section = "plans"
    queryset = Plan.objects.all()
    form_class = PlanForm
    title = "Plan"
    success_url = reverse_lazy("provider:plan_list")
    success_message = "The plan “{object.name}” was saved."

    def save(self, plan, form):
        return services.save_plan(plan, fields=form.changed_fields(), **form.relations(),
                                  acting_user=self.request.user)


class PlanActionView(ProviderPortalMixin, ServiceActionView):
    section = "plans"

    def get_object(self):
        return get_object_or_404(Plan, pk=self.kwargs["pk"])

    def get_success_url(self):
        return reverse("provider:plan_list")


class ProviderPlanPublishView(PlanActionView):
    confirm_label = "Publish"

    def perform(self, plan):
        services.save_plan(plan, fields={"state": PlanState.PUBLIC},
                           acting_user=self.request.user)
        return f"“{plan.name}” is public: every tenant can subscribe to it."


class ProviderPlanDecommissionView(PlanActionView):
    confirm = ("Decommission “{object.name}”? It takes no new subscriptions; existing "
               "subscriptions keep running.")
    confirm_label = "Decommission"

    def perform(self, plan):
        services.save_plan(plan, fields={"state": PlanState.DECOMMISSIONED},
                           acting_user=self.request.user)
        return f"“{plan.name}” is decommissioned."


class ProviderAddOnListView(ProviderPortalMixin, SearchListMixin):
    section = "addons"
    template_name = "plans/provider/addon_list.html"
    search_fields = ("name", "kind", "recovery_cloud__name")

    def get_queryset(self):
        return self.search(AddOn.objects.select_related("recovery_cloud")
                           .annotate(plan_count=Count("plans", distinct=True))
                           .order_by("name"))


class ProviderAddOnFormView(ProviderPortalMixin, ServiceObjectFormView):
    section = "addons"
    queryset = AddOn.objects.all()
    form_class = AddOnForm
    title = "Add-on"
    success_url = reverse_lazy("provider:addon_list")
    success_message = "The add-on “{object.name}” was saved."

    def save(self, addon, form):
        return services.save_addon(addon, fields=form.changed_fields(),
                                   acting_user=self.request.user)
