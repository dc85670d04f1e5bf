"""A temporary SQLite file holding what the checks compare: both systems' records and the links.

Both systems are paged through once and their records streamed into this file (the org can be
large), so memory holds one page and one batch, not the org. Checks then ask questions in SQL
(group by email, left join links, ...) and read answers in batches.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

BATCH = 1000

SCHEMA = """
CREATE TABLE lg_lead (id TEXT PRIMARY KEY, email TEXT, is_contact INTEGER, rec TEXT);
CREATE INDEX ix_lg_lead_email ON lg_lead (email);
CREATE TABLE sf_person (
    id TEXT PRIMARY KEY, object TEXT, lgid TEXT, email TEXT, converted INTEGER,
    converted_to TEXT, rec TEXT
);
CREATE INDEX ix_sf_person_lgid ON sf_person (lgid);
CREATE INDEX ix_sf_person_email ON sf_person (email);
CREATE TABLE link (
    domain TEXT, lg_id TEXT, sf_id TEXT, sf_object TEXT, status TEXT, lead TEXT, opp_lg TEXT,
    synced TEXT
);
CREATE INDEX ix_link_lg ON link (domain, lg_id);
CREATE INDEX ix_link_sf ON link (domain, sf_id);
CREATE TABLE sf_opp (id TEXT PRIMARY KEY, stage TEXT, account TEXT);
CREATE TABLE mapped_stage (name TEXT PRIMARY KEY);
CREATE TABLE sf_role (id TEXT PRIMARY KEY, opp TEXT, contact TEXT);
CREATE INDEX ix_sf_role_opp ON sf_role (opp);
CREATE TABLE sf_account (id TEXT PRIMARY KEY);
CREATE TABLE sf_contact_account (id TEXT PRIMARY KEY, account TEXT);
CREATE TABLE lg_obj (kind TEXT, id TEXT, PRIMARY KEY (kind, id));
CREATE TABLE event (id TEXT PRIMARY KEY, type TEXT, lead_id TEXT, at TEXT, key TEXT);
CREATE INDEX ix_event_key ON event (key);
"""


def batches(rows: Iterable[Any], size: int = BATCH) -> Iterator[list[Any]]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def blank_to_none(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def norm_email(v: Any) -> str | None:
    s = blank_to_none(v)
    return s.lower() if s else None


class Snapshot:
    """The checker's work file. ``path`` is a file in a temporary folder (or ``:memory:``)."""

    def __init__(self, path: str):
        self.db = sqlite3.connect(path)
        self.db.executescript(SCHEMA)
        self.loaded: set[str] = set()

    def close(self) -> None:
        self.db.close()

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Insert ``rows`` in batches; return how many. Later duplicates of a key replace earlier
        ones (a record seen on two pages of a moving set is kept once)."""
        sql = (
            f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})"
        )
        n = 0
        for chunk in batches(rows):
            self.db.executemany(sql, chunk)
            n += len(chunk)
        self.db.commit()
        return n

    def rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Answer rows of ``sql``, fetched in batches (a second cursor, so callers may query
        while iterating)."""
        cur = self.db.cursor()
        cur.execute(sql, params)
        while chunk := cur.fetchmany(BATCH):
            yield from chunk

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.db.execute(sql, params).fetchone()
        return row[0] if row else None

    def records(self, table: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Stored raw records (``rec`` column) of ``table`` by id."""
        out: dict[str, dict[str, Any]] = {}
        for chunk in batches(ids, 500):
            q = f"SELECT id, rec FROM {table} WHERE id IN ({','.join('?' * len(chunk))})"
            out.update({i: json.loads(r) for i, r in self.db.execute(q, chunk)})
        return out

    def has(self, table: str, key: str, value: str, **where: str) -> bool:
        cond = " AND ".join([f"{key} = ?", *(f"{k} = ?" for k in where)])
        return (
            self.db.execute(
                f"SELECT 1 FROM {table} WHERE {cond} LIMIT 1", (value, *where.values())
            ).fetchone()
            is not None
        )
