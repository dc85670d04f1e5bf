"""Marketing reads: getEvents, getLeadTimeline, email listing/jobs/events, lists and members."""

from __future__ import annotations

from typing import Any

from ..activity import EMAIL_EVENT_TYPES, EVENT_VOCABULARY
from ..clock import EMAIL_EVENT_FORMAT, format_timestamp, parse_in_zone, to_zone
from ..errors import ApiError
from ..rpc import (
    Context,
    filtered_select,
    int_param,
    limit_offset,
    method,
    require_param,
    require_where,
    rows_api,
)

EVENT_COLUMNS = (
    "id",
    "leadID",
    "eventName",
    "whatID",
    "whatType",
    "eventData",
    "eventSource",
    "createTimestamp",
)
TIMELINE_COLUMNS = ("whoID", "whatType", "eventSource", "eventName", "createTimestamp")
EMAIL_COLUMNS = ("id", "createTimestamp", "title", "subject", "thumbnail")
EMAIL_JOB_COLUMNS = (
    "id",
    "emailID",
    "isList",
    "isActive",
    "recipientID",
    "sendCount",
    "createTimestamp",
)
LIST_COLUMNS = ("id", "name", "memberCount", "removedCount", "createTimestamp", "description")
MEMBER_COLUMNS = ("id", "listID", "companyName", "leadID", "firstName", "lastName", "emailAddress")


def _event_bound(value: Any, name: str, zone_name: str) -> str:
    try:
        return format_timestamp(parse_in_zone(value, zone_name))
    except ValueError:
        raise ApiError(
            205, f"Invalid parameters: {name} must be YYYY-MM-DD HH:MM:SS", {"param": name}
        ) from None


@method("getEvents")
def get_events(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Marketing events with their stable ids, ordered by id.

    ``where.createTimestamp`` is a *lower bound* (inclusive), ``where.leadID`` and
    ``where.eventSource`` are equality filters. The real API documents the keys, not their
    semantics; the lower-bound reading is the one that makes incremental reads possible. The
    optional top-level ``endDate`` is an inclusive *upper* bound, named like the *DateRange
    arguments [I]: the sandbox's answer to "read one hour of events without reading every
    event since" (the client also filters on its side, so an API that ignores it stays correct).
    """
    where = require_where(params, ("leadID", "createTimestamp", "eventSource"))
    limit, offset = limit_offset(params, cap=ctx.config.page_cap)
    zone_name = ctx.config.account_timezone
    clauses, args = [], []
    if where.get("leadID") not in (None, ""):
        clauses.append("leadID=?")
        args.append(int_param(where["leadID"], "leadID"))
    if where.get("createTimestamp") not in (None, ""):
        clauses.append("createTimestamp>=?")
        args.append(_event_bound(where["createTimestamp"], "createTimestamp", zone_name))
    if params.get("endDate") not in (None, ""):
        clauses.append("createTimestamp<=?")
        args.append(_event_bound(params["endDate"], "endDate", zone_name))
    if where.get("eventSource") not in (None, ""):
        if where["eventSource"] not in EVENT_VOCABULARY:
            raise ApiError(219, data={"param": "eventSource", "allowed": list(EVENT_VOCABULARY)})
        clauses.append("eventSource=?")
        args.append(where["eventSource"])
    sql = "SELECT * FROM events"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY id LIMIT ? OFFSET ?"
    with ctx.db.read() as conn:
        rows = conn.execute(sql, (*args, limit, offset)).fetchall()
        return {"event": rows_api(rows, EVENT_COLUMNS, zone_name)}


@method("getLeadTimeline")
def get_lead_timeline(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """The lead's "life of the lead" rows: no ids, grouped by eventSource (as observed)."""
    where = require_where(params, ("whoID", "eventSource"))
    raw = where.get("whoID")
    if raw in (None, ""):
        raise ApiError(
            220, "Invalid whoID: where.whoID (a lead id) is required", {"param": "whoID"}
        )
    try:
        who = int(str(raw))
    except ValueError:
        raise ApiError(220, data={"param": "whoID"}) from None
    limit, offset = limit_offset(params, cap=ctx.config.page_cap)
    sql = "SELECT leadID AS whoID, whatType, eventSource, eventName, createTimestamp FROM events WHERE leadID=?"
    args: list[Any] = [who]
    if where.get("eventSource") not in (None, ""):
        if where["eventSource"] not in EVENT_VOCABULARY:
            raise ApiError(219, data={"param": "eventSource"})
        sql += " AND eventSource=?"
        args.append(where["eventSource"])
    sql += " ORDER BY eventSource, id LIMIT ? OFFSET ?"
    with ctx.db.read() as conn:
        rows = conn.execute(sql, (*args, limit, offset)).fetchall()
        return {"leadTimeline": rows_api(rows, TIMELINE_COLUMNS, ctx.config.account_timezone)}


def _has_more(rows: list[Any], limit: int) -> tuple[list[Any], bool]:
    return (rows[:limit], True) if len(rows) > limit else (rows, False)


@method("getEmailListing")
def get_email_listing(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Emails under the generated key ``getAllemailListings``, plus ``hasMore``."""
    where = require_where(params, ("id",), optional=True)
    limit, offset = limit_offset(params, cap=ctx.config.page_cap)
    with ctx.db.read() as conn:
        rows = filtered_select(conn, "emails", where, limit + 1, offset)
    rows, more = _has_more(rows, limit)
    zone_name = ctx.config.account_timezone
    return {"getAllemailListings": rows_api(rows, EMAIL_COLUMNS, zone_name), "hasMore": more}


@method("getEmailJobs")
def get_email_jobs(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Email sends under the generated key ``getAllgetEmailJobss`` (double s); no ``where``."""
    limit, offset = limit_offset(params, cap=ctx.config.page_cap)
    with ctx.db.read() as conn:
        rows = conn.execute(
            "SELECT * FROM email_jobs ORDER BY id LIMIT ? OFFSET ?", (limit, offset)
        ).fetchall()
        return {
            "getAllgetEmailJobss": rows_api(rows, EMAIL_JOB_COLUMNS, ctx.config.account_timezone)
        }


@method("getEmailEvents")
def get_email_events(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Per-recipient rows of one send: sends, opens, clicks (one row per click), bounces,
    unsubscribes. ``createDate`` uses the method's own ``YYYY/MM/DD HH:MM`` format."""
    job_id = int_param(require_param(params, "emailJobID"), "emailJobID")
    event_type = require_param(params, "eventType")
    source = EMAIL_EVENT_TYPES.get(event_type)
    if source is None:
        raise ApiError(
            217,
            "Incorrect parameter value: eventType",
            {"param": "eventType", "allowed": list(EMAIL_EVENT_TYPES)},
        )
    limit, offset = limit_offset(params, cap=ctx.config.page_cap)
    with ctx.db.read() as conn:
        rows = conn.execute(
            "SELECT e.leadID, e.emailID, e.emailJobID, e.createTimestamp, l.emailAddress"
            " FROM events e LEFT JOIN leads l ON l.id = e.leadID"
            " WHERE e.emailJobID=? AND e.eventSource=? ORDER BY e.id LIMIT ? OFFSET ?",
            (job_id, source, limit, offset),
        ).fetchall()
    out = []
    for r in rows:
        out.append(
            {
                "leadID": str(r["leadID"]),
                "emailID": None if r["emailID"] is None else str(r["emailID"]),
                "emailJobID": str(r["emailJobID"]),
                "createDate": to_zone(
                    r["createTimestamp"], ctx.config.account_timezone, EMAIL_EVENT_FORMAT
                ),
                "emailAddress": r["emailAddress"],
            }
        )
    return {"lead": out}


@method("getActiveLists")
def get_active_lists(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    where = require_where(params, ("id",))
    limit, offset = limit_offset(params, cap=ctx.config.page_cap)
    sql = (
        "SELECT l.id, l.name, l.description, l.createTimestamp,"
        " (SELECT COUNT(*) FROM list_members m WHERE m.listID=l.id AND m.removed=0) AS memberCount,"
        " (SELECT COUNT(*) FROM list_members m WHERE m.listID=l.id AND m.removed=1) AS removedCount"
        " FROM lists l"
    )
    args: list[Any] = []
    if where.get("id") not in (None, ""):
        sql += " WHERE l.id=?"
        args.append(int_param(where["id"], "id"))
    sql += " ORDER BY l.id LIMIT ? OFFSET ?"
    with ctx.db.read() as conn:
        rows = conn.execute(sql, (*args, limit, offset)).fetchall()
        return {"activeList": rows_api(rows, LIST_COLUMNS, ctx.config.account_timezone)}


@method("getListMembers")
def get_list_members(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Members of ``where.id`` under ``getWherelistMemberGets``, plus ``hasMore``."""
    where = require_where(params, ("id",))
    if where.get("id") in (None, ""):
        raise ApiError(206, "Missing parameters: where.id (the list id)", {"param": "id"})
    list_id = int_param(where["id"], "id")
    limit, offset = limit_offset(params, cap=ctx.config.page_cap)
    with ctx.db.read() as conn:
        rows = conn.execute(
            "SELECT m.id, m.listID, l.companyName, m.leadID, l.firstName, l.lastName, l.emailAddress"
            " FROM list_members m JOIN leads l ON l.id = m.leadID"
            " WHERE m.listID=? AND m.removed=0 ORDER BY m.id LIMIT ? OFFSET ?",
            (list_id, limit + 1, offset),
        ).fetchall()
    rows, more = _has_more(rows, limit)
    return {"getWherelistMemberGets": rows_api(rows, MEMBER_COLUMNS), "hasMore": more}
