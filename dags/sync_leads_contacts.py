"""
### Leads and contacts: Lead Gen & CRM ⇄ Salesforce, both ways

Every hour, syncs the leads and contacts that changed in the run's data interval (widened by a
lookback overlap, inclusive lower bound) between Lead Gen & CRM and Salesforce, field by field
as `include/mappings/leads.yaml` and `contacts.yaml` say (push, pull, two-way, none).

**Stages**: `prepare` (window, specs checked against both live schemas, owners) →
`extract_*` (changed records of each side) → `match` (links, external id, email; lifecycle:
conversion, merge, deletion, reactivation) → `reconcile` (per-field decisions, echo suppression)
→ `validate` (Great Expectations; bad rows quarantined with their reason) → `load_leadgen` →
`load_salesforce` (batched, keyed, per-record results) → `record` (links, synced values,
quarantine, run report, watermark).

**Params**: `full_resync` ignores the window; `dry_run` plans and validates every write and
reports it, writing nothing; `retry_quarantined` also retries parked quarantine rows;
`max_reject_rate` turns the run red when more rows than this share are rejected (after the good
rows are loaded); `record_ids` syncs exactly the records named (Lead Gen & CRM ids, Salesforce
Lead/Contact ids or emails, up to 1,000, one per line or comma separated), whatever the window,
and never moves the watermark (a *targeted* run).

**Runs**: the hourly run syncs its hour, catching up from the watermark after a failure;
**Trigger without a date syncs everything changed since the last sync, up to now**; a backfill
(or a manual run given a logical date) syncs exactly its hours and never moves the watermark.
Give a manual run a logical date only to backfill: it takes that hour's scheduled slot.

**Backfill**: `airflow backfill create --dag-id sync_leads_contacts --from-date … --to-date …`;
each run syncs exactly its own hour. The run report is the return value of `record` and is kept in
the sync state store (see the *Sync health* page).
"""

from __future__ import annotations

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, get_current_context, task

from crm_sync.dag_defaults import HOURLY_CRON, START_DATE, default_args, sync_params

DAG_ID = "sync_leads_contacts"
PEOPLE_SYNCED = Asset("crm_sync://leads_contacts")

PARAMS = {
    **sync_params("lead and contact"),
    # Parsed and checked by crm_sync.pipeline.record_ids (MAX_RECORD_IDS = 1000) in prepare; the
    # schema here only bounds what a trigger may send.
    "record_ids": Param(
        None,
        type=["null", "array", "string"],
        items={"type": "string", "maxLength": 320},
        maxItems=1000,
        maxLength=400_000,
        title="Records to sync now",
        description=(
            "Sync exactly these records, whatever the window: Lead Gen & CRM ids, Salesforce "
            "Lead/Contact ids (15 or 18 characters) or email addresses, up to 1,000, one per "
            "line or comma separated. Never moves the watermark. Leave empty for a normal run."
        ),
    ),
}


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable(HOURLY_CRON, timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["crm-sync", "leads", "contacts"],
    params=PARAMS,
    doc_md=__doc__,
)
def sync_leads_contacts():
    @task
    def prepare() -> dict:
        from crm_sync.tasks import run_prepare

        return run_prepare(DAG_ID, get_current_context())

    @task
    def extract_leadgen(prepared: dict) -> dict:
        from crm_sync.tasks import run_stage

        return run_stage(DAG_ID, "extract_leadgen", prepared)

    @task
    def extract_salesforce(prepared: dict) -> dict:
        from crm_sync.tasks import run_stage

        return run_stage(DAG_ID, "extract_salesforce", prepared)

    @task
    def match(prepared: dict, lg: dict, sf: dict) -> dict:
        from crm_sync.tasks import run_stage

        return run_stage(DAG_ID, "match", prepared)

    @task
    def reconcile(prepared: dict, matched: dict) -> dict:
        from crm_sync.tasks import run_stage

        return run_stage(DAG_ID, "reconcile", prepared)

    @task
    def validate(prepared: dict, planned: dict) -> dict:
        from crm_sync.tasks import run_stage

        return run_stage(DAG_ID, "validate", prepared)

    @task
    def load_leadgen(prepared: dict, validated: dict) -> dict:
        from crm_sync.tasks import run_stage

        return run_stage(DAG_ID, "load_leadgen", prepared)

    @task
    def load_salesforce(prepared: dict, loaded_lg: dict) -> dict:
        from crm_sync.tasks import run_stage

        return run_stage(DAG_ID, "load_salesforce", prepared)

    @task(outlets=[PEOPLE_SYNCED])
    def record(
        prepared: dict,
        lg: dict,
        sf: dict,
        matched: dict,
        planned: dict,
        validated: dict,
        loaded_lg: dict,
        loaded_sf: dict,
    ) -> dict:
        from crm_sync.tasks import run_stage

        summaries = {
            "extract_leadgen": lg,
            "extract_salesforce": sf,
            "match": matched,
            "reconcile": planned,
            "validate": validated,
            "load_leadgen": loaded_lg,
            "load_salesforce": loaded_sf,
        }
        return run_stage(DAG_ID, "record", prepared, summaries)

    prepared = prepare()
    lg = extract_leadgen(prepared)
    sf = extract_salesforce(prepared)
    matched = match(prepared, lg, sf)
    planned = reconcile(prepared, matched)
    validated = validate(prepared, planned)
    loaded_lg = load_leadgen(prepared, validated)
    loaded_sf = load_salesforce(prepared, loaded_lg)
    record(prepared, lg, sf, matched, planned, validated, loaded_lg, loaded_sf)


sync_leads_contacts()
