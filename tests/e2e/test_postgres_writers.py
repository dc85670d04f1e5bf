"""Two DAGs and a backfill writing to one PostgreSQL state store at once, then the invariant
checker (``python -m crm_sync.verify``) over both sandboxes and the store.

``dag.test()`` runs a DAG inside the calling process and is not thread-safe, so each run is an
``airflow dags test`` process of its own, started together: ``sync_leads_contacts`` for
10:00-11:00, ``sync_opportunities`` for 09:00-10:00 (whose people window a first run synced) and
a backfill of ``sync_leads_contacts`` for 08:00-09:00. The two people runs take turns on the DAG's
lease (SELECT ... FOR UPDATE); all three write links, memberships, run rows and API-call counts
concurrently. Each process has its own copy of the Airflow metadata DB (SQLite takes one writer
at a time; the sync state is what is under test). The whole scenario on separate Celery workers:
tests/cluster/test_cluster.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import (
    H,
    freeze,
    lg_get,
    lg_lead,
    run_dag,
    sf_create,
    sf_patch,
    state_store,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = Path(sys.executable).parent / "airflow"
PEOPLE, OPPS = "sync_leads_contacts", "sync_opportunities"
BEFORE, AFTER = H - timedelta(hours=1), H + timedelta(hours=1)  # logical dates: interval ends
CO = {"companyName": "Writers Co"}
DEAL = {"Name": "Writers deal", "StageName": "Prospecting", "CloseDate": "2026-12-31"}


def seed(fresh) -> dict[str, Any]:
    """People in each of the three hours 08-09, 09-10, 10-11; in 09-10 an opportunity with two
    contact roles."""
    out: dict[str, Any] = {}
    for hour, tag in ((BEFORE, "b"), (H, "h"), (AFTER, "a")):
        freeze(fresh, 40, hour)
        out[tag] = [
            lg_lead(fresh, emailAddress=f"{tag}{i}@writers.example", lastName=f"W{tag}{i}", **CO)
            for i in range(3)
        ]
        out[f"{tag}_contacts"] = [
            sf_create(fresh, "Contact", LastName=f"C{tag}{i}", Email=f"c.{tag}{i}@writers.example")
            for i in range(2)
        ]
        if tag == "h":
            out["opp"] = opportunity(fresh, out["h_contacts"])
    return out


def opportunity(fresh, contacts: list[str]) -> str:
    account = sf_create(fresh, "Account", Name=CO["companyName"])
    opp = sf_create(fresh, "Opportunity", AccountId=account, **DEAL)
    for contact in contacts:
        sf_create(fresh, "OpportunityContactRole", OpportunityId=opp, ContactId=contact)
    return opp


def metadata_copy(home: Path) -> None:
    """A copy of the session's Airflow metadata DB as the only file of a new AIRFLOW_HOME."""
    home.mkdir(parents=True)
    source = Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
    with (
        closing(sqlite3.connect(source)) as src,
        closing(sqlite3.connect(home / "airflow.db")) as dst,
    ):
        src.backup(dst)


def start(dag_id: str, logical: Any, home: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "AIRFLOW_HOME": str(home)}
    with open(log, "wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [str(AIRFLOW), "dags", "test", dag_id, logical.isoformat()],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def verify() -> tuple[int, list[dict[str, Any]], str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)])}
    proc = subprocess.run(
        [sys.executable, "-m", "crm_sync.verify", "--json", "--dag", PEOPLE, "--dag", OPPS],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.returncode, [json.loads(ln) for ln in proc.stdout.splitlines()], proc.stderr


@pytest.mark.parametrize("state_db", ["postgresql"], indirect=True)
def test_two_dags_and_a_backfill_write_one_postgres_store_at_once(
    fresh, dags, tmp_path: Path
) -> None:
    seeded = seed(fresh)
    first = run_dag(dags, PEOPLE, H)  # the people window the opportunities run waits for
    assert first.state == "success", first.task_states
    freeze(fresh, 30, AFTER)  # and in 10-11, a title edited in Salesforce
    sf_patch(fresh, "Contact", seeded["h_contacts"][0], Title="Chief Writer")

    runs = {"people": (PEOPLE, AFTER), "opportunities": (OPPS, H), "backfill": (PEOPLE, BEFORE)}
    procs = {}
    for name, (dag_id, logical) in runs.items():
        metadata_copy(tmp_path / f"home-{name}")
        procs[name] = start(dag_id, logical, tmp_path / f"home-{name}", tmp_path / f"{name}.log")
    codes = {}
    for name, proc in procs.items():
        try:
            codes[name] = proc.wait(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
    logs = {name: (tmp_path / f"{name}.log").read_text(errors="replace") for name in runs}
    assert codes == dict.fromkeys(runs, 0), {n: logs[n][-3000:] for n, c in codes.items() if c}

    store = state_store()
    done = [r for dag in (PEOPLE, OPPS) for r in store.recent_runs(dag) if r.run_id != first.run_id]
    assert sorted((r.dag_id, r.status) for r in done) == [
        (PEOPLE, "success"),
        (PEOPLE, "success"),
        (OPPS, "success"),
    ]
    # they did run at once: each run's span overlaps another's
    spans = [(r.started_at, r.finished_at) for r in done]
    for i, (start_i, end_i) in enumerate(spans):
        others = spans[:i] + spans[i + 1 :]
        assert any(s < end_i and start_i < e for s, e in others), spans
    assert store.get_run(PEOPLE, first.run_id).status == "success"
    assert store.acquire_lease(PEOPLE, "after-the-test", timedelta(minutes=1)) is None  # released

    # every person of the three hours linked once; both contact roles became memberships
    people = [*seeded["b"], *seeded["h"], *seeded["a"]]
    assert set(store.links_by_lg("person", people)) == set(people)
    contacts = [*seeded["b_contacts"], *seeded["h_contacts"], *seeded["a_contacts"]]
    linked = store.links_by_sf("person", contacts, active_only=True)
    assert {c: len(linked.get(c, [])) for c in contacts} == dict.fromkeys(contacts, 1)
    assert store.count_links("membership") == 2
    assert store.quarantined(PEOPLE) == [] and store.quarantined(OPPS) == []
    [edited] = linked[seeded["h_contacts"][0]]
    assert lg_get(fresh, edited.lg_id)["title"] == "Chief Writer"  # the 10-11 edit arrived

    code, lines, err = verify()
    assert code == 0, (lines, err[-3000:])
    assert lines[-1]["summary"]["violations"] == 0
