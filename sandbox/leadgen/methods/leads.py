"""Lead methods: getLead, getLeads, getLeadsDateRange, createLeads, updateLeads(V2), deleteLeads.

The lead write rules live here as plain functions over a connection so the admin "marketer"
actions (form fill, import, edits) go through exactly the same code as the API.

Quirks reproduced (reference 8.1, all documented in ``docs/sandbox-leadgen.md``):

* update matches by ``id``, else by an existing ``emailAddress``;
* ``id`` + the email of *another* lead: nothing changes but ``updateTimestamp``, yet success;
* unknown target: ``updateLeads`` answers success and does nothing, ``updateLeadsV2`` 404;
* nothing would change: object error 302 "No table rows affected";
* ``leadStatus`` ``contactWithOpp`` -> ``contact`` is silently dropped.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..catalog import LEAD_FIELDS, FieldDef
from ..clock import format_timestamp, parse_in_zone, to_zone
from ..errors import ApiError, ObjectError
from ..rpc import (
    Context,
    int_param,
    limit_offset,
    method,
    require_param,
    require_where,
    run_batch,
    where_sql,
)
from ..storage import stored_columns
from ..values import (
    TEXT_API,
    derived_flags,
    dump_custom,
    load_custom,
    normalize,
    normalize_custom,
    to_int,
)

LEAD_BY_NAME: dict[str, FieldDef] = {f.name: f for f in LEAD_FIELDS}
LEAD_COLUMNS: list[str] = stored_columns(LEAD_FIELDS)
_SELECT = "SELECT " + ", ".join(f'"{c}"' for c in LEAD_COLUMNS) + ", custom FROM leads"
COL_INDEX = {c: i for i, c in enumerate(LEAD_COLUMNS)}
CUSTOM_INDEX = len(LEAD_COLUMNS)

# Defaults of a new lead (reference 7.1): active, unqualified, scores 0, persona "".
NEW_LEAD_DEFAULTS: dict[str, Any] = {
    "active": 1,
    "leadStatus": "unqualified",
    "leadScore": 0,
    "leadScoreWeighted": 0,
    "isUnsubscribed": 0,
    "status": 0,
    "persona": "",
}


class CustomCatalog:
    """The lead custom fields in force for one call (systemName -> (dataType, dataLength))."""

    def __init__(self, conn: sqlite3.Connection, relationship: str = "lead"):
        rows = conn.execute(
            "SELECT systemName, dataType, dataLength FROM fields"
            " WHERE relationship=? AND isCustom=1 AND isActive=1 ORDER BY id",
            (relationship,),
        ).fetchall()
        self.names: list[str] = [r["systemName"] for r in rows]
        self.types: dict[str, tuple[str, int | None]] = {
            r["systemName"]: (r["dataType"], r["dataLength"]) for r in rows
        }


# -- reading --------------------------------------------------------------------------------


TIMESTAMP_FIELDS = ("updateTimestamp", "createTimestamp")


def lead_to_api(
    row: sqlite3.Row | tuple, custom_names: list[str], zone_name: str = "UTC"
) -> dict[str, str | None]:
    """One stored row -> the API lead object: standard fields in API order, then custom ones;
    timestamps in the account zone ``zone_name``."""
    status = row[COL_INDEX["leadStatus"]]
    is_qualified, is_contact, is_customer = derived_flags(status)
    derived = {"isQualified": is_qualified, "isContact": is_contact, "isCustomer": is_customer}
    out: dict[str, str | None] = {}
    for fd in LEAD_FIELDS:
        if fd.kind == "derived":
            out[fd.name] = derived[fd.name]
        else:
            value = row[COL_INDEX[fd.name]]
            out[fd.name] = (
                None if value is None else (value if isinstance(value, str) else str(value))
            )
    if zone_name != "UTC":
        for name in TIMESTAMP_FIELDS:
            out[name] = to_zone(out[name], zone_name)
    custom = load_custom(row[CUSTOM_INDEX])
    for name in custom_names:
        out[name] = custom.get(name, "")
    return out


def _projection(params: dict[str, Any], custom: CustomCatalog) -> list[str] | None:
    """The ``fields`` parameter: only these keys come back (unknown names -> 205)."""
    fields = params.get("fields")
    if fields in (None, "", []):
        return None
    if isinstance(fields, str):
        fields = [f.strip() for f in fields.split(",") if f.strip()]
    if not isinstance(fields, list):
        raise ApiError(
            205, "Invalid parameters: fields must be an array of field names", {"param": "fields"}
        )
    valid = set(LEAD_BY_NAME) | set(custom.names)
    unknown = [f for f in fields if f not in valid]
    if unknown:
        raise ApiError(
            205,
            f"Invalid parameters: unknown fields {', '.join(map(str, unknown))}",
            {"param": "fields", "invalid": unknown, "validFields": [*LEAD_BY_NAME, *custom.names]},
        )
    return [str(f) for f in fields]


def _render(
    rows: list[Any], custom: CustomCatalog, wanted: list[str] | None, zone_name: str = "UTC"
) -> list[dict[str, str | None]]:
    leads = [lead_to_api(r, custom.names, zone_name) for r in rows]
    if wanted is None:
        return leads
    keep = set(wanted)
    return [{k: v for k, v in lead.items() if k in keep} for lead in leads]


def get_lead_row(conn: sqlite3.Connection, lead_id: int) -> tuple | None:
    return conn.execute(_SELECT + " WHERE id=?", (lead_id,)).fetchone()


def get_lead_row_by_email(conn: sqlite3.Connection, email: str) -> tuple | None:
    return conn.execute(_SELECT + " WHERE emailAddress=? COLLATE NOCASE", (email,)).fetchone()


@method("getLead")
def get_lead(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """``{"lead": [lead]}`` or ``{"lead": []}``; inactive leads are returned (asked by id)."""
    lead_id = int_param(require_param(params, "id"), "id")
    with ctx.db.read() as conn:
        custom = CustomCatalog(conn)
        row = get_lead_row(conn, lead_id)
        return {"lead": _render([row] if row else [], custom, None, ctx.config.account_timezone)}


@method("getLeads")
def get_leads(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Leads by ``where.id`` / ``where.emailAddress`` (scalar or list), else all active ones.

    A list takes precedence over a scalar, and the id list's leads come before the email list's
    (``rpc.where_sql``). Asked by id or email, inactive leads are returned too; with an empty
    ``where`` only active leads are (reference 8.4). Ordered by id (as the real 500-lead page of
    reference source LOL is); pages of at most ``page_cap`` (500).
    """
    where = require_where(params, ("id", "emailAddress"))
    limit, offset = limit_offset(params, cap=ctx.config.page_cap)
    with ctx.db.read() as conn:
        custom = CustomCatalog(conn)
        wanted = _projection(params, custom)
        if where:
            cond, args, order, order_args = where_sql(
                where, ("id", "emailAddress"), ctx.config.max_objects, nocase=("emailAddress",)
            )
        else:
            cond, args, order, order_args = "active=1", [], "", []
        rows = conn.execute(
            _SELECT + f" WHERE {cond} ORDER BY {order}id LIMIT ? OFFSET ?",
            (*args, *order_args, limit, offset),
        ).fetchall()
        return {"lead": _render(rows, custom, wanted, ctx.config.account_timezone)}


def parse_range(params: dict[str, Any], zone_name: str = "UTC") -> tuple[str, str, str]:
    """startDate/endDate/timestamp of the *DateRange methods (inclusive bounds, read in the
    account zone, returned as stored UTC text)."""
    bounds = []
    for name in ("startDate", "endDate"):
        raw = require_param(params, name)
        try:
            bounds.append(format_timestamp(parse_in_zone(raw, zone_name)))
        except ValueError:
            raise ApiError(
                205, f"Invalid parameters: {name} must be YYYY-MM-DD HH:MM:SS", {"param": name}
            ) from None
    kind = params.get("timestamp") or "update"
    if kind not in ("create", "update"):
        raise ApiError(
            205, "Invalid parameters: timestamp must be create or update", {"param": "timestamp"}
        )
    return bounds[0], bounds[1], "createTimestamp" if kind == "create" else "updateTimestamp"


@method("getLeadsDateRange")
def get_leads_date_range(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Active leads whose create/update timestamp is within ``[startDate, endDate]`` inclusive.

    Ordered by that timestamp, then id, so limit/offset paging is deterministic. Inactive leads
    are excluded (RMUIT); ``timestamp: update`` includes never-updated leads, because a new
    lead's updateTimestamp equals its createTimestamp.
    """
    zone_name = ctx.config.account_timezone
    start, end, column = parse_range(params, zone_name)
    limit, offset = limit_offset(params, cap=ctx.config.date_range_page_cap)
    with ctx.db.read() as conn:
        custom = CustomCatalog(conn)
        wanted = _projection(params, custom)
        rows = conn.execute(
            _SELECT
            + f" WHERE active=1 AND {column} BETWEEN ? AND ? ORDER BY {column}, id LIMIT ? OFFSET ?",
            (start, end, limit, offset),
        ).fetchall()
        return {"lead": _render(rows, custom, wanted, zone_name)}


# -- writing --------------------------------------------------------------------------------


def prepare_values(
    conn: sqlite3.Connection,
    obj: dict[str, Any],
    custom: CustomCatalog,
    text_mode: str = TEXT_API,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Split a written object into standard column values and custom values, normalised.

    Read-only fields (id, timestamps, the derived flags, status) are ignored, as the API ignores
    them; unknown keys fail the object with 205 listing the valid names. ``text_mode`` says how
    text is stored (``values.TEXT_API``, or ``TEXT_UI`` for an admin "typed in the UI" edit).
    """
    std: dict[str, Any] = {}
    cust: dict[str, str] = {}
    for key, value in obj.items():
        fd = LEAD_BY_NAME.get(key)
        if fd is not None:
            if fd.writable:
                std[key] = normalize(fd, value, text_mode)
            continue
        if key in custom.types:
            data_type, length = custom.types[key]
            cust[key] = normalize_custom(key, data_type, length, value, text_mode)
            continue
        raise ObjectError(
            205,
            f"Invalid parameters: unknown lead field {key}",
            {"field": key, "validFields": [*LEAD_BY_NAME, *custom.names]},
        )
    if (
        std.get("ownerID") is not None
        and not conn.execute("SELECT 1 FROM users WHERE id=?", (std["ownerID"],)).fetchone()
    ):
        raise ObjectError(
            217,
            "Incorrect parameter value: ownerID is not a user of this account",
            {"field": "ownerID"},
        )
    if "emailAddress" in std and not std["emailAddress"].strip():
        raise ObjectError(
            205, "Invalid parameters: emailAddress cannot be empty", {"field": "emailAddress"}
        )
    return std, cust


def insert_lead(
    conn: sqlite3.Connection, std: dict[str, Any], cust: dict[str, str], now: str
) -> int:
    """Insert a new lead (caller checked the email); returns the new id."""
    values = {**NEW_LEAD_DEFAULTS, **std, "createTimestamp": now, "updateTimestamp": now}
    values.pop("id", None)
    cols = list(values)
    cur = conn.execute(
        f"INSERT INTO leads ({', '.join(chr(34) + c + chr(34) for c in cols)}, custom)"
        f" VALUES ({', '.join('?' * len(cols))}, ?)",
        (*values.values(), dump_custom(cust)),
    )
    return int(cur.lastrowid)


def create_lead(
    conn: sqlite3.Connection, obj: dict[str, Any], custom: CustomCatalog, now: str
) -> int:
    """createLeads for one object: ``id`` ignored, emailAddress required (206), unique (301)."""
    obj = {k: v for k, v in obj.items() if k != "id"}
    email = obj.get("emailAddress")
    if email is None or (isinstance(email, str) and not email.strip()):
        raise ObjectError(
            206, "Missing parameters: emailAddress is required", {"field": "emailAddress"}
        )
    std, cust = prepare_values(conn, obj, custom)
    if get_lead_row_by_email(conn, std["emailAddress"]) is not None:
        raise ObjectError(
            301,
            "Entry already exists: a lead with this emailAddress exists",
            {"field": "emailAddress"},
        )
    return insert_lead(conn, std, cust, now)


def changes_for(
    row: tuple, std: dict[str, Any], cust: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Only the values that differ from the stored row."""
    std_changes = {k: v for k, v in std.items() if row[COL_INDEX[k]] != v}
    stored_custom = load_custom(row[CUSTOM_INDEX])
    cust_changes = {k: v for k, v in cust.items() if stored_custom.get(k, "") != v}
    return std_changes, cust_changes


def write_changes(
    conn: sqlite3.Connection, row: tuple, std: dict[str, Any], cust: dict[str, str], now: str
) -> None:
    """Apply changes and bump updateTimestamp."""
    sets = [f'"{k}"=?' for k in std] + ["updateTimestamp=?"]
    args: list[Any] = [*std.values(), now]
    if cust:
        merged = {**load_custom(row[CUSTOM_INDEX]), **cust}
        sets.append("custom=?")
        args.append(dump_custom(merged))
    conn.execute(f"UPDATE leads SET {', '.join(sets)} WHERE id=?", (*args, row[COL_INDEX["id"]]))


def update_lead(
    conn: sqlite3.Connection, obj: dict[str, Any], custom: CustomCatalog, now: str, *, v2: bool
) -> None:
    """updateLeads / updateLeadsV2 for one object, with the real API's quirks (module doc)."""
    row = None
    raw_id = obj.get("id")
    if raw_id not in (None, ""):
        try:
            lead_id = to_int(raw_id, "id")
        except ObjectError:
            raise ObjectError(
                205, "Invalid parameters: id must be an integer", {"field": "id"}
            ) from None
        row = get_lead_row(conn, lead_id)
        matched_by_id = True
    else:
        matched_by_id = False
        email = obj.get("emailAddress")
        if isinstance(email, str) and email.strip():
            row = get_lead_row_by_email(conn, email)
    if row is None:
        if v2:
            raise ObjectError(
                404,
                "Record with that ID does not exist",
                {"id": raw_id, "emailAddress": obj.get("emailAddress")},
            )
        return  # updateLeads: success, nothing happens (reference 8.1)

    fields = {k: v for k, v in obj.items() if k != "id"}
    std, cust = prepare_values(conn, fields, custom)
    if matched_by_id and "emailAddress" in std:
        current = row[COL_INDEX["emailAddress"]] or ""
        if std["emailAddress"].lower() != current.lower():
            other = conn.execute(
                "SELECT id FROM leads WHERE emailAddress=? COLLATE NOCASE AND id<>?",
                (std["emailAddress"], row[COL_INDEX["id"]]),
            ).fetchone()
            if other is not None:
                # The email belongs to another lead: the real API changes nothing but
                # updateTimestamp and still reports success (RMUIT, tested on v1.117).
                conn.execute(
                    "UPDATE leads SET updateTimestamp=? WHERE id=?", (now, row[COL_INDEX["id"]])
                )
                return
    dropped = False
    if row[COL_INDEX["leadStatus"]] == "contactWithOpp" and std.get("leadStatus") == "contact":
        del std["leadStatus"]  # silently ignored by the real API (RMUIT)
        dropped = True
    std_changes, cust_changes = changes_for(row, std, cust)
    if not std_changes and not cust_changes:
        if dropped:
            return
        raise ObjectError(302, "No table rows affected", {"id": str(row[COL_INDEX["id"]])})
    write_changes(conn, row, std_changes, cust_changes, now)


def delete_lead(conn: sqlite3.Connection, obj: dict[str, Any]) -> None:
    """deleteLeads accepts ``{id}`` only; memberships and opportunity links go with the lead."""
    raw_id = obj.get("id")
    if raw_id in (None, ""):
        if "emailAddress" in obj:
            raise ObjectError(
                205,
                "Invalid parameters: deleteLeads takes id, not emailAddress",
                {"field": "emailAddress"},
            )
        raise ObjectError(206, "Missing parameters: id", {"field": "id"})
    lead_id = to_int(raw_id, "id")
    cur = conn.execute("DELETE FROM leads WHERE id=?", (lead_id,))
    if cur.rowcount == 0:
        raise ObjectError(404, "Record with that ID does not exist", {"id": str(raw_id)})
    conn.execute("DELETE FROM list_members WHERE leadID=?", (lead_id,))
    conn.execute("DELETE FROM opportunity_leads WHERE leadID=?", (lead_id,))


@method("createLeads", write=True)
def create_leads(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    now = ctx.clock.now_str()
    custom: CustomCatalog | None = None

    def one(conn: sqlite3.Connection, obj: dict[str, Any]) -> dict[str, Any]:
        nonlocal custom
        custom = custom or CustomCatalog(conn)
        return {"success": True, "error": None, "id": create_lead(conn, obj, custom, now)}

    return run_batch(ctx, params, "creates", one)


def _updates(ctx: Context, params: dict[str, Any], *, v2: bool) -> dict[str, Any]:
    now = ctx.clock.now_str()
    custom: CustomCatalog | None = None

    def one(conn: sqlite3.Connection, obj: dict[str, Any]) -> dict[str, Any]:
        nonlocal custom
        custom = custom or CustomCatalog(conn)
        update_lead(conn, obj, custom, now, v2=v2)
        return {"success": True, "error": None}

    return run_batch(ctx, params, "updates", one)


@method("updateLeads", write=True)
def update_leads(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return _updates(ctx, params, v2=False)


@method("updateLeadsV2", write=True)
def update_leads_v2(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return _updates(ctx, params, v2=True)


@method("deleteLeads", write=True)
def delete_leads(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    def one(conn: sqlite3.Connection, obj: dict[str, Any]) -> dict[str, Any]:
        delete_lead(conn, obj)
        return {"success": True, "error": None}

    return run_batch(ctx, params, "deletes", one)
