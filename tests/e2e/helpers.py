"""Helpers shared by the end-to-end tests (one module, so every test sees the same state)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
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
    dags: dict[str, Any],
    dag_id: str,
    hour: datetime,
    conf: dict[str, Any] | None = None,
    *,
    now: bool = False,
) -> RunOutcome:
    """Run ``dag_id`` with ``dag.test()``.

    By default a run for the data interval that ends at ``hour`` (a manual run with a chosen
    logical date: it syncs exactly that interval, as a backfill does). With ``now``, a manual
    run without a logical date requested at ``hour`` (the Trigger button: it syncs from the
    watermark up to ``hour``). Returns the DagRun state, each task's state and the run report.
    """
    from crm_sync.runtime import shared_store

    dag = dags[dag_id]
    for t in dag.tasks:
        # Keep the retries (they are part of the behaviour under test) but not the waiting.
        t.retry_delay = timedelta(0)
        t.retry_exponential_backoff = False
    when = hour.astimezone(UTC)
    run_conf = {**PARAM_DEFAULTS[dag_id], **(conf or {})}
    if now:
        dr = dag.test(logical_date=None, run_after=when, run_conf=run_conf)
    else:
        dr = dag.test(logical_date=when, run_conf=run_conf)
    states = {
        ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dr.get_task_instances()
    }
    run = shared_store("sync_state").get_run(dag_id, dr.run_id)
    return RunOutcome(
        str(getattr(dr.state, "value", dr.state)), run.report if run else None, dr.run_id, states
    )


def state_store():
    from crm_sync.runtime import shared_store

    return shared_store("sync_state")


# -- the clock and records of both sandboxes -----------------------------------------------------

# Each test works in the hour 09:00-10:00 of this day; the run for it has logical date 10:00.
H = datetime(2026, 11, 20, 10, tzinfo=UTC)


def at(minutes_before: int, hour: datetime = H) -> str:
    """A Salesforce timestamp ``minutes_before`` the end of ``hour``."""
    return (hour - timedelta(minutes=minutes_before)).strftime("%Y-%m-%dT%H:%M:%SZ")


def lg_at(minutes_before: int, hour: datetime = H) -> str:
    """The same moment as a Lead Gen & CRM timestamp."""
    return (hour - timedelta(minutes=minutes_before)).strftime("%Y-%m-%d %H:%M:%S")


def freeze(fresh: Any, minutes_before: int, hour: datetime = H) -> None:
    """Freeze both sandbox clocks inside the hour ending at ``hour``, so writes land in its
    window."""
    fresh.sf.post("clock", {"now": at(minutes_before, hour)})
    fresh.lg.post("clock", {"now": lg_at(minutes_before, hour)})


def lg_lead(fresh: Any, **fields: Any) -> str:
    """Create a lead as the marketer would (form fill), return its id."""
    email = fields.pop("emailAddress")
    out = fresh.lg.post(
        "forms/submit", {"emailAddress": email, "formName": "Contact Us", "fields": fields}
    )
    return str(out["leadID"])


def lg_get(fresh: Any, lead_id: str) -> dict:
    return fresh.lg.get(f"leads/{lead_id}")


def sf_create(fresh: Any, sobject: str, **fields: Any) -> str:
    return fresh.sf.post(f"records/{sobject}", fields)["id"]


def sf_get(fresh: Any, sobject: str, sf_id: str) -> dict:
    return fresh.sf.get(f"records/{sobject}/{sf_id}")


def sf_patch(fresh: Any, sobject: str, sf_id: str, fields: dict | None = None, **kw: Any) -> None:
    """Edit a Salesforce record as a salesperson would (``_at`` in the fields sets the time)."""
    import requests

    r = requests.patch(
        f"{fresh.sf.base}/records/{sobject}/{sf_id}",
        json={**(fields or {}), **kw},
        verify=fresh.sf.verify,
        timeout=60,
    )
    assert r.status_code < 300, r.text


def sf_find(fresh: Any, sobject: str, email: str) -> list[dict]:
    return list(
        sf_client().query_by_values(sobject, ["Id", "Email", "LeadGen_Id__c"], "Email", [email])
    )


def sf_client() -> Any:
    from crm_sync.runtime import salesforce_client

    return salesforce_client()


def lg_client() -> Any:
    from crm_sync.runtime import leadgen_client

    return leadgen_client()


def write_calls(fresh: Any) -> dict:
    """Write calls made to each sandbox since the last reset of its counters."""
    sf = fresh.sf.get("calls")["by_kind"]
    lg = fresh.lg.get("calls")["by_method"]
    sf_writes = {
        k: v
        for k, v in sf.items()
        if k in ("collections", "sobject_write", "bulk2", "composite", "sobject")
    }
    lg_writes = {k: v for k, v in lg.items() if k.startswith(("create", "update", "delete"))}
    return {"salesforce": sf_writes, "leadgen": lg_writes}


def reset_calls(fresh: Any) -> None:
    fresh.sf.post("calls/reset")
    fresh.lg.post("calls/reset")


# -- mapping specs -------------------------------------------------------------------------------
REPO_MAPPINGS = Path(__file__).resolve().parents[2] / "include" / "mappings"


def mappings_copy(tmp_path: Path, monkeypatch: Any, name: str, old: str, new: str) -> Path:
    """A copy of include/mappings with one edit in ``name``, used by the runs that follow."""
    import shutil

    target = tmp_path / "mappings"
    shutil.copytree(REPO_MAPPINGS, target)
    text = (target / name).read_text()
    assert old in text
    (target / name).write_text(text.replace(old, new))
    monkeypatch.setenv("CRM_SYNC_MAPPINGS_DIR", str(target))
    return target
