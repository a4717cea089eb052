"""The provider's pages of tenants: members, subscriptions with their VM counts, activity."""

from django.db.models import Count, OuterRef, Q, Subquery
from django.views.generic import DetailView

from base.models import AuditEvent
from base.web import ui
from base.web.views import ProviderPortalMixin, SearchListMixin
from plans.models import SubscriptionState
from provisioning.views.resources import live_vm_count
from tenants.models import Membership, Role, Tenant

__all__ = ["ProviderTenantDetailView", "ProviderTenantListView"]


def _live_subscriptions():
    return Count("subscriptions", filter=~Q(subscriptions__state=SubscriptionState.DELETED),
                 distinct=True)


class ProviderTenantListView(ProviderPortalMixin, SearchListMixin):
    section = "tenants"
    template_name = "tenants/provider/tenant_list.html"

    def get_queryset(self):
        owner = (Membership.objects.filter(tenant=OuterRef("pk"), role=Role.OWNER)
                 .order_by("created_at").values("user__email")[:1])
        return self.search(Tenant.objects.annotate(
            member_count=Count("memberships", distinct=True),
            subscription_count=_live_subscriptions(),
            owner_email=Subquery(owner)).order_by("name"))

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
