"""Web UI of the DR add-on: a subscription's protection for its tenant (state, each VM's
lag against the RPO target, test failover, drill reports), every protection for the
provider (with failover and failback), and the provider's network mappings.

Every action calls ``dr_addon.services``, as the API does. A page with a DR job in
flight polls itself (htmx) until the job has ended.
"""

from datetime import datetime
from functools import cached_property

from django.db.models import Case, Count, Min, Prefetch, Q
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.views.generic import DetailView, ListView

from base.web import ui
from base.web.views import (
    ListFormMixin,
    ProviderPortalMixin,
    SearchListMixin,
    ServiceActionView,
    ServiceFormMixin,
    TenantPortalMixin,
)
from dr_addon import runbooks, services
from dr_addon.forms import MappingFilterForm, NetworkMappingForm, ProtectionFilterForm
from dr_addon.models import (
    ActiveSite,
    DrillKind,
    DrReport,
    NetworkMapping,
    Protection,
    ProtectionState,
)
from dr_addon.presenters import (
    IN_FLIGHT,
    JOB_TITLES,
    PROTECTION_TONES,
    ProtectionRow,
    ReportRow,
    lag_chart,
    past_target,
    running_job,
    vm_rows,
)
from plans.models import AddOnKind, Subscription, SubscriptionState
from provisioning import presenters
from provisioning.models import Job, JobStep

__all__ = [
    "DrReportView",
    "DrStatusView",
    "ProviderDrReportView",
    "ProviderDrStatusView",
    "ProviderFailbackView",
    "ProviderMappingDeleteView",
    "ProviderMappingListView",
    "ProviderPlannedFailoverView",
    "ProviderProtectionListView",
    "ProviderTestFailoverView",
    "ProviderUnplannedFailoverView",
    "TestFailoverView",
]

REPORTS_PER_PAGE = 10


# --- One subscription's protection, in both portals -----------------------------------

class DrPageMixin:
    """A subscription's protection: its state, the lag chart, its VMs and, paginated,
    its reports. ``subscription`` is the portal's business (scoped for tenants)."""

    template_name = "dr_addon/status.html"
    paginate_by = REPORTS_PER_PAGE

    @cached_property
    def protection(self) -> Protection | None:
        return (Protection.objects.select_related("addon", "recovery_site__cloud__stamp")
                .filter(subscription=self.subscription).first())

    def get_queryset(self):
        if self.protection is None:
            return DrReport.objects.none()
        return self.protection.reports.select_related("job")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["subscription"] = self.subscription
        protection = self.protection
        if protection is None:
            return context
        status = services.status(self.subscription)
        rows = vm_rows(status)
        job = running_job(protection)
        context.update(
            protection=protection, tone=PROTECTION_TONES.get(protection.state, "warning"),
            vms=rows, chart=lag_chart(rows, status["rpo_target_seconds"]),
            over_count=sum(row.over for row in rows),
            reports=[ReportRow(report) for report in context["page_obj"]],
            rpo_text=ui.duration_text(status["rpo_target_seconds"]),
            job=job, job_title=JOB_TITLES.get(job.runbook, "A job") if job else "",
            busy=job is not None, stalled=job is None and protection.state in IN_FLIGHT,
            drill_running=job is not None and job.runbook == runbooks.TEST_FAILOVER.name,
            on_recovery=protection.active_site == ActiveSite.RECOVERY,
        )
        return context


class DrReportMixin(DetailView):
    """One report of a subscription's protection (``subscription``, as for
    ``DrPageMixin``), with its details and the steps of its job."""

    template_name = "dr_addon/report_detail.html"
    context_object_name = "report"
    pk_url_kwarg = "report_id"

    def get_queryset(self):
        return DrReport.objects.select_related("job").filter(
            protection__subscription=self.subscription)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        report = self.object
        job = None
        if report.job_id:
            job = presenters.job_rows(Job.objects.filter(pk=report.job_id).prefetch_related(
                Prefetch("steps", queryset=JobStep.objects.order_by("index"))))[0]
        row = ReportRow(report)
        context.update(subscription=self.subscription, row=row, job_row=job,
                       busy=row.running)
        return context


# --- Tenant ---------------------------------------------------------------------------

class TenantSubscriptionMixin(TenantPortalMixin):
    section = "subscriptions"

    @cached_property
    def subscription(self) -> Subscription:
        return get_object_or_404(
            Subscription.objects.exclude(state=SubscriptionState.DELETED).restrict(self.tenant)
            .select_related("plan"), pk=self.kwargs["pk"])


class DrStatusView(TenantSubscriptionMixin, DrPageMixin, ListView):
    """The tenant's DR page; without DR, what it is and where to add it."""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if self.protection is None:
            offered = (self.subscription.plan.addons.filter(kind=AddOnKind.DR)
                       .select_related("recovery_cloud"))
            context["offered"] = [(addon, ui.duration_text(addon.rpo_seconds)) for addon in offered]
        return context


class DrReportView(TenantSubscriptionMixin, DrReportMixin):
    pass


class TestFailoverView(TenantSubscriptionMixin, ServiceActionView):
    permission_required = write_permission = "provisioning.operate"
    confirm = ("Run a test failover of “{object.name}”? Copies of its VMs start on the "
               "recovery site in an isolated network, are checked, then removed. Production "
               "keeps running.")
    confirm_label = "Run test failover"
    destructive = False

    def get_object(self):
        return self.subscription

    def perform(self, subscription):
        services.test_failover(subscription, acting_user=self.request.user)
        return "The test failover has started; this page follows it."

    def get_success_url(self):
        return reverse("dr:status", args=[self.kwargs["pk"]])


# --- Provider: every protection -------------------------------------------------------

class ProviderProtectionListView(ProviderPortalMixin, SearchListMixin):
    """Every protection across tenants, the ones past their RPO target first."""

    section = "dr"
    template_name = "dr_addon/protection_list.html"
    search_fields = ("subscription__name", "subscription__tenant__name", "addon__name",
                     "recovery_site__cloud__name")
    filter_form_class = ProtectionFilterForm

    @cached_property
    def now(self) -> datetime:
        return timezone.now()

    @cached_property
    def past_target(self) -> Case:
        return past_target(self.now)

    def protections(self):
        return (Protection.objects
                .annotate(vm_count=Count("vms"), oldest_sync=Min("vms__last_sync_at"),
                          unsynced=Count("vms", filter=Q(vms__last_sync_at__isnull=True)))
                .annotate(past_target=self.past_target))

    def get_queryset(self):
        protections = (self.protections()
                       .select_related("subscription__tenant", "addon", "recovery_site__cloud")
                       .order_by("-past_target", "subscription__tenant__name",
                                 "subscription__name"))
        return self.search(self.filter(protections))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        counts = Protection.objects.aggregate(
            total=Count("pk"), on_recovery=Count("pk", filter=Q(active_site=ActiveSite.RECOVERY)),
            attention=Count("pk", filter=Q(state=ProtectionState.ERROR)))
        counts["past_target"] = self.protections().filter(past_target=True).count()
        context.update(rows=[ProtectionRow(p, self.now) for p in context["page_obj"]],
                       counts=counts)
        return context


class ProviderSubscriptionMixin(ProviderPortalMixin):
    section = "dr"

    @cached_property
    def subscription(self) -> Subscription:
        return get_object_or_404(
            Subscription.objects.select_related("tenant", "plan").filter(protection__isnull=False),
            pk=self.kwargs["pk"])


class ProviderDrStatusView(ProviderSubscriptionMixin, DrPageMixin, ListView):
    pass


class ProviderDrReportView(ProviderSubscriptionMixin, DrReportMixin):
    pass


class ProviderDrActionView(ProviderSubscriptionMixin, ServiceActionView):
    """Acts on a subscription's protection; the confirmation says what will happen."""

    def get_object(self):
        return get_object_or_404(
            Protection.objects.select_related("subscription__tenant", "recovery_site__cloud"),
            subscription=self.subscription)

    def get_success_url(self):
        return reverse("provider-dr:status", args=[self.kwargs["pk"]])


class ProviderTestFailoverView(ProviderDrActionView):
    confirm = ("Run a test failover of “{object.subscription.name}” of "
               "{object.subscription.tenant.name}? Copies of its VMs start on "
               "{object.recovery_site.cloud.name} in an isolated network, are checked, then "
               "removed. Production keeps running.")
    confirm_label = "Run test failover"
    destructive = False

    def perform(self, protection):
        services.test_failover(protection.subscription, acting_user=self.request.user)
        return "The test failover has started; this page follows it."


class ProviderPlannedFailoverView(ProviderDrActionView):
    confirm = ("Fail “{object.subscription.name}” of {object.subscription.tenant.name} over "
               "to {object.recovery_site.cloud.name}? Its VMs on the primary site are stopped, "
               "a final sync copies their last writes, and they start on the recovery site "
               "with the same addresses. Nothing is lost; the VMs are down during the switch.")
    confirm_label = "Planned failover"

    def perform(self, protection):
        services.failover(protection.subscription, mode=DrillKind.PLANNED,
                          acting_user=self.request.user)
        return (f"“{protection.subscription.name}” is failing over to "
                f"{protection.recovery_site.cloud.name} (planned).")


class ProviderUnplannedFailoverView(ProviderDrActionView):
    confirm = ("Fail “{object.subscription.name}” of {object.subscription.tenant.name} over "
               "to {object.recovery_site.cloud.name} without its primary site? The primary "
               "is not asked: the VMs start on the recovery site from their last sync, and "
               "whatever they wrote since is lost. Use it when the primary site is down.")
    confirm_label = "Unplanned failover"

    def perform(self, protection):
        services.failover(protection.subscription, mode=DrillKind.UNPLANNED,
                          acting_user=self.request.user)
        return (f"“{protection.subscription.name}” is failing over to "
                f"{protection.recovery_site.cloud.name} (unplanned).")


class ProviderFailbackView(ProviderDrActionView):
    confirm = ("Bring “{object.subscription.name}” of {object.subscription.tenant.name} back "
               "to its primary site? Replication is reversed, the VMs stop on "
               "{object.recovery_site.cloud.name}, sync back and start on the primary site, "
               "then replicate to the recovery site again. The VMs are down during the switch.")
    confirm_label = "Failback"

    def perform(self, protection):
        services.failback(protection.subscription, acting_user=self.request.user)
        return f"“{protection.subscription.name}” is failing back to its primary site."


# --- Provider: network mappings -------------------------------------------------------

class ProviderMappingListView(ProviderPortalMixin, ServiceFormMixin, ListFormMixin,
                              SearchListMixin):
    """The network mappings of the DR add-ons, and a form to add one."""

    section = "dr_mappings"
    template_name = "dr_addon/mapping_list.html"
    form_class = NetworkMappingForm
    search_fields = ("primary_network", "recovery_network", "addon__name")
    filter_form_class = MappingFilterForm
    success_message = "The mapping {object} was saved."

    def get_queryset(self):
        mappings = NetworkMapping.objects.select_related("addon__recovery_cloud").order_by(
            "addon__name", "primary_network")
        return self.search(self.filter(mappings))

    def perform(self, form):
        return services.save_mapping(None, fields=form.changed_fields(),
                                     acting_user=self.request.user)

    def get_success_url(self):
        return reverse("provider-dr:mapping_list")


class ProviderMappingDeleteView(ProviderPortalMixin, ServiceActionView):
    section = "dr_mappings"
    confirm = ("Delete the mapping {object.primary_network} → {object.recovery_network} of "
               "“{object.addon.name}”? Plans that offer the add-on keep it, but a plan on a "
               "cloud with the network “{object.primary_network}” cannot be saved with the "
               "add-on until the network is mapped again.")
    confirm_label = "Delete mapping"

    def get_object(self):
        return get_object_or_404(NetworkMapping.objects.select_related("addon"),
                                 pk=self.kwargs["pk"])

    def perform(self, mapping):
        services.delete_mapping(mapping, acting_user=self.request.user)
        return f"The mapping {mapping} of “{mapping.addon.name}” was deleted."

    def get_success_url(self):
        return reverse("provider-dr:mapping_list")
