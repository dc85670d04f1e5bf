"""Helpers shared by the end-to-end tests (one module, so every test sees the same state)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# dag.test() leaves the last run's conf in dag.params; every run starts from the defaults,
# recorded here when the DagBag is first loaded.
PARAM_DEFAULTS: dict[str, dict[str, Any]] = {}


@dataclass
class RunOutcome:
    state: str
    report: dict[str, Any] | None
    run_id: str
    task_states: dict[str, str]


def run_dag(
    dags: dict[str, Any], dag_id: str, hour: datetime, conf: dict[str, Any] | None = None
) -> RunOutcome:
    """Run ``dag_id`` with ``dag.test()`` for the data interval that ends at ``hour``.

    Returns the DagRun state, each task's state and the run report from the state store.
    """
    from crm_sync.flows.common import open_clients

    dag = dags[dag_id]
    for t in dag.tasks:
        # Keep the retries (they are part of the behaviour under test) but not the waiting.
        t.retry_delay = timedelta(0)
        t.retry_exponential_backoff = False
    dr = dag.test(
        logical_date=hour.astimezone(UTC), run_conf={**PARAM_DEFAULTS[dag_id], **(conf or {})}
    )
    states = {
        ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dr.get_task_instances()
    }
    store = open_clients._store("sync_state")
    run = store.get_run(dag_id, dr.run_id)
    return RunOutcome(
        str(getattr(dr.state, "value", dr.state)), run.report if run else None, dr.run_id, states
    )


def state_store():
    from crm_sync.flows.common import open_clients

    return open_clients._store("sync_state")
