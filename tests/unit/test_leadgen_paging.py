"""The no-skip readers of ``crm_sync.clients.leadgen.paging`` against an in-memory result set
that changes between two page reads, the way a real account changes while a sync reads it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from crm_sync.clients.leadgen.paging import (
    MAX_STABLE_PASSES,
    Page,
    UnorderedPages,
    UnstableSet,
    id_walk,
    range_scan,
    stable_offset,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 27, 10, 0, 0)


class MovingSet:
    """Rows ``{"id", "ts"}``; ``on_fetch[n]`` runs just before the n-th fetch (1-based)."""

    def __init__(self, rows: list[dict[str, Any]], limit: int):
        self.rows = rows
        self.limit = limit
        self.fetches: list[tuple[Any, ...]] = []
        self.on_fetch: dict[int, Callable[[MovingSet], None]] = {}

    def _tick(self, *args: Any) -> None:
        self.fetches.append(args)
        change = self.on_fetch.get(len(self.fetches))
        if change:
            change(self)

    def by_id(self, offset: int) -> Page:
        self._tick(offset)
        ordered = sorted(self.rows, key=lambda r: int(r["id"]))
        rows = ordered[offset : offset + self.limit]
        return Page([dict(r) for r in rows], len(rows) >= self.limit)

    def by_range(self, lo: datetime, hi: datetime, offset: int) -> Page:
        self._tick(lo, hi, offset)
        inside = sorted(
            (r for r in self.rows if lo <= r["ts"] <= hi), key=lambda r: (r["ts"], int(r["id"]))
        )
        rows = inside[offset : offset + self.limit]
        return Page([dict(r) for r in rows], len(rows) >= self.limit)

    # changes a marketer makes
    def remove(self, rid: str) -> None:
        self.rows = [r for r in self.rows if r["id"] != rid]

    def touch(self, rid: str, ts: datetime) -> None:
        for r in self.rows:
            if r["id"] == rid:
                r["ts"] = ts


def six(limit: int = 3) -> MovingSet:
    return MovingSet([{"id": str(i), "ts": T0 + timedelta(seconds=i)} for i in range(1, 7)], limit)


def naive_offset(fetch: Callable[[int], Page]) -> list[str]:
    """What the client did before: plain offset paging (kept to prove the scenarios skip)."""
    out, offset = [], 0
    while True:
        page = fetch(offset)
        out += [r["id"] for r in page.rows]
        if not page.full:
            return out
        offset += len(page.rows)


# -- id walk ----------------------------------------------------------------------------------


def test_plain_offset_paging_skips_when_a_row_leaves_the_set():
    data = six()
    data.on_fetch[2] = lambda d: d.remove("2")  # lead 2 deactivated while page 2 is read
    assert naive_offset(data.by_id) == ["1", "2", "3", "5", "6"]  # lead 4 never read


def test_id_walk_reads_every_row_present_throughout_when_one_leaves():
    data = six()
    data.on_fetch[2] = lambda d: d.remove("2")
    assert [r["id"] for r in id_walk(data.by_id)] == ["1", "2", "3", "4", "5", "6"]


def test_id_walk_steps_back_as_far_as_needed_when_many_rows_leave():
    data = MovingSet([{"id": str(i)} for i in range(1, 21)], limit=4)
    data.on_fetch[3] = lambda d: [d.remove(str(i)) for i in range(1, 8)]  # 7 rows gone
    got = [r["id"] for r in id_walk(data.by_id)]
    assert got == [str(i) for i in range(1, 21)]  # 1-7 were read before they left
    assert len(got) == len(set(got))


def test_id_walk_returns_no_duplicates_when_rows_enter_before_the_anchor():
    data = MovingSet([{"id": str(i)} for i in (2, 4, 6, 8, 10, 12)], limit=3)
    data.on_fetch[2] = lambda d: d.rows.extend({"id": str(i)} for i in (1, 3, 5))  # reactivated
    got = [r["id"] for r in id_walk(data.by_id)]
    assert got == ["2", "4", "6", "8", "10", "12"]


def test_id_walk_one_short_page_is_one_call_and_needs_no_order():
    calls = []

    def fetch(offset: int) -> Page:
        calls.append(offset)
        return Page([{"id": "9"}, {"id": "3"}], False)

    assert [r["id"] for r in id_walk(fetch)] == ["9", "3"] and calls == [0]


def test_id_walk_refuses_unordered_pages_it_would_have_to_continue():
    pages = {0: Page([{"id": "5"}, {"id": "2"}], True)}
    with pytest.raises(UnorderedPages):
        list(id_walk(lambda offset: pages[offset]))


# -- date ranges --------------------------------------------------------------------------------


def test_plain_offset_paging_of_a_window_skips_the_row_at_the_page_boundary():
    data = six()
    data.on_fetch[2] = lambda d: d.touch("2", T0 + timedelta(days=1))  # edited: leaves the window
    window = lambda offset: data.by_range(T0, T0 + timedelta(hours=1), offset)  # noqa: E731
    assert naive_offset(window) == ["1", "2", "3", "5", "6"]


def test_range_scan_misses_nothing_when_a_lead_is_edited_while_reading():
    data = six()
    data.on_fetch[2] = lambda d: d.touch("2", T0 + timedelta(days=1))
    got = [r["id"] for r in range_scan(data.by_range, T0, T0 + timedelta(hours=1))]
    # 2 moved out of the window (the next window has it); everything else is read, once
    assert set(got) >= {"1", "3", "4", "5", "6"} and len(got) == len(set(got))
    assert all(offset == 0 for *_, offset in data.fetches)  # never an offset page


def test_range_scan_returns_a_row_moved_within_the_window_once():
    data = six()
    data.on_fetch[2] = lambda d: d.touch("1", T0 + timedelta(seconds=50))  # edited, still inside
    got = [r["id"] for r in range_scan(data.by_range, T0, T0 + timedelta(hours=1))]
    assert sorted(got) == ["1", "2", "3", "4", "5", "6"]


def test_range_scan_splits_at_the_newest_timestamp_of_a_full_page():
    data = MovingSet(
        [{"id": str(i), "ts": T0 + timedelta(minutes=i)} for i in range(1, 11)], limit=4
    )
    hint = lambda row: row["ts"]  # noqa: E731
    got = [r["id"] for r in range_scan(data.by_range, T0, T0 + timedelta(days=1), hint=hint)]
    assert got == [str(i) for i in range(1, 11)]
    # full [T0, +1d] -> [T0, 4min - 1s] (3 rows) -> [4min, 1d] full -> ... : 2 calls per page
    assert len(data.fetches) <= 7


def test_a_second_holding_more_than_a_page_is_split_off_not_halved_down_to():
    """An import stamps thousands of leads with one second: once a full page shows only that
    second, it is read alone (offset passes) instead of halving the hour a dozen times."""
    hot = T0 + timedelta(seconds=100)
    rows = [{"id": str(i), "ts": T0 + timedelta(seconds=10)} for i in range(1, 4)]
    rows += [{"id": str(i), "ts": hot} for i in range(4, 11)]
    data = MovingSet(rows, limit=3)
    hint = lambda row: row["ts"]  # noqa: E731
    got = [r["id"] for r in range_scan(data.by_range, T0, T0 + timedelta(hours=1), hint=hint)]
    assert sorted(got, key=int) == [str(i) for i in range(1, 11)]
    wide_at_hot = [f for f in data.fetches if f[0] == hot and f[1] > hot]
    assert len(wide_at_hot) == 1  # the page that showed the hot second, then [hot, hot] alone
    # 1 hour, [T0, 9 s], [10 s, 1 h], [10 s] full then 2 offset passes of 2 pages, [11 s, 1 h],
    # [11 s, 99 s], [100 s, 1 h], [100 s] full then 2 passes of 3 pages, [101 s, 1 h]
    assert len(data.fetches) == 1 + 1 + 1 + (1 + 4) + 1 + 1 + 1 + (1 + 6) + 1


def test_range_scan_falls_back_to_stable_offset_passes_inside_one_second():
    data = MovingSet([{"id": str(i), "ts": T0} for i in range(1, 6)], limit=2)
    got = [r["id"] for r in range_scan(data.by_range, T0, T0 + timedelta(seconds=1))]
    assert sorted(got) == ["1", "2", "3", "4", "5"]
    same_second = [f for f in data.fetches if f[0] == f[1] == T0]
    assert {offset for *_, offset in same_second} == {0, 2, 4}  # offset passes, read twice
    assert len(same_second) == 1 + 2 * 3  # the full page that stopped the split, two passes


def test_stable_offset_reads_again_until_nothing_moved():
    data = MovingSet([{"id": str(i)} for i in range(1, 7)], limit=2)
    data.on_fetch[2] = lambda d: d.remove("1")  # first pass skips 3
    got = [r["id"] for r in stable_offset(data.by_id)]
    assert sorted(got) == ["1", "2", "3", "4", "5", "6"]


def test_stable_offset_gives_up_on_a_set_that_never_settles():
    data = MovingSet([{"id": str(i)} for i in range(1, 5)], limit=2)
    counter = iter(range(100, 10_000))
    data.on_fetch.update(
        {n: (lambda d: d.rows.append({"id": str(next(counter))})) for n in range(1, 200)}
    )
    with pytest.raises(UnstableSet):
        list(stable_offset(data.by_id))
    assert len(data.fetches) >= 2 * MAX_STABLE_PASSES
