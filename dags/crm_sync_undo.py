"""
### Undo a sync run (manual)

Restores every field the chosen run overwrote, in both systems, where the record still holds the
value the run wrote; a field edited since is a **conflict**: reported with the value the run
wrote and the value now, never overwritten. Records the run created are reported, or removed
with `delete_created` (Salesforce records deleted, Lead Gen & CRM leads deactivated). The sync
keeps the restored values: it writes them back neither way until someone edits the field again.

Params: `run_id` (the run to undo, as in Sync health), `dag_id` (its DAG), `dry_run` (default
**true**: report what would be done and write nothing), `delete_created` (default false). Start
with a dry run and read its report (Sync health → the run's changes → Undo shows it). The undo
is a run of its own with its own change log, so it can be undone; a second undo of the same run
writes nothing. A real undo needs a backup first, like the sync DAGs. See `docs/undo.md`.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from crm_sync.dag_defaults import manual_dag

DAG_ID = "crm_sync_undo"


@dag(
    schedule=None,
    params={
        "run_id": Param("", type="string", description="The run to undo (its Airflow run id)."),
        "dag_id": Param(
            "sync_leads_contacts", type="string", description="The DAG of the run to undo."
        ),
        "dry_run": Param(
            True, type="boolean", description="Report what would be done; write nothing."
        ),
        "delete_created": Param(
            False,
            type="boolean",
            description="Delete the Salesforce records and deactivate the leads the run created.",
        ),
    },
    **manual_dag(DAG_ID, __doc__),
)
def crm_sync_undo():
    @task
    def undo() -> dict:
        from crm_sync.undo.dag_task import run

        return run(get_current_context())

    undo()


crm_sync_undo()
