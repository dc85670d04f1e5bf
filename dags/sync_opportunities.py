"""
### Opportunities: Salesforce → Lead Gen & CRM, one way

Every hour, after `sync_leads_contacts` has synced the same window (so the contacts that
opportunities refer to are linked), pulls the Salesforce opportunities that changed in the
run's data interval (widened by a lookback overlap, inclusive lower bound) into Lead Gen & CRM:

* **Opportunities** created, updated, or deleted, fields per `include/mappings/opportunities.yaml`
  (pull only: a spec row that would push is refused when the spec loads);
* **Stages** through `include/mappings/opportunity_stages.yaml` (an unmapped stage is quarantined
  with its name, never given a default);
* **Accounts** referenced by those opportunities or by linked contacts
  (`include/mappings/accounts.yaml`);
* **Memberships**: each contact role becomes an opportunity lead on the contact's lead (the
  primary role sets the primary lead); a role whose contact is not linked yet waits and is
  completed by a later run.

**Stages**: `wait_for_people_sync` → `prepare` (window, specs, stage map and deal stages, owners)
→ `extract` (Salesforce) → `match` (links, Lead Gen & CRM records) → `reconcile` → `validate`
(Great Expectations; bad rows quarantined with their reason) → `load_leadgen` (accounts,
opportunities, memberships; links recorded batch by batch) → `record` (quarantine, waiting
roles, run report, watermark).

**Params**: `full_resync` ignores the window; `dry_run` plans, validates and reports every write,
writing nothing; `retry_quarantined` also retries parked quarantine rows; `max_reject_rate` turns
the run red when more rows than this share are rejected for the first time.

**Runs**: the hourly run syncs its hour, catching up from the watermark after a failure;
**Trigger without a date syncs everything changed since the last sync, up to now**; a backfill
(or a manual run given a logical date) syncs exactly its hours and never moves the watermark.
Give a manual run a logical date only to backfill: it takes that hour's scheduled slot.

**Backfill**: `airflow backfill create --dag-id sync_opportunities --from-date … --to-date …`
after backfilling `sync_leads_contacts` over the same hours. See `docs/opportunities.md`.
"""

from __future__ import annotations

from airflow.sdk import Asset, CronDataIntervalTimetable, dag, get_current_context, task

from crm_sync.dag_defaults import HOURLY_CRON, START_DATE, default_args, sync_params

DAG_ID = "sync_opportunities"
OPPORTUNITIES_SYNCED = Asset("crm_sync://opportunities")

PARAMS = sync_params("opportunity")


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable(HOURLY_CRON, timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["crm-sync", "opportunities", "accounts"],
    params=PARAMS,
    doc_md=__doc__,
)
def sync_opportunities():
    @task.sensor(poke_interval=60, timeout=3600, mode="reschedule")
    def wait_for_people_sync() -> bool:
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
    def match(prepared: dict, extracted: dict) -> dict:
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

    @task(outlets=[OPPORTUNITIES_SYNCED])
    def record(
        prepared: dict,
        extracted: dict,
        matched: dict,
        planned: dict,
        validated: dict,
        loaded: dict,
    ) -> dict:
        from crm_sync.tasks import run_stage

        summaries = {
            "extract": extracted,
            "match": matched,
            "reconcile": planned,
            "validate": validated,
            "load_leadgen": loaded,
        }
        return run_stage(DAG_ID, "record", prepared, summaries)

    prepared = prepare()
    wait_for_people_sync() >> prepared
    extracted = extract(prepared)
    matched = match(prepared, extracted)
    planned = reconcile(prepared, matched)
    validated = validate(prepared, planned)
    loaded = load_leadgen(prepared, validated)
    record(prepared, extracted, matched, planned, validated, loaded)


sync_opportunities()
