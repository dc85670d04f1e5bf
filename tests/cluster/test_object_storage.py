"""Run storage on object storage, ready for the switch: the cluster's S3 server (moto, started as
a process on a loopback port) and the Airflow connection `crm_sync_runs`, used through Airflow's
own ObjectStoragePath exactly as a run-storage URL would be."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.cluster.services import ObjectStore
from scripts.cluster.settings import S3_BUCKET, Layout, free_port, run_storage_url, s3_connection

pytestmark = pytest.mark.cluster


@pytest.fixture
def s3(service_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ObjectStore]:
    store = ObjectStore(service_dir / "s3", free_port())
    store.start()
    monkeypatch.setenv("AIRFLOW_CONN_CRM_SYNC_RUNS", json.dumps(s3_connection(store.port)))
    try:
        yield store
    finally:
        store.stop()


def test_run_files_round_trip_through_the_connection(s3: ObjectStore, tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    url = run_storage_url(Layout(tmp_path), "s3")
    assert url == f"s3://crm_sync_runs@{S3_BUCKET}/runs"
    run = ObjectStoragePath(url) / "sync_leads_contacts" / "manual__1"
    assert run.conn_id == "crm_sync_runs"
    (run / "extract" / "leadgen-0001.jsonl").write_text('{"id": 1}\n{"id": 2}\n')
    (run / "plan.json").write_text("{}")

    assert (run / "extract" / "leadgen-0001.jsonl").read_text().splitlines() == [
        '{"id": 1}',
        '{"id": 2}',
    ]
    assert sorted(p.name for p in run.iterdir()) == ["extract", "plan.json"]
    # The objects really are on the server the connection names (read without Airflow).
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name="us-east-1",
        aws_access_key_id="any",
        aws_secret_access_key="any",
    )
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=S3_BUCKET)["Contents"]]
    assert sorted(keys) == [
        "runs/sync_leads_contacts/manual__1/extract/leadgen-0001.jsonl",
        "runs/sync_leads_contacts/manual__1/plan.json",
    ]


def test_a_stopped_server_is_gone(s3: ObjectStore) -> None:
    import requests

    s3.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{s3.endpoint}/moto-api/", timeout=2)
