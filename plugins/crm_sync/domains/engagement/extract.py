"""Extract: the window's events of each enabled type, plus the events held by earlier runs and the
quarantined ones to retry.

``getEvents`` is read once for all types when every type is enabled, else once per enabled type
(``where.eventSource``), so a disabled type costs nothing (see :func:`reads`). Its lower bound is inclusive; the upper bound is applied here as ``< window end`` so
consecutive windows (lookback aside) do not share a second.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from crm_sync.definitions import LG_TO_SF
from crm_sync.domains.engagement.events import normalize_event, ts_text
from crm_sync.domains.engagement.rules import EVENT_SOURCES, HELD_KIND
from crm_sync.domains.engagement.spec import run_spec

if TYPE_CHECKING:
    from crm_sync.tasks import TaskRuntime

log = logging.getLogger(__name__)


def _events_of(items: list[Any]) -> list[dict[str, Any]]:
    """The events kept in held items or quarantine rows (their payload's ``event``)."""
    return [
        item.payload.get("event")
        for item in items
        if isinstance(item.payload, dict) and item.payload.get("event")
    ]


def reads(enabled: list[str]) -> list[str | None]:
    """The ``getEvents`` reads of a window: one without a source filter when every type is
    enabled (an hour's events of all five types usually fit in one call), else one per enabled
    type (a disabled type, page visits say, may be most of the events: not read at all)."""
    if set(enabled) == set(EVENT_SOURCES):
        return [None]
    return [EVENT_SOURCES[t] for t in enabled]


def extract(rt: TaskRuntime) -> dict[str, Any]:
    """-> ``events/extracted.jsonl``, ``events/held.jsonl``, ``events/retry.jsonl``."""
    ctx, lg, store = rt.run, rt.leadgen, rt.store
    spec = run_spec(ctx)
    start, end = ctx.window_start, ctx.window_end
    end_text = ts_text(end)
    extracted: Counter = Counter()
    ignored: Counter = Counter()

    enabled = spec.enabled_types()

    def window_events() -> Iterator[dict[str, Any]]:
        for source in reads(enabled):
            for raw in lg.get_events(start, end, event_source=source):
                ev = normalize_event(raw)
                if ev is None or ev["type"] not in enabled:
                    ignored["other_source"] += 1
                    continue
                etype = ev["type"]
                if ev["at"] >= end_text:
                    ignored["after_window"] += 1
                    continue
                extracted[etype] += 1
                yield ev

    ctx.folder.write_jsonl("events/extracted.jsonl", window_events())
    held = _events_of(store.held(ctx.dag_id, kind=HELD_KIND))
    ctx.folder.write_jsonl("events/held.jsonl", held)
    statuses = ("open", "retry", "parked") if ctx.retry_quarantined else ("open", "retry")
    retry = _events_of(store.quarantined(ctx.dag_id, statuses=statuses, direction=LG_TO_SF))
    ctx.folder.write_jsonl("events/retry.jsonl", retry)
    log.info(
        "extract engagement: window [%s, %s) extracted=%s held_in=%d quarantine_retry=%d ignored=%s lg_api_calls=%d",
        start.isoformat(),
        end.isoformat(),
        dict(extracted),
        len(held),
        len(retry),
        dict(ignored),
        lg.api_calls,
    )
    return {
        "extracted": {t: extracted.get(t, 0) for t in spec.enabled_types()},
        "held_in": len(held),
        "retry_in": len(retry),
    }
