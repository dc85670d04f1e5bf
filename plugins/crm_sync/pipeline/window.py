"""Sync windows: the data interval widened by a lookback overlap, inclusive lower bound.

A scheduled run whose predecessors failed catches up from the stream's watermark (the end of the
last window that loaded and passed the quality gate), so a failed hour is never skipped. Manual
and backfill runs sync exactly their own interval (plus the overlap).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# Start of time for full resyncs: both APIs reject dates before their epoch.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    caught_up_from: datetime | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.end <= self.start:
            raise ValueError(f"empty window: {self.start.isoformat()} .. {self.end.isoformat()}")


def compute_window(
    interval_start: datetime,
    interval_end: datetime,
    *,
    lookback: timedelta,
    watermark: datetime | None,
    run_type: str,
    full_resync: bool,
) -> Window:
    """``[interval_start - lookback, interval_end)``; a scheduled run behind its watermark starts
    from ``watermark - lookback`` instead. ``full_resync`` starts at :data:`EPOCH`."""
    start = interval_start.astimezone(UTC)
    end = interval_end.astimezone(UTC)
    if end <= start:
        # Airflow 3 manual runs (and cron timetables without data intervals) carry start == end:
        # treat them as the hour that just ended.
        start = end - timedelta(hours=1)
    caught_up = None
    if full_resync:
        return Window(EPOCH, end)
    if run_type == "scheduled" and watermark is not None and watermark < start:
        caught_up = watermark
        start = watermark
    return Window(start - lookback, end, caught_up)
