"""
### Backup of both systems (manual)

Exports every Lead, Contact, Account and Opportunity field the mapping specs map (Salesforce
Bulk API 2.0 query) and the Lead Gen & CRM leads, opportunities and accounts into a dated,
compressed snapshot: one gzip JSON-lines file per object and a `manifest.json` with record
counts, field lists, the sha256 of each file, the org and account ids and the start and end
times, under `CRM_SYNC_BACKUP_DIR` (default `$CRM_SYNC_HOME/backups`). The snapshot is read back
before the task succeeds. Read-only on both systems; memory stays bounded however large the org.

The sync DAGs refuse to write until a backup of the same systems exists (the first run that
would write takes one itself); `CRM_SYNC_REQUIRE_BACKUP=false` waives that, with a warning in
every run's log. Same as `make backup`; restoring is described in `docs/backup.md`.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from crm_sync.dag_defaults import manual_dag

DAG_ID = "crm_sync_backup"


@dag(schedule=None, **manual_dag(DAG_ID, __doc__))
def crm_sync_backup():
    @task
    def backup() -> dict:
        from crm_sync.backup.dag_task import run

        return run(get_current_context())

    backup()


crm_sync_backup()
