"""The lead's page the record link on Salesforce records opens (the vendor's "Lead Hyperlink
Widget"): ``GET /__sandbox__/app/Contacts/View/{lead_id}``.

The real product serves this page in its web app; the sandbox renders a plain read-only version
with what the widget promises: the lead's details, the Life of the Lead (marketing activity),
list memberships and the opportunities it is a member of. Read-only, loopback only, no auth.
"""

from __future__ import annotations

import html
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from . import marketer
from .marketer import AdminError

PATH = "/__sandbox__/app/Contacts/View/{lead_id:int}"
SHOWN_FIELDS = (
    "firstName", "lastName", "emailAddress", "companyName", "title", "phoneNumber", "leadStatus",
    "leadScore", "active", "ownerID", "updateTimestamp", "createTimestamp",
)  # fmt: skip


def _rows(conn: Any, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return list(conn.execute(sql, args).fetchall())


def _collect(db: Any, lead_id: int) -> dict[str, Any]:
    lead = marketer.read_lead(db, lead_id)
    with db.read() as conn:
        events = _rows(
            conn,
            "SELECT createTimestamp, eventSource, eventName FROM events WHERE leadID = ? ORDER BY id DESC LIMIT 50",
            (lead_id,),
        )
        lists = _rows(
            conn,
            "SELECT l.name, m.createTimestamp FROM list_members m JOIN lists l ON l.id = m.listID "
            "WHERE m.leadID = ? AND m.removed = 0 ORDER BY l.name",
            (lead_id,),
        )
        opportunities = _rows(
            conn,
            "SELECT o.opportunityName, o.amount, o.isClosed, o.isWon FROM opportunity_leads ol "
            "JOIN opportunities o ON o.id = ol.opportunityID WHERE ol.leadID = ? ORDER BY o.opportunityName",
            (lead_id,),
        )
    return {"lead": lead, "events": events, "lists": lists, "opportunities": opportunities}


def _table(headers: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render(data: dict[str, Any]) -> str:
    lead = data["lead"]
    name = " ".join(str(lead.get(k) or "") for k in ("firstName", "lastName")).strip() or lead.get(
        "emailAddress"
    )
    details = _table(("field", "value"), [(k, lead.get(k)) for k in SHOWN_FIELDS])
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(str(name))} · Lead Gen &amp; CRM sandbox</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
        f"<h1>{html.escape(str(name))}</h1><p>Lead {html.escape(str(lead.get('id')))} (sandbox view)</p>"
        f"<h2>Details</h2>{details}"
        f"<h2>Opportunities</h2>{_table(('opportunity', 'amount', 'closed', 'won'), data['opportunities'])}"
        f"<h2>Lists</h2>{_table(('list', 'since'), data['lists'])}"
        f"<h2>Life of the Lead</h2>{_table(('when (UTC)', 'source', 'event'), data['events'])}"
        "</body></html>"
    )


async def lead_page(request: Request) -> HTMLResponse:
    state = request.app.state.sandbox
    host = request.client.host if request.client else ""
    if host not in ("127.0.0.1", "::1", "localhost", "testclient") and not state.allow_remote_admin:
        return HTMLResponse("loopback only", status_code=403)
    try:
        data = await run_in_threadpool(_collect, state.db, request.path_params["lead_id"])
    except AdminError as exc:
        return HTMLResponse(html.escape(exc.message), status_code=exc.status)
    return HTMLResponse(render(data))


def app_routes() -> list[Route]:
    return [Route(PATH, lead_page, methods=["GET"])]
