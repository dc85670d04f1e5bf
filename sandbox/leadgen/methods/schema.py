"""Field catalogue and users: getFields, createFields, getUserProfiles."""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Any

from ..catalog import CUSTOM_DATA_TYPES, NON_LEAD_DATA_TYPES, RELATIONSHIPS
from ..errors import ObjectError
from ..rpc import Context, filtered_select, limit_offset, method, require_where, rows_api, run_batch
from ..values import to_bool, to_int

FIELD_COLUMNS = (
    "id",
    "relationship",
    "systemName",
    "label",
    "source",
    "dataType",
    "dataLength",
    "isRequired",
    "isCustom",
    "isAvailableInContactManager",
    "isEditableInContactManager",
    "isAvailableInForms",
    "isActive",
)
USER_COLUMNS = (
    "id",
    "firstName",
    "lastName",
    "displayName",
    "emailAddress",
    "isActive",
    "isReseller",
    "userTimezone",
    "phone",
)


@method("getFields")
def get_fields(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Standard (isCustom "0") and custom fields of leads, opportunities and accounts."""
    where = require_where(
        params, ("id", "relationship", "systemName", "label", "isCustom", "dataType"), optional=True
    )
    limit, offset = limit_offset(params, cap=ctx.config.page_cap)
    with ctx.db.read() as conn:
        rows = filtered_select(conn, "fields", where, limit, offset)
        return {"field": rows_api(rows, FIELD_COLUMNS)}


def system_name(label: str, taken: set[str], now: float) -> str:
    """The real rule: slug of the label (lowercase, every non-alphanumeric char -> ``_``, cut to
    50 chars) + ``_`` + a 13-hex-digit PHP ``uniqid()`` (8 hex seconds + 5 hex microseconds).

    With a frozen clock many fields share a second, so the microsecond part is bumped until the
    name is unique.
    """
    slug = re.sub(r"[^a-z0-9]", "_", label.lower())[:50]
    seconds = int(now)
    micros = int((now - seconds) * 1_000_000) % 0x100000
    while True:
        name = f"{slug}_{seconds:08x}{micros:05x}"
        if name not in taken:
            return name
        micros = (micros + 1) % 0x100000


@method("createFields", write=True)
def create_fields(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Create custom fields; ``source`` must be ``sharpspring`` (vendor docs)."""
    frozen = ctx.clock.frozen
    base_time = frozen.timestamp() if frozen else time.time()

    def one(conn: sqlite3.Connection, obj: dict[str, Any]) -> dict[str, Any]:
        relationship = obj.get("relationship") or "lead"
        if relationship not in RELATIONSHIPS:
            raise ObjectError(
                217, "relationship must be lead, opportunity or account", {"field": "relationship"}
            )
        label = obj.get("label")
        if not isinstance(label, str) or not label.strip():
            raise ObjectError(206, "Missing parameters: label", {"field": "label"})
        data_type = obj.get("dataType") or "string"
        allowed = CUSTOM_DATA_TYPES if relationship == "lead" else NON_LEAD_DATA_TYPES
        if data_type not in allowed:
            raise ObjectError(
                217,
                f"dataType {data_type!r} is not allowed for {relationship}",
                {"field": "dataType"},
            )
        source = obj.get("source", "sharpspring")
        if source != "sharpspring":
            raise ObjectError(217, 'source must be "sharpspring"', {"field": "source"})
        if conn.execute(
            "SELECT 1 FROM fields WHERE relationship=? AND label=? AND isActive=1",
            (relationship, label),
        ).fetchone():
            raise ObjectError(
                301,
                f"Entry already exists: a {relationship} field is labelled {label!r}",
                {"field": "label"},
            )
        length = to_int(
            obj.get("dataLength") or (65535 if data_type == "textarea" else 255), "dataLength"
        )
        taken = {
            r[0]
            for r in conn.execute(
                "SELECT systemName FROM fields WHERE relationship=?", (relationship,)
            )
        }
        name = system_name(label, taken, base_time)
        flags = {
            key: to_bool(obj.get(key, default), key)
            for key, default in (
                ("isRequired", 0),
                ("isAvailableInContactManager", 1),
                ("isEditableInContactManager", 1),
                ("isAvailableInForms", 1),
            )
        }
        cur = conn.execute(
            "INSERT INTO fields(relationship, systemName, label, source, dataType, dataLength, isRequired,"
            " isCustom, isAvailableInContactManager, isEditableInContactManager, isAvailableInForms)"
            " VALUES (?,?,?,?,?,?,?,1,?,?,?)",
            (relationship, name, label, source, data_type, length, *flags.values()),
        )
        return {"success": True, "error": None, "id": int(cur.lastrowid)}

    return run_batch(ctx, params, "creates", one)


@method("getUserProfiles")
def get_user_profiles(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    where = require_where(
        params,
        ("id", "firstName", "lastName", "displayName", "emailAddress", "isActive"),
        optional=True,
    )
    limit, offset = limit_offset(params, cap=ctx.config.page_cap)
    with ctx.db.read() as conn:
        rows = filtered_select(conn, "users", where, limit, offset)
        return {"userProfile": rows_api(rows, USER_COLUMNS)}
