"""The JSON API of the Sync health pages (``/api/...``): runs, budget, held items, quarantine
(browse, groups, CSV, retry) and record lookup. Every route needs an Airflow login."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from crm_sync.health import present, queries
from crm_sync.health.deps import (
    DAG_ID_PATTERN,
    SECURITY_HEADERS,
    DagEditDep,
    FilterDep,
    RetryRequest,
    StoreDep,
    budget_view,
    csv_lines,
    dags_view,
    lookup,
    parse_lookup,
    quarantine_view,
    same_site_json,
    user_name,
    utc_now,
)

log = logging.getLogger(__name__)

router = APIRouter()


@router.get("/api/openapi.json", include_in_schema=False)
def api_schema(request: Request, user: GetUserDep) -> dict[str, Any]:
    """The OpenAPI document of this app."""
    from fastapi.openapi.utils import get_openapi

    app = request.app
    return get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )


@router.get("/api/dags", tags=["runs"])
def api_dags(user: GetUserDep, store: StoreDep) -> dict[str, Any]:
    """Every DAG in the store with its last run, open quarantine, held items, synced-until."""
    return {"dags": dags_view(store)}


@router.get("/api/runs", tags=["runs"])
def api_runs(
    user: GetUserDep,
    store: StoreDep,
    dag_id: Annotated[str | None, Query(pattern=DAG_ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Recent runs (newest first) with window, status, API calls and every counter."""
    runs = queries.recent_runs(store, dag_id, limit)
    return {"runs": [present.run_dict(r) for r in runs]}


@router.get("/api/runs/{dag_id}/{run_id:path}", tags=["runs"])
def api_run(user: GetUserDep, store: StoreDep, dag_id: str, run_id: str) -> dict[str, Any]:
    """One run with its full (redacted) report."""
    run = store.get_run(dag_id, run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id!r} of DAG {dag_id!r}")
    return present.run_dict(run, with_report=True)


@router.get("/api/budget", tags=["runs"])
def api_budget(
    user: GetUserDep, store: StoreDep, days: Annotated[int, Query(ge=1, le=31)] = 7
) -> dict[str, Any]:
    """Salesforce calls in the rolling 24 h against the budget, and usage per day."""
    return budget_view(store, days=days, now=utc_now())


@router.get("/api/held", tags=["runs"])
def api_held(
    user: GetUserDep,
    store: StoreDep,
    dag_id: Annotated[str | None, Query(pattern=DAG_ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Work waiting for a dependency (oldest first)."""
    return {"items": [present.held_dict(h) for h in queries.held_items(store, dag_id, limit)]}


@router.get("/api/quarantine", tags=["quarantine"])
def api_quarantine(
    user: GetUserDep,
    store: StoreDep,
    flt: FilterDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Quarantined rows (filtered, paged, most recently seen first) and their groups."""
    return quarantine_view(store, flt, limit=limit, offset=offset)


@router.get("/api/quarantine/groups", tags=["quarantine"])
def api_quarantine_groups(user: GetUserDep, store: StoreDep, flt: FilterDep) -> dict[str, Any]:
    """Rows and distinct records per category, with the checks and error codes behind them."""
    groups = queries.quarantine_groups(store, flt)
    return {
        "groups": [present.group_dict(g) for g in groups],
        "rows": sum(g.rows for g in groups),
    }


@router.get("/api/quarantine.csv", tags=["quarantine"], response_class=Response)
def api_quarantine_csv(user: GetUserDep, store: StoreDep, flt: FilterDep) -> Response:
    """Every row matching the filters as CSV (payload as redacted JSON in the last column)."""
    from fastapi.responses import StreamingResponse

    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        csv_lines(store, flt),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="crm-sync-quarantine-{stamp}.csv"',
            **SECURITY_HEADERS,
        },
    )


@router.get("/api/quarantine/{item_id}", tags=["quarantine"])
def api_quarantine_item(user: GetUserDep, store: StoreDep, item_id: int) -> dict[str, Any]:
    """One quarantine row (any status)."""
    found = queries.quarantine_by_ids(store, [item_id])
    if not found:
        raise HTTPException(404, f"no quarantine row {item_id}")
    return present.quarantine_dict(found[0])


@router.post("/api/quarantine/retry", tags=["quarantine"], dependencies=[Depends(same_site_json)])
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
        user_name(user),
        marked,
        ",".join(map(str, eligible)),
    )
    return {
        "marked": marked,
        "ids": eligible,
        "unchanged": [{"id": i.id, "status": i.status} for i in items if i.id not in eligible],
    }


@router.get("/api/lookup", tags=["records"])
def api_lookup(
    user: GetUserDep,
    store: StoreDep,
    q: Annotated[str, Query(min_length=1, max_length=320)],
) -> dict[str, Any]:
    """A record by email, Lead Gen & CRM id or Salesforce id: its pair, link history, last
    synced values and quarantine rows. 404 when nothing matches."""
    term = parse_lookup(q)
    result = lookup(store, term)
    if not result["records"] and not result["unlinked_quarantine"]:
        raise HTTPException(404, f"no record matches {term.text!r}")
    return result
