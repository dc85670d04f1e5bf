"""Read-only queries over the sync state store for the sync health pages.

:class:`~crm_sync.state.store.SyncStore` has the writes and the lookups the pipeline needs; the
pages also need counts, grouping, paging, cross-domain search and "everything about one record",
which live here so the store stays the pipeline's API. Every function opens one short read
session through ``store.session()`` and returns detached ORM rows or plain values; nothing here
writes (the one write the pages do, marking rows for retry, goes through
``SyncStore.mark_for_retry``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Text, cast, distinct, func, or_, select

from crm_sync.state.models import HeldItem, Link, LinkEvent, QuarantineItem, Run, Watermark
from crm_sync.state.store import SyncStore, to_db

# Values the pipeline writes (see crm_sync.state.models and crm_sync.pipeline.record).
QUARANTINE_STATUSES = ("open", "parked", "retry", "resolved")
ACTIVE_STATUSES = ("open", "retry", "parked")
DIRECTIONS = ("lg_to_sf", "sf_to_lg")
CATEGORIES = (
    "required field",
    "format",
    "length",
    "picklist",
    "duplicate",
    "validation rule",
    "permission",
    "missing link",
    "not applied",
    "other",
)
# Keys under which an email address sits in synced values (Lead Gen & CRM names, the canonical
# mapping keys) and in quarantine payloads (Lead Gen & CRM payloads use ``emailAddress``,
# Salesforce payloads ``Email``).
EMAIL_KEYS = ("emailAddress", "Email", "email")

_LIKE_ESCAPE = "\\"
# A lookup shows at most this many records (an id or email shared by more is not a lookup).
MAX_RECORDS = 50


def _like_literal(text: str) -> str:
    """``text`` with LIKE wildcards escaped (emails often contain ``_``)."""
    return re.sub(r"([\\%_])", r"\\\1", text)


@dataclass(frozen=True)
class QuarantineFilter:
    """Filters of the quarantine list; every field is optional and they combine with AND."""

    dag_id: str | None = None
    category: str | None = None
    direction: str | None = None
    statuses: tuple[str, ...] = ACTIVE_STATUSES
    ids: tuple[int, ...] = field(default_factory=tuple)

    def apply(self, q: Select[Any]) -> Select[Any]:
        q = q.where(QuarantineItem.status.in_(list(self.statuses)))
        if self.dag_id:
            q = q.where(QuarantineItem.dag_id == self.dag_id)
        if self.category:
            q = q.where(QuarantineItem.category == self.category)
        if self.direction:
            q = q.where(QuarantineItem.direction == self.direction)
        if self.ids:
            q = q.where(QuarantineItem.id.in_(list(self.ids)))
        return q


@dataclass(frozen=True)
class CheckCount:
    """Rows of one category that failed the same check with the same error code."""

    check: str
    error_code: str | None
    rows: int


@dataclass(frozen=True)
class CategoryGroup:
    """Quarantine rows of one category: rows, distinct source records, and the checks behind them."""

    category: str
    rows: int
    records: int
    checks: list[CheckCount]


# -- DAGs and runs -------------------------------------------------------------------------
def dag_ids(store: SyncStore) -> list[str]:
    """Every DAG that left a trace in the store (runs, quarantine or held items), sorted."""
    with store.session() as s:
        found: set[str] = set()
        for model in (Run, QuarantineItem, HeldItem):
            found.update(s.scalars(select(model.dag_id).distinct()))
    return sorted(found)


def recent_runs(store: SyncStore, dag_id: str | None, limit: int) -> list[Run]:
    """Newest runs first (of one DAG, or of all)."""
    return store.recent_runs(dag_id, limit=limit)


def runs_started_since(store: SyncStore, since: datetime) -> list[Run]:
    """Runs of every DAG started at or after ``since`` (aware or naive UTC), oldest first."""
    with store.session() as s:
        return list(
            s.scalars(
                select(Run).where(Run.started_at >= to_db(since)).order_by(Run.started_at, Run.id)
            )
        )


def covered_until_by_dag(store: SyncStore) -> dict[str, datetime]:
    """End of the newest successfully synced window of each DAG (naive UTC)."""
    with store.session() as s:
        rows = s.execute(
            select(Watermark.dag_id, func.max(Watermark.high_water)).group_by(Watermark.dag_id)
        )
        return {dag: hw for dag, hw in rows if hw is not None}


def held_counts_by_dag(store: SyncStore) -> dict[str, int]:
    """Items still waiting for a dependency, per DAG."""
    with store.session() as s:
        rows = s.execute(
            select(HeldItem.dag_id, func.count())
            .where(HeldItem.status == "held")
            .group_by(HeldItem.dag_id)
        )
        return {dag: int(n) for dag, n in rows}


def held_items(store: SyncStore, dag_id: str | None, limit: int) -> list[HeldItem]:
    """Items still held (oldest first: those are the ones most likely stuck)."""
    with store.session() as s:
        q = select(HeldItem).where(HeldItem.status == "held")
        if dag_id:
            q = q.where(HeldItem.dag_id == dag_id)
        return list(s.scalars(q.order_by(HeldItem.first_seen, HeldItem.id).limit(limit)))


# -- quarantine ----------------------------------------------------------------------------
def quarantine_counts_by_dag(
    store: SyncStore, statuses: Sequence[str] = ACTIVE_STATUSES
) -> dict[str, int]:
    """Quarantine rows per DAG in ``statuses``."""
    with store.session() as s:
        rows = s.execute(
            select(QuarantineItem.dag_id, func.count())
            .where(QuarantineItem.status.in_(list(statuses)))
            .group_by(QuarantineItem.dag_id)
        )
        return {dag: int(n) for dag, n in rows}


def quarantine_total(store: SyncStore, flt: QuarantineFilter) -> int:
    """Rows matching ``flt``."""
    with store.session() as s:
        q = flt.apply(select(func.count()).select_from(QuarantineItem))
        return int(s.scalar(q) or 0)


def quarantine_page(
    store: SyncStore, flt: QuarantineFilter, *, limit: int, offset: int = 0
) -> list[QuarantineItem]:
    """One page of rows matching ``flt``, most recently seen first."""
    with store.session() as s:
        q = flt.apply(select(QuarantineItem)).order_by(
            QuarantineItem.last_seen.desc(), QuarantineItem.id.desc()
        )
        return list(s.scalars(q.limit(limit).offset(offset)))


def quarantine_iter(
    store: SyncStore, flt: QuarantineFilter, *, batch: int = 500
) -> Iterator[QuarantineItem]:
    """Every row matching ``flt`` in id order, read in batches (keyset paging: a row written
    by a running DAG meanwhile neither repeats nor shifts a row out of the export)."""
    last_id = 0
    while True:
        with store.session() as s:
            q = flt.apply(select(QuarantineItem)).where(QuarantineItem.id > last_id)
            rows = list(s.scalars(q.order_by(QuarantineItem.id).limit(batch)))
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id


def quarantine_groups(store: SyncStore, flt: QuarantineFilter) -> list[CategoryGroup]:
    """Rows of ``flt`` per category (largest first) with distinct records and check breakdown.

    ``flt.category`` is ignored: the groups are what the category filter chooses from.
    """
    base = QuarantineFilter(
        dag_id=flt.dag_id, direction=flt.direction, statuses=flt.statuses, ids=flt.ids
    )
    with store.session() as s:
        totals = s.execute(
            base.apply(
                select(
                    QuarantineItem.category,
                    func.count(),
                    # a record quarantined in both directions is still one record
                    func.count(distinct(QuarantineItem.dag_id + "|" + QuarantineItem.record_key)),
                )
            ).group_by(QuarantineItem.category)
        ).all()
        checks = s.execute(
            base.apply(
                select(
                    QuarantineItem.category,
                    QuarantineItem.check,
                    QuarantineItem.error_code,
                    func.count(),
                )
            ).group_by(QuarantineItem.category, QuarantineItem.check, QuarantineItem.error_code)
        ).all()
    by_cat: dict[str, list[CheckCount]] = {}
    for cat, check, code, n in checks:
        by_cat.setdefault(cat, []).append(CheckCount(check=check, error_code=code, rows=int(n)))
    groups = [
        CategoryGroup(
            category=cat,
            rows=int(rows),
            records=int(records),
            checks=sorted(by_cat.get(cat, []), key=lambda c: (-c.rows, c.check)),
        )
        for cat, rows, records in totals
    ]
    return sorted(groups, key=lambda g: (-g.rows, g.category))


def quarantine_by_ids(store: SyncStore, ids: Iterable[int]) -> list[QuarantineItem]:
    """The rows with these ids (any status), in id order; unknown ids are simply absent."""
    id_list = sorted({int(i) for i in ids})
    if not id_list:
        return []
    with store.session() as s:
        return list(
            s.scalars(
                select(QuarantineItem)
                .where(QuarantineItem.id.in_(id_list))
                .order_by(QuarantineItem.id)
            )
        )


# -- record lookup -------------------------------------------------------------------------
@dataclass
class RecordMatches:
    """What a lookup found: links, link histories and quarantine rows of the matched records."""

    links: list[Link]
    events: dict[tuple[str, str], list[LinkEvent]]
    quarantine: list[QuarantineItem]


def _sf_id_clause(column: Any, sf_id: str) -> Any:
    """Match a Salesforce id given in either form: 15 characters (case-sensitive, as in the web
    UI's URLs) or 18 (the API's, with its case-safe suffix)."""
    if len(sf_id) == 15:
        return func.substr(column, 1, 15) == sf_id
    return column == sf_id


def _json_contains_string(column: Any, value: str) -> Any:
    """Pre-filter: the JSON text of ``column`` contains the quoted string ``value``.

    Cheap and portable (SQLite and Postgres); callers re-check the parsed value in Python, so a
    match in another key is dropped there.
    """
    pattern = "%" + _like_literal('"' + value.lower() + '"') + "%"
    return func.lower(cast(column, Text)).like(pattern, escape=_LIKE_ESCAPE)


def _has_email(values: dict[str, Any] | None, email: str) -> bool:
    if not isinstance(values, dict):
        return False
    return any(str(values.get(k) or "").strip().lower() == email for k in EMAIL_KEYS)


def find_by_email(store: SyncStore, email: str) -> RecordMatches:
    """Records whose last synced values or quarantined payload carry ``email`` (any case)."""
    email = email.strip().lower()
    with store.session() as s:
        links = [
            link
            for link in s.scalars(
                select(Link)
                .where(_json_contains_string(Link.synced_values, email))
                .order_by(Link.id)
            )
            if _has_email(link.synced_values, email)
        ][:MAX_RECORDS]
        by_payload = [
            item
            for item in s.scalars(
                select(QuarantineItem).where(_json_contains_string(QuarantineItem.payload, email))
            )
            if _has_email(item.payload, email)
        ]
    return _complete(store, links, extra_quarantine=by_payload)


def find_by_id(store: SyncStore, ident: str, *, side: str | None = None) -> RecordMatches:
    """Records with Lead Gen & CRM id or Salesforce id ``ident`` (``side`` = ``lg``/``sf`` limits
    the search to one system).

    A Salesforce id also finds links that moved away from it (a converted lead's old id, the
    losing record of a merge) through the link history, so an id copied from an old report still
    leads to the record.
    """
    with store.session() as s:
        conds = []
        event_conds = []
        if side in (None, "lg"):
            conds.append(Link.lg_id == ident)
            event_conds.append(LinkEvent.lg_id == ident)
        if side in (None, "sf"):
            conds.append(_sf_id_clause(Link.sf_id, ident))
            event_conds.append(_sf_id_clause(LinkEvent.old_sf_id, ident))
            event_conds.append(_sf_id_clause(LinkEvent.new_sf_id, ident))
        links = list(
            s.scalars(select(Link).where(or_(*conds)).order_by(Link.id).limit(MAX_RECORDS))
        )
        # Records known only from their history (the link was removed) or whose Salesforce id
        # changed since: their (domain, lg_id) keys, from the events.
        event_keys = set(
            s.execute(
                select(LinkEvent.domain, LinkEvent.lg_id)
                .where(or_(*event_conds))
                .distinct()
                .limit(MAX_RECORDS)
            ).all()
        )
        known = {(link.domain, link.lg_id) for link in links}
        missing = event_keys - known
        for domain, lg_id in sorted(missing):
            link = s.scalar(select(Link).where(Link.domain == domain, Link.lg_id == lg_id))
            if link is not None:
                links.append(link)
        q_conds = []
        if side in (None, "lg"):
            q_conds += [QuarantineItem.lg_id == ident, QuarantineItem.record_key == f"lg:{ident}"]
        if side in (None, "sf"):
            q_conds += [
                _sf_id_clause(QuarantineItem.sf_id, ident),
                QuarantineItem.record_key == f"sf:{ident}",
            ]
        direct = list(s.scalars(select(QuarantineItem).where(or_(*q_conds))))
    orphans = missing - {(link.domain, link.lg_id) for link in links}
    return _complete(store, links, extra_quarantine=direct, history_only=orphans)


def _fill_events(store: SyncStore, events: dict[tuple[str, str], list[LinkEvent]]) -> None:
    with store.session() as s:
        for domain, lg_id in events:
            events[(domain, lg_id)] = list(
                s.scalars(
                    select(LinkEvent)
                    .where(LinkEvent.domain == domain, LinkEvent.lg_id == lg_id)
                    .order_by(LinkEvent.at, LinkEvent.id)
                )
            )


def _complete(
    store: SyncStore,
    links: list[Link],
    *,
    extra_quarantine: Iterable[QuarantineItem],
    history_only: Iterable[tuple[str, str]] = (),
) -> RecordMatches:
    """Add each record's history and every quarantine row of the matched records.

    ``history_only`` are (domain, lg_id) keys whose link row is gone but whose history remains.
    """
    keys = [(ln.domain, ln.lg_id) for ln in links] + sorted(set(history_only))
    events: dict[tuple[str, str], list[LinkEvent]] = {key: [] for key in keys}
    _fill_events(store, events)
    items: dict[int, QuarantineItem] = {item.id: item for item in extra_quarantine}
    lg_ids = sorted({lg_id for _, lg_id in keys})
    # Every Salesforce id the records had (a converted lead's rows are keyed by the lead's id).
    sf_ids = sorted(
        {ln.sf_id for ln in links}
        | {i for evs in events.values() for e in evs for i in (e.old_sf_id, e.new_sf_id) if i}
    )
    if lg_ids or sf_ids:
        with store.session() as s:
            for item in s.scalars(
                select(QuarantineItem).where(
                    or_(
                        QuarantineItem.lg_id.in_(lg_ids),
                        QuarantineItem.sf_id.in_(sf_ids),
                        QuarantineItem.record_key.in_(
                            [f"lg:{i}" for i in lg_ids] + [f"sf:{i}" for i in sf_ids]
                        ),
                    )
                )
            ):
                items.setdefault(item.id, item)
    ordered = sorted(items.values(), key=lambda i: (i.last_seen, i.id), reverse=True)
    return RecordMatches(links=links, events=events, quarantine=ordered)
