"""The sync state store: one object per database, used by every pipeline stage.

All writes are short transactions so that parallel tasks (LocalExecutor, Celery) can share a
SQLite file in WAL mode or a Postgres database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_sync.state.models import HeldItem, Link, LinkEvent, QuarantineItem, Run, Watermark

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def utcnow() -> datetime:
    """Naive UTC 'now' as stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_db(dt: datetime | None) -> datetime | None:
    """Aware datetime -> naive UTC for storage."""
    if dt is None:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def from_db(dt: datetime | None) -> datetime | None:
    """Naive UTC from storage -> aware UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _chunks(values: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


class SyncStore:
    """Typed access to links, synced values, runs, watermarks, quarantine and held items."""

    def __init__(self, url: str, *, migrate: bool = True, echo: bool = False):
        self.url = url
        self.engine: Engine = create_engine(url, echo=echo, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._batch: Session | None = None
        if migrate:
            self.migrate()

    def __repr__(self) -> str:
        # The URL may carry a password (Postgres): never show it.
        return f"SyncStore({self.engine.url.render_as_string(hide_password=True)})"

    # -- lifecycle -------------------------------------------------------------------------
    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        if self._batch is not None:
            yield self._batch
            return
        with self._sessions.begin() as s:
            yield s

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run every store call inside the block in one transaction: thousands of link updates
        commit once instead of once each (and all or nothing)."""
        if self._batch is not None:
            yield
            return
        with self._sessions.begin() as s:
            self._batch = s
            try:
                yield
            finally:
                self._batch = None

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
                values = dict(link.synced_values or {}) if merge_values else {}
                values.update(synced_values or {})
                link.sf_object = sf_object
                link.sf_id = sf_id
                link.status = status
                link.synced_values = values
                link.updated_at = now
                link.last_run_id = run_id
            if event:
                s.add(
                    LinkEvent(
                        domain=domain,
                        lg_id=str(lg_id),
                        event=event,
                        old_sf_id=old_sf,
                        new_sf_id=sf_id,
                        detail=detail,
                        run_id=run_id,
                        at=now,
                    )
                )
            s.flush()
            s.expunge(link)
            return link

    def add_links(self, domain: str, rows: list[dict[str, Any]], run_id: str | None) -> int:
        """Insert first pairings in bulk (``lg_id``, ``sf_object``, ``sf_id``, ``synced_values``,
        ``event``), each with its history row; returns how many were linked. A lead that has a
        link already (a rerun) is updated through :meth:`upsert_link` when it is the same
        Salesforce record, and left alone when it is another one: a link is never stolen."""
        if not rows:
            return 0
        now = utcnow()
        existing = self.links_by_lg(domain, [r["lg_id"] for r in rows])
        fresh: list[dict[str, Any]] = []
        seen: set[str] = set()
        refused = 0
        for r in rows:
            lid = str(r["lg_id"])
            current = existing.get(lid)
            if lid in seen or (
                current is not None and current.status == "active" and current.sf_id != r["sf_id"]
            ):
                log.warning(
                    "lead %s already stands for Salesforce %s; %s %s is not linked to it (duplicate)",
                    lid,
                    current.sf_id if current is not None else "another record of this run",
                    r["sf_object"],
                    r["sf_id"],
                )
                refused += 1
                continue
            seen.add(lid)
            if current is not None:
                self.upsert_link(
                    domain,
                    lid,
                    r["sf_object"],
                    r["sf_id"],
                    synced_values=r.get("synced_values"),
                    run_id=run_id,
                    event=r.get("event"),
                )
            else:
                fresh.append(r)
        if fresh:
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
                        for r in fresh
                    ],
                )
                s.execute(
                    insert(LinkEvent),
                    [
                        {
                            "domain": domain,
                            "lg_id": str(r["lg_id"]),
                            "event": r.get("event") or "created",
                            "old_sf_id": None,
                            "new_sf_id": r["sf_id"],
                            "detail": None,
                            "run_id": run_id,
                            "at": now,
                        }
                        for r in fresh
                    ],
                )
        return len(rows) - refused

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
            if link is None:
                return
            link.status = status
            link.updated_at = now
            link.last_run_id = run_id
            s.add(
                LinkEvent(
                    domain=domain,
                    lg_id=str(lg_id),
                    event=event,
                    old_sf_id=link.sf_id,
                    new_sf_id=link.sf_id,
                    detail=detail,
                    run_id=run_id,
                    at=now,
                )
            )

    def delete_link(
        self, domain: str, lg_id: str, *, run_id: str | None, event: str = "removed"
    ) -> None:
        with self.session() as s:
            link = s.scalar(select(Link).where(Link.domain == domain, Link.lg_id == str(lg_id)))
            if link is None:
                return
            s.add(
                LinkEvent(
                    domain=domain,
                    lg_id=str(lg_id),
                    event=event,
                    old_sf_id=link.sf_id,
                    new_sf_id=None,
                    run_id=run_id,
                    at=utcnow(),
                )
            )
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

    # -- runs and watermarks ---------------------------------------------------------------
    def start_run(
        self,
        dag_id: str,
        run_id: str,
        *,
        window_start: datetime | None,
        window_end: datetime | None,
        dry_run: bool,
        full_resync: bool,
    ) -> None:
        """Record that a run started (idempotent: a task retry keeps the same row)."""
        with self.session() as s:
            run = s.scalar(select(Run).where(Run.dag_id == dag_id, Run.run_id == run_id))
            if run is None:
                s.add(
                    Run(
                        dag_id=dag_id,
                        run_id=run_id,
                        window_start=to_db(window_start),
                        window_end=to_db(window_end),
                        dry_run=dry_run,
                        full_resync=full_resync,
                        started_at=utcnow(),
                        status="running",
                        report={},
                    )
                )
            else:
                run.window_start = to_db(window_start)
                run.window_end = to_db(window_end)
                run.status = "running"
                run.dry_run = dry_run
                run.full_resync = full_resync

    def finish_run(
        self,
        dag_id: str,
        run_id: str,
        *,
        status: str,
        report: dict[str, Any],
        sf_api_calls: int = 0,
        lg_api_calls: int = 0,
        message: str | None = None,
    ) -> None:
        with self.session() as s:
            run = s.scalar(select(Run).where(Run.dag_id == dag_id, Run.run_id == run_id))
            if run is None:
                run = Run(dag_id=dag_id, run_id=run_id, started_at=utcnow())
                s.add(run)
            run.status = status
            run.report = report
            run.sf_api_calls = sf_api_calls
            run.lg_api_calls = lg_api_calls
            run.finished_at = utcnow()
            run.message = message

    def add_run_calls(self, dag_id: str, run_id: str, *, sf: int = 0, lg: int = 0) -> None:
        """Add one task's API calls to its run as the task finishes, so the 24-hour budget sees
        the run in progress (``finish_run`` later writes the run's exact totals)."""
        if not (sf or lg):
            return
        with self.session() as s:
            run = s.scalar(select(Run).where(Run.dag_id == dag_id, Run.run_id == run_id))
            if run is None:
                return
            run.sf_api_calls = (run.sf_api_calls or 0) + int(sf)
            run.lg_api_calls = (run.lg_api_calls or 0) + int(lg)

    def get_run(self, dag_id: str, run_id: str) -> Run | None:
        with self.session() as s:
            return s.scalar(select(Run).where(Run.dag_id == dag_id, Run.run_id == run_id))

    def recent_runs(self, dag_id: str | None = None, limit: int = 50) -> list[Run]:
        with self.session() as s:
            q = select(Run)
            if dag_id:
                q = q.where(Run.dag_id == dag_id)
            return list(s.scalars(q.order_by(Run.started_at.desc(), Run.id.desc()).limit(limit)))

    def sf_calls_since(self, since: datetime) -> int:
        """Salesforce API calls recorded by finished runs of any DAG since ``since``."""
        with self.session() as s:
            return int(
                s.scalar(
                    select(func.coalesce(func.sum(Run.sf_api_calls), 0)).where(
                        Run.started_at >= to_db(since)
                    )
                )
                or 0
            )

    def get_watermark(self, dag_id: str, stream: str) -> datetime | None:
        with self.session() as s:
            wm = s.scalar(
                select(Watermark).where(Watermark.dag_id == dag_id, Watermark.stream == stream)
            )
            return from_db(wm.high_water) if wm else None

    def advance_watermark(
        self, dag_id: str, stream: str, high_water: datetime, run_id: str | None
    ) -> datetime:
        """Move the watermark forward (never backwards: a backfill of old hours must not rewind it)."""
        hw = to_db(high_water)
        with self.session() as s:
            wm = s.scalar(
                select(Watermark).where(Watermark.dag_id == dag_id, Watermark.stream == stream)
            )
            if wm is None:
                s.add(
                    Watermark(
                        dag_id=dag_id,
                        stream=stream,
                        high_water=hw,
                        run_id=run_id,
                        updated_at=utcnow(),
                    )
                )
                return from_db(hw)
            if hw > wm.high_water:
                wm.high_water = hw
                wm.run_id = run_id
                wm.updated_at = utcnow()
            return from_db(wm.high_water)

    def covered_until(self, dag_id: str) -> datetime | None:
        """End of the newest successfully synced window of ``dag_id`` (any stream)."""
        with self.session() as s:
            v = s.scalar(select(func.max(Watermark.high_water)).where(Watermark.dag_id == dag_id))
            return from_db(v)

    def window_done(self, dag_id: str, window_start: datetime, window_end: datetime) -> bool:
        """True when a successful, non-dry run of ``dag_id`` covered [window_start, window_end)."""
        with self.session() as s:
            run = s.scalar(
                select(Run.id)
                .where(
                    Run.dag_id == dag_id,
                    Run.status.in_(("success", "threshold_exceeded")),
                    Run.dry_run.is_(False),
                    Run.window_start <= to_db(window_start),
                    Run.window_end >= to_db(window_end),
                )
                .limit(1)
            )
            if run is not None:
                return True
            wm = s.scalar(select(func.max(Watermark.high_water)).where(Watermark.dag_id == dag_id))
            return wm is not None and wm >= to_db(window_end)

    # -- quarantine ------------------------------------------------------------------------
    def quarantine(
        self,
        *,
        dag_id: str,
        domain: str,
        direction: str,
        record_key: str,
        target_object: str,
        lg_id: str | None,
        sf_id: str | None,
        category: str,
        check: str,
        field: str | None,
        error_code: str | None,
        message: str,
        payload: dict[str, Any],
        run_id: str | None,
        max_attempts: int,
    ) -> QuarantineItem:
        """Insert or refresh the quarantine row of one source record; count the attempt."""
        now = utcnow()
        with self.session() as s:
            item = s.scalar(
                select(QuarantineItem).where(
                    QuarantineItem.dag_id == dag_id,
                    QuarantineItem.direction == direction,
                    QuarantineItem.record_key == record_key,
                )
            )
            if item is None:
                item = QuarantineItem(
                    dag_id=dag_id,
                    domain=domain,
                    direction=direction,
                    record_key=record_key,
                    attempts=1,
                    first_run_id=run_id,
                    first_seen=now,
                )
                s.add(item)
            elif item.last_run_id != run_id:
                # Retried in a later run (a task retry within one run is not a new attempt).
                item.attempts = (item.attempts or 0) + 1
            item.target_object = target_object
            item.lg_id = lg_id
            item.sf_id = sf_id
            item.category = category
            item.check = check
            item.field = field
            item.error_code = error_code
            item.message = message
            item.payload = payload
            item.last_run_id = run_id
            item.last_seen = now
            item.resolved_at = None
            item.status = "parked" if item.attempts >= max_attempts else "open"
            s.flush()
            s.expunge(item)
            return item

    def resolve_quarantine(
        self, dag_id: str, direction: str, record_keys: Iterable[str], run_id: str | None
    ) -> int:
        keys = sorted(set(record_keys))
        if not keys:
            return 0
        n = 0
        with self.session() as s:
            for chunk in _chunks(keys):
                res = s.execute(
                    update(QuarantineItem)
                    .where(
                        QuarantineItem.dag_id == dag_id,
                        QuarantineItem.direction == direction,
                        QuarantineItem.record_key.in_(chunk),
                        QuarantineItem.status != "resolved",
                    )
                    .values(status="resolved", resolved_at=utcnow(), last_run_id=run_id)
                )
                n += res.rowcount or 0
        return n

    def quarantined(
        self,
        dag_id: str | None = None,
        *,
        statuses: Sequence[str] = ("open", "retry", "parked"),
        direction: str | None = None,
        category: str | None = None,
        limit: int | None = None,
    ) -> list[QuarantineItem]:
        with self.session() as s:
            q = select(QuarantineItem).where(QuarantineItem.status.in_(list(statuses)))
            if dag_id:
                q = q.where(QuarantineItem.dag_id == dag_id)
            if direction:
                q = q.where(QuarantineItem.direction == direction)
            if category:
                q = q.where(QuarantineItem.category == category)
            q = q.order_by(QuarantineItem.last_seen.desc(), QuarantineItem.id.desc())
            if limit:
                q = q.limit(limit)
            return list(s.scalars(q))

    def retry_keys(self, dag_id: str, direction: str, *, include_parked: bool = False) -> list[str]:
        """Source record keys that the next run must re-read and retry."""
        statuses = ["open", "retry"] + (["parked"] if include_parked else [])
        with self.session() as s:
            return list(
                s.scalars(
                    select(QuarantineItem.record_key).where(
                        QuarantineItem.dag_id == dag_id,
                        QuarantineItem.direction == direction,
                        QuarantineItem.status.in_(statuses),
                    )
                )
            )

    def mark_for_retry(self, ids: Iterable[int]) -> int:
        id_list = sorted(set(int(i) for i in ids))
        if not id_list:
            return 0
        with self.session() as s:
            res = s.execute(
                update(QuarantineItem)
                .where(
                    QuarantineItem.id.in_(id_list), QuarantineItem.status.in_(("open", "parked"))
                )
                .values(status="retry", attempts=0)
            )
            return res.rowcount or 0

    # -- held items ------------------------------------------------------------------------
    def hold(
        self,
        dag_id: str,
        kind: str,
        item_key: str,
        *,
        payload: dict[str, Any],
        reason: str,
        waiting_for: str | None = None,
    ) -> None:
        now = utcnow()
        with self.session() as s:
            item = s.scalar(
                select(HeldItem).where(
                    HeldItem.dag_id == dag_id, HeldItem.kind == kind, HeldItem.item_key == item_key
                )
            )
            if item is None:
                s.add(
                    HeldItem(
                        dag_id=dag_id,
                        kind=kind,
                        item_key=item_key,
                        waiting_for=waiting_for,
                        payload=payload,
                        reason=reason,
                        first_seen=now,
                        last_seen=now,
                    )
                )
            else:
                if item.status != "held":
                    return
                item.attempts += 1
                item.payload = payload
                item.reason = reason
                item.waiting_for = waiting_for
                item.last_seen = now

    def held(
        self, dag_id: str | None, kind: str | None = None, status: str = "held"
    ) -> list[HeldItem]:
        with self.session() as s:
            q = select(HeldItem).where(HeldItem.status == status)
            if dag_id:
                q = q.where(HeldItem.dag_id == dag_id)
            if kind:
                q = q.where(HeldItem.kind == kind)
            return list(s.scalars(q.order_by(HeldItem.id)))

    def release(
        self,
        dag_id: str,
        kind: str,
        item_keys: Iterable[str],
        *,
        status: str,
        reason: str | None = None,
    ) -> int:
        keys = sorted(set(item_keys))
        n = 0
        with self.session() as s:
            for chunk in _chunks(keys):
                values: dict[str, Any] = {"status": status, "last_seen": utcnow()}
                if reason:
                    values["reason"] = reason
                res = s.execute(
                    update(HeldItem)
                    .where(
                        HeldItem.dag_id == dag_id,
                        HeldItem.kind == kind,
                        HeldItem.item_key.in_(chunk),
                    )
                    .values(**values)
                )
                n += res.rowcount or 0
        return n

    def purge_old(self, older_than: timedelta) -> None:
        """Delete resolved quarantine rows and finished held items older than ``older_than``."""
        cutoff = utcnow() - older_than
        with self.session() as s:
            s.query(QuarantineItem).filter(
                QuarantineItem.status == "resolved", QuarantineItem.resolved_at < cutoff
            ).delete(synchronize_session=False)
            s.query(HeldItem).filter(HeldItem.status != "held", HeldItem.last_seen < cutoff).delete(
                synchronize_session=False
            )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the API server read while a task writes; busy_timeout makes parallel tasks wait
    # for the lock instead of failing with "database is locked".
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
