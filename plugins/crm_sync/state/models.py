"""SQLAlchemy models of the sync state.

Every table carries ``domain`` (which object pair: ``person`` for leads/contacts, ``opportunity``,
``account``, ``membership``, ``activity``) so that the three DAGs share one store without sharing
rows. Timestamps are naive UTC (SQLite has no time zones); :mod:`crm_sync.state.store` converts at
the boundary.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ONE_TO_ONE = "status = 'active' AND domain != 'membership'"


class Base(DeclarativeBase):
    pass


class Link(Base):
    """One Lead Gen & CRM record paired with one Salesforce record.

    ``synced_values`` holds, per mapping key, the canonical value both sides agreed on at the last
    successful sync: the basis of echo suppression and of two-way change detection.
    ``status`` is ``active``, ``deleted`` (Salesforce record deleted, Lead Gen & CRM side
    deactivated) or ``superseded`` (replaced by a newer link for the same Lead Gen & CRM record).
    """

    __tablename__ = "links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(32))
    lg_id: Mapped[str] = mapped_column(String(64))
    sf_object: Mapped[str] = mapped_column(String(64))
    sf_id: Mapped[str] = mapped_column(String(18))
    status: Mapped[str] = mapped_column(String(16), default="active")
    synced_values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    last_run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)

    __table_args__ = (
        UniqueConstraint("domain", "lg_id", name="uq_links_domain_lg_id"),
        Index("ix_links_domain_sf_id", "domain", "sf_id"),
        Index("ix_links_domain_status", "domain", "status", "id"),
        # one active link per Salesforce record (memberships: many per opportunity)
        Index(
            "uq_links_active_sf_record",
            "domain",
            "sf_id",
            unique=True,
            sqlite_where=text(ONE_TO_ONE),
            postgresql_where=text(ONE_TO_ONE),
        ),
    )

    def as_dict(self) -> dict[str, Any]:
        """The link as the JSON the stages hand each other."""
        return {
            "lg_id": self.lg_id,
            "sf_id": self.sf_id,
            "sf_object": self.sf_object,
            "status": self.status,
            "synced_values": dict(self.synced_values or {}),
        }


class LinkEvent(Base):
    """History of a link: created, converted, merged, deactivated, relinked, undeleted, ..."""

    __tablename__ = "link_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(32))
    lg_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(32))
    old_sf_id: Mapped[str | None] = mapped_column(String(18), nullable=True)
    new_sf_id: Mapped[str | None] = mapped_column(String(18), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_link_events_domain_lg_id", "domain", "lg_id"),)


class Run(Base):
    """One DAG run's window, status and report (counts per stage and side, API calls)."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    window_start: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    window_end: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(32), default="running")
    dry_run: Mapped[bool] = mapped_column(default=False)
    full_resync: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    sf_api_calls: Mapped[int] = mapped_column(Integer, default=0)
    lg_api_calls: Mapped[int] = mapped_column(Integer, default=0)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        UniqueConstraint("dag_id", "run_id", name="uq_runs_dag_run"),
        Index("ix_runs_dag_started", "dag_id", "started_at"),
        Index("ix_runs_started", "started_at"),
        Index("ix_runs_dag_window_end", "dag_id", "window_end"),
    )


class Watermark(Base):
    """The end of the last window a stream synced successfully (load and quality gate passed)."""

    __tablename__ = "watermarks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    stream: Mapped[str] = mapped_column(String(64))
    high_water: Mapped[datetime] = mapped_column(DateTime)
    run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (UniqueConstraint("dag_id", "stream", name="uq_watermarks_dag_stream"),)


class Lease(Base):
    """Which run of a DAG may read and write its sync state right now (one at a time: a
    backfill beside a scheduled run must not plan from synced values the other is changing).
    ``expires_at`` frees a lease its run left behind (a killed worker)."""

    __tablename__ = "leases"

    dag_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(250))
    acquired_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class QuarantineItem(Base):
    """A record that failed a check or was rejected by the target, kept with its reason.

    ``record_key`` identifies the *source* record (``lg:<id>`` or ``sf:<id>``); one row per
    source record and direction. ``status``: ``open`` (retried every run), ``parked`` (attempts
    exhausted; retried only on request), ``retry`` (marked for retry from the UI), ``resolved``.
    """

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    domain: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(16))
    record_key: Mapped[str] = mapped_column(String(120))
    target_object: Mapped[str] = mapped_column(String(64))
    lg_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sf_id: Mapped[str | None] = mapped_column(String(18), nullable=True)
    category: Mapped[str] = mapped_column(String(32))
    check: Mapped[str] = mapped_column(String(120))
    field: Mapped[str | None] = mapped_column(String(120), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="open")
    first_run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    last_run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime)
    last_seen: Mapped[datetime] = mapped_column(DateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("dag_id", "direction", "record_key", name="uq_quarantine_record"),
        Index("ix_quarantine_status", "dag_id", "status"),
        Index("ix_quarantine_retry", "dag_id", "direction", "status"),
        Index("ix_quarantine_error_seen", "error_code", "last_seen"),
        # every record stage's purge of resolved rows past their retention (0006)
        Index("ix_quarantine_resolved", "status", "resolved_at"),
    )


class HeldItem(Base):
    """Work that cannot be done yet (an event or a contact role whose person is not linked).

    Held items are retried every run and delivered once their dependency exists; they are never
    dropped silently (``status`` becomes ``delivered`` or ``dropped`` with a reason).
    """

    __tablename__ = "held_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    kind: Mapped[str] = mapped_column(String(32))
    item_key: Mapped[str] = mapped_column(String(200))
    waiting_for: Mapped[str | None] = mapped_column(String(120), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="held")
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime] = mapped_column(DateTime)
    last_seen: Mapped[datetime] = mapped_column(DateTime)
    last_run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)

    __table_args__ = (
        UniqueConstraint("dag_id", "kind", "item_key", name="uq_held_item"),
        Index("ix_held_status", "dag_id", "status"),
        Index("ix_held_kind_status", "dag_id", "kind", "status"),
        # every record stage's purge of delivered/dropped items past their retention (0006)
        Index("ix_held_last_seen", "last_seen"),
    )


class CacheEntry(Base):
    """An API answer kept for a while (a describe, a field list): ``scope`` says whose it is
    (``schema:<connection identity>``), ``key`` what it is within the scope, ``stored_at`` how
    old it is."""

    __tablename__ = "cache_entries"

    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    scope: Mapped[str] = mapped_column(String(250))
    value: Mapped[Any] = mapped_column(JSON)
    stored_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_cache_scope_stored", "scope", "stored_at"),)


class ChangeRecord(Base):
    """One change a run made in either system: the per-run change log an undo reads.

    ``kind``: ``update`` (``field`` overwritten: ``before`` is the value the run's plan saw,
    ``after`` the value written), ``create`` (the run created the record; ``field`` is ``""``,
    ``after`` the created values), ``adopted`` (a create found the record already there),
    ``kept`` (a field an undo never restores: the record link, lifecycle flags) and ``removed``
    (an undo deleted or deactivated the record). ``meta`` carries what an undo needs for the sync
    state: the link (``domain``, ``lg_id``), the mapping ``key`` and the canonical ``before``,
    ``after`` and ``other`` (the other system's) values. One row per (run, system, record,
    field): a retried load logs nothing twice.
    """

    __tablename__ = "change_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    system: Mapped[str] = mapped_column(String(16))
    object: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint(
            "dag_id", "run_id", "system", "record_id", "field", name="uq_change_log_entry"
        ),
        # a run's changes in log order (Sync health pages, undo), and a record's history
        Index("ix_change_log_run", "dag_id", "run_id", "id"),
        Index("ix_change_log_record", "system", "object", "record_id"),
        Index("ix_change_log_at", "at"),
    )


class UndoHold(Base):
    """A field an undo restored on one side of a linked pair: the two sides disagree on purpose.

    ``leadgen`` and ``salesforce`` are the canonical values each side held when the undo ended.
    While both still hold them, the sync writes neither (else it would write the undone value
    back); once one side changes, the sync treats the other side's value as the last synced one
    and the hold is released.
    """

    __tablename__ = "undo_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(32))
    lg_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(120))
    leadgen: Mapped[Any] = mapped_column(JSON, nullable=True)
    salesforce: Mapped[Any] = mapped_column(JSON, nullable=True)
    run_id: Mapped[str] = mapped_column(String(250))
    at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (UniqueConstraint("domain", "lg_id", "key", name="uq_undo_holds_key"),)


class MatchMiss(Base):
    """A Lead Gen & CRM record whose first-pairing lookup in Salesforce (by record-link id and
    email) found nothing at ``checked_at`` (our clock, taken before the query was sent).

    A later run whose Salesforce window reads every change since ``checked_at`` needs no new
    lookup for it: a record that gained that email since would be in the window's extract. So
    a quarantined lead retried every hour costs no Salesforce query (issue 16)."""

    __tablename__ = "match_misses"

    domain: Mapped[str] = mapped_column(String(32), primary_key=True)
    lg_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Text, not a length: a lead's address is whatever Lead Gen & CRM holds, long ones included
    email: Mapped[str] = mapped_column(Text)
    checked_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_match_misses_checked", "domain", "checked_at"),)
