"""The run folder on object storage for real: the cluster's S3 server (moto, a process on a
loopback port), reached through an Airflow connection and the real s3fs stack, exactly as
``CRM_SYNC_RUN_STORAGE=s3://<conn id>@<bucket>/<prefix>`` reaches it on a cluster. What is in the
bucket is read with boto3 straight from the server, not through the code under test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from crm_sync.pipeline.files import BLOCK_SIZE, RunFolder
from scripts.cluster.services import ObjectStore
from scripts.cluster.settings import S3_BUCKET, Layout, run_storage_url, s3_connection
from tests.cluster.helpers import s3_server

pytestmark = pytest.mark.storage

CONN = "crm_sync_runs_storage_tests"
RUN = "runs/sync_leads_contacts/manual__1"


@pytest.fixture(scope="module")
def s3() -> Iterator[ObjectStore]:
    with s3_server(CONN) as store:
        yield store


@pytest.fixture
def folder(s3: ObjectStore, request: pytest.FixtureRequest) -> Iterator[RunFolder]:
    """A run folder of its own per test (the prefix is the test's name)."""
    prefix = f"{request.node.name}/{RUN}"
    yield RunFolder(f"s3://{CONN}@{S3_BUCKET}/{prefix}")


def rows(n: int, start: int = 0, pad: int = 0) -> Iterator[dict[str, Any]]:
    for i in range(start, start + n):
        yield {"id": str(i), "name": f"Zoë {i}", "pad": "x" * pad}


def test_the_cluster_setting_names_the_connection_and_the_bucket(tmp_path) -> None:
    from airflow.sdk import ObjectStoragePath

    url = run_storage_url(Layout(tmp_path), "s3")
    assert url == f"s3://crm_sync_runs@{S3_BUCKET}/runs"
    root = ObjectStoragePath(url)
    assert (root.protocol, root.conn_id, root.bucket, root.key) == (
        "s3",
        "crm_sync_runs",
        S3_BUCKET,
        "runs",
    )


def test_run_files_land_in_the_bucket_in_the_run_folder_layout(
    s3: ObjectStore, folder: RunFolder
) -> None:
    assert folder.write_jsonl("extract/lg.jsonl", rows(3)) == 3
    folder.append_jsonl("results/sf.jsonl", list(rows(2)))
    folder.append_jsonl("results/sf.jsonl", list(rows(2, 2)))
    folder.write_json("report.json", {"status": "success"})
    assert [r["id"] for r in folder.read_jsonl("extract/lg.jsonl")] == ["0", "1", "2"]
    assert [r["id"] for r in folder.read_jsonl("results/sf.jsonl")] == ["0", "1", "2", "3"]
    assert folder.read_json("report.json") == {"status": "success"}
    assert folder.read_json("missing.json", default="none") == "none"
    assert folder.exists("results/sf.jsonl") and not folder.exists("plans/plans.jsonl")

    prefix = folder.root.key + "/"
    assert [k.removeprefix(prefix) for k in s3.keys(S3_BUCKET, prefix)] == [
        "extract/lg.jsonl",
        "report.json",
        "results/sf.jsonl.parts/000001.jsonl",
        "results/sf.jsonl.parts/000002.jsonl",
    ]
    body = s3.client().get_object(Bucket=S3_BUCKET, Key=prefix + "extract/lg.jsonl")["Body"].read()
    assert body.decode().splitlines()[0] == '{"id":"0","name":"Zoë 0","pad":""}'

    folder.clear()
    assert s3.keys(S3_BUCKET, prefix) == []


def failing(n: int, pad: int) -> Iterator[dict[str, Any]]:
    yield from rows(n, pad=pad)
    raise RuntimeError("the API dropped the connection half way")


@pytest.mark.parametrize("size", ["one PUT", "multipart"])
def test_an_upload_that_fails_half_way_leaves_the_old_object_and_no_upload_behind(
    s3: ObjectStore, folder: RunFolder, size: str
) -> None:
    folder.write_jsonl("extract/lg.jsonl", rows(2))
    # 1 KiB rows: the multipart case has uploaded a first part of BLOCK_SIZE when it fails
    n = 10 if size == "one PUT" else BLOCK_SIZE // 1024 + 100
    with pytest.raises(RuntimeError, match="half way"):
        folder.write_jsonl("extract/lg.jsonl", failing(n, pad=1000))
    with pytest.raises(RuntimeError, match="half way"):
        folder.write_jsonl("extract/sf.jsonl", failing(n, pad=1000))

    assert [r["id"] for r in folder.read_jsonl("extract/lg.jsonl")] == ["0", "1"]
    assert not folder.exists("extract/sf.jsonl")
    prefix = folder.root.key + "/"
    assert s3.keys(S3_BUCKET, prefix) == [prefix + "extract/lg.jsonl"]
    uploads = s3.client().list_multipart_uploads(Bucket=S3_BUCKET, Prefix=prefix)
    assert uploads.get("Uploads", []) == []  # aborted, not left to cost storage


def test_a_big_file_goes_up_in_parts_and_reads_back_in_order(
    s3: ObjectStore, folder: RunFolder
) -> None:
    n = 2 * BLOCK_SIZE // 1024 + 10  # three multipart blocks of 1 KiB rows
    assert folder.write_jsonl("plans/plans.jsonl", rows(n, pad=1000)) == n
    ids = [int(r["id"]) for r in folder.read_jsonl("plans/plans.jsonl")]
    assert ids == list(range(n))


def test_a_part_another_worker_appended_is_read_even_after_this_process_listed_the_folder(
    s3: ObjectStore, folder: RunFolder
) -> None:
    """s3fs caches listings per process; a task on another worker must still be seen."""
    folder.append_jsonl("results/lg.jsonl", list(rows(1)))
    assert [r["id"] for r in folder.read_jsonl("results/lg.jsonl")] == ["0"]  # listed, cached
    key = f"{folder.root.key}/results/lg.jsonl.parts/000002.jsonl"
    s3.client().put_object(Bucket=S3_BUCKET, Key=key, Body=b'{"id":"1"}\n')  # the other worker
    assert [r["id"] for r in folder.read_jsonl("results/lg.jsonl")] == ["0", "1"]
    folder.append_jsonl("results/lg.jsonl", list(rows(1, 2)))  # numbered after theirs
    assert [r["id"] for r in folder.read_jsonl("results/lg.jsonl")] == ["0", "1", "2"]
    assert s3.keys(S3_BUCKET, f"{folder.root.key}/results/")[-1].endswith("000003.jsonl")


def test_an_unreachable_server_is_an_error_never_an_empty_folder() -> None:
    """A read that cannot reach the storage must fail the task (Airflow retries it), not look
    like a run folder without files: a stage would then plan nothing and report success."""
    import json
    import os

    import requests

    with s3_server("crm_sync_runs_stopped_test") as s3:
        conn = s3_connection(s3.port)
        # botocore's own retries of a refused connection take 20 s; one attempt shows the same
        conn["extra"]["config_kwargs"] = {"retries": {"max_attempts": 1, "mode": "standard"}}
        os.environ["AIRFLOW_CONN_CRM_SYNC_RUNS_STOPPED_TEST"] = json.dumps(conn)
        folder = RunFolder(f"s3://crm_sync_runs_stopped_test@{S3_BUCKET}/{RUN}")
        folder.write_jsonl("extract/lg.jsonl", rows(1))
        s3.stop()
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{s3.endpoint}/moto-api/", timeout=2)
        with pytest.raises(Exception) as failure:
            list(folder.read_jsonl("extract/lg.jsonl"))
        assert not isinstance(failure.value, FileNotFoundError)
        with pytest.raises(Exception) as failure:
            folder.exists("extract/lg.jsonl")
        assert not isinstance(failure.value, FileNotFoundError | AssertionError)
