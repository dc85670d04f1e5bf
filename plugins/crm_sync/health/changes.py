"""The changes of one run (Sync health) and its Undo: ``/ui/changes``, ``/api/changes``,
``POST /api/changes/undo``.

The page lists what a run wrote -- every overwritten field with its before and after value, every
record it created -- paged and filtered by system, object and record. Users allowed to trigger
``crm_sync_undo`` (``POST`` on its runs in the auth manager) *and* to edit the run's DAG (the
undo changes its sync state, like a quarantine retry) get an Undo button: it first triggers a
dry run and shows its report (what would be restored, the conflicts, the created records); a
real undo is accepted only with ``confirm`` and the id of that finished preview. Runs are
triggered through Airflow's REST API (``POST /api/v2/dags/crm_sync_undo/dagRuns``) with the
caller's own credential, so Airflow checks the right again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from crm_sync.health import present
from crm_sync.health.deps import (
    DAG_ID_PATTERN,
    OPTIONAL,
    DagEditDep,
    StoreDep,
    render,
    same_site_json,
    user_name,
)
from crm_sync.state.changes import ChangeFilter
from crm_sync.state.models import ChangeRecord
from crm_sync.state.store import SyncStore
from crm_sync.undo import UNDO_DAG

log = logging.getLogger(__name__)

router = APIRouter()

RUN_ID_PATTERN = r"^[A-Za-z0-9_.:+\-]{1,250}$"
RECORD_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
OBJECT_PATTERN = r"^[A-Za-z0-9_]{1,64}$"
SystemParam = Literal["salesforce", "leadgen", ""]
Trigger = Callable[[str, dict[str, Any]], dict[str, Any]]


# -- dependencies ---------------------------------------------------------------------------
def dag_trigger_check(user: GetUserDep) -> Callable[[str], bool]:
    """Whether the signed-in user may trigger runs of a DAG (auth manager, ``POST`` on runs)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        DagAccessEntity,
        DagDetails,
    )

    manager = get_auth_manager()

    def allowed(dag_id: str) -> bool:
        return bool(
            manager.is_authorized_dag(
                method="POST",
                access_entity=DagAccessEntity.RUN,
                details=DagDetails(id=dag_id),
                user=user,
            )
        )

    return allowed


DagTriggerDep = Annotated[Callable[[str], bool], Depends(dag_trigger_check)]


def airflow_trigger(request: Request, user: GetUserDep) -> Trigger:
    """Trigger a DAG run through Airflow's REST API as the caller (their Bearer token or UI
    cookie, else a token the auth manager signs for them); returns Airflow's answer."""
    import requests
    from airflow.configuration import conf

    auth = request.headers.get("authorization", "")
    token = auth[7:] if auth.lower().startswith("bearer ") else request.cookies.get("_token")
    if not token:
        from airflow.api_fastapi.app import get_auth_manager

        token = get_auth_manager().generate_jwt(user)
    base = conf.get("api", "base_url", fallback="http://localhost:8080").rstrip("/")

    def trigger(dag_id: str, run_conf: dict[str, Any]) -> dict[str, Any]:
        resp = requests.post(
            f"{base}/api/v2/dags/{dag_id}/dagRuns",
            json={"logical_date": None, "conf": run_conf},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        if resp.status_code >= 300:
            detail = resp.json().get("detail") if resp.content else resp.reason
            raise HTTPException(resp.status_code, {"message": "Airflow refused", "detail": detail})
        return resp.json()

    return trigger


TriggerDep = Annotated[Trigger, Depends(airflow_trigger)]


class UndoRequest(BaseModel):
    """Body of ``POST /api/changes/undo``."""

    model_config = ConfigDict(extra="forbid")

    dag_id: str = Field(pattern=DAG_ID_PATTERN)
    run_id: str = Field(pattern=RUN_ID_PATTERN)
    dry_run: bool = True
    delete_created: bool = False
    confirm: bool = False
    preview_run_id: str | None = Field(default=None, pattern=RUN_ID_PATTERN)


def change_filter(
    dag_id: Annotated[str, Query(pattern=DAG_ID_PATTERN)],
    run_id: Annotated[str, Query(pattern=RUN_ID_PATTERN)],
    system: Annotated[SystemParam | None, Query()] = None,
    obj: Annotated[str | None, Query(alias="object", pattern=OPTIONAL + OBJECT_PATTERN)] = None,
    record: Annotated[str | None, Query(pattern=OPTIONAL + RECORD_PATTERN)] = None,
) -> ChangeFilter:
    return ChangeFilter(dag_id, run_id, system or None, obj or None, record or None)


ChangeFilterDep = Annotated[ChangeFilter, Depends(change_filter)]


# -- views ----------------------------------------------------------------------------------
def change_dict(c: ChangeRecord) -> dict[str, Any]:
    return {
        "id": c.id,
        "system": c.system,
        "object": c.object,
        "record_id": c.record_id,
        "field": c.field or None,
        "kind": c.kind,
        "before": present.redact(c.before),
        "after": present.redact(c.after),
        "why": (c.meta or {}).get("why"),
        "at": present.iso(c.at),
    }


def changes_view(store: SyncStore, flt: ChangeFilter, *, limit: int, offset: int) -> dict[str, Any]:
    run = store.get_run(flt.dag_id, flt.run_id)
    return {
        "run": present.run_dict(run) if run else None,
        "filters": {"system": flt.system, "object": flt.object, "record": flt.record_id},
        "summary": [
            {"system": s, "object": o, "kind": k, "entries": n, "records": r}
            for s, o, k, n, r in store.change_summary(flt.dag_id, flt.run_id)
        ],
        "total": store.count_changes(flt),
        "limit": limit,
        "offset": offset,
        "items": [change_dict(c) for c in store.change_page(flt, limit=limit, offset=offset)],
    }


def may_undo(
    dag_id: str, can_trigger: Callable[[str], bool], can_edit: Callable[[str], bool]
) -> bool:
    """Undo is offered to users who may trigger ``crm_sync_undo`` and edit the run's DAG."""
    return can_trigger(UNDO_DAG) and can_edit(dag_id)


# -- routes ---------------------------------------------------------------------------------
@router.get("/api/changes", tags=["runs"])
def api_changes(
    user: GetUserDep,
    store: StoreDep,
    flt: ChangeFilterDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """What one run wrote: its change log (filtered, paged, in log order) and a summary."""
    view = changes_view(store, flt, limit=limit, offset=offset)
    if view["run"] is None and not view["total"]:
        raise HTTPException(404, f"no run {flt.run_id!r} of DAG {flt.dag_id!r}")
    return view


@router.get("/ui/changes", response_class=HTMLResponse, include_in_schema=False)
def page_changes(
    request: Request,
    user: GetUserDep,
    store: StoreDep,
    flt: ChangeFilterDep,
    can_trigger: DagTriggerDep,
    can_edit: DagEditDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    view = changes_view(store, flt, limit=limit, offset=offset)
    found = view["run"] is not None or view["total"] > 0
    base_qs = {
        k: v
        for k, v in (
            ("dag_id", flt.dag_id),
            ("run_id", flt.run_id),
            ("system", flt.system),
            ("object", flt.object),
            ("record", flt.record_id),
            ("limit", str(limit) if limit != 100 else None),
        )
        if v
    }
    return render(
        request,
        "changes.html",
        status_code=200 if found else 404,
        page="changes",
        dag_id=flt.dag_id,
        run_id=flt.run_id,
        view=view,
        base_qs=base_qs,
        undo_allowed=found and may_undo(flt.dag_id, can_trigger, can_edit),
        undo_dag=UNDO_DAG,
    )


def _preview_of(store: SyncStore, body: UndoRequest) -> None:
    """A real undo needs ``confirm`` and a finished dry run of the same undo (the preview)."""
    if not body.confirm or not body.preview_run_id:
        raise HTTPException(
            409, "confirm the undo after its dry-run preview (confirm, preview_run_id)"
        )
    run = store.get_run(UNDO_DAG, body.preview_run_id)
    report = (run.report if run else None) or {}
    if (
        run is None
        or run.status != "dry_run"
        or report.get("target") != {"dag_id": body.dag_id, "run_id": body.run_id}
        or bool(report.get("delete_created")) != body.delete_created
    ):
        raise HTTPException(
            409, f"{body.preview_run_id!r} is not a finished preview of this undo; preview again"
        )


@router.post("/api/changes/undo", tags=["runs"], dependencies=[Depends(same_site_json)])
def api_undo(
    user: GetUserDep,
    store: StoreDep,
    can_trigger: DagTriggerDep,
    can_edit: DagEditDep,
    trigger: TriggerDep,
    body: UndoRequest,
) -> dict[str, Any]:
    """Trigger ``crm_sync_undo`` for a run: a dry run (the preview), or -- with ``confirm`` and
    the preview's run id -- the real undo. 403 without the rights, 404 for an unknown run, 409
    for a real undo without a matching finished preview."""
    if not may_undo(body.dag_id, can_trigger, can_edit):
        raise HTTPException(403, {"message": f"not allowed to trigger {UNDO_DAG} for this DAG"})
    if store.get_run(body.dag_id, body.run_id) is None:
        raise HTTPException(404, f"no run {body.run_id!r} of DAG {body.dag_id!r}")
    if not body.dry_run:
        _preview_of(store, body)
    conf = {
        "dag_id": body.dag_id,
        "run_id": body.run_id,
        "dry_run": body.dry_run,
        "delete_created": body.delete_created,
    }
    answer = trigger(UNDO_DAG, conf)
    log.info(
        "sync health: %s triggered %s (%s) for run %s of %s",
        user_name(user),
        UNDO_DAG,
        "dry run" if body.dry_run else "undo",
        body.run_id,
        body.dag_id,
    )
    return {"dag_id": UNDO_DAG, "dag_run_id": answer.get("dag_run_id"), "conf": conf}
