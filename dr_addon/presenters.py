"""What the DR pages draw, computed once: the replication lag chart of a subscription's VMs,
its drill and failover reports, the provider's protection rows."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import BooleanField, Case, Q, Value, When

from base.web import ui
from dr_addon import runbooks
from dr_addon.models import (
    DrReport,
    Protection,
    ProtectionState,
)
from plans.models import AddOn, AddOnKind
from provisioning.models import JOB_TERMINAL_STATES, Job

__all__ = [
    "AXIS_HEIGHT",
    "BAR_HEIGHT",
    "BAR_OFFSET",
    "CHART_TOP",
    "CHART_WIDTH",
    "IN_FLIGHT",
    "JOB_TITLES",
    "LagBar",
    "LagChart",
    "NAME_LENGTH",
    "NEVER_SYNCED",
    "OUTCOME_TONES",
    "PLOT_LEFT",
    "PLOT_RIGHT",
    "PROTECTION_TONES",
    "ProtectionRow",
    "QUIET_RUNBOOKS",
    "ROW_HEIGHT",
    "ReportRow",
    "TEXT_OFFSET",
    "Tick",
    "VM_TONES",
    "VmRow",
    "lag_chart",
    "lag_text",
    "past_target",
    "running_job",
    "vm_rows",
]

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


def running_job(protection: Protection) -> Job | None:
    """The DR job in flight on the protection (set-up, drill, failover), if any."""
    return (Job.objects.filter(resource_type=Protection._meta.label_lower,
                               resource_id=str(protection.pk))
            .exclude(state__in=JOB_TERMINAL_STATES).exclude(runbook__in=QUIET_RUNBOOKS)
            .order_by("-created_at").first())
