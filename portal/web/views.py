"""The two landing pages, which draw on every app: the tenant's dashboard and the
provider's overview of capacity and allocation."""

from django.db.models import Count, Prefetch, Q
from django.views.generic import TemplateView

from base.models import AuditEvent
from base.web import ui
from base.web.views import ProviderPortalMixin, TenantPortalMixin
from fabric.models import Cloud, Health, Stamp
from plans import quota
from plans.models import Plan, PlanState, Subscription, SubscriptionState
from provisioning import presenters
from provisioning.models import Job, JobState, Network, NetworkState, VirtualMachine, VmState
from provisioning.views.jobs import jobs_with_steps
from tenants.models import Tenant

__all__ = ["DashboardView", "ProviderOverviewView"]

DASHBOARD_SUBSCRIPTIONS = 6
DASHBOARD_EVENTS = 8
DASHBOARD_JOBS = 5


class DashboardView(TenantPortalMixin, TemplateView):
    """Each subscription's quota as bars, the latest jobs and what happened lately. While
    a job runs, the page follows it (the quota changes when it ends)."""

    section = "dashboard"
    template_name = "portal/dashboard.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        live = Subscription.objects.exclude(state=SubscriptionState.DELETED).restrict(self.tenant)
        subscriptions = (live.select_related("plan").prefetch_related("quota_rows")
                         .order_by("-created_at")[:DASHBOARD_SUBSCRIPTIONS])
        events = AuditEvent.objects.select_related("actor").restrict(self.tenant)[:DASHBOARD_EVENTS]
        jobs = presenters.job_rows(jobs_with_steps().restrict(self.tenant)
                                   .select_related("subscription")
                                   .order_by("-created_at")[:DASHBOARD_JOBS])
        context.update(
            cards=[(s, ui.bars(quota.summary(s))) for s in subscriptions],
            subscription_count=live.count(),
            member_count=self.tenant.memberships.count(),
            vm_count=VirtualMachine.objects.exclude(state=VmState.DELETED).restrict(self.tenant).count(),
            network_count=Network.objects.exclude(state=NetworkState.DELETED).restrict(self.tenant).count(),
            lines=ui.activity(events),
            jobs=jobs,
            busy=any(not row.finished for row in jobs),
        )
        return context


class ProviderOverviewView(ProviderPortalMixin, TemplateView):
    """Capacity and allocation per stamp and cloud, and the size of the business."""

    section = "overview"
    template_name = "portal/provider_overview.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        clouds = Cloud.objects.prefetch_related("capacity_rows").order_by("name")
        stamps = Stamp.objects.prefetch_related(Prefetch("clouds", queryset=clouds))
        context.update(
            stamps=[(stamp, ui.stamp_bars(stamp.capacity),
                     [(cloud, ui.ledger_bars(cloud.capacity_rows.all()))
                      for cloud in stamp.clouds.all()])
                    for stamp in stamps],
            counts=Stamp.objects.aggregate(
                stamps=Count("pk"), healthy=Count("pk", filter=Q(health=Health.HEALTHY))),
            tenant_count=Tenant.objects.count(),
            subscription_counts=Subscription.objects.aggregate(
                active=Count("pk", filter=Q(state=SubscriptionState.ACTIVE)),
                suspended=Count("pk", filter=Q(state=SubscriptionState.SUSPENDED))),
            public_plan_count=Plan.objects.filter(state=PlanState.PUBLIC).count(),
            # one count per state, each on the (state, heartbeat) index: a filtered
            # aggregate would read every job
            job_counts={"running": Job.objects.filter(state=JobState.RUNNING).count(),
                        "failed": Job.objects.filter(state=JobState.FAILED).count()},
        )
        return context
