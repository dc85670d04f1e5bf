"""What the Sync health pages and API share: request dependencies (the store, the DAG edit
check, the same-site guard, the quarantine filter), the views built from the store, the CSV export
and the template renderer."""

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
from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field

from crm_sync.health import present, queries
from crm_sync.health.queries import QuarantineFilter
from crm_sync.health.source import StoreProvider
from crm_sync.settings import sf_api_budget, sf_retry_stop_share
from crm_sync.state.queues import REASON_FIELDS
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


def same_site_json(request: Request) -> None:
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


def lookup(store: SyncStore, term: LookupQuery) -> dict[str, Any]:
    if term.kind == "email":
        matches = queries.find_by_email(store, term.value)
    else:
        matches = queries.find_by_id(store, term.value, side=term.side)
    return present.lookup_dict(term.text, term.kind, matches)


def utc_now() -> datetime:
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
    *REASON_FIELDS,
    "attempts",
    "status",
    "first_seen",
    "last_seen",
    "first_run_id",
    "last_run_id",
    "payload",
)


def csv_cell(value: Any) -> str:
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


def csv_lines(store: SyncStore, flt: QuarantineFilter) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in queries.quarantine_iter(store, flt):
        row = present.quarantine_dict(item)
        writer.writerow([csv_cell(row[c]) for c in CSV_COLUMNS])
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

SECURITY_HEADERS = {
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
    headers = dict(SECURITY_HEADERS)
    headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        f"script-src 'nonce-{nonce}'; frame-ancestors 'self'; form-action 'self'"
    )
    return HTMLResponse(html, status_code=status_code, headers=headers)


def is_page(request: Request) -> bool:
    path = request.scope.get("path", "")
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.startswith("/ui")


def error_page(request: Request, status_code: int, title: str, detail: str) -> HTMLResponse:
    return render(
        request, "error.html", status_code=status_code, title=title, detail=detail, page=None
    )


def parse_lookup(q: str) -> LookupQuery:
    try:
        return LookupQuery(q)
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("query", "q"), "msg": str(exc), "type": "value_error"}]
        ) from None


def user_name(user: Any) -> str:
    try:
        return str(user.get_name())
    except Exception:
        return "?"


def status_choice(statuses: tuple[str, ...]) -> str:
    """The status select's value for a filter (``active`` and ``all`` are shortcuts)."""
    if set(statuses) == set(queries.ACTIVE_STATUSES):
        return "active"
    if set(statuses) == set(queries.QUARANTINE_STATUSES):
        return "all"
    return statuses[0] if len(statuses) == 1 else "active"
