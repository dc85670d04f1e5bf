"""Settings every sync DAG shares (imported at parse time: keep it light)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum

from crm_sync.alerts import SyncAlertNotifier

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")
# Hourly, with real data intervals: each run covers [start, end) of its hour.
HOURLY_CRON = "0 * * * *"


def default_args() -> dict[str, Any]:
    """Retries with backoff for transient failures (fatal ones skip them: see ``tasks.TaskRuntime``),
    and a summary alert when a task finally fails."""
    return {
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "on_failure_callback": [SyncAlertNotifier()],
    }


def manual_dag(dag_id: str, doc_md: str | None) -> dict[str, Any]:
    """``@dag`` arguments of a DAG run only by hand (preflight, backup), but its ``schedule=None``
    (written in the DAG file, where readers and Airflow's lint rules look): one run at a time,
    the shared retries and alert."""
    return {
        "dag_id": dag_id,
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "default_args": default_args(),
        "tags": ["crm-sync"],
        "doc_md": doc_md,
    }


def sync_params(what: str = "record") -> dict[str, Any]:
    """The run options every sync DAG offers (Airflow ``Param``s, shown in the trigger form)."""
    from airflow.sdk import Param

    return {
        "full_resync": Param(
            False, type="boolean", description=f"Sync every {what}, ignoring the window."
        ),
        "dry_run": Param(
            False,
            type="boolean",
            description="Plan, validate and report every write; write nothing.",
        ),
        "retry_quarantined": Param(
            False, type="boolean", description="Retry parked quarantine rows too."
        ),
        "lookback_minutes": Param(
            5,
            type="integer",
            minimum=0,
            maximum=1440,
            description="Overlap added before the window.",
        ),
        "max_reject_rate": Param(
            0.05,
            type="number",
            minimum=0,
            maximum=1,
            description="Share of rejected rows that fails the run.",
        ),
        "max_attempts": Param(
            5,
            type="integer",
            minimum=1,
            maximum=100,
            description="Retries of a quarantined row before it is parked.",
        ),
    }
