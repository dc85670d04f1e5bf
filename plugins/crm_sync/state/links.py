"""Links between records, their last synced values and their history."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from crm_sync.state._common import _chunks, utcnow
from crm_sync.state.models import Link, LinkEvent

log = logging.getLogger(__name__)


def _history(
    domain: str,
    lg_id: str,
    event: str,
    old_sf: str | None,
    new_sf: str | None,
    run_id: str | None,
    at: datetime,
    detail: str | None = None,
) -> LinkEvent:
    """One row of a link's history."""
    return LinkEvent(
        domain=domain,
        lg_id=str(lg_id),
        event=event,
        old_sf_id=old_sf,
        new_sf_id=new_sf,
        detail=detail,
        run_id=run_id,
        at=at,
    )


class LinkStore:
    """Links between records, their last synced values and their history."""

    session: Callable[[], AbstractContextManager[Session]]

    # -- links -----------------------------------------------------------------------------
    def links_by_lg(self, domain: str, lg_ids: Iterable[str]) -> dict[str, Link]:
        ids = sorted({str(i) for i in lg_ids})
        out: dict[str, Link] = {}
        with self.session() as s:
            for chunk in _chunks(ids):
                for link in s.scalars(
                    select(Link).where(Link.domain == domain, Link.lg_id.in_(chunk))
                ):
                    out[link.lg_id] = link
        return out

    def links_by_sf(
        self, domain: str, sf_ids: Iterable[str], *, active_only: bool = False
    ) -> dict[str, list[Link]]:
        ids = sorted({str(i) for i in sf_ids})
        out: dict[str, list[Link]] = {}
        with self.session() as s:
            for chunk in _chunks(ids):
                q = select(Link).where(Link.domain == domain, Link.sf_id.in_(chunk))
                if active_only:
                    q = q.where(Link.status == "active")
                for link in s.scalars(q.order_by(Link.id)):
                    out.setdefault(link.sf_id, []).append(link)
        return out

    def all_links(self, domain: str, *, status: str | None = "active") -> list[Link]:
        with self.session() as s:
            q = select(Link).where(Link.domain == domain)
            if status:
                q = q.where(Link.status == status)
            return list(s.scalars(q.order_by(Link.id)))

    def iter_links(self, batch: int = 2000) -> Iterator[Link]:
        """Every link of every domain and status, streamed ``batch`` rows at a time."""
        with self.session() as s:
            yield from s.scalars(select(Link).order_by(Link.id).execution_options(yield_per=batch))

    def count_links(self, domain: str, status: str | None = "active") -> int:
        with self.session() as s:
            q = select(func.count()).select_from(Link).where(Link.domain == domain)
            if status:
                q = q.where(Link.status == status)
            return int(s.scalar(q) or 0)

    def upsert_link(
        self,
        domain: str,
        lg_id: str,
        sf_object: str,
        sf_id: str,
        *,
        synced_values: dict[str, Any] | None = None,
        status: str = "active",
        run_id: str | None = None,
        event: str | None = None,
        detail: str | None = None,
        merge_values: bool = True,
    ) -> Link:
        """Create or re-point the link of ``lg_id``; record ``event`` in the link history.

        When the Salesforce side changes (conversion, merge, relink) the history keeps the old
        and new ids. ``synced_values`` are merged into the stored ones unless ``merge_values`` is
        False.
        """
        now = utcnow()
        with self.session() as s:
            link = s.scalar(select(Link).where(Link.domain == domain, Link.lg_id == str(lg_id)))
            old_sf = None
            if link is None:
                link = Link(
                    domain=domain,
                    lg_id=str(lg_id),
                    sf_object=sf_object,
                    sf_id=sf_id,
                    status=status,
                    synced_values=dict(synced_values or {}),
                    created_at=now,
                    updated_at=now,
                    last_run_id=run_id,
                )
                s.add(link)
                event = event or "created"
            else:
                old_sf = link.sf_id
                if (link.last_run_id, link.sf_id, link.status) == (run_id, sf_id, status):
                    event = None  # this run applied it already (a retried record task)
                values = dict(link.synced_values or {}) if merge_values else {}
                values.update(synced_values or {})
                link.sf_object = sf_object
                link.sf_id = sf_id
                link.status = status
                link.synced_values = values
                link.updated_at = now
                link.last_run_id = run_id
            if event:
                s.add(_history(domain, lg_id, event, old_sf, sf_id, run_id, now, detail))
            s.flush()
            s.expunge(link)
            return link

    def add_links(self, domain: str, rows: list[dict[str, Any]], run_id: str | None) -> int:
        """Insert first pairings in bulk (``lg_id``, ``sf_object``, ``sf_id``, ``synced_values``,
        ``event``), each with its history row; returns how many were linked. A lead that has a
        link already (a rerun) is updated through :meth:`upsert_link` when it is the same
        Salesforce record, and left alone when it is another one: a link is never stolen, from
        either side (a Salesforce record linked to another lead is refused too)."""
        if not rows:
            return 0
        accepted, existing = self._screen(domain, rows, run_id)
        fresh = []
        for r in accepted:
            current = existing.get(str(r["lg_id"]))
            if current is None:
                fresh.append(r)
            elif current.last_run_id != run_id or run_id is None:  # else: this run did it
                self._upsert_row(domain, {**r, "detail": None}, run_id)
        if fresh:
            self._insert_links(domain, fresh, run_id)
        return len(accepted)

    def _upsert_row(self, domain: str, r: dict[str, Any], run_id: str | None) -> None:
        """:meth:`upsert_link` for one row of :meth:`add_links` / :meth:`put_links`."""
        self.upsert_link(
            domain,
            str(r["lg_id"]),
            r["sf_object"],
            r["sf_id"],
            synced_values=r.get("synced_values"),
            run_id=run_id,
            event=r.get("event"),
            detail=r.get("detail"),
        )

    def put_links(self, domain: str, rows: list[dict[str, Any]], run_id: str | None) -> int:
        """Links of records this run created (``lg_id``, ``sf_object``, ``sf_id``,
        ``synced_values``, ``event``, ``detail``), in bulk: one query for the leads' existing
        links, one insert for the new ones (each with its history row). A record already linked
        (a retried task recording again) goes through :meth:`upsert_link`, which changes
        nothing twice. Unlike :meth:`add_links` nothing is screened: every row is a record the
        run made, and memberships link many records to one opportunity."""
        if not rows:
            return 0
        existing = self.links_by_lg(domain, [r["lg_id"] for r in rows])
        fresh = [r for r in rows if str(r["lg_id"]) not in existing]
        for r in rows:
            if str(r["lg_id"]) in existing:
                self._upsert_row(domain, r, run_id)
        if fresh:
            self._insert_links(domain, fresh, run_id)
        return len(rows)

    def _screen(
        self, domain: str, rows: list[dict[str, Any]], run_id: str | None
    ) -> tuple[list[dict[str, Any]], dict[str, Link]]:
        """The rows that may be linked (neither side linked to something else), and the
        existing links of their leads."""
        existing = self.links_by_lg(domain, [r["lg_id"] for r in rows])
        owner_of = {
            sf_id: links[0].lg_id
            for sf_id, links in self.links_by_sf(
                domain, [r["sf_id"] for r in rows], active_only=True
            ).items()
        }
        accepted: list[dict[str, Any]] = []
        seen: set[str] = set()
        for r in rows:
            lid = str(r["lg_id"])
            current = existing.get(lid)
            taken_by = owner_of.get(r["sf_id"], lid)
            lead_taken = current is not None and current.status == "active"
            if lid in seen or taken_by != lid or (lead_taken and current.sf_id != r["sf_id"]):
                log.warning(
                    "lead %s / %s %s: one of them is linked already (lead %s -> %s); not linked (duplicate)",
                    lid,
                    r["sf_object"],
                    r["sf_id"],
                    taken_by,
                    current.sf_id if current is not None else "-",
                )
                continue
            seen.add(lid)
            owner_of[r["sf_id"]] = lid
            accepted.append(r)
        return accepted, existing

    def _insert_links(self, domain: str, rows: list[dict[str, Any]], run_id: str | None) -> None:
        now = utcnow()
        with self.session() as s:
            s.execute(
                insert(Link),
                [
                    {
                        "domain": domain,
                        "lg_id": str(r["lg_id"]),
                        "sf_object": r["sf_object"],
                        "sf_id": r["sf_id"],
                        "status": "active",
                        "synced_values": dict(r.get("synced_values") or {}),
                        "created_at": now,
                        "updated_at": now,
                        "last_run_id": run_id,
                    }
                    for r in rows
                ],
            )
            s.add_all(
                _history(
                    domain,
                    r["lg_id"],
                    r.get("event") or "created",
                    None,
                    r["sf_id"],
                    run_id,
                    now,
                    r.get("detail"),
                )
                for r in rows
            )

    def update_synced_values(
        self, domain: str, values_by_lg: dict[str, dict[str, Any]], run_id: str | None
    ) -> int:
        """Merge agreed canonical values into each link's ``synced_values``."""
        if not values_by_lg:
            return 0
        now = utcnow()
        n = 0
        with self.session() as s:
            ids = sorted(values_by_lg)
            for chunk in _chunks(ids):
                for link in s.scalars(
                    select(Link).where(Link.domain == domain, Link.lg_id.in_(chunk))
                ):
                    merged = dict(link.synced_values or {})
                    merged.update(values_by_lg[link.lg_id])
                    link.synced_values = merged
                    link.updated_at = now
                    link.last_run_id = run_id
                    n += 1
        return n

    def set_link_status(
        self,
        domain: str,
        lg_id: str,
        status: str,
        *,
        event: str,
        run_id: str | None,
        detail: str | None = None,
    ) -> None:
        now = utcnow()
        with self.session() as s:
            link = s.scalar(select(Link).where(Link.domain == domain, Link.lg_id == str(lg_id)))
            if link is None or (link.status, link.last_run_id) == (status, run_id):
                return  # no link, or this run set it already
            link.status = status
            link.updated_at = now
            link.last_run_id = run_id
            s.add(_history(domain, lg_id, event, link.sf_id, link.sf_id, run_id, now, detail))

    def delete_link(
        self, domain: str, lg_id: str, *, run_id: str | None, event: str = "removed"
    ) -> None:
        with self.session() as s:
            link = s.scalar(select(Link).where(Link.domain == domain, Link.lg_id == str(lg_id)))
            if link is None:
                return
            s.add(_history(domain, lg_id, event, link.sf_id, None, run_id, utcnow()))
            s.delete(link)

    def link_events(
        self, domain: str | None = None, lg_id: str | None = None, sf_id: str | None = None
    ) -> list[LinkEvent]:
        with self.session() as s:
            q = select(LinkEvent)
            if domain:
                q = q.where(LinkEvent.domain == domain)
            if lg_id:
                q = q.where(LinkEvent.lg_id == str(lg_id))
            if sf_id:
                q = q.where((LinkEvent.old_sf_id == sf_id) | (LinkEvent.new_sf_id == sf_id))
            return list(s.scalars(q.order_by(LinkEvent.id)))
