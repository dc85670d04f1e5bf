"""Sync windows: four run kinds, one rule each (see docs/sync-rules.md, "Run kinds").

* **scheduled** — the hourly run: catch up from the watermark (the end of the contiguous time
  already synced) to the end of its data interval, so a failed hour is never skipped;
* **now** — a manual trigger without a chosen date ("Trigger" in the UI, ``logical_date: null``
  in the REST API): from the watermark to the moment the run was requested, so an edit made a
  minute ago is synced by this run, not by the next scheduled one;
* **backfill** — ``airflow backfill create``, or a manual run given a logical date: exactly its
  own data interval. It never moves the watermark.
* **targeted** — any run given ``record_ids`` (``pipeline/record_ids.py``): exactly those records,
  whatever changed when. Its window is ignored: it spans all time up to the moment the run was
  requested, is not recorded as synced time (dependent DAGs and ``verify`` never count it) and
  never moves the watermark.

Every window is widened by the lookback overlap (inclusive lower bound); writes are idempotent,
so the overlap is harmless. ``full_resync`` starts at :data:`EPOCH`. The watermark advances only
over contiguous covered time: only scheduled and now runs move it, and only from a start at or
before it (:meth:`crm_sync.state.runs.RunStore.advance_watermark`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# Start of time for full resyncs: both APIs reject dates before their epoch.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

SCHEDULED, NOW, BACKFILL, TARGETED = "scheduled", "now", "backfill", "targeted"
RUN_KINDS = (SCHEDULED, NOW, BACKFILL, TARGETED)
HOUR = timedelta(hours=1)


def moves_watermark(kind: str) -> bool:
    """Only runs that continue the synced time (scheduled, now) may move the watermark."""
    return kind in (SCHEDULED, NOW)


def covers_window(kind: str) -> bool:
    """Whether a run's window counts as synced time once it succeeds (the run row's window,
    read by dependent DAGs' sensors and by verify). A targeted run synced a few records, not a
    stretch of time."""
    return kind != TARGETED


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    caught_up_from: datetime | None = None
    kind: str = SCHEDULED

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.end <= self.start:
            raise ValueError(f"empty window: {self.start.isoformat()} .. {self.end.isoformat()}")

    @property
    def moves_watermark(self) -> bool:
        return moves_watermark(self.kind)


def run_kind(run_type: str, *, has_logical_date: bool, targeted: bool = False) -> str:
    """The run kind of an Airflow run: its ``run_type``, whether someone chose its date, and
    whether it was given records to sync (``targeted``, which wins over everything else)."""
    if targeted:
        return TARGETED
    if run_type == "scheduled":
        return SCHEDULED
    if run_type == "backfill":
        return BACKFILL
    # manual and asset-triggered runs: a chosen logical date pins the run to that interval
    return BACKFILL if has_logical_date else NOW


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


def compute_window(
    *,
    kind: str,
    interval_start: datetime | None,
    interval_end: datetime | None,
    run_after: datetime,
    lookback: timedelta,
    watermark: datetime | None,
    full_resync: bool,
) -> Window:
    """The window of a run of ``kind`` (see the module docstring).

    ``interval_*``: the run's data interval (None for a manual run without one); an empty
    interval (start == end, cron timetables without intervals) means the hour before its end.
    ``run_after``: when the run was requested (the end of a *now* or *targeted* window).
    """
    if kind not in RUN_KINDS:
        raise ValueError(f"unknown run kind {kind!r}; one of {RUN_KINDS}")
    if kind == TARGETED:  # the records decide, not the time: everything up to the request
        return Window(EPOCH, _utc(run_after).replace(microsecond=0), None, TARGETED)
    end = _utc(interval_end) if interval_end is not None else None
    start = _utc(interval_start) if interval_start is not None else None
    if end is not None and (start is None or start >= end):
        start = end - HOUR
    caught_up = None
    if kind == NOW:
        end = _utc(run_after).replace(microsecond=0)
        start = (
            watermark if watermark is not None else (start if start and start < end else end - HOUR)
        )
    elif end is None or start is None:
        raise ValueError(f"a {kind} run needs a data interval")
    elif kind == SCHEDULED and watermark is not None and watermark < start:
        caught_up = start = watermark
    if full_resync:
        return Window(EPOCH, end, None, kind)
    start = min(start, end) - lookback
    if start >= end:  # no lookback and nothing new since the watermark: a one-minute window
        start = end - timedelta(minutes=1)
    return Window(start, end, caught_up, kind)
