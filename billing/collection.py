"""How usage collection stands on each stamp, for the provider: how far its cursor has
come, the minutes still missing (an alert: the stamp did not answer when they were due),
and a timeline of the last day with what was missing, backfilled or lost."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from billing.models import MeterCursor, MissingState, MissingUsage
from fabric.models import Stamp

__all__ = ["StampCollection", "collection_status"]

WINDOW_HOURS = 24
WINDOW = timedelta(hours=WINDOW_HOURS)
MINUTE = timedelta(minutes=1)


@dataclass
class Segment:
    """A range of the timeline, as percentages of its width."""

    state: str
    start: datetime
    end: datetime
    left: float
    width: float


@dataclass
class StampCollection:
    stamp: Stamp
    collected_until: datetime | None
    lag_minutes: int | None
    missing_minutes: int
    open_ranges: list[MissingUsage] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)

    @property
    def alert(self) -> bool:
        return self.missing_minutes > 0


def _minutes(delta: timedelta) -> int:
    return int(delta / MINUTE)


def collection_status(now: datetime | None = None) -> list[StampCollection]:
    """Every stamp's collection, those with missing minutes first. Three queries, whatever
    the number of stamps: stamps, cursors, the ranges that are open or touch the day."""
    now = now or timezone.now()
    since = now - WINDOW
    stamps = list(Stamp.objects.order_by("name"))
    cursors = {c.stamp_id: c.collected_until for c in MeterCursor.objects.all()}
    ranges: dict = {}
    for missing in (MissingUsage.objects.filter(Q(state=MissingState.MISSING) | Q(end__gt=since))
                    .order_by("start")):
        ranges.setdefault(missing.stamp_id, []).append(missing)
    status = []
    for stamp in stamps:
        until = cursors.get(stamp.pk)
        mine = ranges.get(stamp.pk, [])
        open_ranges = [r for r in mine if r.state == MissingState.MISSING]
        segments = []
        for r in mine:
            start, end = max(r.start, since), min(r.end, now)
            if end <= start:
                continue
            segments.append(Segment(r.state, r.start, r.end,
                                    left=round(100 * (start - since) / WINDOW, 2),
                                    width=max(0.3, round(100 * (end - start) / WINDOW, 2))))
        status.append(StampCollection(
            stamp=stamp, collected_until=until,
            lag_minutes=None if until is None else max(0, _minutes(now - until)),
            missing_minutes=sum(_minutes(r.end - r.start) for r in open_ranges),
            open_ranges=open_ranges, segments=segments))
    return sorted(status, key=lambda s: (not s.alert, s.stamp.name))
