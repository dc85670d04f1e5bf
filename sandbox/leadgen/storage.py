"""SQLite storage for the sandbox account: schema, connection, transactions, reset.

One database file (``<data-dir>/leadgen.sqlite3``) in WAL mode survives restarts. The server
funnels every statement through one connection guarded by a lock: the API is strictly
request/response and SQLite serialises writers anyway, so one connection is both the simplest
and the fastest choice, and it makes every call atomic.

Lead rows keep the standard fields in real columns (indexed where the API filters) and the custom
fields as a small JSON object keyed by systemName, so ``createFields`` never has to ALTER a
1M-row table.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from .catalog import (
    ACCOUNT_FIELDS,
    DEAL_STAGE_FIELDS,
    DEFAULT_CUSTOM_FIELDS,
    FIELDS_BY_RELATIONSHIP,
    ID_BASES,
    LEAD_FIELDS,
    OPPORTUNITY_FIELDS,
    OPPORTUNITY_LEAD_FIELDS,
    FieldDef,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
DB_FILENAME = "leadgen.sqlite3"

_SQL_TYPES = {"id": "INTEGER", "int": "INTEGER", "bool": "INTEGER", "decimal": "TEXT"}


def stored_columns(fields: tuple[FieldDef, ...]) -> list[str]:
    """Names of the fields that are real columns (derived flags are computed on read)."""
    return [f.name for f in fields if f.kind != "derived"]


def _table_sql(table: str, fields: tuple[FieldDef, ...], extra: str) -> str:
    cols = []
    for f in fields:
        if f.kind == "derived":
            continue
        if f.kind == "id":
            cols.append("id INTEGER PRIMARY KEY AUTOINCREMENT")
        else:
            cols.append(f'"{f.name}" {_SQL_TYPES.get(f.kind, "TEXT")}')
    body = ",\n  ".join(cols + ([extra] if extra else []))
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {body}\n)"


# Secondary lead indexes, kept in a list so a bulk seed can drop and rebuild them (much faster
# than maintaining them row by row over a million inserts).
LEAD_INDEXES: tuple[tuple[str, str], ...] = (
    (
        "leads_email",
        "CREATE UNIQUE INDEX IF NOT EXISTS leads_email ON leads(emailAddress COLLATE NOCASE)",
    ),
    ("leads_active_id", "CREATE INDEX IF NOT EXISTS leads_active_id ON leads(active, id)"),
    (
        "leads_active_update",
        "CREATE INDEX IF NOT EXISTS leads_active_update ON leads(active, updateTimestamp, id)",
    ),
    (
        "leads_active_create",
        "CREATE INDEX IF NOT EXISTS leads_active_create ON leads(active, createTimestamp, id)",
    ),
)

_TS_COLS = "createTimestamp TEXT NOT NULL, updateTimestamp TEXT NOT NULL"

SCHEMA: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE IF NOT EXISTS users (
  id INTEGER PRIMARY KEY AUTOINCREMENT, firstName TEXT, lastName TEXT, displayName TEXT,
  emailAddress TEXT, isActive INTEGER NOT NULL DEFAULT 1, isReseller INTEGER NOT NULL DEFAULT 0,
  userTimezone TEXT, phone TEXT)""",
    """CREATE TABLE IF NOT EXISTS fields (
  id INTEGER PRIMARY KEY AUTOINCREMENT, relationship TEXT NOT NULL, systemName TEXT NOT NULL,
  label TEXT NOT NULL, source TEXT NOT NULL DEFAULT 'sharpspring', dataType TEXT NOT NULL,
  dataLength INTEGER, isRequired INTEGER NOT NULL DEFAULT 0, isCustom INTEGER NOT NULL,
  isAvailableInContactManager INTEGER NOT NULL DEFAULT 1,
  isEditableInContactManager INTEGER NOT NULL DEFAULT 1,
  isAvailableInForms INTEGER NOT NULL DEFAULT 1, isActive INTEGER NOT NULL DEFAULT 1,
  options TEXT, UNIQUE(relationship, systemName))""",
    _table_sql("leads", LEAD_FIELDS, "custom TEXT"),
    *(sql for _, sql in LEAD_INDEXES),
    _table_sql("accounts", ACCOUNT_FIELDS, f"custom TEXT, {_TS_COLS}"),
    "CREATE INDEX IF NOT EXISTS accounts_update ON accounts(updateTimestamp, id)",
    "CREATE INDEX IF NOT EXISTS accounts_create ON accounts(createTimestamp, id)",
    _table_sql("opportunities", OPPORTUNITY_FIELDS, f"custom TEXT, {_TS_COLS}"),
    "CREATE INDEX IF NOT EXISTS opps_update ON opportunities(updateTimestamp, id)",
    "CREATE INDEX IF NOT EXISTS opps_create ON opportunities(createTimestamp, id)",
    _table_sql("deal_stages", DEAL_STAGE_FIELDS, _TS_COLS),
    _table_sql(
        "opportunity_leads", OPPORTUNITY_LEAD_FIELDS, f"{_TS_COLS}, UNIQUE(opportunityID, leadID)"
    ),
    "CREATE INDEX IF NOT EXISTS opp_leads_lead ON opportunity_leads(leadID)",
    """CREATE TABLE IF NOT EXISTS campaigns (
  id INTEGER PRIMARY KEY AUTOINCREMENT, campaignName TEXT NOT NULL, campaignType TEXT,
  campaignAlias TEXT, campaignOrigin TEXT, qty TEXT, price TEXT, goal TEXT, otherCosts TEXT,
  startDate TEXT, endDate TEXT, isActive INTEGER NOT NULL DEFAULT 1, ownerID INTEGER,
  createTimestamp TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS emails (
  id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, subject TEXT NOT NULL,
  thumbnail TEXT, createTimestamp TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS email_jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, emailID INTEGER NOT NULL, isList INTEGER NOT NULL,
  isActive INTEGER NOT NULL DEFAULT 1, recipientID INTEGER, sendCount INTEGER NOT NULL,
  createTimestamp TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS forms (
  id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, createTimestamp TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, leadID INTEGER NOT NULL, eventName TEXT,
  whatID INTEGER, whatType TEXT, eventData TEXT, eventSource TEXT NOT NULL,
  createTimestamp TEXT NOT NULL, emailID INTEGER, emailJobID INTEGER)""",
    "CREATE INDEX IF NOT EXISTS events_created ON events(createTimestamp)",
    "CREATE INDEX IF NOT EXISTS events_lead ON events(leadID, id)",
    "CREATE INDEX IF NOT EXISTS events_job ON events(emailJobID, eventSource, id)",
    """CREATE TABLE IF NOT EXISTS lists (
  id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, description TEXT,
  createTimestamp TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS list_members (
  id INTEGER PRIMARY KEY AUTOINCREMENT, listID INTEGER NOT NULL, leadID INTEGER NOT NULL,
  removed INTEGER NOT NULL DEFAULT 0, createTimestamp TEXT NOT NULL, UNIQUE(listID, leadID))""",
)

# Tables emptied by reset. ``users`` is kept; ``fields`` is restored to the default catalogue.
DATA_TABLES = (
    "leads",
    "accounts",
    "opportunities",
    "deal_stages",
    "opportunity_leads",
    "campaigns",
    "emails",
    "email_jobs",
    "forms",
    "events",
    "lists",
    "list_members",
)

# The account's users. Fixed (not seeded) so every reset and every test sees the same owners;
# one is inactive, like a former employee who still owns records.
DEFAULT_USERS: tuple[tuple, ...] = (
    (
        313361052,
        "Morgan",
        "Reyes",
        "Morgan Reyes",
        "morgan.reyes@northwind-sandbox.example",
        1,
        0,
        "America/New_York",
        "+1 555-0100",
    ),
    (
        313361053,
        "Priya",
        "Nair",
        "Priya Nair",
        "priya.nair@northwind-sandbox.example",
        1,
        0,
        "America/Chicago",
        "+1 555-0101",
    ),
    (
        313361054,
        "Diego",
        "Alvarez",
        "Diego Alvarez",
        "diego.alvarez@northwind-sandbox.example",
        1,
        0,
        "America/Denver",
        None,
    ),
    (
        313361055,
        "Hannah",
        "Kim",
        "Hannah Kim",
        "hannah.kim@northwind-sandbox.example",
        1,
        0,
        "America/Los_Angeles",
        "+1 555-0103",
    ),
    (
        313361056,
        "Tom",
        "Becker",
        "Tom Becker",
        "tom.becker@northwind-sandbox.example",
        0,
        0,
        "Europe/Berlin",
        None,
    ),
)


class Database:
    """The sandbox's single SQLite connection, its schema and its transactions."""

    def __init__(self, data_dir: Path):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / DB_FILENAME
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        for pragma in (
            "PRAGMA journal_mode=WAL",
            # NORMAL is durable across process crashes in WAL mode (only an OS crash can lose
            # the last transactions), which is plenty for a sandbox and much faster than FULL.
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=OFF",
            "PRAGMA temp_store=MEMORY",
            "PRAGMA cache_size=-65536",
            "PRAGMA mmap_size=268435456",
        ):
            self.conn.execute(pragma)
        self._init_schema()

    # -- transactions ---------------------------------------------------------------------

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolls back on any exception."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Serialised access for reads (a consistent snapshot per statement)."""
        with self.lock:
            yield self.conn

    def close(self) -> None:
        with self.lock:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # a checkpoint failure must not block shutdown
                log.warning("WAL checkpoint on close failed: %s", exc)
            self.conn.close()

    # -- schema ---------------------------------------------------------------------------

    def _init_schema(self) -> None:
        with self.tx() as conn:
            for stmt in SCHEMA:
                conn.execute(stmt)
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
                )
                self._seed_sequences(conn, include_users=True)
                conn.executemany(
                    "INSERT INTO users(id, firstName, lastName, displayName, emailAddress, isActive,"
                    " isReseller, userTimezone, phone) VALUES (?,?,?,?,?,?,?,?,?)",
                    DEFAULT_USERS,
                )
                self._install_default_fields(conn)
                log.info("created a new sandbox database at %s", self.path)
            elif row["value"] != SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has schema version {row['value']}, this sandbox needs {SCHEMA_VERSION};"
                    " delete the data directory to start over"
                )

    @staticmethod
    def _seed_sequences(conn: sqlite3.Connection, *, include_users: bool) -> None:
        for table, base in ID_BASES.items():
            if table == "users" and not include_users:
                continue
            conn.execute("DELETE FROM sqlite_sequence WHERE name=?", (table,))
            conn.execute("INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)", (table, base))

    @staticmethod
    def _install_default_fields(conn: sqlite3.Connection) -> None:
        """Standard fields of every relationship (isCustom 0) plus the default custom fields."""
        conn.execute("DELETE FROM fields")
        conn.execute("DELETE FROM sqlite_sequence WHERE name='fields'")
        conn.execute(
            "INSERT INTO sqlite_sequence(name, seq) VALUES ('fields', ?)", (ID_BASES["fields"],)
        )
        for relationship, defs in FIELDS_BY_RELATIONSHIP.items():
            for fd in defs:
                conn.execute(
                    "INSERT INTO fields(relationship, systemName, label, dataType, dataLength, isRequired,"
                    " isCustom, isEditableInContactManager, options) VALUES (?,?,?,?,?,?,0,?,?)",
                    (
                        relationship,
                        fd.name,
                        fd.label,
                        fd.data_type,
                        fd.length,
                        int(fd.name in ("emailAddress", "accountName", "opportunityName")),
                        int(fd.writable),
                        json.dumps(list(fd.options)) if fd.options else None,
                    ),
                )
        for cf in DEFAULT_CUSTOM_FIELDS:
            conn.execute(
                "INSERT INTO fields(relationship, systemName, label, dataType, dataLength, isCustom, options)"
                " VALUES (?,?,?,?,?,1,?)",
                (
                    cf["relationship"],
                    cf["systemName"],
                    cf["label"],
                    cf["dataType"],
                    cf["dataLength"],
                    json.dumps(cf["options"]) if cf["options"] else None,
                ),
            )

    def reset(self) -> None:
        """Wipe the account's data, keep the schema and users, restore the default fields.

        Id sequences restart at their bases, so ``reset`` + ``seed`` with the same random seed and
        a frozen clock rebuilds byte-identical data.
        """
        with self.tx() as conn:
            for table in DATA_TABLES:
                conn.execute(f"DELETE FROM {table}")
            self._seed_sequences(conn, include_users=False)
            self._install_default_fields(conn)
            conn.execute("DELETE FROM meta WHERE key NOT IN ('schema_version')")
        self.checkpoint()

    def checkpoint(self) -> None:
        """Fold the WAL back into the database file (after a bulk seed or a reset)."""
        with self.lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- custom field catalogue ------------------------------------------------------------

    def custom_fields(self, relationship: str) -> list[sqlite3.Row]:
        """Active custom fields of one relationship, in creation order."""
        with self.read() as conn:
            return conn.execute(
                "SELECT * FROM fields WHERE relationship=? AND isCustom=1 AND isActive=1 ORDER BY id",
                (relationship,),
            ).fetchall()

    def get_meta(self, key: str) -> str | None:
        with self.read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            return row["value"] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        with self.tx() as conn:
            if value is None:
                conn.execute("DELETE FROM meta WHERE key=?", (key,))
            else:
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
