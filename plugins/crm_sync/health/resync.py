"""Sync health's "Resync now": sync chosen people now, whatever the window.

``POST /api/records/resync`` (JSON ``{"records": [...]}``: Lead Gen & CRM ids, Salesforce ids or
emails, as the ``record_ids`` param of ``sync_leads_contacts`` takes them) triggers a run of
``sync_leads_contacts`` with those ``record_ids`` through Airflow's REST API, as the caller: only
users allowed to trigger that DAG may, and Airflow checks it again. The record lookup page shows
the button on each linked person.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from crm_sync.health.changes import DagTriggerDep, TriggerDep
from crm_sync.health.deps import same_site_json, user_name
from crm_sync.health.pages import PEOPLE_DAG
from crm_sync.pipeline.record_ids import MAX_RECORD_IDS, RecordIdsError, parse_record_ids

log = logging.getLogger(__name__)

router = APIRouter()


class ResyncRequest(BaseModel):
    """Body of ``POST /api/records/resync``."""

    model_config = ConfigDict(extra="forbid")

    records: list[str] = Field(min_length=1, max_length=MAX_RECORD_IDS)


@router.post("/api/records/resync", tags=["records"], dependencies=[Depends(same_site_json)])
def api_resync(
    user: GetUserDep,
    can_trigger: DagTriggerDep,
    trigger: TriggerDep,
    body: ResyncRequest,
) -> dict[str, Any]:
    """Trigger ``sync_leads_contacts`` for ``records`` now. 403 without the right to trigger it,
    422 naming every entry that is not a record id or an email."""
    if not can_trigger(PEOPLE_DAG):
        raise HTTPException(403, {"message": f"not allowed to trigger {PEOPLE_DAG}"})
    try:
        parse_record_ids(body.records)
    except RecordIdsError as exc:
        raise HTTPException(422, {"message": str(exc)}) from exc
    conf = {"record_ids": body.records}
    answer = trigger(PEOPLE_DAG, conf)
    log.info(
        "sync health: %s triggered %s for %d record(s)",
        user_name(user),
        PEOPLE_DAG,
        len(body.records),
    )
    return {"dag_id": PEOPLE_DAG, "dag_run_id": answer.get("dag_run_id"), "conf": conf}
