"""Marketing events (``sync_engagement_activities``): exactly one Task per event.

For every enabled event type, the events created in ``[since, until)`` whose lead has an active
person link must each have exactly one Task whose external id (``LeadGen_Event_Id__c``) is the
event's task key (``LG-EVT-<id>``; every click of one lead on one email send shares the key
``LG-CLICK-<lead>-<email job>``, so those count as one event).

* ``task_missing``: no Task with the key, not even in the recycle bin (a Task a rep deleted is
  never re-created by the sync, so it counts as present). Explained by a held item of the event
  that was not delivered (held, dropped, superseded, quarantined) or an open quarantine row
  ``evt:<key>``. Events of leads without a link, or whose link is ``deleted`` (the sync drops
  them), are not expected to have a Task.
* ``task_duplicate``: two or more live Tasks with the key, whatever the lead's link.

``until`` defaults to how far the engagement DAG has synced (its watermark; when only backfills
ran, the end of the latest successful run's window), so events the sync has not reached yet are
not reported; ``since`` defaults to 24 hours before.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import crm_sync.verify._lib as _lib
from crm_sync.verify.model import Violation
from crm_sync.verify.snapshot import batches
from crm_sync.verify.sources import Sources

DEFAULT_SPAN = timedelta(hours=24)
CHUNK = 250  # task keys per Task query (the client splits IN lists further by length)
EVENTS_BY_KEY = """
SELECT key, group_concat(id), min(lead_id), min(type), min(at)
FROM event WHERE lead_id != '' GROUP BY key ORDER BY min(at), key
"""


def resolve_range(
    store: Any, since: datetime | timedelta | None, until: datetime | None
) -> tuple[datetime, datetime] | None:
    """The event range to check; None when ``until`` is not given and the engagement DAG has
    not synced anything yet."""
    if until is None:
        until = store.synced_until(_lib.DAG_ENGAGEMENT, _lib.ENGAGEMENT_STREAM)
        if until is None:
            return None
    if since is None:
        since = DEFAULT_SPAN
    if isinstance(since, timedelta):
        since = until - since
    return since, until


def task_checks(
    src: Sources, since: datetime | timedelta | None = None, until: datetime | None = None
) -> Iterator[Violation]:
    """Events with no Task or with several (see the module docstring)."""
    bounds = resolve_range(src.store, since, until)
    if bounds is None:
        src.notes.append(
            "engagement: sync_engagement_activities has not synced a window yet; "
            "give --until to check events anyway"
        )
        return
    start, end = bounds
    if start >= end:
        src.notes.append(f"engagement: empty range [{start.isoformat()}, {end.isoformat()})")
        return
    spec = _lib.load_engagement_spec()
    src.notes.append(
        f"engagement: events of {', '.join(spec.enabled_types()) or 'no type'} "
        f"in [{start.isoformat()}, {end.isoformat()})"
    )
    src.load_events(spec.enabled_types(), start, end)
    held = src.held(_lib.DAG_ENGAGEMENT, _lib.EVENT_HELD_KIND)
    for chunk in batches(src.snap.rows(EVENTS_BY_KEY), CHUNK):
        yield from _check_chunk(src, spec.external_id_field, held, chunk)


def _tasks_by_key(src: Sources, field: str, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Tasks carrying one of ``keys`` (deleted ones too), by lower-cased key: the external id is
    unique case-insensitively, like the org compares it."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in src.sf.query_by_values(
        "Task", ["Id", field, "IsDeleted"], field, keys, include_deleted=True
    ):
        out[str(t.get(field) or "").lower()].append(t)
        src.read["salesforce_tasks"] += 1
    return out


def _check_chunk(
    src: Sources, field: str, held: dict[str, str], chunk: list[tuple[Any, ...]]
) -> Iterator[Violation]:
    keys = [row[0] for row in chunk]
    links = src.store.links_by_lg(_lib.DOMAIN_PERSON, {row[2] for row in chunk})
    tasks = _tasks_by_key(src, field, keys)
    for key, event_ids, lead, etype, at in chunk:
        found = tasks.get(key.lower(), [])
        live = sorted(t["Id"] for t in found if str(t.get("IsDeleted")).lower() != "true")
        events = tuple(sorted(event_ids.split(",")))
        if len(live) > 1:
            why = f"{len(live)} Tasks carry {field} {key} ({etype} of lead {lead} at {at} UTC)"
            yield Violation("task_duplicate", why, (lead, *events), tuple(live))
            continue
        link = links.get(lead)
        if found or link is None or link.status != "active":
            continue
        status = next((held[e] for e in events if e in held), None)
        if status is not None or src.quarantined(_lib.DAG_ENGAGEMENT, f"evt:{key}"):
            continue
        why = (
            f"{etype} event {', '.join(events)} of lead {lead} at {at} UTC has no Task "
            f"with {field} {key} (linked to {link.sf_object} {link.sf_id})"
        )
        yield Violation("task_missing", why, (lead, *events), (link.sf_id,))
