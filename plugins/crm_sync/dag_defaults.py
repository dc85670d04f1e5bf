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
    """Retries with backoff for transient failures (fatal ones skip them: see flows.common),
    and a summary alert when a task finally fails."""
    return {
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "on_failure_callback": [SyncAlertNotifier()],
    }
