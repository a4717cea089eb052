"""What the templates draw, computed once: quota and capacity bars, activity lines.

Templates stay free of arithmetic; these presenters turn ledger rows into the numbers,
units and tones a bar needs.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from plans.models import QuotaDimension
from portal.models import AuditEvent

__all__ = ["Bar", "activity", "bars", "stamp_bars"]

# Memory is kept in MB; people read GB.
_UNITS = {
    "vcpus": ("vCPUs", "", 1),
    "memory_mb": ("Memory", "GB", 1024),
    "storage_gb": ("Storage", "GB", 1),
    "vms": ("VMs", "", 1),
    "networks": ("Networks", "", 1),
    "snapshots": ("Snapshots", "", 1),
}


def _amount(value: int, divisor: int) -> str:
    if divisor == 1:
        return f"{value:,}"
    scaled = value / divisor
    return f"{scaled:,.0f}" if scaled == int(scaled) else f"{scaled:,.1f}"


@dataclass(frozen=True)
class Bar:
    """One dimension: ``used`` of ``limit``, with the width and tone of its bar."""

    dimension: str
    label: str
    used: int
    limit: int
    unit: str = ""
    divisor: int = 1

    @property
    def percent(self) -> int:
        if self.limit <= 0:
            return 100 if self.used > 0 else 0
        return min(100, round(100 * self.used / self.limit))

    @property
    def tone(self) -> str:
        """Bootstrap colour: the closer to the limit, the louder."""
        if self.used > self.limit or self.percent >= 90:
            return "danger"
        return "warning" if self.percent >= 70 else "primary"

    @property
    def used_text(self) -> str:
        return _amount(self.used, self.divisor)

    @property
    def limit_text(self) -> str:
        return _amount(self.limit, self.divisor)

    @property
    def summary(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.used_text} of {self.limit_text}{unit}"


def _bar(dimension: str, used: int, limit: int) -> Bar:
    label, unit, divisor = _UNITS.get(dimension, (dimension, "", 1))
    return Bar(dimension, label, used, limit, unit, divisor)


def bars(usage: Mapping[str, Mapping[str, int]]) -> list[Bar]:
    """``{"vcpus": {"used", "limit"}, ...}`` (``plans.quota.summary``) as bars, in the
    order of the quota dimensions."""
    order = [d for d in QuotaDimension.values if d in usage] + [
        d for d in usage if d not in QuotaDimension.values]
    return [_bar(d, usage[d]["used"], usage[d]["limit"]) for d in order]


def ledger_bars(rows: Iterable) -> list[Bar]:
    """Ledger rows (``dimension``, ``used``, ``limit``) as bars."""
    return bars({row.dimension: {"used": row.used, "limit": row.limit} for row in rows})


def stamp_bars(capacity: Mapping) -> list[Bar]:
    """What a stamp reported at its last check: allocated of its capacity."""
    total, allocated = capacity.get("capacity") or {}, capacity.get("allocated") or {}
    return bars({d: {"used": allocated.get(d, 0), "limit": n} for d, n in total.items()})


@dataclass(frozen=True)
class ActivityLine:
    event: AuditEvent
    title: str


def activity(events: Iterable[AuditEvent]) -> list[ActivityLine]:
    """Audit rows as sentences: ``subscription.created`` reads "Subscription created"."""
    return [ActivityLine(e, e.event.replace(".", " ").replace("_", " ").capitalize())
            for e in events]
