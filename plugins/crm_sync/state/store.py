"""The sync state store: one object per database, used by every pipeline stage.

All writes are short transactions so that parallel tasks (LocalExecutor, Celery) can share a
SQLite file in WAL mode or a Postgres database. The methods live in parts by subject
(:mod:`.links`, :mod:`.runs`, :mod:`.queues`, :mod:`.cache`, :mod:`.changes`, :mod:`.misses`);
this module owns the engine, sessions and migrations.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Mapper, Session, registry, sessionmaker

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
# The Alembic version table of the state store (``migrations/env.py`` names it too).
VERSION_TABLE = "crm_sync_alembic_version"

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
        configure_models()
        if migrate and not self.at_head():
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

    def at_head(self) -> bool:
        """Whether the schema is at the newest revision already: one query of the version
        table, so opening a migrated store (every task does) runs no Alembic at all. Any doubt
        (no version table, a revision this code does not know) answers False: migrate."""
        head = head_revision()
        if head is None:
            return False
        with self.engine.connect() as conn:
            if not inspect(conn).has_table(VERSION_TABLE):
                return False
            rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
        return [r[0] for r in rows] == [head]

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


_REVISION = re.compile(r"^revision(?:\s*:[^=]+)?\s*=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision(?:\s*:[^=]+)?\s*=\s*(.+)$", re.M)
_heads: dict[Path, str | None] = {}


def head_revision(versions: Path = MIGRATIONS_DIR / "versions") -> str | None:
    """The newest revision of the migrations, read from their files (without importing Alembic
    or the migrations): the one revision no other names as its ``down_revision``. None when the
    files do not say it plainly (then the store lets Alembic decide)."""
    if versions not in _heads:
        revisions: set[str] = set()
        parents: set[str] = set()
        head: str | None = None
        for path in sorted(versions.glob("*.py")):
            source = path.read_text()
            rev, down = _REVISION.search(source), _DOWN.search(source)
            if rev is None or down is None:
                break  # a file this reader does not understand: no fast path
            revisions.add(rev.group(1))
            parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
        else:
            heads = revisions - parents
            head = heads.pop() if len(heads) == 1 else None
        _heads[versions] = head
    return _heads[versions]


def configure_models(models: registry | None = None) -> None:
    """Configure the store's ORM mappers (once per process) without running the other
    ``before_configured`` hooks of the process: Airflow's (``airflow.models.import_all_models``,
    set up with its own database) imports every Airflow model, about half a second that a task
    would pay on its first store query for mappers it never uses. The hook stays registered for
    Airflow's own mappers; the configuration mutex keeps another thread from configuring them
    meanwhile."""
    if models is None:
        from crm_sync.state.models import Base

        models = Base.registry
    if not getattr(models, "_new_mappers", True):  # a private flag: absent, configure
        return
    try:
        from sqlalchemy.orm.mapper import _CONFIGURE_MUTEX as mutex
    except ImportError:  # another SQLAlchemy: configure as usual
        mutex = None
    hook = getattr(sys.modules.get("airflow.models"), "import_all_models", None)
    if hook is None or mutex is None:
        models.configure()
        return
    with mutex:
        if not event.contains(Mapper, "before_configured", hook):
            models.configure()
            return
        event.remove(Mapper, "before_configured", hook)
        try:
            models.configure()
        finally:
            event.listen(Mapper, "before_configured", hook, once=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the API server read while a task writes; busy_timeout makes parallel tasks wait
    # for the lock instead of failing with "database is locked".
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
