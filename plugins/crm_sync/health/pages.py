"""The three server-rendered Sync health pages: overview, quarantine, record lookup."""

from __future__ import annotations

from typing import Annotated

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from crm_sync.health import present, queries
from crm_sync.health.changes import DagTriggerDep
from crm_sync.health.deps import (
    CHART_WIDTH,
    DAG_ID_PATTERN,
    OPTIONAL,
    FilterDep,
    LookupQuery,
    StoreDep,
    budget_view,
    dags_view,
    lookup,
    quarantine_view,
    render,
    status_choice,
    utc_now,
)

router = APIRouter()


@router.get("/", include_in_schema=False)
def index(user: GetUserDep) -> RedirectResponse:
    return RedirectResponse("ui/overview", status_code=307)


@router.get("/ui/overview", response_class=HTMLResponse, include_in_schema=False)
def page_overview(
    request: Request,
    user: GetUserDep,
    store: StoreDep,
    dag_id: Annotated[str | None, Query(pattern=OPTIONAL + DAG_ID_PATTERN)] = None,
    runs: Annotated[int, Query(ge=1, le=100)] = 10,
    days: Annotated[int, Query(ge=1, le=31)] = 7,
) -> HTMLResponse:
    now = utc_now()
    budget = budget_view(store, days=days, now=now)
    dags = [d for d in dags_view(store) if not dag_id or d["dag_id"] == dag_id]
    for d in dags:
        d["runs"] = [present.run_dict(r) for r in queries.recent_runs(store, d["dag_id"], runs)]
    calls, calls_top = present.chart_bars(
        budget["daily"], ("sf_calls", "lg_calls"), width=CHART_WIDTH
    )
    rows, rows_top = present.chart_bars(budget["daily"], ("rows", "quarantined"), width=CHART_WIDTH)
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


@router.get("/ui/quarantine", response_class=HTMLResponse, include_in_schema=False)
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
    choice = status_choice(flt.statuses)
    base_qs = {
        k: v
        for k, v in (
            ("dag_id", flt.dag_id),
            ("category", flt.category),
            ("direction", flt.direction),
            ("status", choice),
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
        status_choice=choice,
        base_qs=base_qs,
    )


# whose records the lookup's "Resync now" syncs (crm_sync.health.resync)
PEOPLE_DAG = "sync_leads_contacts"


@router.get("/ui/lookup", response_class=HTMLResponse, include_in_schema=False)
def page_lookup(
    request: Request,
    user: GetUserDep,
    store: StoreDep,
    can_trigger: DagTriggerDep,
    q: Annotated[str | None, Query(max_length=320)] = None,
) -> HTMLResponse:
    resync_allowed = can_trigger(PEOPLE_DAG)  # the "Resync now" button
    if not q or not q.strip():
        return render(
            request,
            "lookup.html",
            page="lookup",
            q="",
            result=None,
            error=None,
            resync_allowed=False,
        )
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
            resync_allowed=False,
        )
    result = lookup(store, term)
    found = bool(result["records"] or result["unlinked_quarantine"])
    return render(
        request,
        "lookup.html",
        status_code=200 if found else 404,
        page="lookup",
        q=term.text,
        result=result,
        error=None if found else f"No record matches {term.text!r}.",
        resync_allowed=resync_allowed,
    )
