"""What the templates draw, computed once: quota and capacity bars, the quota a request
would use, activity lines, durations. (Jobs with their steps: ``provisioning.presenters``.)

Templates stay free of arithmetic; these presenters turn ledger rows into the numbers,
units and tones a bar needs.
"""

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from base.models import AuditEvent

__all__ = ["DIMENSIONS", "Bar", "RequestBar", "activity", "bars", "duration", "duration_text",
           "ledger_bars", "request_bars", "stamp_bars"]

# The dimensions of quota and capacity, in the order pages show them, with the words and
# units people read (memory is kept in MB; people read GB).
_UNITS = {
    "vcpus": ("vCPUs", "", 1),
    "memory_mb": ("Memory", "GB", 1024),
    "storage_gb": ("Storage", "GB", 1),
    "vms": ("VMs", "", 1),
    "networks": ("Networks", "", 1),
    "snapshots": ("Snapshots", "", 1),
}

DIMENSIONS = tuple(_UNITS)


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
    order = [d for d in DIMENSIONS if d in usage] + [d for d in usage if d not in DIMENSIONS]
    return [_bar(d, usage[d]["used"], usage[d]["limit"]) for d in order]


def ledger_bars(rows: Iterable) -> list[Bar]:
    """Ledger rows (``dimension``, ``used``, ``limit``) as bars."""
    return bars({row.dimension: {"used": row.used, "limit": row.limit} for row in rows})


def stamp_bars(capacity: Mapping) -> list[Bar]:
    """What a stamp reported at its last check: allocated of its capacity."""
    total, allocated = capacity.get("capacity") or {}, capacity.get("allocated") or {}
    return bars({d: {"used": allocated.get(d, 0), "limit": n} for d, n in total.items()})


_VM_WORD = re.compile(r"\bvm\b", re.IGNORECASE)


@dataclass(frozen=True)
class Change:
    """One field of an audit row: what it was and what it became (either may be "")."""

    field: str
    before: str
    after: str


_SHOWN = 60  # characters of a value shown on a line; the API and CSV have it whole


def _shown(value) -> str:
    if value is None or value == "":
        return ""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 1] + "…"


@dataclass(frozen=True)
class ActivityLine:
    event: AuditEvent
    title: str

    @property
    def changes(self) -> list[Change]:
        """What changed, compactly: ``role: operator → reader``."""
        before, after = self.event.before or {}, self.event.after or {}
        return [Change(name.replace("_", " "), _shown(before.get(name)), _shown(after.get(name)))
                for name in dict.fromkeys([*before, *after])]


def activity(events: Iterable[AuditEvent]) -> list[ActivityLine]:
    """Audit rows as sentences: ``subscription.created`` reads "Subscription created"."""
    return [ActivityLine(e, _VM_WORD.sub("VM", e.event.replace(".", " ").replace("_", " ")
                                         .capitalize()))
            for e in events]


# --- What a request would use ---------------------------------------------------------

@dataclass(frozen=True)
class RequestBar:
    """One dimension before a request is sent: ``used`` now and ``requested`` on top,
    of ``limit``. Over the limit, the requested part turns red."""

    dimension: str
    label: str
    used: int
    requested: int
    limit: int
    unit: str = ""
    divisor: int = 1

    @property
    def after(self) -> int:
        return self.used + self.requested

    @property
    def over(self) -> bool:
        return self.after > self.limit

    def _percent(self, value: int) -> int:
        if self.limit <= 0:
            return 100 if value > 0 else 0
        return min(100, round(100 * value / self.limit))

    @property
    def used_percent(self) -> int:
        return self._percent(self.used)

    @property
    def requested_percent(self) -> int:
        """The requested part, drawn after the used part and never past the end."""
        return min(100 - self.used_percent, self._percent(self.after) - self.used_percent)

    @property
    def tone(self) -> str:
        return "danger" if self.over else "primary"

    def _text(self, value: int) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{_amount(value, self.divisor)}{unit}"

    @property
    def summary(self) -> str:
        return (f"{_amount(self.used, self.divisor)} used + {_amount(self.requested, self.divisor)}"
                f" of {self._text(self.limit)}")

    @property
    def note(self) -> str:
        if self.over:
            return f"{self._text(self.after - self.limit)} over the limit"
        return f"{self._text(self.limit - self.after)} left after this"


def request_bars(usage: Mapping[str, Mapping[str, int]],
                 requested: Mapping[str, int]) -> list[RequestBar]:
    """``plans.quota.summary`` and a request's amounts, for the dimensions it touches."""
    rows = []
    for dimension in DIMENSIONS:
        if dimension not in requested:
            continue
        label, unit, divisor = _UNITS.get(dimension, (dimension, "", 1))
        rows.append(RequestBar(dimension, label, usage[dimension]["used"],
                               max(0, requested[dimension]), usage[dimension]["limit"],
                               unit, divisor))
    return rows



# --- Durations ------------------------------------------------------------------------

def duration_text(seconds: float) -> str:
    """How long something takes or lags, as every page writes it: "0.4 s", "12 s",
    "3 min 5 s", "5 min 0 s", "2 h 10 min". Under 10 s a tenth still tells something;
    above, whole seconds do, and above an hour whole minutes."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def duration(start: datetime | None, end: datetime | None) -> str:
    """From ``start`` to ``end`` (to now while ``end`` is None); "" before it started."""
    if start is None:
        return ""
    return duration_text(((end or timezone.now()) - start).total_seconds())
