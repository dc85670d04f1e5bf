"""The admin surface under ``/__sandbox__/`` (the real API has none): no auth, loopback only.

Every endpoint takes and returns JSON. Writes accept ``"_at"`` (``YYYY-MM-DD HH:MM:SS`` or ISO)
to stamp the change at an explicit time instead of the account clock. Errors answer
``{"error": message}`` with a 4xx status (plus ``"api_error"`` when a lead rule refused it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import ADMIN_PREFIX, marketer
from .app import SandboxState
from .clock import format_timestamp, parse_timestamp
from .marketer import AdminError
from .seed import seed
from .values import TEXT_API, TEXT_UI

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _json(payload: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(payload, ensure_ascii=False), status_code=status, media_type="application/json"
    )


def _at(state: SandboxState, payload: dict[str, Any]) -> str:
    raw = payload.get("_at")
    if raw in (None, ""):
        return state.clock.now_str()
    try:
        return format_timestamp(parse_timestamp(raw))
    except ValueError as exc:
        raise AdminError(400, f"_at: {exc}") from None


def _int(payload: dict[str, Any], key: str, default: int | None = None) -> int:
    value = payload.get(key, default)
    if value is None:
        raise AdminError(400, f"{key} is required")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise AdminError(400, f"{key} must be an integer") from None


AdminHandler = Callable[[SandboxState, Request, dict[str, Any]], Awaitable[Any]]


def _endpoint(
    state: SandboxState, handler: AdminHandler
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        host = request.client.host if request.client else ""
        # Health is harmless and container probes may come from elsewhere; everything else is
        # loopback-only unless the operator opted in (--allow-remote-admin, e.g. in compose).
        if handler is not health and host not in LOOPBACK and not state.allow_remote_admin:
            return _json(
                {"error": "the admin API answers loopback clients only (see --allow-remote-admin)"},
                403,
            )
        payload: dict[str, Any] = {}
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            raw = await request.body()
            if raw.strip():
                try:
                    payload = json.loads(raw)
                except ValueError:
                    return _json({"error": "the body must be JSON"}, 400)
                if not isinstance(payload, dict):
                    return _json({"error": "the body must be a JSON object"}, 400)
        try:
            result = await handler(state, request, payload)
        except AdminError as exc:
            body = {"error": exc.message}
            if exc.error:
                body["api_error"] = exc.error
            return _json(body, exc.status)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        return _json(result)

    return endpoint


# -- handlers -------------------------------------------------------------------------------


async def health(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    frozen = state.clock.frozen
    return {
        "status": "ok",
        "service": "leadgen",
        "now": state.clock.now_str(),
        "clock_frozen": frozen is not None,
    }


async def reset(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    """Wipe data (keep schema and users), restore default fields, zero counters, clear faults,
    unfreeze the clock and restore start-up limits (unless ``keep_config``)."""
    await run_in_threadpool(state.db.reset)
    state.reset_counters()
    state.writes.clear()
    state.faults.clear()
    state.hooks.clear()
    state.clock.freeze(None)
    if not payload.get("keep_config"):
        state.config.restore()
        state.faults.reseed(state.config.current.fault_seed)
    return {"reset": True}


async def do_seed(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    at = parse_timestamp(payload["_at"]) if payload.get("_at") else state.clock.now()
    summary = await run_in_threadpool(
        seed,
        state.db,
        at,
        leads=_int(payload, "leads", 100),
        seed=_int(payload, "seed", 42),
        defects=bool(payload.get("defects", False)),
        activity_leads=_int(payload, "activity_leads", 1000),
        inactive=_int(payload, "inactive", 0),
    )
    if summary["leads"] >= 50_000:
        # A big seed leaves a WAL as large as the database; fold it back in once.
        await run_in_threadpool(state.db.checkpoint)
    return summary


async def calls(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    return state.stats.to_dict(state.config.current.daily_limit)


async def calls_reset(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    """Zero the counters, the daily usage and the per-second window."""
    state.reset_counters()
    return state.stats.to_dict(state.config.current.daily_limit)


async def clock(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    """GET: the clock. POST ``{"now": ts}`` freezes, ``{"now": null}`` unfreezes,
    ``{"advance_seconds": n}`` moves a frozen clock forward."""
    if request.method == "POST":
        if "advance_seconds" in payload:
            state.clock.advance(float(payload["advance_seconds"]))
        elif "now" in payload:
            state.clock.freeze(parse_timestamp(payload["now"]) if payload["now"] else None)
        else:
            raise AdminError(
                400,
                'give {"now": "YYYY-MM-DD HH:MM:SS"} or {"now": null} or {"advance_seconds": n}',
            )
        frozen = state.clock.frozen
        state.db.set_meta("clock_frozen", format_timestamp(frozen) if frozen else None)
    return {"now": state.clock.now_str(), "frozen": state.clock.frozen is not None}


async def config(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    if request.method == "POST":
        with state.config.lock:
            changed = state.config.current.update(payload)
        if "fault_seed" in changed:
            state.faults.reseed(state.config.current.fault_seed)
        log.info("config changed: %s", ", ".join(changed) or "nothing")
    return state.config.current.to_dict()


async def faults(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    """POST ``{"method": "getLeads" | "*", "fault": "999"|"drop"|"500"|"107", "count": n,
    "after": k}`` schedules (let k matching calls through, then fail n); DELETE clears; GET lists
    what is pending."""
    if request.method == "POST":
        fault = str(payload.get("fault", ""))
        state.faults.schedule(
            str(payload.get("method") or "*"),
            fault,
            _int(payload, "count", 1),
            _int(payload, "after", 0),
        )
    elif request.method == "DELETE":
        state.faults.clear()
    return {"pending": state.faults.pending()}


async def hooks(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    """POST ``{"method": "getLeadsDateRange", "call": 2, "lead_id": X, "fields": {...}}``:
    just before the 2nd such API call (counted from now) is processed, edit lead X (no fields:
    only bump its updateTimestamp). DELETE clears; GET lists what is pending."""
    if request.method == "POST":
        state.hooks.schedule(
            str(payload.get("method") or ""),
            _int(payload, "call", 1),
            _int(payload, "lead_id"),
            payload.get("fields") or {},
        )
    elif request.method == "DELETE":
        state.hooks.clear()
    return {"pending": state.hooks.pending()}


async def stats(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    def count() -> dict[str, int]:
        with state.db.read() as conn:
            out = {
                table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in (
                    "leads",
                    "events",
                    "emails",
                    "email_jobs",
                    "accounts",
                    "opportunities",
                    "opportunity_leads",
                    "deal_stages",
                    "lists",
                )
            }
            out["inactive_leads"] = conn.execute(
                "SELECT COUNT(*) FROM leads WHERE active=0"
            ).fetchone()[0]
            return out

    return await run_in_threadpool(count)


async def writes(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    """GET: the write log (``?entries=1`` adds the writes, ``&method=createLeads`` filters
    them); DELETE empties it."""
    if request.method == "DELETE":
        state.writes.clear()
    query = request.query_params
    return state.writes.snapshot(
        method=query.get("method") or None, entries=query.get("entries") in ("1", "true")
    )


async def lead_get(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    return await run_in_threadpool(marketer.read_lead, state.db, request.path_params["lead_id"])


async def lead_edit(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    """``{"fields": {...}, "typed_in_ui": false, "_at"}``: a marketer's edit; with
    ``typed_in_ui`` the text is stored HTML-encoded, as the product's UI saves it."""
    fields = payload.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise AdminError(400, 'give {"fields": {...}}')
    mode = TEXT_UI if payload.get("typed_in_ui") else TEXT_API
    return await run_in_threadpool(
        marketer.edit_lead,
        state.db,
        request.path_params["lead_id"],
        fields,
        _at(state, payload),
        mode,
    )


async def lead_score(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    fields = {"leadScore": _int(payload, "leadScore")}
    if payload.get("leadScoreWeighted") is not None:
        fields["leadScoreWeighted"] = _int(payload, "leadScoreWeighted")
    return await run_in_threadpool(
        marketer.edit_lead, state.db, request.path_params["lead_id"], fields, _at(state, payload)
    )


async def form_submit(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    fields = payload.get("fields") or {}
    if not isinstance(fields, dict):
        raise AdminError(400, "fields must be an object")
    return await run_in_threadpool(
        marketer.form_submit,
        state.db,
        payload.get("emailAddress"),
        str(payload.get("formName") or "Contact Us"),
        fields,
        _at(state, payload),
        payload.get("url"),
    )


async def import_leads(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    rows = payload.get("leads")
    if not isinstance(rows, list) or not rows:
        raise AdminError(400, 'give {"leads": [{"emailAddress": ...}, ...]}')
    return {
        "results": await run_in_threadpool(
            marketer.import_leads, state.db, rows, _at(state, payload)
        )
    }


async def email_create(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    subject = payload.get("subject")
    if not subject:
        raise AdminError(400, "subject is required")
    email_id = await run_in_threadpool(
        marketer.create_email,
        state.db,
        str(payload.get("title") or subject),
        str(subject),
        _at(state, payload),
    )
    return {"emailID": str(email_id)}


async def email_send(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    lead_ids = payload.get("leadIDs")
    if lead_ids is not None and not isinstance(lead_ids, list):
        raise AdminError(400, "leadIDs must be a list")
    return await run_in_threadpool(
        lambda: marketer.email_send(
            state.db,
            _at(state, payload),
            email_id=payload.get("emailID"),
            subject=payload.get("subject"),
            lead_ids=lead_ids,
            list_id=payload.get("listID"),
        )
    )


def _interaction(source: str) -> AdminHandler:
    async def handler(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
        return await run_in_threadpool(
            marketer.email_interaction,
            state.db,
            source,
            _int(payload, "leadID"),
            _int(payload, "emailJobID"),
            _at(state, payload),
            payload.get("url"),
        )

    return handler


async def page_visit(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    return await run_in_threadpool(
        marketer.page_visit,
        state.db,
        _int(payload, "leadID"),
        str(payload.get("url") or ""),
        _at(state, payload),
        payload.get("referrer"),
    )


async def list_create(state: SandboxState, request: Request, payload: dict[str, Any]) -> Any:
    name = payload.get("name")
    if not name:
        raise AdminError(400, "name is required")
    return await run_in_threadpool(
        marketer.create_list, state.db, str(name), list(payload.get("leadIDs") or []), _at(state, payload),
        payload.get("description"),
    )  # fmt: skip


ROUTES: tuple[tuple[str, AdminHandler, tuple[str, ...]], ...] = (
    ("/health", health, ("GET",)),
    ("/reset", reset, ("POST",)),
    ("/seed", do_seed, ("POST",)),
    ("/calls", calls, ("GET",)),
    ("/calls/reset", calls_reset, ("POST",)),
    ("/clock", clock, ("GET", "POST")),
    ("/config", config, ("GET", "POST")),
    ("/faults", faults, ("GET", "POST", "DELETE")),
    ("/hooks", hooks, ("GET", "POST", "DELETE")),
    ("/stats", stats, ("GET",)),
    ("/writes", writes, ("GET", "DELETE")),
    ("/leads/{lead_id:int}", lead_get, ("GET",)),
    ("/leads/{lead_id:int}", lead_edit, ("POST",)),
    ("/leads/{lead_id:int}/score", lead_score, ("POST",)),
    ("/forms/submit", form_submit, ("POST",)),
    ("/import", import_leads, ("POST",)),
    ("/emails", email_create, ("POST",)),
    ("/emails/send", email_send, ("POST",)),
    ("/emails/open", _interaction("emailOpened"), ("POST",)),
    ("/emails/click", _interaction("emailClick"), ("POST",)),
    ("/page-visits", page_visit, ("POST",)),
    ("/lists", list_create, ("POST",)),
)


def admin_routes(state: SandboxState) -> list[Route]:
    return [
        Route(ADMIN_PREFIX + path, _endpoint(state, handler), methods=list(verbs))
        for path, handler, verbs in ROUTES
    ]
