"""The task of the ``crm_sync_backup`` DAG (the DAG file only wires it).

Takes a backup with the run's connections (params ``salesforce_conn_id``, ``leadgen_conn_id``,
``state_conn_id`` may point elsewhere), its Salesforce calls held to this product's API budget,
reads it back, and returns the manifest's summary. A fatal error (connection, credentials,
specs) fails the task without retries; transient ones are retried by Airflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_sync.errors import FatalError


def run(context: Mapping[str, Any]) -> dict[str, Any]:
    from crm_sync.backup.catalog import backup_now
    from crm_sync.preflight.dag_task import fail_fast, guarded
    from crm_sync.runtime import conn_ids_from, leadgen_client, salesforce_client

    conn_ids = conn_ids_from(context.get("params") or {})
    try:
        sf = guarded(salesforce_client(conn_ids["salesforce"]), conn_ids)
        info = backup_now(sf, leadgen_client(conn_ids["leadgen"]), conn_ids)
    except FatalError as exc:
        fail_fast(exc)
    return {
        "backup": str(info.path),
        "records": info.records(),
        "org_id": info.manifest["salesforce"]["org_id"],
        "account_id": info.manifest["leadgen"]["account_id"],
        "sf_api_calls": sf.api_calls,
    }
