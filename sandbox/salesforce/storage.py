"""The SQLite file behind the org: one table per sObject, plus org state and Bulk job records.

Layout and conventions:

* Table ``sf_<Object>`` has ``pk INTEGER PRIMARY KEY AUTOINCREMENT`` (the record id is derived
  from it, so ids are never reused within a data dir), ``"Id"`` and one column per field, named
  exactly like the field. Hidden columns: ``_deleted_at`` (epoch ms, recycle-bin time) and
  ``_delete_root`` (the id whose deletion cascaded to this row, so undelete can restore it).
* Storage types: text fields ``TEXT COLLATE NOCASE`` (SOQL string comparison and ``ORDER BY`` are
  case-insensitive), ids ``TEXT`` (binary, always the canonical 18-character form), booleans,
  integers and datetimes ``INTEGER`` (datetimes as epoch milliseconds UTC, which keeps window
  queries on an integer index), decimals ``REAL``, dates ``TEXT`` ``YYYY-MM-DD``.
* Concurrency: uvicorn runs request handlers in a thread pool. Every thread gets its own
  connection (WAL mode, so readers never block on the writer) and all writes are serialised by
  one re-entrant lock; nested write blocks become savepoints, which is how ``allOrNone`` rolls
  back a whole collection.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .schema import NUMBER_TYPES, FieldDef, ObjectDef

log = logging.getLogger(__name__)

UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def table_name(obj: str) -> str:
    return f"sf_{obj}"


def q(name: str) -> str:
    """Quote an identifier (field names come from the schema, never from request text)."""
    return '"' + name.replace('"', '""') + '"'


def sql_type(f: FieldDef) -> str:
    if f.type in ("id", "reference"):
        return "TEXT"
    if f.is_text:
        return "TEXT COLLATE NOCASE"
    if f.type in ("boolean", "int", "datetime"):
        return "INTEGER"
    if f.type in NUMBER_TYPES:
        return "REAL"
    return "TEXT"  # date


# ------------------------------------------------------------------------- value conversions


def dt_to_ms(value: dt.datetime) -> int:
    """Aware datetime -> epoch milliseconds (sub-millisecond precision is dropped)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def ms_to_dt(ms: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=ms)


def format_datetime(ms: int) -> str:
    """Salesforce REST datetime text: ``2013-05-20T20:49:32.000+0000``."""
    d = ms_to_dt(ms)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}+0000"


def format_datetime_z(ms: int) -> str:
    """Bulk API CSV datetime text: ``2013-05-20T20:49:32.000Z``."""
    d = ms_to_dt(ms)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def to_json_value(f: FieldDef, stored: Any) -> Any:
    """Stored column value -> the JSON value a REST response carries."""
    if stored is None:
        return None
    t = f.type
    if t == "boolean":
        return bool(stored)
    if t == "datetime":
        return format_datetime(int(stored))
    if t == "int":
        return int(stored)
    if t in NUMBER_TYPES:
        return float(stored)
    return stored


def to_csv_value(f: FieldDef, stored: Any) -> str:
    """Stored column value -> Bulk API 2.0 CSV text (empty for null)."""
    if stored is None:
        return ""
    t = f.type
    if t == "boolean":
        return "true" if stored else "false"
    if t == "datetime":
        return format_datetime_z(int(stored))
    if t == "int":
        return str(int(stored))
    if t in NUMBER_TYPES:
        value = float(stored)
        return str(int(value)) if value.is_integer() else repr(value)
    return str(stored)


# -------------------------------------------------------------------------------- database


class Database:
    """Thread-aware access to the sandbox's SQLite file."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._next_pk: dict[str, int] = {}
        # Called with the journal entries of each committed transaction (the write log).
        self.on_commit: Callable[[list[tuple[Any, ...]]], None] | None = None
        with self.write() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS _meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            c.execute(
                "CREATE TABLE IF NOT EXISTS _bulk_jobs (pk INTEGER PRIMARY KEY AUTOINCREMENT, "
                "id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, info TEXT NOT NULL)"
            )

    # -- connections
    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=60
            )
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=NORMAL")
            c.execute("PRAGMA temp_store=MEMORY")
            c.execute("PRAGMA cache_size=-65536")
            c.execute("PRAGMA mmap_size=268435456")
            self._local.conn = c
            self._local.depth = 0
            self._local.journal = []
            with self._conns_lock:
                self._conns.append(c)
        return c

    def close(self) -> None:
        with self._conns_lock:
            for c in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    c.close()
            self._conns.clear()
        self._local = threading.local()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; nested calls in the same thread become savepoints.

        Entries noted with :meth:`journal` inside it reach :attr:`on_commit` when the
        outermost transaction commits; a rollback (of a savepoint too) discards its entries.
        """
        with self._write_lock:
            c = self.conn()
            depth = self._local.depth
            if depth == 0:
                c.execute("BEGIN IMMEDIATE")
                self._local.journal = []
            else:
                c.execute(f"SAVEPOINT sp{depth}")
            mark = len(self._local.journal)
            self._local.depth = depth + 1
            try:
                yield c
            except BaseException:
                if depth == 0:
                    c.execute("ROLLBACK")
                else:
                    c.execute(f"ROLLBACK TO sp{depth}")
                    c.execute(f"RELEASE sp{depth}")
                del self._local.journal[mark:]
                raise
            else:
                if depth == 0:
                    c.execute("COMMIT")
                    entries, self._local.journal = self._local.journal, []
                    if entries and self.on_commit is not None:
                        self.on_commit(entries)
                else:
                    c.execute(f"RELEASE sp{depth}")
            finally:
                self._local.depth = depth

    def journal(self, entry: tuple[Any, ...]) -> None:
        """Note ``entry`` for :attr:`on_commit` (call inside :meth:`write`)."""
        self._local.journal.append(entry)

    @property
    def write_lock(self) -> threading.RLock:
        return self._write_lock

    # -- org state
    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.conn().execute("SELECT value FROM _meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        with self.write() as c:
            c.execute(
                "INSERT INTO _meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    # -- sObject tables
    def ensure_table(self, obj: ObjectDef) -> None:
        """Create the object's table, add columns for new fields, create the indexes."""
        t = table_name(obj.name)
        with self.write() as c:
            cols = ["pk INTEGER PRIMARY KEY AUTOINCREMENT", '"Id" TEXT NOT NULL UNIQUE']
            cols += [f"{q(f.name)} {sql_type(f)}" for f in obj.field_list if f.name != "Id"]
            cols += ["_deleted_at INTEGER", "_delete_root TEXT"]
            c.execute(f"CREATE TABLE IF NOT EXISTS {q(t)} ({', '.join(cols)})")
            existing = {row[1].lower() for row in c.execute(f"PRAGMA table_info({q(t)})")}
            for f in obj.field_list:
                if f.name.lower() not in existing:
                    c.execute(f"ALTER TABLE {q(t)} ADD COLUMN {q(f.name)} {sql_type(f)}")
            for name, ddl in self._index_ddl(obj).items():
                c.execute(f"CREATE INDEX IF NOT EXISTS {q(name)} ON {q(t)} {ddl}")
        self._next_pk.pop(t, None)

    def drop_indexes(self, obj: ObjectDef) -> None:
        """Drop secondary indexes (the seed fast path rebuilds them once after loading)."""
        with self.write() as c:
            for name in self._index_ddl(obj):
                c.execute(f"DROP INDEX IF EXISTS {q(name)}")

    @staticmethod
    def _index_ddl(obj: ObjectDef) -> dict[str, str]:
        t = table_name(obj.name)
        out: dict[str, str] = {}
        names = obj.fields
        if "systemmodstamp" in names:
            out[f"ix_{t}_modstamp"] = '("SystemModstamp", "Id")'
        if "lastmodifieddate" in names:
            out[f"ix_{t}_lastmod"] = '("LastModifiedDate")'
        if "isdeleted" in names:
            out[f"ix_{t}_deleted"] = '("IsDeleted") WHERE "IsDeleted" = 1'
            out[f"ix_{t}_deleted_at"] = "(_deleted_at) WHERE _deleted_at IS NOT NULL"
        for f in obj.field_list:
            indexed = f.name == "Email" or f.external_id or f.unique
            indexed = indexed or f.name in (
                "AccountId",
                "WhoId",
                "WhatId",
                "OpportunityId",
                "ContactId",
            )
            if indexed:
                out[f"ix_{t}_{f.name.lower()}"] = f"({q(f.name)})"
        return out

    def allocate_pk(self, obj: str, count: int = 1) -> int:
        """Reserve ``count`` row keys and return the first. Caller holds the write lock."""
        t = table_name(obj)
        nxt = self._next_pk.get(t)
        if nxt is None:
            c = self.conn()
            row = c.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (t,)).fetchone()
            top = c.execute(f"SELECT MAX(pk) FROM {q(t)}").fetchone()[0] or 0
            nxt = max(top, row[0] if row else 0) + 1
        self._next_pk[t] = nxt + count
        return nxt

    def wipe(self, objects: list[str]) -> None:
        """Delete every row of ``objects`` (keys keep counting up, so ids are not reused)."""
        with self.write() as c:
            for obj in objects:
                c.execute(f"DELETE FROM {q(table_name(obj))}")
            c.execute("DELETE FROM _bulk_jobs")

    def drop_columns(self, obj: ObjectDef, names: list[str]) -> None:
        """Drop the columns (and their indexes) of fields removed by a schema reset."""
        t = table_name(obj.name)
        with self.write() as c:
            for name in names:
                c.execute(f"DROP INDEX IF EXISTS {q(f'ix_{t}_{name.lower()}')}")
                c.execute(f"ALTER TABLE {q(t)} DROP COLUMN {q(name)}")
