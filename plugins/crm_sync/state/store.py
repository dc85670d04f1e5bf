"""The sync state store: one object per database, used by every pipeline stage.

All writes are short transactions so that parallel tasks (LocalExecutor, Celery) can share a
SQLite file in WAL mode or a Postgres database. The methods live in parts by subject
(:mod:`.links`, :mod:`.runs`, :mod:`.queues`, :mod:`.cache`, :mod:`.changes`, :mod:`.misses`);
this module owns the engine, sessions and migrations.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from crm_sync.state._common import from_db, to_db, utcnow
from crm_sync.state.cache import CacheStore
from crm_sync.state.changes import ChangeLogStore
from crm_sync.state.links import LinkStore
from crm_sync.state.misses import MatchMissStore
from crm_sync.state.queues import QueueStore
from crm_sync.state.runs import RunStore

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK = 0x63726D73796E63  # any fixed 64-bit key: "crmsync"

__all__ = ["SyncStore", "from_db", "to_db", "utcnow"]


class SyncStore(LinkStore, RunStore, QueueStore, CacheStore, ChangeLogStore, MatchMissStore):
    """Typed access to links, synced values, runs, watermarks, quarantine, held items, cached
    API answers, the per-run change log (with undo holds) and the people match's misses."""

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
            if conn.dialect.name == "postgresql":
                # Tasks opening a new database at once would each create the version table;
                # one migrates, the others wait for it (held until this transaction ends).
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
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


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the API server read while a task writes; busy_timeout makes parallel tasks wait
    # for the lock instead of failing with "database is locked".
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
