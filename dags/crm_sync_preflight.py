"""
### Preflight: is everything ready for the sync? (manual)

Checks the Salesforce org, the integration user, the Lead Gen & CRM account and the mapping
specs against every requirement of the vendor's setup article and what the specs need, read
only, and logs a checklist with **pass / warn / fail** and, for each fail, what to change where:

* both connections answer; the edition has API access; the integration user is active, has
  *API Only User*, *Modify All Data*, a password that never expires, and its profile does not
  require a *High Assurance* session at login;
* the record link, URL, lead score and Task event-id fields exist with the right type, External
  ID and Unique; the integration user can read and write every mapped field in the direction the
  spec writes it; the users in `owners.yaml` exist and are active;
* the org's remaining daily API allowance covers a run.

The task fails (without retries) when a check fails. A passing result is recorded, so the sync
DAGs, which run the same preflight before their first write, do not check again until the
connections or the specs change. Same as `make preflight`; see `docs/preflight.md`.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from crm_sync.dag_defaults import manual_dag

DAG_ID = "crm_sync_preflight"


@dag(schedule=None, **manual_dag(DAG_ID, __doc__))
def crm_sync_preflight():
    @task
    def preflight() -> dict:
        from crm_sync.preflight.dag_task import run

        return run(get_current_context())

    preflight()


crm_sync_preflight()
