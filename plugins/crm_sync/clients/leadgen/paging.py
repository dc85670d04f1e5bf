"""Reading a result set that may change while it is read, without skipping a record.

The API pages with ``limit``/``offset`` only: no cursor, no snapshot. Offset paging over a set
that changes underneath skips records: when a lead on page 1 is edited while page 2 is read,
it leaves a ``getLeadsDateRange`` window (its updateTimestamp moves to now), every later row
moves up one place, and the row at the page boundary is never returned (confirmed: 6 leads,
page size 3, a lead of page 1 edited before page 2 -> 1, 2, 3, 5, 6). A full ``getLeads``
scan loses a row the same way when a lead is deactivated or deleted mid-scan. Three readers
avoid it; each pays a few extra calls only when the set really is larger than a page:

* :func:`id_walk` -- for lists ordered by id (getLeads: a real 500-lead page is in ascending
  id order; the other lists [I]). Each page overlaps the previous one by one row, the
  *anchor*, the highest id already returned. If a page starts above the anchor, rows before
  it left the set and the rows we still need may have moved below our offset: step back
  (1, 2, 4, ... rows) until the page starts at or before the anchor, or at offset 0. Rows
  present for the whole scan are never skipped; none is returned twice.
* :func:`range_scan` -- for ``*DateRange`` methods. A call whose page is not full returned
  *everything* in its time range at one instant, so it cannot skip. A full page is not used;
  its range is split in two (at the newest timestamp it returned when that is a useful hint,
  else in the middle) and each half is read again, down to single seconds. Rows that move
  to a later sub-range while the scan runs are returned once (deduplicated by id).
* :func:`stable_offset` -- inside one second, where time cannot be split: offset pages, read
  again until two passes return the same ids (a pass during which nothing moved), the union of
  all passes returned. Used only when more than a page of records share one second.

A page is *full* when it holds as many rows as the API returns at most for that call (the
smaller of the ``limit`` sent and the method's own cap): getLeads caps pages at 500 whatever
``limit`` says, so a 500-row answer to ``limit: 1000`` is full, not the end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

log = logging.getLogger("crm_sync.clients.leadgen")

ONE_SECOND = timedelta(seconds=1)
MAX_STABLE_PASSES = 5


@dataclass(frozen=True)
class Page:
    """One answer: its rows, and whether the API may hold more rows after them."""

    rows: list[dict[str, Any]]
    full: bool


class UnorderedPages(Exception):
    """The pages of an id walk were not in ascending id order (the walk would be unsafe)."""


class UnstableSet(Exception):
    """The records of one second kept changing between passes."""


def row_id(row: dict[str, Any], key: str = "id") -> int:
    try:
        return int(row[key])
    except (KeyError, TypeError, ValueError):
        raise UnorderedPages(f"row without an integer {key!r}: {sorted(row)}") from None


def id_walk(fetch: Callable[[int], Page], *, key: str = "id") -> Iterator[dict[str, Any]]:
    """Every row of an id-ordered set, reading ``fetch(offset)`` pages with a one-row overlap.

    ``fetch`` must ask for at least two rows per page (with one, the overlap would stall).
    Raises :class:`UnorderedPages` when a page that needs a successor is not in ascending id
    order: then the set cannot be walked safely.
    """
    offset, step = 0, 1
    anchor: int | None = None
    while True:
        page = fetch(offset)
        ids = [row_id(r, key) for r in page.rows] if page.full or anchor is not None else []
        if page.full and any(b <= a for a, b in zip(ids, ids[1:], strict=False)):
            raise UnorderedPages(f"ids not ascending at offset {offset}")
        if anchor is not None and offset > 0 and (not ids or ids[0] > anchor):
            # The anchor is no longer at `offset`: rows before it left the set, so rows we
            # have not read yet may sit below `offset`. Step back until we see the anchor.
            offset, step = max(0, offset - step), step * 2
            continue
        step = 1
        if anchor is None and not page.full:
            yield from page.rows  # one short page: read at one instant, nothing to skip
            return
        for row, rid in zip(page.rows, ids, strict=True):
            if anchor is None or rid > anchor:
                yield row
        if ids:
            anchor = ids[-1] if anchor is None else max(anchor, ids[-1])
        if not page.full:
            return
        offset += len(page.rows) - 1


def stable_offset(fetch: Callable[[int], Page], *, key: str = "id") -> Iterator[dict[str, Any]]:
    """Offset passes over one small-but-multi-page set until a pass sees what the previous one
    saw; the union of all passes, each row once. :class:`UnstableSet` after
    ``MAX_STABLE_PASSES`` passes that all differed."""
    yielded: set[str] = set()
    previous: list[str] | None = None
    for _ in range(MAX_STABLE_PASSES):
        seen: list[str] = []
        offset = 0
        while True:
            page = fetch(offset)
            for row in page.rows:
                rid = str(row.get(key))
                seen.append(rid)
                if rid not in yielded:
                    yielded.add(rid)
                    yield row
            if not page.full or not page.rows:
                break
            offset += len(page.rows)
        if seen == previous:
            return
        previous = seen
    raise UnstableSet(f"the set changed during each of {MAX_STABLE_PASSES} passes")


RangeFetch = Callable[[datetime, datetime, int], Page]


def range_scan(
    fetch: RangeFetch,
    start: datetime,
    end: datetime,
    *,
    hint: Callable[[dict[str, Any]], datetime | None] = lambda row: None,
    key: str = "id",
) -> Iterator[dict[str, Any]]:
    """Every row in ``[start, end]`` (whole seconds, both inclusive) of a date-range method.

    ``fetch(lo, hi, offset)`` reads one page of the range; ``hint(row)`` gives a row's
    timestamp in the range's terms when the API returns it (only used to choose where to
    split, never trusted for completeness).
    """
    seen: set[str] = set()
    pending = [(start.replace(microsecond=0), end.replace(microsecond=0))]
    while pending:
        lo, hi = pending.pop()
        page = fetch(lo, hi, 0)
        if not page.full:
            rows: Iterator[dict[str, Any]] | list[dict[str, Any]] = page.rows
        elif hi > lo:
            mid = _split(lo, hi, page.rows, hint)
            log.debug("range %s..%s holds a full page; split at %s", lo, hi, mid)
            pending.append((mid + ONE_SECOND, hi))
            pending.append((lo, mid))  # popped first: results stay in time order
            continue
        else:
            rows = stable_offset(lambda offset, second=lo: fetch(second, second, offset), key=key)
        for row in rows:
            rid = str(row.get(key))
            if rid not in seen:
                seen.add(rid)
                yield row


def _split(
    lo: datetime,
    hi: datetime,
    rows: list[dict[str, Any]],
    hint: Callable[[dict[str, Any]], datetime | None],
) -> datetime:
    """Where to split ``[lo, hi]``: ``[lo, split]`` and ``[split + 1 s, hi]``.

    If the API orders a range by its timestamp (the sandbox does), a full page ends at the
    newest timestamp it holds, so splitting just before it leaves a first half that fits in
    one page. Used when that point falls in the lower 90 % of the range; a page wholly in the
    first second splits that second off; otherwise (no timestamps returned, or no useful
    order) the middle.
    """
    middle = lo + timedelta(seconds=int((hi - lo).total_seconds()) // 2)
    stamps = [t for t in (hint(r) for r in rows) if t is not None]
    if stamps:
        newest = max(stamps).replace(microsecond=0)
        if newest <= lo:
            # A whole page in the range's first second (an Import Tool run stamps thousands
            # of leads with one second): that second alone, read by offset passes, instead of
            # halving the range down to it a dozen times.
            return lo
        candidate = newest - ONE_SECOND
        if lo <= candidate and candidate - lo <= (hi - lo) * 0.9:
            return candidate
    return middle
