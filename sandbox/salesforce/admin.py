"""The ``/__sandbox__/`` admin surface: things no real org has, for tests, demos and benchmarks.

No authentication (the server only listens on 127.0.0.1) and admin calls never count against
the API allocation. All bodies and answers are JSON. Timestamps are ISO 8601; ``_at`` on a write
overrides the org clock for that write, ``_as`` names the acting user (id, username or email;
default: the first active salesperson, never the integration user, so "changed by someone else"
is visible in ``LastModifiedById``).

See ``docs/sandbox-salesforce.md`` for the endpoint reference.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from .dml import Ctx, TypeMismatch, UnknownField, run_batch
from .errors import ApiError, RecordFailure
from .faults import FaultConfigError
from .ids import normalize_id
from .org import ORG_ID, Org
from .rest import Reply
from .schema import SchemaError
from .storage import format_datetime, ms_to_dt, to_json_value

log = logging.getLogger(__name__)


class AdminError(Exception):
    """An admin call failed: ``{"error": error, **extra}`` with HTTP ``status``."""

    def __init__(self, status: int, error: str, **extra: Any):
        super().__init__(error)
        self.status = status
        self.error = error
        self.extra = extra


def _iso(ms: int) -> str:
    return ms_to_dt(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class AdminApi:
    def __init__(self, org: Org):
        self.org = org
        R = re.compile
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            ("GET", R(r"/health"), self.health),
            ("POST", R(r"/reset"), self.reset),
            ("POST", R(r"/seed"), self.seed),
            ("GET", R(r"/schema"), self.get_schema),
            ("POST", R(r"/schema/fields"), self.add_field),
            ("POST", R(r"/schema/validation-rules"), self.add_rule),
            ("DELETE", R(r"/schema/validation-rules/(\w+)/(\w+)"), self.remove_rule),
            ("GET", R(r"/records/(\w+)/(\w+)"), self.get_record),
            ("POST", R(r"/records/(\w+)"), self.create_records),
            ("PATCH", R(r"/records/(\w+)/(\w+)"), self.update_record),
            ("DELETE", R(r"/records/(\w+)/(\w+)"), self.delete_record),
            ("POST", R(r"/actions/delete"), self.delete_many),
            ("POST", R(r"/actions/undelete"), self.undelete_many),
            ("POST", R(r"/actions/convert-lead"), self.convert_lead),
            ("POST", R(r"/actions/merge"), self.merge),
            ("POST", R(r"/actions/purge-recycle-bin"), self.purge),
            ("GET", R(r"/calls"), self.get_calls),
            ("DELETE", R(r"/calls"), self.reset_calls),
            ("POST", R(r"/calls/reset"), self.reset_calls),
            ("GET", R(r"/limits"), self.get_limits),
            ("POST", R(r"/limits"), self.set_limits),
            ("GET", R(r"/clock"), self.get_clock),
            ("POST", R(r"/clock"), self.set_clock),
            ("GET", R(r"/faults"), self.get_faults),
            ("POST", R(r"/faults"), self.set_faults),
            ("POST", R(r"/faults/rules"), self.add_fault_rule),
            ("DELETE", R(r"/faults"), self.clear_faults),
            ("GET", R(r"/sessions"), self.get_sessions),
            ("POST", R(r"/sessions/expire"), self.expire_sessions),
            ("GET", R(r"/config"), self.get_config),
            ("POST", R(r"/config"), self.set_config),
            ("GET", R(r"/users"), self.get_users),
            ("POST", R(r"/users"), self.create_user),
            ("PATCH", R(r"/users/(\w+)"), self.update_user),
            ("PATCH", R(r"/schema/fields/(\w+)/(\w+)"), self.change_field),
            ("DELETE", R(r"/schema/fields/(\w+)/(\w+)"), self.remove_field),
            ("GET", R(r"/org"), self.get_org),
            ("POST", R(r"/org"), self.set_org),
            ("PATCH", R(r"/profiles/([^/]+)"), self.update_profile),
            ("POST", R(r"/permission-sets"), self.create_permission_set),
            ("PATCH", R(r"/permission-sets/([^/]+)"), self.update_permission_set),
            ("POST", R(r"/permission-set-assignments"), self.assign),
            ("DELETE", R(r"/permission-set-assignments/(\w+)"), self.unassign),
            ("POST", R(r"/field-permissions"), self.set_field_permission),
            ("GET", R(r"/writes"), self.get_writes),
            ("DELETE", R(r"/writes"), self.clear_writes),
        ]

    def handle(self, method: str, path: str, params: dict[str, str], body: bytes) -> Reply:
        sub = path[len("/__sandbox__") :].rstrip("/") or "/"
        try:
            payload = json.loads(body) if body.strip() else {}
        except json.JSONDecodeError as exc:
            return Reply(400, {"error": f"invalid JSON body: {exc}"})
        if not isinstance(payload, dict):
            return Reply(400, {"error": "the body must be a JSON object"})
        payload = {**params, **payload}
        allowed = []
        for verb, pattern, fn in self.routes:
            m = pattern.fullmatch(sub)
            if not m:
                continue
            if verb != method:
                allowed.append(verb)
                continue
            try:
                result = fn(payload, *m.groups())
            except AdminError as exc:
                return Reply(exc.status, {"error": exc.error, **exc.extra})
            except ApiError as exc:
                return Reply(
                    exc.status,
                    {"error": exc.code, "message": exc.message, "fields": exc.fields or []},
                )
            except (ValueError, SchemaError, FaultConfigError) as exc:
                return Reply(400, {"error": str(exc)})
            status = (
                201
                if verb == "POST"
                and sub.startswith(
                    ("/records", "/schema/", "/users", "/permission-sets", "/permission-set-")
                )
                else 200
            )
            return Reply(status, result)
        if allowed:
            return Reply(
                405,
                {"error": f"method {method} not allowed; use {', '.join(sorted(set(allowed)))}"},
            )
        return Reply(404, {"error": f"unknown admin endpoint {path}"})

    # -- helpers
    def _obj(self, name: str):
        obj = self.org.schema.get(name)
        if obj is None:
            raise AdminError(404, f"unknown object {name}")
        return obj

    def _ctx(self, payload: dict[str, Any]) -> Ctx:
        return self.org.admin_ctx(payload.pop("_as", None), payload.pop("_at", None))

    @staticmethod
    def _id(raw: Any) -> str:
        rid = normalize_id(raw)
        if rid is None:
            raise AdminError(400, f"malformed id {raw!r}")
        return rid

    def _decode(self, obj: Any, fields: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.org.engine.decode(obj, fields, "json")
        except UnknownField as exc:
            raise AdminError(400, f"INVALID_FIELD: no field {exc.name} on {obj.name}") from exc
        except TypeMismatch as exc:
            raise AdminError(
                400, f"JSON_PARSER_ERROR: bad value for {exc.field.name}: {exc.raw!r}"
            ) from exc

    @staticmethod
    def _failure(exc: RecordFailure) -> AdminError:
        e = exc.error
        return AdminError(400, e.code, message=e.message, fields=e.fields)

    # -- endpoints
    def health(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": "ok",
            "org_id": ORG_ID,
            "now": _iso(self.org.clock.now_ms()),
            "clock_frozen": self.org.clock.frozen,
        }

    def reset(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.org.reset(
            schema=bool(payload.get("schema", False)), sessions=bool(payload.get("sessions", False))
        )

    def seed(self, payload: dict[str, Any]) -> dict[str, Any]:
        from .seed import seed_org

        return seed_org(
            self.org,
            n=int(payload.get("n", 0) or 0),
            counts=payload.get("counts"),
            seed=int(payload.get("seed", 42)),
            defects=bool(payload.get("defects", False)),
            end_at=payload.get("end_at"),
            days=float(payload.get("days", 365)),
        )

    def get_schema(self, payload: dict[str, Any]) -> dict[str, Any]:
        custom = {
            o.name: [f.describe() for f in o.field_list if f.custom]
            for o in self.org.schema.objects.values()
        }
        return {
            "objects": sorted(self.org.schema.objects),
            "custom_fields": {k: v for k, v in custom.items() if v},
            "validation_rules": [r.to_json() for r in self.org.schema.rules],
        }

    def add_field(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.org.add_field(payload)

    def add_rule(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.org.add_rule(payload)

    def remove_rule(self, payload: dict[str, Any], obj: str, name: str) -> dict[str, Any]:
        if not self.org.remove_rule(obj, name):
            raise AdminError(404, f"no validation rule {obj}.{name}")
        return {"removed": f"{obj}.{name}"}

    def get_record(self, payload: dict[str, Any], obj_name: str, raw_id: str) -> dict[str, Any]:
        obj = self._obj(obj_name)
        row = self.org.engine.find(obj, self._id(raw_id))
        if row is None:
            raise AdminError(404, f"no {obj.name} {raw_id}")
        out = {f.name: to_json_value(f, row.get(f.name)) for f in obj.field_list}
        out["_deletedDate"] = (
            format_datetime(row["_deleted_at"]) if row.get("_deleted_at") else None
        )
        return out

    def create_records(self, payload: dict[str, Any], obj_name: str) -> dict[str, Any]:
        obj = self._obj(obj_name)
        ctx = self._ctx(payload)
        records = payload.pop("records", None)
        many = records is not None
        records = records if many else [payload]
        decoded = [self._decode(obj, dict(r)) for r in records]
        engine = self.org.engine
        results = run_batch(
            engine,
            [lambda v=v: (engine.insert(obj, v, ctx), None) for v in decoded],
            all_or_none=True,
        )
        if not all(r["success"] for r in results):
            bad = next(
                r
                for r in results
                if r["errors"][0]["statusCode"] != "ALL_OR_NONE_OPERATION_ROLLED_BACK"
            )
            err = bad["errors"][0]
            raise AdminError(
                400,
                err["statusCode"],
                message=err["message"],
                fields=err["fields"],
                index=results.index(bad),
            )
        ids = [r["id"] for r in results]
        return {"ids": ids} if many else {"id": ids[0]}

    def update_record(self, payload: dict[str, Any], obj_name: str, raw_id: str) -> dict[str, Any]:
        obj = self._obj(obj_name)
        ctx = self._ctx(payload)
        values = self._decode(obj, payload)
        try:
            with self.org.db.write():
                rid = self.org.engine.update(obj, self._id(raw_id), values, ctx)
        except RecordFailure as exc:
            raise self._failure(exc) from exc
        return {"id": rid}

    def delete_record(self, payload: dict[str, Any], obj_name: str, raw_id: str) -> dict[str, Any]:
        self._obj(obj_name)
        return self.delete_many({**payload, "ids": [raw_id]})

    def delete_many(self, payload: dict[str, Any]) -> dict[str, Any]:
        ctx = self._ctx(payload)
        ids = [self._id(i) for i in payload.get("ids") or []]
        try:
            with self.org.db.write():
                for rid in ids:
                    self.org.engine.delete(rid, ctx)
        except RecordFailure as exc:
            raise self._failure(exc) from exc
        return {"deleted": ids}

    def undelete_many(self, payload: dict[str, Any]) -> dict[str, Any]:
        ctx = self._ctx(payload)
        ids = [self._id(i) for i in payload.get("ids") or []]
        try:
            with self.org.db.write():
                for rid in ids:
                    self.org.engine.undelete(rid, ctx)
        except RecordFailure as exc:
            raise self._failure(exc) from exc
        return {"undeleted": ids}

    def convert_lead(self, payload: dict[str, Any]) -> dict[str, Any]:
        ctx = self._ctx(payload)
        lead_id = self._id(payload.get("leadId"))
        with self.org.db.write():
            return self.org.engine.convert_lead(lead_id, payload, ctx)

    def merge(self, payload: dict[str, Any]) -> dict[str, Any]:
        ctx = self._ctx(payload)
        obj = self._obj(str(payload.get("object", "")))
        master = self._id(payload.get("masterId"))
        losers = [self._id(i) for i in payload.get("mergeIds") or []]
        fields = self._decode(obj, dict(payload.get("fields") or {}))
        try:
            with self.org.db.write():
                return self.org.engine.merge(obj, master, losers, fields, ctx)
        except RecordFailure as exc:
            raise self._failure(exc) from exc

    def purge(self, payload: dict[str, Any]) -> dict[str, Any]:
        before = self.org.parse_at(payload.get("before"))
        return {
            "purged": self.org.purge_recycle_bin(before),
            "earliestDateAvailable": format_datetime(before),
        }

    def get_calls(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.org.usage.snapshot()

    def reset_calls(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.org.usage.reset_calls()
        return self.org.usage.snapshot()

    def get_limits(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.org.usage.limits(self.org.storage_mb())

    def set_limits(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.org.usage.set_limits(
            max_requests=payload.get("daily_api_requests"),
            used=payload.get("used"),
        )
        return self.org.usage.limits(self.org.storage_mb())

    def get_clock(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"now": _iso(self.org.clock.now_ms()), "frozen": self.org.clock.frozen}

    def set_clock(self, payload: dict[str, Any]) -> dict[str, Any]:
        if "now" in payload:
            now = payload["now"]
            self.org.set_clock(None if now is None else self.org.parse_at(now))
        if payload.get("advance_seconds") is not None:
            self.org.clock.advance(float(payload["advance_seconds"]))
            self.org.db.set_meta("clock", self.org.clock.now_ms())
        return self.get_clock({})

    def get_faults(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.org.faults.to_json()

    def set_faults(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.org.faults.configure(payload)
        return self.org.faults.to_json()

    def add_fault_rule(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.org.faults.add_rule(payload)
        return self.org.faults.to_json()

    def clear_faults(self, payload: dict[str, Any]) -> dict[str, Any]:
        from .faults import FaultSettings

        self.org.faults.reset(FaultSettings(seed=self.org.faults.settings.seed))
        return self.org.faults.to_json()

    def get_sessions(self, payload: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sessions": self.org.sessions.listing(),
            "lifetime": self.org.sessions.lifetime,
            "issued": self.org.sessions.issued,
        }
        if str(payload.get("history", "")).lower() in ("1", "true"):
            out["history"] = list(self.org.sessions.history)
        return out

    def expire_sessions(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"expired": self.org.sessions.expire(payload.get("session_id"))}

    def get_config(self, payload: dict[str, Any]) -> dict[str, Any]:
        s = self.org.settings
        return {
            "session_lifetime": self.org.sessions.lifetime,
            "api_version": s.api_version,
            "username": s.username,
            "is_sandbox": s.is_sandbox,
            "max_cursors": self.org.cursors.max_per_user,
        }

    def set_config(self, payload: dict[str, Any]) -> dict[str, Any]:
        for key, value in payload.items():
            if key == "session_lifetime":
                self.org.sessions.lifetime = float(value)
            elif key == "max_cursors":
                self.org.cursors.max_per_user = max(1, int(value))
            else:
                raise AdminError(400, f"unknown or read-only setting {key!r}")
        return self.get_config({})

    def get_users(self, payload: dict[str, Any]) -> dict[str, Any]:
        keys = ("Id", "Username", "Email", "Name", "IsActive", "ProfileId")
        return {
            "users": [{k: u.get(k) for k in keys} for u in self.org.users()],
            "integration_user_id": self.org.integration_user_id,
        }

    def create_user(self, payload: dict[str, Any]) -> dict[str, Any]:
        obj = self._obj("User")
        ctx = self._ctx(payload)
        profile = payload.pop("profile", None) or payload.pop("ProfileId", None) or "Standard User"
        payload.setdefault("Username", payload.get("Email"))
        values = self._decode(obj, payload)
        try:
            with self.org.db.write():
                rid = self.org.engine.insert(obj, values, ctx)
        except RecordFailure as exc:
            raise self._failure(exc) from exc
        self.org.refresh_users()
        self.org.access_admin.set_user_profile(rid, profile)
        self.org.refresh_users()
        return {"id": rid}

    def update_user(self, payload: dict[str, Any], raw_id: str) -> dict[str, Any]:
        """Edit a user; ``profile`` (or ``ProfileId``) moves them to another profile."""
        obj = self._obj("User")
        ctx = self._ctx(payload)
        profile = payload.pop("profile", None) or payload.pop("ProfileId", None)
        values = self._decode(obj, payload)
        rid = self._id(raw_id)
        if self.org.engine.find(obj, rid) is None:
            raise AdminError(404, f"no user {raw_id}")
        try:
            with self.org.db.write():
                self.org.engine.update(obj, rid, values, ctx)
        except RecordFailure as exc:
            raise self._failure(exc) from exc
        if profile:
            self.org.access_admin.set_user_profile(rid, profile)
        self.org.refresh_users()
        self.org.access.invalidate()
        return {"id": rid}

    # -- schema changes and the access model (what a preflight check reads)
    def change_field(self, payload: dict[str, Any], obj: str, name: str) -> dict[str, Any]:
        return self.org.change_field(obj, name, payload)

    def remove_field(self, payload: dict[str, Any], obj: str, name: str) -> dict[str, Any]:
        return self.org.remove_field(obj, name)

    def get_org(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.org.access.summary()

    def set_org(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.org.access_admin.set_org(payload)

    def update_profile(self, payload: dict[str, Any], ref: str) -> dict[str, Any]:
        return self.org.access_admin.update_profile(ref, payload)

    def create_permission_set(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.org.access_admin.create_permission_set(payload)

    def update_permission_set(self, payload: dict[str, Any], ref: str) -> dict[str, Any]:
        return self.org.access_admin.update_permission_set(ref, payload)

    def assign(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.org.access_admin.assign(
            str(payload.get("user") or ""), str(payload.get("permission_set") or "")
        )

    def unassign(self, payload: dict[str, Any], assignment_id: str) -> dict[str, Any]:
        return self.org.access_admin.unassign(self._id(assignment_id))

    def set_field_permission(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.org.access_admin.set_field_permission(payload)

    def get_writes(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.org.writes.snapshot(
            obj=payload.get("object"),
            op=payload.get("op"),
            entries=str(payload.get("entries", "")).lower() in ("1", "true"),
        )

    def clear_writes(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.org.writes.clear()
        return self.org.writes.snapshot()
