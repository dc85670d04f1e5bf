"""The task of the ``crm_sync_undo`` DAG (the DAG file only wires it).

Params: ``run_id`` and ``dag_id`` of the run to undo, ``dry_run`` (default true: report what
would be done, write nothing), ``delete_created`` (default false: records the run created are
only reported); the connection params of the sync DAGs (``salesforce_conn_id``, ...) may point
elsewhere. A real undo needs a backup of both systems first, like the sync DAGs' loads. A fatal
error (no such run, no backup, failed writes) fails the task without retries; running the undo
again is safe (it skips what is done).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_sync.errors import ConfigError, FatalError


def job_from(context: Mapping[str, Any]) -> Any:
    """The :class:`~crm_sync.undo.runner.UndoJob` of an Airflow run."""
    from crm_sync.undo.runner import UndoJob

    params = dict(context.get("params") or {})
    target = str(params.get("run_id") or "").strip()
    if not target:
        raise ConfigError("param run_id: the id of the run to undo is required")
    return UndoJob(
        target_dag=str(params.get("dag_id") or "sync_leads_contacts"),
        target_run=target,
        run_id=str(context.get("run_id") or getattr(context.get("dag_run"), "run_id", "")),
        dry_run=bool(params.get("dry_run", True)),
        delete_created=bool(params.get("delete_created", False)),
    )


def run(context: Mapping[str, Any]) -> dict[str, Any]:
    from crm_sync.backup import require_backup
    from crm_sync.preflight.dag_task import fail_fast
    from crm_sync.runtime import conn_ids_from, shared_store
    from crm_sync.undo.service import execute, open_systems

    conn_ids = conn_ids_from(context.get("params") or {})
    try:
        job = job_from(context)
        report = execute(
            job,
            shared_store(conn_ids["state"]),
            open_systems(conn_ids),
            before_write=lambda: require_backup(conn_ids),
        )
    except FatalError as exc:
        fail_fast(exc)
    return {k: report[k] for k in ("status", "target", "dry_run", "delete_created", "undo")}
