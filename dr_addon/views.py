"""Web UI of the DR add-on: a subscription's protection for its tenant (state, each VM's
lag against the RPO target, test failover, drill reports), every protection for the
provider (with failover and failback), and the provider's network mappings.

Every action calls ``dr_addon.services``, as the API does. A page with a DR job in
flight polls itself (htmx) until the job has ended.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from django.db.models import BooleanField, Case, Count, Min, Prefetch, Q, Value, When
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
from plans.models import AddOn, AddOnKind, Subscription, SubscriptionState
from provisioning import presenters
from provisioning.models import JOB_TERMINAL_STATES, Job, JobStep

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
    "lag_chart",
    "past_target",
]

REPORTS_PER_PAGE = 10
PROTECTION_TONES = {ProtectionState.PROTECTED: "success", ProtectionState.ERROR: "danger",
                    ProtectionState.UNPROTECTED: "neutral"}  # the others: "warning"
VM_TONES = {"protected": "success", "enabling": "warning", "failed_over": "warning"}
OUTCOME_TONES = {"passed": "success", "succeeded": "success", "failed": "danger"}
# Routine replication does not make a page follow it; drills, failovers and set-up do.
QUIET_RUNBOOKS = (runbooks.SYNC.name,)
JOB_TITLES = {runbooks.PROTECT.name: "Setting up protection",
              runbooks.PROTECT_VM.name: "Protecting a new VM",
              runbooks.TEST_FAILOVER.name: "A test failover",
              runbooks.FAILOVER.name: "A failover", runbooks.FAILBACK.name: "A failback",
              runbooks.UNPROTECT.name: "Removing protection"}
# States that a job moves on; without a job in flight, that job stopped midway.
IN_FLIGHT = (ProtectionState.PROTECTING, ProtectionState.FAILING_OVER,
             ProtectionState.FAILING_BACK, ProtectionState.UNPROTECTING)
NEVER_SYNCED = "never synced"


# --- What the pages draw --------------------------------------------------------------

def lag_text(seconds: float | None) -> str:
    """A replication lag; ``None`` is a VM that has never synced."""
    return NEVER_SYNCED if seconds is None else ui.duration_text(seconds)


def _tick_text(seconds: float) -> str:
    """Axis labels stay short: "90 s", "2.5 min", "1.5 h"."""
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


@dataclass(frozen=True)
class VmRow:
    """One protected VM as ``services.status`` reports it."""

    vm: str
    name: str
    state: str
    last_sync_at: datetime | None
    sequence: int
    lag: float | None
    over: bool

    @property
    def lag_text(self) -> str:
        return lag_text(self.lag)

    @property
    def tone(self) -> str:
        return VM_TONES.get(self.state, "neutral")

    @property
    def state_label(self) -> str:
        return self.state.replace("_", " ")


def vm_rows(status: dict) -> list[VmRow]:
    return [VmRow(row["vm"], row["name"], row["state"], row["last_sync_at"], row["sequence"],
                  row["rpo_seconds"], row["over_rpo"]) for row in status["protected"]]


# The lag chart, in SVG user units. A row per VM: its name and lag on a line, its bar
# under them, so that the chart stays readable when a phone narrows it. The axis runs
# from PLOT_LEFT to PLOT_RIGHT.
CHART_WIDTH, PLOT_LEFT, PLOT_RIGHT = 480, 2, 478
CHART_TOP, ROW_HEIGHT, AXIS_HEIGHT = 32, 44, 30
TEXT_OFFSET, BAR_OFFSET, BAR_HEIGHT = 15, 21, 14
NAME_LENGTH = 32


@dataclass(frozen=True)
class LagBar:
    row: VmRow
    top: float  # of the VM's row
    width: float
    clipped: bool  # the lag runs past the end of the axis

    @property
    def label(self) -> str:
        name = self.row.name
        return name if len(name) <= NAME_LENGTH else name[:NAME_LENGTH - 1] + "…"

    @property
    def text_y(self) -> float:
        return self.top + TEXT_OFFSET

    @property
    def y(self) -> float:
        return self.top + BAR_OFFSET

    @property
    def break_path(self) -> str:
        """Two slashes across the end of a bar that runs past the axis."""
        x, top, bottom = PLOT_LEFT + self.width - 14, self.y - 2, self.y + BAR_HEIGHT + 2
        return f"M{x:.1f} {bottom:.1f} l5 {top - bottom:.1f} m4 0 l-5 {bottom - top:.1f}"


@dataclass(frozen=True)
class Tick:
    x: float
    label: str
    anchor: str = "middle"  # the first and last labels stay inside the chart


@dataclass(frozen=True)
class LagChart:
    """Each VM's lag against the RPO target, drawn as inline SVG by the template."""

    bars: list[LagBar]
    ticks: list[Tick]
    target: int
    target_x: float

    width, plot_left, plot_right, top = CHART_WIDTH, PLOT_LEFT, PLOT_RIGHT, CHART_TOP
    bar_height = BAR_HEIGHT
    target_label_y = CHART_TOP - 14

    @property
    def plot_bottom(self) -> int:
        return CHART_TOP + len(self.bars) * ROW_HEIGHT

    @property
    def tick_y(self) -> int:
        return self.plot_bottom + 20

    @property
    def height(self) -> int:
        return self.plot_bottom + AXIS_HEIGHT

    @property
    def target_text(self) -> str:
        return f"RPO target {ui.duration_text(self.target)}"

    @property
    def over_count(self) -> int:
        return sum(bar.row.over for bar in self.bars)

    @property
    def summary(self) -> str:
        count = len(self.bars)
        return (f"Replication lag of {count} VM{'s' if count != 1 else ''} against the RPO "
                f"target of {ui.duration_text(self.target)}: {self.over_count} past the target.")


def lag_chart(rows: list[VmRow], target: int) -> LagChart:
    """The axis runs to 1.5 times the target, or further to show the worst lag, but no
    further than 3 times the target: one VM hours behind must not flatten the others."""
    target = max(target, 1)
    worst = max((row.lag for row in rows if row.lag is not None), default=0)
    span = max(target * 1.5, min(worst, target * 3))
    scale = (PLOT_RIGHT - PLOT_LEFT) / span
    bars = []
    for index, row in enumerate(rows):
        lag = span if row.lag is None else row.lag
        bars.append(LagBar(row, top=CHART_TOP + index * ROW_HEIGHT,
                           width=round(max(2.0, min(lag, span) * scale), 1),
                           clipped=row.lag is not None and lag > span))
    step = target / 2
    count = int(span / step + 1e-9) + 1
    ticks = [Tick(round(PLOT_LEFT + n * step * scale, 1), _tick_text(n * step),
                  "start" if n == 0 else "end" if n == count - 1 and n * step >= span * .95
                  else "middle") for n in range(count)]
    return LagChart(bars, ticks, target, round(PLOT_LEFT + target * scale, 1))


@dataclass(frozen=True)
class ReportRow:
    """A drill or failover report: how it went, how long it took, what it may have lost."""

    report: DrReport

    @property
    def stopped(self) -> bool:
        """Its job ended without closing the report (a failover that failed midway)."""
        job = self.report.job
        return self.report.finished_at is None and job is not None and job.is_finished

    @property
    def running(self) -> bool:
        return self.report.finished_at is None and not self.stopped

    @property
    def outcome(self) -> str:
        if self.running:
            return "Running"
        if self.stopped:
            return f"Stopped ({self.report.job.get_state_display().lower()})"
        return (self.report.outcome or "finished").capitalize()

    @property
    def tone(self) -> str:
        if self.running:
            return "info"
        return "danger" if self.stopped else OUTCOME_TONES.get(self.report.outcome, "neutral")

    @property
    def duration(self) -> str:
        end = self.report.finished_at or (self.report.job.finished_at if self.stopped else None)
        return ui.duration(self.report.started_at, end)

    @property
    def data_loss(self) -> str:
        """"None" after a planned failover, the window after an unplanned one."""
        seconds = self.report.data_loss_seconds
        if seconds is None:
            return "—"
        return "None" if seconds == 0 else ui.duration_text(seconds)

    @property
    def facts(self) -> list[tuple[str, str]]:
        """The report's details, except those the page shows on their own."""
        shown = ("error", "duration_seconds", "mode")  # the mode is the report's kind
        labels = {"vms": "VMs checked"}
        return [(labels.get(key, key.replace("_", " ").capitalize()), str(value))
                for key, value in self.report.details.items() if key not in shown]


@dataclass(frozen=True)
class ProtectionRow:
    """A protection of the provider's list, from the list's annotations."""

    protection: Protection
    now: datetime

    @property
    def tone(self) -> str:
        return PROTECTION_TONES.get(self.protection.state, "warning")

    @property
    def rpo_text(self) -> str:
        return ui.duration_text(self.protection.addon.rpo_seconds)

    @property
    def worst_lag(self) -> str:
        protection = self.protection
        if not protection.vm_count:
            return "—"
        if protection.unsynced or protection.oldest_sync is None:
            return lag_text(None)
        return lag_text((self.now - protection.oldest_sync).total_seconds())


def past_target(now: datetime) -> Case:
    """Whether a protection has a VM past its add-on's RPO target (never synced counts),
    as ``services.status`` flags them; in SQL, so that the list filters, counts and sorts
    on it. Needs the ``oldest_sync`` and ``unsynced`` annotations. The RPO target is per
    add-on and there are few DR add-ons: one condition each."""
    stale = Q(unsynced__gt=0)
    for addon_id, rpo in AddOn.objects.filter(kind=AddOnKind.DR).values_list("pk", "rpo_seconds"):
        stale |= Q(addon_id=addon_id, oldest_sync__lt=now - timedelta(seconds=rpo))
    return Case(When(stale, then=Value(True)), default=Value(False), output_field=BooleanField())


def _running_job(protection: Protection) -> Job | None:
    """The DR job in flight on the protection (set-up, drill, failover), if any."""
    return (Job.objects.filter(resource_type=Protection._meta.label_lower,
                               resource_id=str(protection.pk))
            .exclude(state__in=JOB_TERMINAL_STATES).exclude(runbook__in=QUIET_RUNBOOKS)
            .order_by("-created_at").first())


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
        job = _running_job(protection)
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
