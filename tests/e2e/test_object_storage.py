"""sync_leads_contacts with its run folder on object storage: ``CRM_SYNC_RUN_STORAGE`` points at a
local S3-compatible server (moto, a process started here) through an Airflow connection, and the
run goes through the real ObjectStoragePath / s3fs / aiobotocore stack. Every stage hands its
files over in the bucket (read straight from the server with boto3), none on the local disk.
(RunFolder itself against the same server: tests/storage/test_run_folder_s3.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_sync.pipeline.context import safe_name
from scripts.cluster.services import ObjectStore
from scripts.cluster.settings import S3_BUCKET
from tests.cluster.helpers import s3_server
from tests.e2e.helpers import H, freeze, lg_get, lg_lead, run_dag, sf_create, sf_find, state_store

pytestmark = [pytest.mark.e2e, pytest.mark.storage]

DAG = "sync_leads_contacts"
CONN = "crm_sync_runs_e2e"


@pytest.fixture
def s3_runs(fresh, monkeypatch: pytest.MonkeyPatch) -> Iterator[ObjectStore]:
    with s3_server(CONN) as store:
        monkeypatch.setenv("CRM_SYNC_RUN_STORAGE", f"s3://{CONN}@{S3_BUCKET}/crm_sync/runs")
        yield store


def test_a_run_hands_every_file_over_in_the_bucket_and_none_on_disk(
    fresh, dags, s3_runs: ObjectStore, tmp_path: Path
) -> None:
    freeze(fresh, 40)
    lead_id = lg_lead(
        fresh, emailAddress="ann.lee@example.com", firstName="Ann", lastName="Lee", companyName="A"
    )
    contact_id = sf_create(
        fresh, "Contact", FirstName="Bob", LastName="Stone", Email="bob.stone@example.com"
    )

    out = run_dag(dags, DAG, H)

    assert out.state == "success", out.task_states
    assert out.report["salesforce"]["created"] == 1 and out.report["leadgen"]["created"] == 1
    [sf_lead] = sf_find(fresh, "Lead", "ann.lee@example.com")
    assert sf_lead["LeadGen_Id__c"] == lead_id
    contact_link = state_store().links_by_sf("person", [contact_id])[contact_id][0]
    assert lg_get(fresh, contact_link.lg_id)["emailAddress"] == "bob.stone@example.com"

    prefix = f"crm_sync/runs/{DAG}/{safe_name(out.run_id)}/"
    files = [k.removeprefix(prefix) for k in s3_runs.keys(S3_BUCKET, prefix)]
    # each stage's hand-off: prepare's facts, both extracts, pairs, plans, the gate's verdict,
    # each side's write results (appended as parts, one per batch)
    for name in (
        "schema.json",
        "owners.json",
        "extract/lg.jsonl",
        "pairs/pairs.jsonl",
        "plans/plans.jsonl",
        "plans/validated.jsonl",
        "validation.json",
    ):
        assert name in files, files
    assert any(f.startswith("extract/sf_") for f in files), files
    assert any(f.startswith("results/lg.jsonl.parts/") for f in files), files
    assert any(f.startswith("results/sf.jsonl.parts/") for f in files), files
    assert s3_runs.keys(S3_BUCKET) == sorted(prefix + f for f in files)  # nothing elsewhere

    local_runs = tmp_path / "crm_sync" / "runs"  # fresh's CRM_SYNC_HOME: the default storage
    assert not local_runs.exists() or not any(local_runs.rglob("*"))
    # task-local scratch files (on-disk indexes) stay on the worker and are removed after each task
    scratch = tmp_path / "crm_sync" / "scratch"
    assert not scratch.exists() or not any(p.is_file() for p in scratch.rglob("*"))
