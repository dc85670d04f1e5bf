"""Sales objects: accounts, opportunities, opportunity leads, deal stages, campaigns.

They share one generic implementation driven by an :class:`ObjectSpec`: list by ``where``
(equality on the documented keys), list by date range (server-side create/update timestamps
that, as in the vendor samples, are not part of the returned object), and batch
create/update/delete with per-object errors. Updates follow the lead rules that are known to
be general: ``id`` required, 404 for an unknown id, 302 when nothing would change.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from ..catalog import (
    ACCOUNT_FIELDS,
    DEAL_STAGE_FIELDS,
    OPPORTUNITY_FIELDS,
    OPPORTUNITY_LEAD_FIELDS,
    FieldDef,
)
from ..errors import ObjectError
from ..rpc import (
    Context,
    filtered_select,
    int_param,
    limit_offset,
    method,
    require_param,
    require_where,
    rows_api,
    run_batch,
)
from ..values import dump_custom, load_custom, normalize, normalize_custom, to_api, to_int
from .leads import CustomCatalog, parse_range

# Reference columns and the object error a dangling value gets: 214 is the API's own
# "lead does not exist for this account"; other dangling ids are "incorrect parameter value".
REFERENCES: dict[str, tuple[str, int]] = {
    "ownerID": ("users", 217),
    "dealStageID": ("deal_stages", 217),
    "accountID": ("accounts", 217),
    "campaignID": ("campaigns", 217),
    "opportunityID": ("opportunities", 217),
    "leadID": ("leads", 214),
    "primaryLeadID": ("leads", 214),
    "originatingLeadID": ("leads", 214),
}


@dataclass(frozen=True)
class ObjectSpec:
    table: str
    fields: tuple[FieldDef, ...]
    result_key: str
    where_keys: tuple[str, ...]
    custom_relationship: str | None = None
    required: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def by_name(self) -> dict[str, FieldDef]:
        return {f.name: f for f in self.fields}


ACCOUNTS = ObjectSpec(
    "accounts", ACCOUNT_FIELDS, "account", ("id", "ownerID"), "account", ("accountName",)
)
OPPORTUNITIES = ObjectSpec(
    "opportunities",
    OPPORTUNITY_FIELDS,
    "opportunity",
    ("id", "ownerID", "dealStageID", "accountID", "campaignID"),
    "opportunity",
    ("opportunityName",),
    {"isClosed": 0, "isWon": 0, "isActive": 1},
)
OPPORTUNITY_LEADS = ObjectSpec(
    "opportunity_leads",
    OPPORTUNITY_LEAD_FIELDS,
    "getWhereopportunityLeads",  # generator artifact, reproduced exactly (reference 6.4)
    ("id", "opportunityID", "leadID"),
    None,
    ("opportunityID", "leadID"),
)
DEAL_STAGES = ObjectSpec(
    "deal_stages",
    DEAL_STAGE_FIELDS,
    "dealStage",
    ("id",),
    None,
    ("dealStageName",),
    {"defaultProbability": 0, "weight": 0, "isEditable": 1},
)


def render(
    spec: ObjectSpec, rows: list[sqlite3.Row], custom: CustomCatalog | None
) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        obj = {fd.name: to_api(fd, row[fd.name]) for fd in spec.fields}
        if custom is not None:
            values = load_custom(row["custom"])
            for name in custom.names:
                obj[name] = values.get(name, "")
        out.append(obj)
    return out


def _catalog(conn: sqlite3.Connection, spec: ObjectSpec) -> CustomCatalog | None:
    return CustomCatalog(conn, spec.custom_relationship) if spec.custom_relationship else None


def list_objects(ctx: Context, spec: ObjectSpec, params: dict[str, Any]) -> dict[str, Any]:
    where = require_where(params, spec.where_keys)
    limit, offset = limit_offset(params, cap=ctx.config.page_cap)
    with ctx.db.read() as conn:
        rows = filtered_select(conn, spec.table, where, limit, offset, ctx.config.max_objects)
        return {spec.result_key: render(spec, rows, _catalog(conn, spec))}


def get_object(
    ctx: Context, spec: ObjectSpec, params: dict[str, Any], key: str | None = None
) -> dict[str, Any]:
    """The single-record getter (getAccount, getOpportunity, ...): ``{key: [object]}`` or
    ``{key: []}``, like getLead (reference 6.4)."""
    object_id = int_param(require_param(params, "id"), "id")
    with ctx.db.read() as conn:
        rows = conn.execute(f"SELECT * FROM {spec.table} WHERE id=?", (object_id,)).fetchall()
        return {key or spec.result_key: render(spec, rows, _catalog(conn, spec))}


def list_objects_range(ctx: Context, spec: ObjectSpec, params: dict[str, Any]) -> dict[str, Any]:
    start, end, column = parse_range(params, ctx.config.account_timezone)
    limit, offset = limit_offset(params, cap=ctx.config.page_cap)
    with ctx.db.read() as conn:
        rows = conn.execute(
            f"SELECT * FROM {spec.table} WHERE {column} BETWEEN ? AND ? ORDER BY {column}, id LIMIT ? OFFSET ?",
            (start, end, limit, offset),
        ).fetchall()
        return {spec.result_key: render(spec, rows, _catalog(conn, spec))}


def _prepare(
    conn: sqlite3.Connection, spec: ObjectSpec, obj: dict[str, Any], custom: CustomCatalog | None
) -> tuple[dict[str, Any], dict[str, str]]:
    std: dict[str, Any] = {}
    cust: dict[str, str] = {}
    by_name = spec.by_name
    for key, value in obj.items():
        fd = by_name.get(key)
        if fd is not None:
            if fd.writable:
                std[key] = normalize(fd, value)
            continue
        if custom is not None and key in custom.types:
            data_type, length = custom.types[key]
            cust[key] = normalize_custom(key, data_type, length, value)
            continue
        valid = [*by_name, *(custom.names if custom else [])]
        raise ObjectError(
            205, f"Invalid parameters: unknown field {key}", {"field": key, "validFields": valid}
        )
    for key, value in std.items():
        ref = REFERENCES.get(key)
        if ref is None or value is None:
            continue
        table, code = ref
        if not conn.execute(f"SELECT 1 FROM {table} WHERE id=?", (value,)).fetchone():
            raise ObjectError(code, f"{key} {value} does not exist in this account", {"field": key})
    return std, cust


def create_object(
    conn: sqlite3.Connection,
    spec: ObjectSpec,
    obj: dict[str, Any],
    custom: CustomCatalog | None,
    now: str,
) -> int:
    obj = {k: v for k, v in obj.items() if k != "id"}
    for name in spec.required:
        if obj.get(name) in (None, ""):
            raise ObjectError(206, f"Missing parameters: {name} is required", {"field": name})
    std, cust = _prepare(conn, spec, obj, custom)
    values = {**spec.defaults, **std}
    if (
        spec is OPPORTUNITY_LEADS
        and conn.execute(
            "SELECT 1 FROM opportunity_leads WHERE opportunityID=? AND leadID=?",
            (values["opportunityID"], values["leadID"]),
        ).fetchone()
    ):
        raise ObjectError(
            301,
            "Entry already exists: the lead is already on this opportunity",
            {"field": "leadID"},
        )
    cols = [*values, "createTimestamp", "updateTimestamp"]
    args = [*values.values(), now, now]
    if spec.custom_relationship:
        cols.append("custom")
        args.append(dump_custom(cust))
    cur = conn.execute(
        f"INSERT INTO {spec.table} ({', '.join(chr(34) + c + chr(34) for c in cols)})"
        f" VALUES ({', '.join('?' * len(cols))})",
        args,
    )
    return int(cur.lastrowid)


def _target(conn: sqlite3.Connection, spec: ObjectSpec, obj: dict[str, Any]) -> sqlite3.Row:
    raw_id = obj.get("id")
    if raw_id in (None, ""):
        raise ObjectError(206, "Missing parameters: id", {"field": "id"})
    row = conn.execute(f"SELECT * FROM {spec.table} WHERE id=?", (to_int(raw_id, "id"),)).fetchone()
    if row is None:
        raise ObjectError(404, "Record with that ID does not exist", {"id": str(raw_id)})
    return row


def update_object(
    conn: sqlite3.Connection,
    spec: ObjectSpec,
    obj: dict[str, Any],
    custom: CustomCatalog | None,
    now: str,
) -> None:
    row = _target(conn, spec, obj)
    std, cust = _prepare(conn, spec, {k: v for k, v in obj.items() if k != "id"}, custom)
    std = {k: v for k, v in std.items() if row[k] != v}
    stored_custom = load_custom(row["custom"]) if spec.custom_relationship else {}
    cust = {k: v for k, v in cust.items() if stored_custom.get(k, "") != v}
    if not std and not cust:
        raise ObjectError(302, "No table rows affected", {"id": str(row["id"])})
    sets = [f'"{k}"=?' for k in std] + ["updateTimestamp=?"]
    args = [*std.values(), now]
    if cust:
        sets.append("custom=?")
        args.append(dump_custom({**stored_custom, **cust}))
    conn.execute(f"UPDATE {spec.table} SET {', '.join(sets)} WHERE id=?", (*args, row["id"]))


def delete_object(conn: sqlite3.Connection, spec: ObjectSpec, obj: dict[str, Any]) -> None:
    row = _target(conn, spec, obj)
    if (
        spec is DEAL_STAGES
        and conn.execute(
            "SELECT 1 FROM opportunities WHERE dealStageID=? LIMIT 1", (row["id"],)
        ).fetchone()
    ):
        raise ObjectError(
            303,
            "Foreign key constraint failed: opportunities use this deal stage",
            {"id": str(row["id"])},
        )
    conn.execute(f"DELETE FROM {spec.table} WHERE id=?", (row["id"],))
    if spec is OPPORTUNITIES:
        conn.execute("DELETE FROM opportunity_leads WHERE opportunityID=?", (row["id"],))


def _register(
    spec: ObjectSpec,
    plural: str,
    *,
    get: bool,
    date_range: bool,
    writes: tuple[str, ...],
    single: tuple[str, str] | None = None,
) -> None:
    """Register getX (``single``: name and result key) / getXs / getXsDateRange / createXs /
    updateXs / deleteXs for one spec."""
    if single is not None:
        name, key = single
        method(name)(lambda ctx, params: get_object(ctx, spec, params, key))
    if get:
        method(f"get{plural}")(lambda ctx, params: list_objects(ctx, spec, params))
    if date_range:
        method(f"get{plural}DateRange")(lambda ctx, params: list_objects_range(ctx, spec, params))
    for verb in writes:
        method(f"{verb}{plural}", write=True)(_batch_handler(spec, verb))


def _batch_handler(spec: ObjectSpec, verb: str):
    key = {"create": "creates", "update": "updates", "delete": "deletes"}[verb]

    def handler(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        now = ctx.clock.now_str()
        catalog: list[CustomCatalog | None] = []

        def one(conn: sqlite3.Connection, obj: dict[str, Any]) -> dict[str, Any]:
            if not catalog:
                catalog.append(_catalog(conn, spec))
            if verb == "create":
                return {
                    "success": True,
                    "error": None,
                    "id": create_object(conn, spec, obj, catalog[0], now),
                }
            if verb == "update":
                update_object(conn, spec, obj, catalog[0], now)
            else:
                delete_object(conn, spec, obj)
            return {"success": True, "error": None}

        return run_batch(ctx, params, key, one)

    return handler


_CRUD = ("create", "update", "delete")
# (spec, plural, has *DateRange, writes, (single getter, its result key)). getOpportunityLead
# answers under "opportunityLead" (DLL), unlike the list's generator key. updateDealStages is
# not in any sample but is in the vendor's method index family; the sandbox offers it with the
# generic update rules.
for _spec, _plural, _ranged, _writes, _single in (
    (ACCOUNTS, "Accounts", True, _CRUD, ("getAccount", "account")),
    (OPPORTUNITIES, "Opportunities", True, _CRUD, ("getOpportunity", "opportunity")),
    (OPPORTUNITY_LEADS, "OpportunityLeads", False, ("create", "delete"), ("getOpportunityLead", "opportunityLead")),
    (DEAL_STAGES, "DealStages", False, _CRUD, ("getDealStage", "dealStage")),
):  # fmt: skip
    _register(_spec, _plural, get=True, date_range=_ranged, writes=_writes, single=_single)


@method("getOpportunityLeadsDateRange")
def get_opportunity_leads_date_range(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Unlike getOpportunityLeads, the date-range variant answers under ``opportunityLead``."""
    result = list_objects_range(ctx, OPPORTUNITY_LEADS, params)
    return {"opportunityLead": result[OPPORTUNITY_LEADS.result_key]}


CAMPAIGN_COLUMNS = (
    "id",
    "campaignName",
    "campaignType",
    "campaignAlias",
    "campaignOrigin",
    "qty",
    "price",
    "goal",
    "otherCosts",
    "startDate",
    "endDate",
    "isActive",
)


@method("getCampaign")
def get_campaign(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """``{"campaign": [campaign]}`` or ``{"campaign": []}`` (DLL getCampaign)."""
    campaign_id = int_param(require_param(params, "id"), "id")
    return get_campaigns(ctx, {"where": {"id": campaign_id}, "limit": 1})


@method("getCampaigns")
def get_campaigns(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Campaigns; start/end dates read back date-only, money as ``"1000.00"`` (reference 7.7)."""
    where = require_where(params, ("id", "ownerID"))
    limit, offset = limit_offset(params, cap=ctx.config.page_cap)
    with ctx.db.read() as conn:
        rows = filtered_select(conn, "campaigns", where, limit, offset, ctx.config.max_objects)
        return {"campaign": rows_api(rows, CAMPAIGN_COLUMNS)}
