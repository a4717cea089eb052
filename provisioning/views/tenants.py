"""The provider's pages of tenants: members, subscriptions with their VM counts, activity."""

import re

from django.db.models import Count, OuterRef, Q, Subquery
from django.http import HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.views import View
from django.views.generic import DetailView

from base.models import AuditEvent
from base.web import ui
from base.web.views import ProviderPortalMixin, SearchListMixin
from base.web.widgets import PICK_LIMIT
from plans.models import Subscription, SubscriptionState
from provisioning.views.resources import live_vm_count
from tenants.models import Membership, Role, Tenant

__all__ = ["ProviderTenantDetailView", "ProviderTenantListView", "ProviderTenantPickView"]

_FIELD = re.compile(r"^[a-z_][a-z0-9_-]{0,60}$")


class ProviderTenantListView(ProviderPortalMixin, SearchListMixin):
    section = "tenants"
    template_name = "tenants/provider/tenant_list.html"

    def get_queryset(self):
        owner = (Membership.objects.filter(tenant=OuterRef("pk"), role=Role.OWNER)
                 .order_by("created_at").values("user__email")[:1])
        return self.search(Tenant.objects.annotate(owner_email=Subquery(owner))
                           .order_by("name", "pk"))

    def annotate_page(self, rows):
        ids = [tenant.pk for tenant in rows]
        members = dict(Membership.objects.filter(tenant__in=ids).order_by()
                       .values("tenant_id").annotate(n=Count("pk"))
                       .values_list("tenant_id", "n"))
        subscriptions = dict(Subscription.objects.filter(tenant__in=ids).exclude(
            state=SubscriptionState.DELETED).order_by().values("tenant_id")
            .annotate(n=Count("pk")).values_list("tenant_id", "n"))
        for tenant in rows:
            tenant.member_count = members.get(tenant.pk, 0)
            tenant.subscription_count = subscriptions.get(tenant.pk, 0)

    def search(self, queryset):
        if not self.query:
            return queryset
        members = Membership.objects.filter(user__email__icontains=self.query)
        return queryset.filter(Q(name__icontains=self.query)
                               | Q(pk__in=members.values("tenant_id")))


class ProviderTenantDetailView(ProviderPortalMixin, DetailView):
    section = "tenants"
    template_name = "tenants/provider/tenant_detail.html"
    queryset = Tenant.objects.all()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tenant = self.object
        context.update(
            members=tenant.memberships.select_related("user").order_by("created_at"),
            subscriptions=tenant.subscriptions.select_related("plan")
            .annotate(vm_count=live_vm_count()).order_by("-created_at"),
            lines=ui.activity(AuditEvent.objects.filter(tenant=tenant)
                              .select_related("actor")[:10]),
        )
        return context


class ProviderTenantPickView(ProviderPortalMixin, View):
    """The options a ``SearchPicker`` of tenants offers for what was typed: the first
    ``PICK_LIMIT`` tenants by name that contain it."""

    section = "tenants"

    def get(self, request):
        name, input_type = request.GET.get("name", ""), request.GET.get("type", "checkbox")
        field_id = request.GET.get("id", name)
        if not (_FIELD.match(name) and _FIELD.match(field_id)) or input_type not in (
                "checkbox", "radio"):
            return HttpResponseBadRequest("name, id and type (checkbox or radio) are needed.")
        query = request.GET.get(f"{name}_q", "").strip()[:100]
        tenants = Tenant.objects.order_by("name")
        if query:
            tenants = tenants.filter(name__icontains=query)
        found = list(tenants.only("pk", "name")[:PICK_LIMIT + 1])
        return TemplateResponse(request, "portal/widgets/search_picker_found.html", {
            "found": found[:PICK_LIMIT], "more": len(found) > PICK_LIMIT, "q": query,
            "name": name, "id": field_id, "input_type": input_type, "what": "tenant"})
