"""Sync windows: three run kinds (scheduled, now, backfill), inclusive lower bound, lookback
overlap, catch-up from the watermark, and the watermark that moves only over contiguous time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_sync.pipeline.window import (
    BACKFILL,
    EPOCH,
    NOW,
    SCHEDULED,
    Window,
    compute_window,
    run_kind,
)
from crm_sync.state.store import SyncStore

pytestmark = pytest.mark.unit

H9 = datetime(2026, 11, 27, 9, tzinfo=UTC)
H10 = datetime(2026, 11, 27, 10, tzinfo=UTC)
FIVE = timedelta(minutes=5)


def window(
    kind: str, *, watermark=None, start=H9, end=H10, run_after=H10, full=False, lookback=FIVE
):
    return compute_window(
        kind=kind,
        interval_start=start,
        interval_end=end,
        run_after=run_after,
        lookback=lookback,
        watermark=watermark,
        full_resync=full,
    )


@pytest.mark.parametrize(
    ("run_type", "has_date", "kind"),
    [
        ("scheduled", True, SCHEDULED),
        ("backfill", True, BACKFILL),
        ("manual", True, BACKFILL),  # someone chose the date: exactly that interval
        ("manual", False, NOW),  # "Trigger" without a date: sync now
        ("asset_triggered", False, NOW),
    ],
)
def test_the_run_kind_follows_the_run_type_and_a_chosen_date(run_type, has_date, kind) -> None:
    assert run_kind(run_type, has_logical_date=has_date) == kind


def test_scheduled_interval_widened_by_lookback() -> None:
    w = window(SCHEDULED)
    assert (w.start, w.end, w.caught_up_from, w.kind) == (H9 - FIVE, H10, None, SCHEDULED)


def test_scheduled_run_catches_up_from_a_lagging_watermark() -> None:
    wm = H9 - timedelta(hours=3)
    w = window(SCHEDULED, watermark=wm)
    assert w.start == wm - FIVE and w.end == H10 and w.caught_up_from == wm


def test_a_scheduled_run_behind_a_newer_watermark_still_syncs_its_interval() -> None:
    w = window(SCHEDULED, watermark=H10 + timedelta(minutes=37))
    assert (w.start, w.end) == (H9 - FIVE, H10)


def test_backfill_syncs_exactly_its_interval_and_never_moves_the_watermark() -> None:
    for wm in (H10 + timedelta(hours=5), H9 - timedelta(hours=3), None):
        w = window(BACKFILL, watermark=wm)
        assert (w.start, w.end, w.caught_up_from) == (H9 - FIVE, H10, None)
        assert not w.moves_watermark


def test_sync_now_runs_from_the_watermark_to_the_moment_it_was_requested() -> None:
    asked = H10 + timedelta(minutes=42, seconds=7, microseconds=5)
    wm = H10 - timedelta(hours=2)
    w = window(NOW, watermark=wm, start=None, end=None, run_after=asked)
    assert (w.start, w.end) == (wm - FIVE, H10 + timedelta(minutes=42, seconds=7))
    assert w.moves_watermark
    # never synced before: the data interval Airflow inferred, else the hour before
    assert window(NOW, run_after=asked).start == H9 - FIVE
    w = window(NOW, start=None, end=None, run_after=asked)
    assert w.start == asked.replace(microsecond=0) - timedelta(hours=1) - FIVE


def test_sync_now_just_after_a_scheduled_run_is_a_short_window() -> None:
    w = window(NOW, watermark=H10, start=None, end=None, run_after=H10, lookback=timedelta(0))
    assert (w.start, w.end) == (H10 - timedelta(minutes=1), H10)


def test_full_resync_starts_at_epoch() -> None:
    for kind in (SCHEDULED, NOW, BACKFILL):
        w = window(kind, full=True)
        assert w.start == EPOCH and w.end == H10


def test_empty_interval_means_the_hour_before() -> None:
    w = window(BACKFILL, start=H10, end=H10, lookback=timedelta(0))
    assert (w.start, w.end) == (H9, H10)


def test_a_scheduled_or_backfill_run_needs_an_interval() -> None:
    with pytest.raises(ValueError, match="needs a data interval"):
        window(BACKFILL, start=None, end=None)
    with pytest.raises(ValueError, match="unknown run kind"):
        window("sometimes")


def test_naive_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Window(datetime(2026, 1, 1), datetime(2026, 1, 2))


def test_the_watermark_never_jumps_over_a_gap(tmp_state_url: str) -> None:
    store = SyncStore(tmp_state_url)
    store.advance_watermark("d", "s", H10, "r1")
    # a run that covered [11:00, 12:00) while [10:00, 11:00) failed: not contiguous
    h11, h12 = H10 + timedelta(hours=1), H10 + timedelta(hours=2)
    assert store.advance_watermark("d", "s", h12, "r3", covered_from=h11) == H10
    # the catch-up run covers [10:00 - lookback, 13:00): contiguous, moves it
    h13 = H10 + timedelta(hours=3)
    assert store.advance_watermark("d", "s", h13, "r4", covered_from=H10 - FIVE) == h13
    # never backwards
    assert store.advance_watermark("d", "s", H9, "r5", covered_from=H9) == h13
