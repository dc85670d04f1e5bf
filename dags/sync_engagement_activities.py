"""
### Marketing engagement: Lead Gen & CRM events → completed Salesforce Tasks, exactly once

Every hour, turns the marketing events of the run's data interval (widened by a lookback
overlap, inclusive lower bound) into completed Tasks on the linked Salesforce Lead or Contact:
form submissions, email sends, email opens, the **first** click per lead and email, and page
visits — each type on or off, and worded, in `include/mappings/engagement.yaml`.

**Stages**: `wait_for_people` (sensor: `sync_leads_contacts` has synced this window, so the
links are current) → `prepare` (spec checked against the Task describe, active users) →
`extract` (`getEvents` per enabled type, plus held and quarantined events) → `plan` (one event
per Task key, link lookup, owner read from the Lead/Contact; not linked yet → held, record
deleted → dropped) → `validate` (Great Expectations gate; rejects quarantined) → `load` (keys
already in Salesforce skipped, the rest upserted on `LeadGen_Event_Id__c`; Bulk API 2.0 for
large batches) → `record` (held items, quarantine, run report per event type, watermark).

**Exactly once**: the Task external id is the event identity (`LG-EVT-<event id>`; for clicks
`LG-CLICK-<lead>-<email send>`, so a later click never makes a second Task). Reruns, overlaps
and backfills find the existing Task and write nothing.

**Params**: `dry_run` plans, validates and reports what would be created, writing nothing;
`full_resync` reads every event since the start of time; `retry_quarantined` also retries
parked quarantine rows; `max_reject_rate` turns the run red above this share of rejected Tasks.

**Runs**: the hourly run syncs its hour, catching up from the watermark after a failure;
**Trigger without a date syncs everything changed since the last sync, up to now**; a backfill
(or a manual run given a logical date) syncs exactly its hours and never moves the watermark.
Give a manual run a logical date only to backfill: it takes that hour's scheduled slot.

**Backfill**: `airflow backfill create --dag-id sync_engagement_activities --from-date … --to-date …`;
each run syncs its own hour. See `docs/engagement.md`.
"""

from __future__ import annotations

from airflow.sdk import Asset, CronDataIntervalTimetable, dag, get_current_context, task

from crm_sync.dag_defaults import HOURLY_CRON, START_DATE, default_args, sync_params

DAG_ID = "sync_engagement_activities"
ENGAGEMENT_SYNCED = Asset("crm_sync://engagement")

PARAMS = sync_params("event")


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable(HOURLY_CRON, timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["crm-sync", "engagement", "activities"],
    params=PARAMS,
    doc_md=__doc__,
)
def sync_engagement_activities():
    @task.sensor(poke_interval=60, timeout=3600, mode="reschedule")
    def wait_for_people() -> bool:
        from crm_sync.tasks import upstream_synced

        return upstream_synced(DAG_ID, get_current_context())

    @task
    def prepare() -> dict:
        from crm_sync.tasks import run_prepare

        return run_prepare(DAG_ID, get_current_context())

    @task
    def extract(prepared: dict) -> dict:
        from crm_sync.tasks import run_stage

        return run_stage(DAG_ID, "extract", prepared)

    @task
    def plan(prepared: dict, extracted: dict) -> dict:
        from crm_sync.tasks import run_stage

        return run_stage(DAG_ID, "plan", prepared)

    @task
    def validate(prepared: dict, planned: dict) -> dict:
        from crm_sync.tasks import run_stage

        return run_stage(DAG_ID, "validate", prepared)

    @task
    def load(prepared: dict, validated: dict) -> dict:
        from crm_sync.tasks import run_stage

        return run_stage(DAG_ID, "load", prepared)

    @task(outlets=[ENGAGEMENT_SYNCED])
    def record(
        prepared: dict, extracted: dict, planned: dict, validated: dict, loaded: dict
    ) -> dict:
        from crm_sync.tasks import run_stage

        summaries = {"extract": extracted, "plan": planned, "validate": validated, "load": loaded}
        return run_stage(DAG_ID, "record", prepared, summaries)

    prepared = prepare()
    wait_for_people() >> prepared
    extracted = extract(prepared)
    planned = plan(prepared, extracted)
    validated = validate(prepared, planned)
    loaded = load(prepared, validated)
    record(prepared, extracted, planned, validated, loaded)


sync_engagement_activities()
