"""FastAPI app of the sync health pages (mounted by the Airflow api-server under ``/crm-sync``).

Three server-rendered pages (``/ui/overview``, ``/ui/quarantine``, ``/ui/lookup``) and the JSON
API behind them (``/api/...``). Every route requires an Airflow login through ``GetUserDep``
(the Bearer token of the REST API, or the ``_token`` cookie the Airflow UI sets), so the pages
work inside the UI's iframe and the API works with ``POST /auth/token``. Marking quarantined
rows for retry also needs edit rights on the DAG (``PUT`` on the DAG in the auth manager), a JSON
body, and a request that is not cross-site (see :func:`_same_site_json`).

The state store is opened lazily on the first request (:class:`StoreProvider`), so importing
this module costs no database work and a missing or broken store answers 503 instead of breaking
the api-server.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from crm_sync.health import present, queries
from crm_sync.health.queries import QuarantineFilter
from crm_sync.health.source import StoreProvider, StoreUnavailable
from crm_sync.settings import sf_api_budget, sf_retry_stop_share
from crm_sync.state.store import SyncStore, from_db

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

# Input shapes (anything else is a 422): Airflow DAG ids, quarantine categories (lower-case
# words; new DAGs may add categories, so no fixed list), lookup ids of either system.
DAG_ID_PATTERN = r"^[A-Za-z0-9_.\-]{1,250}$"
CATEGORY_PATTERN = r"^[a-z][a-z ]{0,31}$"
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,253}$")
_ID_RE = re.compile(r"^(?:(lg|sf):)?([A-Za-z0-9_\-]{1,64})$")
# HTML filter forms send ``?dag_id=`` for "any": an empty value is allowed and means no filter.
OPTIONAL = r"^$|"
StatusParam = Literal["open", "parked", "retry", "resolved", "active", "all"]

MAX_RETRY_IDS = 1000
CHART_WIDTH = 600  # SVG user units; the template's viewBox uses the same width


# -- dependencies ---------------------------------------------------------------------------
def get_store(request: Request) -> SyncStore:
    """The state store of this app (opened on first use; 503 when it cannot be opened)."""
    provider: StoreProvider = request.app.state.store_provider
    return provider.get()


StoreDep = Annotated[SyncStore, Depends(get_store)]


def dag_edit_check(user: GetUserDep) -> Callable[[str], bool]:
    """Whether the signed-in user may change the sync state of a DAG (auth manager, ``PUT``).

    Retrying a row makes the DAG write it again, so it needs the same right as editing the DAG
    (SimpleAuthManager: role ``user`` or above); viewers may look but not retry.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    manager = get_auth_manager()

    def allowed(dag_id: str) -> bool:
        return bool(
            manager.is_authorized_dag(method="PUT", user=user, details=DagDetails(id=dag_id))
        )

    return allowed


DagEditDep = Annotated[Callable[[str], bool], Depends(dag_edit_check)]


def _same_site_json(request: Request) -> None:
    """CSRF guard for state-changing calls made with the UI's cookie.

    The cookie is ``SameSite=Lax`` already; on top of that the call must carry a JSON body (an
    HTML form cannot send ``application/json`` and a cross-origin script cannot either without a
    CORS preflight, which this app never grants) and must not be marked cross-site by the
    browser (``Sec-Fetch-Site``).
    """
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site requests are refused")
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send the body as application/json"
        )


def _statuses(values: list[StatusParam] | None) -> tuple[str, ...]:
    """Status filter: default and ``active`` = open, retry, parked; ``all`` adds resolved."""
    chosen: set[str] = set()
    for v in values or ["active"]:
        if v == "all":
            chosen.update(queries.QUARANTINE_STATUSES)
        elif v == "active":
            chosen.update(queries.ACTIVE_STATUSES)
        else:
            chosen.add(v)
    return tuple(s for s in queries.QUARANTINE_STATUSES if s in chosen)


def quarantine_filter(
    dag_id: Annotated[str | None, Query(pattern=OPTIONAL + DAG_ID_PATTERN)] = None,
    category: Annotated[str | None, Query(pattern=OPTIONAL + CATEGORY_PATTERN)] = None,
    direction: Annotated[Literal["lg_to_sf", "sf_to_lg", ""] | None, Query()] = None,
    status_: Annotated[list[StatusParam] | None, Query(alias="status")] = None,
) -> QuarantineFilter:
    """Quarantine filters from the query string (empty values, as an HTML form sends, are None)."""
    return QuarantineFilter(
        dag_id=dag_id or None,
        category=category or None,
        direction=direction or None,
        statuses=_statuses(status_),
    )


FilterDep = Annotated[QuarantineFilter, Depends(quarantine_filter)]


class RetryRequest(BaseModel):
    """Body of ``POST /api/quarantine/retry``."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=MAX_RETRY_IDS)


class LookupQuery:
    """A validated lookup term: an email address, or an id of either system (``lg:``/``sf:``
    prefixes, as in quarantine record keys, pick the system)."""

    def __init__(self, raw: str):
        text = raw.strip()
        self.text = text
        if "@" in text:
            if not _EMAIL_RE.match(text):
                raise ValueError("not an email address")
            self.kind = "email"
            self.value = text.lower()
            self.side: str | None = None
            return
        m = _ID_RE.match(text)
        if not m:
            raise ValueError(
                "enter an email address or a Lead Gen & CRM / Salesforce id (letters, digits)"
            )
        self.kind = "id"
        self.side = m.group(1)
        self.value = m.group(2)


def _lookup(store: SyncStore, term: LookupQuery) -> dict[str, Any]:
    if term.kind == "email":
        matches = queries.find_by_email(store, term.value)
    else:
        matches = queries.find_by_id(store, term.value, side=term.side)
    return present.lookup_dict(term.text, term.kind, matches)


def _now() -> datetime:
    return datetime.now(UTC)


# -- view models shared by the pages and the JSON API -------------------------------------
def budget_view(store: SyncStore, *, days: int, now: datetime) -> dict[str, Any]:
    used = store.sf_calls_since(now - timedelta(hours=24))
    out = present.budget_dict(
        used=used, budget=sf_api_budget(), retry_stop_share=sf_retry_stop_share(), now=now
    )
    runs = queries.runs_started_since(store, now - timedelta(days=days + 1))
    out["daily"] = present.daily_usage(runs, days=days, now=now)
    # Who used the 24 h window: the budget is shared by every sync DAG.
    since = now - timedelta(hours=24)
    by_dag: dict[str, int] = {}
    for run in runs:
        started = from_db(run.started_at)
        if started is not None and started >= since:
            by_dag[run.dag_id] = by_dag.get(run.dag_id, 0) + int(run.sf_api_calls or 0)
    out["by_dag"] = [{"dag_id": d, "sf_calls": n} for d, n in sorted(by_dag.items())]
    return out


def dags_view(store: SyncStore) -> list[dict[str, Any]]:
    open_q = queries.quarantine_counts_by_dag(store)
    held = queries.held_counts_by_dag(store)
    covered = queries.covered_until_by_dag(store)
    out = []
    for dag_id in queries.dag_ids(store):
        last = queries.recent_runs(store, dag_id, 1)
        out.append(
            {
                "dag_id": dag_id,
                "last_run": present.run_dict(last[0]) if last else None,
                "open_quarantine": open_q.get(dag_id, 0),
                "held": held.get(dag_id, 0),
                "covered_until": present.iso(covered.get(dag_id)),
            }
        )
    return out


def quarantine_view(
    store: SyncStore, flt: QuarantineFilter, *, limit: int, offset: int
) -> dict[str, Any]:
    groups = queries.quarantine_groups(store, flt)
    return {
        "total": queries.quarantine_total(store, flt),
        "limit": limit,
        "offset": offset,
        "filters": {
            "dag_id": flt.dag_id,
            "category": flt.category,
            "direction": flt.direction,
            "status": list(flt.statuses),
        },
        "groups": [present.group_dict(g) for g in groups],
        "items": [
            present.quarantine_dict(i)
            for i in queries.quarantine_page(store, flt, limit=limit, offset=offset)
        ],
    }


CSV_COLUMNS = (
    "id",
    "dag_id",
    "domain",
    "direction",
    "record_key",
    "target_object",
    "lg_id",
    "sf_id",
    "category",
    "check",
    "field",
    "error_code",
    "message",
    "attempts",
    "status",
    "first_seen",
    "last_seen",
    "first_run_id",
    "last_run_id",
    "payload",
)


def _csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (values come from CRM records,
    i.e. from anyone who filled in a web form)."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    return text


def _csv_lines(store: SyncStore, flt: QuarantineFilter) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in queries.quarantine_iter(store, flt):
        row = present.quarantine_dict(item)
        writer.writerow([_csv_cell(row[c]) for c in CSV_COLUMNS])
        if buf.tell() > 64_000:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


# -- HTML rendering ------------------------------------------------------------------------
_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES_DIR)),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["t"] = present.short_time
_env.filters["window"] = present.short_window
# Zero counters are noise in a table row (the JSON API keeps them).
_env.filters["nonzero"] = lambda d: [(k, v) for k, v in d.items() if v]
_env.filters["num"] = lambda v: f"{int(v):,}" if isinstance(v, int) else f"{v:,.4g}"
_env.filters["pct"] = lambda v: f"{float(v) * 100:.1f} %"
_env.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, sort_keys=True)

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Rendered inside the Airflow UI's iframe (same origin), never by anyone else.
    "X-Frame-Options": "SAMEORIGIN",
    "Cache-Control": "no-store",
}


def render(request: Request, template: str, *, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    """Render a page; scripts run only with this response's nonce (Content-Security-Policy)."""
    nonce = secrets.token_urlsafe(16)
    html = _env.get_template(template).render(request=request, nonce=nonce, **ctx)
    headers = dict(_SECURITY_HEADERS)
    headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        f"script-src 'nonce-{nonce}'; frame-ancestors 'self'; form-action 'self'"
    )
    return HTMLResponse(html, status_code=status_code, headers=headers)


def _is_page(request: Request) -> bool:
    path = request.scope.get("path", "")
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.startswith("/ui")


def _error_page(request: Request, status_code: int, title: str, detail: str) -> HTMLResponse:
    return render(
        request, "error.html", status_code=status_code, title=title, detail=detail, page=None
    )


# -- the app -------------------------------------------------------------------------------
def create_app(state_url: str | None = None) -> FastAPI:
    """Build the app. ``state_url`` pins the store (tests); without it the store is resolved
    from the ``sync_state`` Airflow connection, else the default SQLite file."""
    app = FastAPI(
        title="CRM sync health",
        description="Sync health of the Lead Gen & CRM <-> Salesforce DAGs (runs, API budget, "
        "quarantine, record lookup). Every route needs an Airflow login.",
        version="1",
        # FastAPI's own /openapi.json and /docs would be public (and Swagger UI loads its assets
        # from a CDN); the schema is served behind the login at /api/openapi.json instead.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.store_provider = StoreProvider(state_url)

    @app.exception_handler(StoreUnavailable)
    async def _store_unavailable(request: Request, exc: StoreUnavailable) -> Response:
        if _is_page(request):
            return _error_page(request, 503, "State store unavailable", str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_page(request):
            if exc.status_code in (401, 403):
                return _error_page(
                    request,
                    exc.status_code,
                    "Sign in to Airflow",
                    "These pages need an Airflow login. Open them from the Airflow UI "
                    "(Browse → Sync health) after signing in.",
                )
            return _error_page(request, exc.status_code, "Error", str(exc.detail))
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        if _is_page(request):
            text = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
            return _error_page(request, 422, "Invalid request", text)
        return JSONResponse({"detail": errors}, status_code=422)

    _add_api_routes(app)
    _add_page_routes(app)
    return app


def _add_api_routes(app: FastAPI) -> None:
    @app.get("/api/openapi.json", include_in_schema=False)
    def api_schema(user: GetUserDep) -> dict[str, Any]:
        """The OpenAPI document of this app."""
        from fastapi.openapi.utils import get_openapi

        return get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )

    @app.get("/api/dags", tags=["runs"])
    def api_dags(user: GetUserDep, store: StoreDep) -> dict[str, Any]:
        """Every DAG in the store with its last run, open quarantine, held items, synced-until."""
        return {"dags": dags_view(store)}

    @app.get("/api/runs", tags=["runs"])
    def api_runs(
        user: GetUserDep,
        store: StoreDep,
        dag_id: Annotated[str | None, Query(pattern=DAG_ID_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        """Recent runs (newest first) with window, status, API calls and every counter."""
        runs = queries.recent_runs(store, dag_id, limit)
        return {"runs": [present.run_dict(r) for r in runs]}

    @app.get("/api/runs/{dag_id}/{run_id:path}", tags=["runs"])
    def api_run(user: GetUserDep, store: StoreDep, dag_id: str, run_id: str) -> dict[str, Any]:
        """One run with its full (redacted) report."""
        run = store.get_run(dag_id, run_id)
        if run is None:
            raise HTTPException(404, f"no run {run_id!r} of DAG {dag_id!r}")
        return present.run_dict(run, with_report=True)

    @app.get("/api/budget", tags=["runs"])
    def api_budget(
        user: GetUserDep, store: StoreDep, days: Annotated[int, Query(ge=1, le=31)] = 7
    ) -> dict[str, Any]:
        """Salesforce calls in the rolling 24 h against the budget, and usage per day."""
        return budget_view(store, days=days, now=_now())

    @app.get("/api/held", tags=["runs"])
    def api_held(
        user: GetUserDep,
        store: StoreDep,
        dag_id: Annotated[str | None, Query(pattern=DAG_ID_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """Work waiting for a dependency (oldest first)."""
        return {"items": [present.held_dict(h) for h in queries.held_items(store, dag_id, limit)]}

    @app.get("/api/quarantine", tags=["quarantine"])
    def api_quarantine(
        user: GetUserDep,
        store: StoreDep,
        flt: FilterDep,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        """Quarantined rows (filtered, paged, most recently seen first) and their groups."""
        return quarantine_view(store, flt, limit=limit, offset=offset)

    @app.get("/api/quarantine/groups", tags=["quarantine"])
    def api_quarantine_groups(user: GetUserDep, store: StoreDep, flt: FilterDep) -> dict[str, Any]:
        """Rows and distinct records per category, with the checks and error codes behind them."""
        groups = queries.quarantine_groups(store, flt)
        return {
            "groups": [present.group_dict(g) for g in groups],
            "rows": sum(g.rows for g in groups),
        }

    @app.get("/api/quarantine.csv", tags=["quarantine"], response_class=Response)
    def api_quarantine_csv(user: GetUserDep, store: StoreDep, flt: FilterDep) -> Response:
        """Every row matching the filters as CSV (payload as redacted JSON in the last column)."""
        from fastapi.responses import StreamingResponse

        stamp = _now().strftime("%Y%m%dT%H%M%SZ")
        return StreamingResponse(
            _csv_lines(store, flt),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="crm-sync-quarantine-{stamp}.csv"',
                **_SECURITY_HEADERS,
            },
        )

    @app.get("/api/quarantine/{item_id}", tags=["quarantine"])
    def api_quarantine_item(user: GetUserDep, store: StoreDep, item_id: int) -> dict[str, Any]:
        """One quarantine row (any status)."""
        found = queries.quarantine_by_ids(store, [item_id])
        if not found:
            raise HTTPException(404, f"no quarantine row {item_id}")
        return present.quarantine_dict(found[0])

    @app.post("/api/quarantine/retry", tags=["quarantine"], dependencies=[Depends(_same_site_json)])
    def api_quarantine_retry(
        user: GetUserDep, store: StoreDep, can_edit: DagEditDep, body: RetryRequest
    ) -> dict[str, Any]:
        """Mark rows for retry by the next run of their DAG (status ``retry``, attempts reset).

        All ids must exist (else 404 and nothing changes) and the user must be allowed to edit
        every DAG concerned (else 403). Resolved rows and rows already marked are left as they
        are and listed under ``unchanged``.
        """
        wanted = sorted(set(body.ids))
        items = queries.quarantine_by_ids(store, wanted)
        unknown = sorted(set(wanted) - {i.id for i in items})
        if unknown:
            raise HTTPException(404, {"message": "unknown quarantine ids", "ids": unknown})
        denied = sorted({i.dag_id for i in items if not can_edit(i.dag_id)})
        if denied:
            raise HTTPException(403, {"message": "not allowed to edit DAGs", "dag_ids": denied})
        eligible = [i.id for i in items if i.status in ("open", "parked")]
        marked = store.mark_for_retry(eligible) if eligible else 0
        log.info(
            "sync health: %s marked %d quarantine rows for retry (%s)",
            _user_name(user),
            marked,
            ",".join(map(str, eligible)),
        )
        return {
            "marked": marked,
            "ids": eligible,
            "unchanged": [{"id": i.id, "status": i.status} for i in items if i.id not in eligible],
        }

    @app.get("/api/lookup", tags=["records"])
    def api_lookup(
        user: GetUserDep,
        store: StoreDep,
        q: Annotated[str, Query(min_length=1, max_length=320)],
    ) -> dict[str, Any]:
        """A record by email, Lead Gen & CRM id or Salesforce id: its pair, link history, last
        synced values and quarantine rows. 404 when nothing matches."""
        term = _parse_lookup(q)
        result = _lookup(store, term)
        if not result["records"] and not result["unlinked_quarantine"]:
            raise HTTPException(404, f"no record matches {term.text!r}")
        return result


def _parse_lookup(q: str) -> LookupQuery:
    try:
        return LookupQuery(q)
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("query", "q"), "msg": str(exc), "type": "value_error"}]
        ) from None


def _user_name(user: Any) -> str:
    try:
        return str(user.get_name())
    except Exception:
        return "?"


def _add_page_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def index(user: GetUserDep) -> RedirectResponse:
        return RedirectResponse("ui/overview", status_code=307)

    @app.get("/ui/overview", response_class=HTMLResponse, include_in_schema=False)
    def page_overview(
        request: Request,
        user: GetUserDep,
        store: StoreDep,
        dag_id: Annotated[str | None, Query(pattern=OPTIONAL + DAG_ID_PATTERN)] = None,
        runs: Annotated[int, Query(ge=1, le=100)] = 10,
        days: Annotated[int, Query(ge=1, le=31)] = 7,
    ) -> HTMLResponse:
        now = _now()
        budget = budget_view(store, days=days, now=now)
        dags = [d for d in dags_view(store) if not dag_id or d["dag_id"] == dag_id]
        for d in dags:
            d["runs"] = [present.run_dict(r) for r in queries.recent_runs(store, d["dag_id"], runs)]
        calls, calls_top = present.chart_bars(
            budget["daily"], ("sf_calls", "lg_calls"), width=CHART_WIDTH
        )
        rows, rows_top = present.chart_bars(
            budget["daily"], ("rows", "quarantined"), width=CHART_WIDTH
        )
        return render(
            request,
            "overview.html",
            page="overview",
            now=now,
            budget=budget,
            dags=dags,
            chart={"calls": calls, "calls_top": calls_top, "rows": rows, "rows_top": rows_top},
            days=days,
        )

    @app.get("/ui/quarantine", response_class=HTMLResponse, include_in_schema=False)
    def page_quarantine(
        request: Request,
        user: GetUserDep,
        store: StoreDep,
        flt: FilterDep,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> HTMLResponse:
        view = quarantine_view(store, flt, limit=limit, offset=offset)
        known = set(queries.CATEGORIES) | {g["category"] for g in view["groups"]}
        categories = list(queries.CATEGORIES) + sorted(known - set(queries.CATEGORIES))
        status_choice = _status_choice(flt.statuses)
        base_qs = {
            k: v
            for k, v in (
                ("dag_id", flt.dag_id),
                ("category", flt.category),
                ("direction", flt.direction),
                ("status", status_choice),
                ("limit", str(limit) if limit != 100 else None),
            )
            if v
        }
        return render(
            request,
            "quarantine.html",
            page="quarantine",
            view=view,
            dags=queries.dag_ids(store),
            categories=categories,
            directions=queries.DIRECTIONS,
            status_choice=status_choice,
            base_qs=base_qs,
        )

    @app.get("/ui/lookup", response_class=HTMLResponse, include_in_schema=False)
    def page_lookup(
        request: Request,
        user: GetUserDep,
        store: StoreDep,
        q: Annotated[str | None, Query(max_length=320)] = None,
    ) -> HTMLResponse:
        if not q or not q.strip():
            return render(request, "lookup.html", page="lookup", q="", result=None, error=None)
        try:
            term = LookupQuery(q)
        except ValueError as exc:
            return render(
                request,
                "lookup.html",
                status_code=422,
                page="lookup",
                q=q,
                result=None,
                error=str(exc),
            )
        result = _lookup(store, term)
        found = bool(result["records"] or result["unlinked_quarantine"])
        return render(
            request,
            "lookup.html",
            status_code=200 if found else 404,
            page="lookup",
            q=term.text,
            result=result,
            error=None if found else f"No record matches {term.text!r}.",
        )


def _status_choice(statuses: tuple[str, ...]) -> str:
    """The status select's value for a filter (``active`` and ``all`` are shortcuts)."""
    if set(statuses) == set(queries.ACTIVE_STATUSES):
        return "active"
    if set(statuses) == set(queries.QUARANTINE_STATUSES):
        return "all"
    return statuses[0] if len(statuses) == 1 else "active"
