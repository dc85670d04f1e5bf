"""The multi-worker cluster, for real: `make cluster`'s scenario, once, then what it must show.

One cluster is started for the module (PostgreSQL and Redis from Debian's packages, both
sandboxes, api-server, scheduler, dag-processor, triggerer, two Celery workers in their own
folders), the scenario runs (three DAGs triggered and a three-hour backfill of
sync_leads_contacts, all at once, handing run files over through the S3 server) and the
tests below read its outcome. About four minutes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from scripts.cluster import scenario
from scripts.cluster.settings import read_env_file
from scripts.cluster.stack import DAG_IDS, Cluster
from tests.cluster.helpers import make_service_dir

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def ran() -> Iterator[tuple[Cluster, scenario.Outcome]]:
    root = make_service_dir("crm_sync_cluster_")
    try:
        with Cluster(root / "cluster", workers=2) as c:
            c.start()
            outcome = scenario.run(c, people=300, timeout=600)
            # Files are read after the processes stopped: nothing writes any more.
            c.stop()
            yield c, outcome
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_every_run_succeeded(ran: tuple[Cluster, scenario.Outcome]) -> None:
    _, outcome = ran
    assert [f"{r.dag_id} {r.run_id}: {r.state}" for r in outcome.runs if r.state != "success"] == []
    manual = sorted(r.dag_id for r in outcome.runs if r.run_type == "manual")
    assert manual == sorted(DAG_IDS)
    backfill = sorted(
        datetime.fromisoformat(r.data_interval_start)
        for r in outcome.runs
        if r.run_type == "backfill"
    )
    assert len(backfill) == scenario.BACKFILL_HOURS
    assert all(r.dag_id == scenario.PEOPLE_DAG for r in outcome.runs if r.run_type == "backfill")
    # three consecutive hours, the last one ending where the manual runs' hour starts
    [manual_start] = {r.data_interval_start for r in outcome.runs if r.run_type == "manual"}
    assert [b + timedelta(hours=1) for b in backfill] == backfill[1:] + [
        datetime.fromisoformat(manual_start)
    ]
    assert all(r.tasks > 0 for r in outcome.runs)


def test_both_workers_ran_tasks_from_their_own_folders(
    ran: tuple[Cluster, scenario.Outcome],
) -> None:
    c, outcome = ran
    assert set(outcome.tasks_by_worker) == {"worker-1", "worker-2"}
    assert all(n > 0 for n in outcome.tasks_by_worker.values()), outcome.tasks_by_worker
    assert sum(outcome.tasks_by_worker.values()) == sum(r.tasks for r in outcome.runs)
    # each worker wrote task logs in its own AIRFLOW_HOME, and nowhere else
    assert all(n > 0 for n in outcome.log_files_by_worker.values()), outcome.log_files_by_worker
    assert not list((c.layout.control_home / "logs").rglob("attempt=*.log"))
    homes = {c.env(worker=n)["AIRFLOW_HOME"] for n in (1, 2)}
    assert len(homes) == 2 and c.env()["AIRFLOW_HOME"] not in homes


def test_the_ui_shows_task_logs_from_each_worker(ran: tuple[Cluster, scenario.Outcome]) -> None:
    assert ran[1].remote_log_ok


def test_data_is_synced_in_both_sandboxes(ran: tuple[Cluster, scenario.Outcome]) -> None:
    _, outcome = ran
    checks: dict[str, Any] = outcome.verify.get("checks") or {}
    failed = {name: c for name, c in checks.items() if not c.get("ok")}
    assert failed == {}
    assert outcome.verify["ok"] is True
    if outcome.verifier.startswith("scripts.cluster"):
        people = checks["every lead is linked to a Salesforce record or quarantined"]
        assert people["leads"] >= 300
        assert checks["every Salesforce opportunity is in Lead Gen & CRM"]["leadgen"] > 0
    assert outcome.ok, outcome.problems


def test_run_files_went_through_the_bucket_and_no_worker_shares_a_folder_for_them(
    ran: tuple[Cluster, scenario.Outcome],
) -> None:
    """The workers hand each other run files through the S3 server only: every DAG's run files
    are in the bucket (read with boto3 while the server ran), none on any process's own disk,
    and each process has a CRM_SYNC_HOME of its own. The backup archive is the one folder they
    share (the write stage must find a backup another worker took)."""
    c, outcome = ran
    assert c.run_storage == "s3"
    assert outcome.run_storage == "s3://crm_sync_runs@crm-sync-runs/runs"
    assert all(outcome.run_files.get(d, 0) > 0 for d in DAG_IDS), outcome.run_files
    assert outcome.local_run_files == []
    assert not c.layout.shared_sync_home.exists()
    envs = [c.env(worker=n) for n in (None, 1, 2)]
    assert len({e["CRM_SYNC_HOME"] for e in envs}) == 3
    assert {e["CRM_SYNC_RUN_STORAGE"] for e in envs} == {outcome.run_storage}
    assert {e["CRM_SYNC_BACKUP_DIR"] for e in envs} == {str(c.layout.backups)}
    assert any((p / "manifest.json").is_file() for p in c.layout.backups.iterdir())
    # and the cluster ran with the settings every deployment shares
    for key, value in read_env_file().items():
        assert envs[1][key] == value, key
