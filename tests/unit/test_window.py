"""Sync windows: inclusive lower bound, lookback overlap, catch-up from the watermark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_sync.pipeline.window import EPOCH, Window, compute_window

pytestmark = pytest.mark.unit

H9 = datetime(2026, 11, 27, 9, tzinfo=UTC)
H10 = datetime(2026, 11, 27, 10, tzinfo=UTC)
FIVE = timedelta(minutes=5)


def test_interval_widened_by_lookback() -> None:
    w = compute_window(
        H9, H10, lookback=FIVE, watermark=None, run_type="scheduled", full_resync=False
    )
    assert (w.start, w.end, w.caught_up_from) == (H9 - FIVE, H10, None)


def test_scheduled_run_catches_up_from_a_lagging_watermark() -> None:
    wm = H9 - timedelta(hours=3)
    w = compute_window(
        H9, H10, lookback=FIVE, watermark=wm, run_type="scheduled", full_resync=False
    )
    assert w.start == wm - FIVE and w.caught_up_from == wm


@pytest.mark.parametrize("run_type", ["backfill", "manual"])
def test_backfill_and_manual_runs_sync_exactly_their_interval(run_type: str) -> None:
    wm = H10 + timedelta(hours=5)  # newer hours already synced: a backfill must not widen
    w = compute_window(H9, H10, lookback=FIVE, watermark=wm, run_type=run_type, full_resync=False)
    assert (w.start, w.end) == (H9 - FIVE, H10)
    w = compute_window(
        H9,
        H10,
        lookback=FIVE,
        watermark=H9 - timedelta(hours=3),
        run_type=run_type,
        full_resync=False,
    )
    assert w.start == H9 - FIVE


def test_full_resync_starts_at_epoch() -> None:
    w = compute_window(H9, H10, lookback=FIVE, watermark=None, run_type="manual", full_resync=True)
    assert w.start == EPOCH and w.end == H10


def test_empty_interval_means_the_hour_before() -> None:
    w = compute_window(
        H10, H10, lookback=timedelta(0), watermark=None, run_type="manual", full_resync=False
    )
    assert (w.start, w.end) == (H9, H10)


def test_naive_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Window(datetime(2026, 1, 1), datetime(2026, 1, 2))
