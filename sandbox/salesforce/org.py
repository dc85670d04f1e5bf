"""The org: settings, schema, storage, clock, sessions, API usage, faults -- one object.

Everything a request handler needs hangs off :class:`Org`. It is created once per process by
:mod:`.server` and shared by all worker threads; each part guards its own state.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .access import AccessModel
from .access_admin import AccessAdmin
from .access_schema import access_objects
from .bulk import BulkJobs
from .dml import Ctx, WriteEngine, parse_datetime_text
from .faults import FaultInjector, FaultSettings
from .ids import make_id
from .query import CursorStore, QueryEngine
from .schema import (
    DATA_OBJECTS,
    Schema,
    SchemaError,
    default_objects,
    field_to_spec,
    load_schema_file,
)
from .storage import Database, dt_to_ms, q, table_name
from .writelog import WriteLog

log = logging.getLogger(__name__)

DEFAULT_USERNAME = "integration@sandbox.example"
DEFAULT_PASSWORD = "sandbox-password"  # noqa: S105 - a documented local sandbox credential
DEFAULT_TOKEN = "SANDBOXTOKEN"  # noqa: S105 - idem
ORG_ID = make_id("00D", 1)

# The org's users: the integration user the sync logs in as, salespeople, and one inactive
# user (owner assignments to them fail with INACTIVE_OWNER_OR_USER).
SALES_USERS = (
    ("Sally", "Sales", "sally.sales@sandbox.example", True),
    ("Sam", "Seller", "sam.seller@sandbox.example", True),
    ("Priya", "Patel", "priya.patel@sandbox.example", True),
    ("Diego", "Ramos", "diego.ramos@sandbox.example", True),
    ("Ivan", "Inactive", "ivan.inactive@sandbox.example", False),
)


@dataclass
class Settings:
    """Start-up configuration (command-line flags / environment)."""

    port: int
    data_dir: Path
    username: str = DEFAULT_USERNAME
    password: str = DEFAULT_PASSWORD
    security_token: str = DEFAULT_TOKEN
    session_lifetime: float = 7200.0
    api_limit: int = 100_000
    bulk_query_job_limit: int = 10_000
    api_version: str = "59.0"
    max_cursors: int = 10
    is_sandbox: bool = False
    schema_file: Path | None = None
    faults: FaultSettings = field(default_factory=FaultSettings)


class Clock:
    """The org clock: real UTC time, or frozen at an instant set through the admin API."""

    def __init__(self, frozen_ms: int | None = None):
        self._frozen = frozen_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
        return dt_to_ms(dt.datetime.now(dt.UTC))

    def freeze(self, ms: int | None) -> None:
        with self._lock:
            self._frozen = ms

    def advance(self, seconds: float) -> None:
        with self._lock:
            base = self._frozen if self._frozen is not None else dt_to_ms(dt.datetime.now(dt.UTC))
            self._frozen = base + int(seconds * 1000)

    @property
    def frozen(self) -> bool:
        return self._frozen is not None


@dataclass
class Session:
    user_id: str
    created: float
    last_used: float


class Sessions:
    """Session ids issued by login. They expire after ``lifetime`` seconds without use."""

    def __init__(self, lifetime: float):
        self.lifetime = lifetime
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.issued = 0
        # Every id issued (bounded), so tests can prove no session id ever reached a log.
        self.history: collections.deque[str] = collections.deque(maxlen=10_000)

    def create(self, user_id: str) -> str:
        sid = f"{ORG_ID[:15]}!AQ{secrets.token_urlsafe(72)}"
        now = time.monotonic()
        with self._lock:
            self._sessions[sid] = Session(user_id, now, now)
            self.issued += 1
            self.history.append(sid)
        return sid

    def check(self, sid: str) -> str | None:
        now = time.monotonic()
        with self._lock:
            s = self._sessions.get(sid)
            if s is None:
                return None
            if now - s.last_used > self.lifetime:
                del self._sessions[sid]
                return None
            s.last_used = now
            return s.user_id

    def expire(self, sid: str | None = None) -> int:
        with self._lock:
            if sid is None:
                n = len(self._sessions)
                self._sessions.clear()
                return n
            return 1 if self._sessions.pop(sid, None) else 0

    def listing(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            return [
                {
                    "session_id": sid,
                    "user_id": s.user_id,
                    "idle_seconds": round(now - s.last_used, 3),
                }
                for sid, s in self._sessions.items()
            ]


class Usage:
    """The daily API request allocation and per-kind call counts (persisted in the data dir).

    The allocation is a per-UTC-day counter (a real org uses a rolling 24 hours). A request
    counts when it reached the org with a valid session and was not refused for the limit; see
    ``docs/sandbox-salesforce.md`` for the exact rules.
    """

    def __init__(self, db: Database, api_limit: int, bulk_query_limit: int):
        self.db = db
        self._lock = threading.Lock()
        self.state: dict[str, Any] = db.get_meta("usage") or {}
        self.calls: dict[str, Any] = db.get_meta("calls") or {}
        # The start-up flags set the caps; only the usage itself survives a restart.
        self.state["max"] = api_limit
        self.state["bulk_query_max"] = bulk_query_limit
        self.calls.setdefault("by_kind", {})
        self.calls.setdefault("not_counted", {})
        self._last_persist = 0.0
        self._roll()

    def _today(self) -> str:
        return dt.datetime.now(dt.UTC).date().isoformat()

    def _roll(self) -> None:
        if self.state.get("day") != self._today():
            self.state.update(day=self._today(), used=0, bulk_query_jobs=0, bulk_batches=0)

    def _persist(self, force: bool = False) -> None:
        """Write the counters to the data dir, at most once a second unless ``force``.

        Counting must not wait behind a long write (a 100k-row bulk job holds the write lock for
        seconds), so a busy lock just postpones persisting; ``flush()`` runs at shutdown.
        """
        now = time.monotonic()
        if not force and now - self._last_persist < 1.0:
            return
        lock = self.db.write_lock
        if not lock.acquire(blocking=force):
            return
        try:
            with self.db.write() as c:
                c.executemany(
                    "INSERT INTO _meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [("usage", _json(self.state)), ("calls", _json(self.calls))],
                )
            self._last_persist = now
        finally:
            lock.release()

    def flush(self) -> None:
        with self._lock:
            self._persist(force=True)

    def count(self, kind: str) -> tuple[bool, int, int]:
        """Count one API request of ``kind``; False when the daily allocation is spent."""
        with self._lock:
            self._roll()
            used, cap = self.state["used"], self.state["max"]
            if used >= cap:
                self._bump("not_counted", "REQUEST_LIMIT_EXCEEDED")
                self._persist()
                return False, used, cap
            self.state["used"] = used + 1
            self._bump("by_kind", kind)
            self._persist()
            return True, used + 1, cap

    def not_counted(self, what: str) -> None:
        with self._lock:
            self._bump("not_counted", what)
            self._persist()

    def _bump(self, section: str, key: str) -> None:
        d = self.calls[section]
        d[key] = d.get(key, 0) + 1

    def header(self) -> str:
        with self._lock:
            return f"api-usage={self.state['used']}/{self.state['max']}"

    def note_bulk_query_job(self) -> None:
        with self._lock:
            self.state["bulk_query_jobs"] = self.state.get("bulk_query_jobs", 0) + 1
            self._persist()

    def note_bulk_batches(self, n: int) -> None:
        with self._lock:
            self.state["bulk_batches"] = self.state.get("bulk_batches", 0) + n
            self._persist()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            by_kind = dict(sorted(self.calls["by_kind"].items()))
            return {
                "total": sum(by_kind.values()),
                "by_kind": by_kind,
                "not_counted": dict(sorted(self.calls["not_counted"].items())),
                "daily_api_requests": {
                    "used": self.state["used"],
                    "max": self.state["max"],
                    "day": self.state["day"],
                },
            }

    def reset_calls(self) -> None:
        with self._lock:
            self.calls = {"by_kind": {}, "not_counted": {}}
            self._persist(force=True)

    def set_limits(self, *, max_requests: int | None = None, used: int | None = None) -> None:
        with self._lock:
            self._roll()
            if max_requests is not None:
                self.state["max"] = max(0, int(max_requests))
            if used is not None:
                self.state["used"] = max(0, int(used))
            self._persist(force=True)

    def reset_daily(self, api_limit: int) -> None:
        with self._lock:
            self.state.update(
                day=self._today(), used=0, bulk_query_jobs=0, bulk_batches=0, max=api_limit
            )
            self._persist(force=True)

    def limits(self, storage_mb: int) -> dict[str, Any]:
        with self._lock:
            self._roll()
            s = self.state
            return {
                "DailyApiRequests": {"Max": s["max"], "Remaining": max(0, s["max"] - s["used"])},
                "DailyBulkApiBatches": {
                    "Max": 15000,
                    "Remaining": max(0, 15000 - s.get("bulk_batches", 0)),
                },
                "DailyBulkV2QueryJobs": {
                    "Max": s["bulk_query_max"],
                    "Remaining": max(0, s["bulk_query_max"] - s.get("bulk_query_jobs", 0)),
                },
                "DailyBulkV2QueryFileStorageMB": {"Max": 1048576, "Remaining": 1048576},
                "DataStorageMB": {"Max": 1024, "Remaining": max(0, 1024 - storage_mb)},
                "FileStorageMB": {"Max": 1024, "Remaining": 1024},
            }


def _json(value: Any) -> str:
    return json.dumps(value)


def c_count(db: Database, obj: str) -> int:
    return db.conn().execute(f"SELECT COUNT(*) FROM {q(table_name(obj))}").fetchone()[0]


class Org:
    """One sandbox org backed by ``<data dir>/salesforce.db``."""

    def __init__(self, settings: Settings):
        self.settings = settings
        data_dir = Path(settings.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(data_dir / "salesforce.db")
        self.writes = WriteLog()
        self.db.on_commit = self.writes.on_commit
        startup = Schema({**default_objects(), **access_objects()})
        if settings.schema_file:
            startup.apply_document(load_schema_file(settings.schema_file))
        self.startup_schema = startup
        self.schema = startup.copy()
        additions = self.db.get_meta("schema_additions") or {}
        try:
            self.schema.apply_document(additions)
        except SchemaError as exc:  # an addition clashes with a changed schema file: keep going
            log.warning("ignoring stored schema additions: %s", exc)
        self._apply_field_changes(self.db.get_meta("schema_changes") or {})
        for obj in self.schema.objects.values():
            self.db.ensure_table(obj)
        frozen = self.db.get_meta("clock")
        self.clock = Clock(frozen)
        self.sessions = Sessions(settings.session_lifetime)
        self.usage = Usage(self.db, settings.api_limit, settings.bulk_query_job_limit)
        self.faults = FaultInjector(FaultSettings(**settings.faults.__dict__))
        self.cursors = CursorStore(settings.max_cursors)
        self.query = QueryEngine(self.schema, self.db, self.clock.now_ms, self.cursors)
        self.engine = WriteEngine(self)
        self.bulk = BulkJobs(self)
        self.access = AccessModel(self)
        self.access_admin = AccessAdmin(self)
        self._users: dict[str, dict[str, Any]] = {}
        self._users_lock = threading.Lock()
        self._bootstrap()
        if c_count(self.db, "Profile") == 0:
            self.access.seed()

    # -- users and the org row
    def _bootstrap(self) -> None:
        c = self.db.conn()
        now = self.clock.now_ms()
        if c.execute('SELECT COUNT(*) FROM "sf_Organization"').fetchone()[0] == 0:
            with self.db.write() as w:
                w.execute(
                    'INSERT INTO "sf_Organization" (pk, "Id", "Name", "IsSandbox", "OrganizationType", "InstanceName", '
                    '"CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", "SystemModstamp") '
                    "VALUES (1, ?, ?, ?, 'Enterprise Edition', 'SBX1', ?, ?, ?, ?, ?)",
                    (
                        ORG_ID,
                        "Lead Gen Sync Sandbox",
                        int(self.settings.is_sandbox),
                        now,
                        make_id("005", 1),
                        now,
                        make_id("005", 1),
                        now,
                    ),
                )
        else:
            with self.db.write() as w:
                w.execute(
                    'UPDATE "sf_Organization" SET "IsSandbox" = ?', (int(self.settings.is_sandbox),)
                )
        if c.execute('SELECT COUNT(*) FROM "sf_User"').fetchone()[0] == 0:
            people = [("Integration", "User", self.settings.username, True), *SALES_USERS]
            with self.db.write() as w:
                for pk, (first, last, email, active) in enumerate(people, start=1):
                    uid = make_id("005", pk)
                    w.execute(
                        'INSERT INTO "sf_User" (pk, "Id", "Username", "Email", "FirstName", "LastName", "Name", '
                        '"Alias", "IsActive", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", '
                        '"SystemModstamp") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                        (pk, uid, email, email, first, last, f"{first} {last}", (first[0] + last)[:8].lower(),
                         int(active), now, make_id("005", 1), now, make_id("005", 1), now),
                    )  # fmt: skip
        else:
            # The integration user follows the --username flag across restarts.
            with self.db.write() as w:
                w.execute(
                    'UPDATE "sf_User" SET "Username" = ? WHERE pk = 1', (self.settings.username,)
                )
        self.refresh_users()

    @property
    def org_id(self) -> str:
        return ORG_ID

    def org_name(self) -> str:
        row = self.db.conn().execute('SELECT "Name" FROM "sf_Organization"').fetchone()
        return row[0] if row else ""

    def refresh_users(self) -> None:
        cur = self.db.conn().execute(
            'SELECT "Id", "Username", "Email", "Name", "IsActive", "FirstName", "LastName", '
            '"ProfileId", "LastModifiedDate" FROM "sf_User"'
        )
        names = [d[0] for d in cur.description]
        users = {}
        for r in cur:
            user = dict(zip(names, r, strict=True))
            user["IsActive"] = bool(user["IsActive"])
            users[user["Id"]] = user
        with self._users_lock:
            self._users = users

    def user(self, user_id: str) -> dict[str, Any] | None:
        with self._users_lock:
            return self._users.get(user_id)

    def users(self) -> list[dict[str, Any]]:
        with self._users_lock:
            return list(self._users.values())

    @property
    def integration_user_id(self) -> str:
        return make_id("005", 1)

    def salesperson(self, who: str | None) -> str:
        """Resolve ``_as`` (user id, username or email) to a user id; default: first salesperson."""
        users = self.users()
        if who:
            for u in users:
                if who in (u["Id"], u["Username"], u["Email"]) or who[:15] == u["Id"][:15]:
                    return u["Id"]
            raise ValueError(f"unknown user {who!r}")
        for u in users:
            if u["IsActive"] and u["Id"] != self.integration_user_id:
                return u["Id"]
        return self.integration_user_id

    def check_login(self, username: str, password_and_token: str) -> str | None:
        """The user id when the credentials match the configured integration user."""
        s = self.settings
        ok_user = secrets.compare_digest(username.strip().lower(), s.username.lower())
        ok_pw = secrets.compare_digest(password_and_token, s.password + s.security_token)
        return self.integration_user_id if ok_user and ok_pw else None

    # -- admin operations touching several parts
    def admin_ctx(self, who: str | None, at: Any) -> Ctx:
        return Ctx(
            actor=self.salesperson(who), at_ms=self.parse_at(at), source="admin", check_faults=False
        )

    def parse_at(self, at: Any) -> int:
        if at in (None, ""):
            return self.clock.now_ms()
        ms = parse_datetime_text(str(at))
        if ms is None:
            raise ValueError(f"invalid timestamp {at!r}; use ISO 8601, e.g. 2026-11-27T09:10:00Z")
        return ms

    def set_clock(self, ms: int | None) -> None:
        self.clock.freeze(ms)
        self.db.set_meta("clock", ms)

    def add_field(self, spec: dict[str, Any]) -> dict[str, Any]:
        with self.db.write_lock:
            f = self.schema.add_field(spec)
            obj = self.schema.get(spec["object"])
            assert obj is not None
            self.db.ensure_table(obj)
            self._persist_additions()
        self.access_admin.on_field_added(obj.name, f.name)
        return f.describe()

    def change_field(self, obj_name: str, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change a custom field's definition (``externalId``, ``unique``, ``type``, ...).

        A new type clears the field's stored values (Setup warns that data may be lost) [I].
        """
        with self.db.write_lock:
            obj, old, new = self.schema.change_field(obj_name, name, changes)
            if new.type != old.type:
                with self.db.write() as c:
                    c.execute(f"UPDATE {q(table_name(obj.name))} SET {q(new.name)} = NULL")
            self._record_field_change(obj.name, field_to_spec(obj.name, new), removed=False)
        self.access.invalidate()
        return new.describe()

    def remove_field(self, obj_name: str, name: str) -> dict[str, Any]:
        """Delete a custom field (its column and values stay, as in Setup's deleted fields)."""
        with self.db.write_lock:
            obj, f = self.schema.remove_field(obj_name, name)
            self._record_field_change(obj.name, {"object": obj.name, "name": f.name}, removed=True)
        self.access_admin.on_field_removed(obj.name, f.name)
        return {"removed": f"{obj.name}.{f.name}"}

    def _record_field_change(self, obj: str, spec: dict[str, Any], *, removed: bool) -> None:
        changes = self.db.get_meta("schema_changes") or {}
        key = f"{obj}.{spec['name']}".lower()
        entries = [e for e in changes.get("fields", []) if e["key"] != key]
        entries.append({"key": key, "removed": removed, "spec": spec})
        self.db.set_meta("schema_changes", {"fields": entries})
        if not removed:
            self._persist_additions()

    def _apply_field_changes(self, changes: dict[str, Any]) -> None:
        for entry in changes.get("fields", []):
            spec = entry["spec"]
            try:
                if entry["removed"]:
                    self.schema.remove_field(spec["object"], spec["name"])
                else:
                    self.schema.change_field(spec["object"], spec["name"], spec)
            except SchemaError as exc:
                log.warning("ignoring stored change of %s: %s", entry["key"], exc)

    def add_rule(self, spec: dict[str, Any]) -> dict[str, Any]:
        with self.db.write_lock:
            rule = self.schema.add_rule(spec)
            self._persist_additions()
        return rule.to_json()

    def remove_rule(self, obj: str, name: str) -> bool:
        with self.db.write_lock:
            removed = self.schema.remove_rule(obj, name)
            self._persist_additions()
        return removed

    def _persist_additions(self) -> None:
        fields = []
        for obj in self.schema.objects.values():
            base = self.startup_schema.get(obj.name)
            for f in obj.field_list:
                if base is None or base.field(f.name) is None:
                    fields.append(field_to_spec(obj.name, f))
        startup_rules = {(r.object, r.name) for r in self.startup_schema.rules}
        rules = [r.to_json() for r in self.schema.rules if (r.object, r.name) not in startup_rules]
        self.db.set_meta("schema_additions", {"fields": fields, "validation_rules": rules})

    def reset(self, *, schema: bool = False, sessions: bool = False) -> dict[str, Any]:
        """Wipe data, counters, faults, cursors, clock, the write log; restore the access model.

        Users and the org row stay; the seeded users get their active flags back.
        """
        with self.db.write_lock:
            self.db.wipe(list(DATA_OBJECTS))
            for path in self.bulk.dir.glob("*"):
                path.unlink(missing_ok=True)
            if schema:
                for obj in self.schema.objects.values():
                    base = self.startup_schema.get(obj.name)
                    extra = [
                        f.name
                        for f in obj.field_list
                        if base is not None and base.field(f.name) is None
                    ]
                    if extra:
                        self.db.drop_columns(obj, extra)
                self.schema = self.startup_schema.copy()
                self.query.schema = self.schema
                self.db.set_meta("schema_additions", {})
                self.db.set_meta("schema_changes", {})
                for obj in self.schema.objects.values():
                    self.db.ensure_table(obj)
            self.db.set_meta("recycle_bin_purged_before", None)
            self._restore_default_users()
        self.access.seed()
        self.writes.clear()
        self.cursors.clear()
        self.usage.reset_calls()
        self.usage.reset_daily(self.settings.api_limit)
        self.faults.reset(self.settings.faults)
        self.sessions.lifetime = self.settings.session_lifetime
        self.cursors.max_per_user = self.settings.max_cursors
        self.set_clock(None)
        if sessions:
            self.sessions.expire()
        return {"reset": True, "schema": schema, "sessions": sessions}

    def _restore_default_users(self) -> None:
        """The seeded users get their seeded active flags back (users added later stay)."""
        people = [("Integration", "User", self.settings.username, True), *SALES_USERS]
        with self.db.write() as c:
            for pk, (*_names, active) in enumerate(people, start=1):
                c.execute('UPDATE "sf_User" SET "IsActive" = ? WHERE pk = ?', (int(active), pk))
        self.refresh_users()

    def purge_recycle_bin(self, before_ms: int) -> int:
        """Physically remove deleted rows older than ``before_ms`` (earliestDateAvailable moves up)."""
        n = 0
        with self.db.write() as c:
            for name in DATA_OBJECTS:
                n += c.execute(
                    f'DELETE FROM {q(table_name(name))} WHERE "IsDeleted" = 1 AND _deleted_at < ?',
                    (before_ms,),
                ).rowcount
        current = self.db.get_meta("recycle_bin_purged_before") or 0
        self.db.set_meta("recycle_bin_purged_before", max(current, before_ms))
        return n

    def storage_mb(self) -> int:
        c = self.db.conn()
        rows = sum(
            c.execute(f"SELECT COUNT(*) FROM {q(table_name(n))}").fetchone()[0]
            for n in DATA_OBJECTS
        )
        return rows * 2 // 1024  # Salesforce counts about 2 KB per record

    def close(self) -> None:
        self.usage.flush()
        self.db.close()
