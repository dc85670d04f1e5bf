"""The run folder (``crm_sync.pipeline.files.RunFolder``) on a local ``file://`` root and on fsspec's
in-memory filesystem through Airflow's ``ObjectStoragePath``: the same API and file layout on
both, streamed reads and writes, files that appear whole or not at all, and where
``CRM_SYNC_RUN_STORAGE`` puts a run's folder. (On an S3 server: test_run_folder_s3.py.)"""

from __future__ import annotations

import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crm_sync.errors import ConfigError
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.files import RunFolder
from crm_sync.settings import run_storage

pytestmark = pytest.mark.unit


@pytest.fixture
def memory_root() -> Iterator[str]:
    """A fresh root on fsspec's in-memory filesystem, attached as Airflow's ``memory`` store
    (Airflow registers no filesystem for that scheme by itself)."""
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    fs = MemoryFileSystem()
    attach("memory", fs=fs)
    bucket = f"runs-{uuid.uuid4().hex[:8]}"
    yield f"memory://{bucket}/runs/dag/run1"
    if fs.exists(f"/{bucket}"):
        fs.rm(f"/{bucket}", recursive=True)


@pytest.fixture(params=["file", "memory"])
def folder(request: pytest.FixtureRequest, tmp_path: Path) -> RunFolder:
    if request.param == "file":
        return RunFolder((tmp_path / "runs" / "dag" / "run1").as_uri())
    return RunFolder(request.getfixturevalue("memory_root"))


def rows(n: int, start: int = 0) -> Iterator[dict[str, Any]]:
    for i in range(start, start + n):
        yield {"id": str(i), "name": f"Zoë {i}"}


def test_lines_round_trip_with_the_types_stages_hand_over(folder: RunFolder) -> None:
    row = {
        "id": "7",
        "when": datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
        "amount": Decimal("12.50"),
        "tags": ("a", "b"),
        "text": "Zoë \u00e9\u4e2d",
    }
    assert folder.write_jsonl("extract/lg.jsonl", iter([row, {"id": "8"}])) == 2
    assert list(folder.read_jsonl("extract/lg.jsonl")) == [
        {
            "id": "7",
            "when": "2026-11-20T09:30:00+00:00",
            "amount": "12.50",
            "tags": ["a", "b"],
            "text": "Zoë \u00e9\u4e2d",
        },
        {"id": "8"},
    ]
    assert folder.exists("extract/lg.jsonl")
    assert not folder.exists("extract/sf.jsonl")
    assert list(folder.read_jsonl("extract/sf.jsonl")) == []  # nothing written, nothing read


def test_appends_are_parts_read_after_the_file_in_order(folder: RunFolder) -> None:
    assert folder.append_jsonl("results/lg.jsonl", []) == 0
    assert not folder.exists("results/lg.jsonl")  # an empty append writes no part
    assert folder.append_jsonl("results/lg.jsonl", list(rows(2))) == 2
    assert folder.exists("results/lg.jsonl")  # parts alone make the file exist
    for start in range(2, 24, 2):  # more than nine parts: the order is numeric, not by name
        folder.append_jsonl("results/lg.jsonl", list(rows(2, start)))
    assert [r["id"] for r in folder.read_jsonl("results/lg.jsonl")] == [str(i) for i in range(24)]
    fs, root = folder.fs, folder.root.path
    parts = sorted(
        p.rsplit("/", 1)[-1] for p in fs.ls(f"{root}/results/lg.jsonl.parts", detail=False)
    )
    assert parts[:2] == ["000001.jsonl", "000002.jsonl"] and len(parts) == 12

    folder.write_jsonl("results/lg.jsonl", rows(1, 100))  # replacing drops the parts
    assert [r["id"] for r in folder.read_jsonl("results/lg.jsonl")] == ["100"]
    folder.append_jsonl("results/lg.jsonl", list(rows(1, 101)))
    assert [r["id"] for r in folder.read_jsonl("results/lg.jsonl")] == ["100", "101"]


def test_json_files_and_clear(folder: RunFolder) -> None:
    assert folder.read_json("schema.json") is None
    assert folder.read_json("schema.json", default={}) == {}
    folder.write_json("schema.json", {"Lead": {"fields": ["Email"]}, "at": datetime(2026, 1, 2)})
    assert folder.read_json("schema.json") == {
        "Lead": {"fields": ["Email"]},
        "at": "2026-01-02T00:00:00",
    }
    folder.write_json("schema.json", {"v": 2})  # replaced whole
    assert folder.read_json("schema.json") == {"v": 2}
    folder.write_jsonl("plans/plans.jsonl", rows(3))
    folder.clear()
    assert not folder.exists("schema.json") and not folder.exists("plans/plans.jsonl")
    assert list(folder.read_jsonl("plans/plans.jsonl")) == []
    folder.clear()  # clearing nothing is fine (a first attempt)


def failing_rows(n: int) -> Iterator[dict[str, Any]]:
    yield from rows(n)
    raise RuntimeError("the API dropped the connection half way")


def test_a_write_that_fails_half_way_leaves_the_previous_file_and_no_debris(
    tmp_path: Path,
) -> None:
    folder = RunFolder(tmp_path / "run")  # a plain path is a local folder
    folder.write_jsonl("extract/lg.jsonl", rows(2))
    with pytest.raises(RuntimeError, match="half way"):
        folder.write_jsonl("extract/lg.jsonl", failing_rows(20_000))
    assert [r["id"] for r in folder.read_jsonl("extract/lg.jsonl")] == ["0", "1"]
    with pytest.raises(RuntimeError, match="half way"):
        folder.write_jsonl("extract/sf.jsonl", failing_rows(5))
    assert not folder.exists("extract/sf.jsonl")
    assert sorted(p.name for p in (tmp_path / "run" / "extract").iterdir()) == ["lg.jsonl"]


def test_an_append_that_fails_leaves_no_part_and_the_next_takes_its_place(
    tmp_path: Path,
) -> None:
    class Unserializable:
        pass

    folder = RunFolder(tmp_path / "run")
    folder.append_jsonl("results/sf.jsonl", list(rows(1)))
    with pytest.raises(TypeError, match="not JSON serializable"):
        folder.append_jsonl("results/sf.jsonl", [{"id": "x"}, {"bad": Unserializable()}])
    folder.append_jsonl("results/sf.jsonl", list(rows(1, 5)))
    assert [r["id"] for r in folder.read_jsonl("results/sf.jsonl")] == ["0", "5"]
    parts = tmp_path / "run" / "results" / "sf.jsonl.parts"
    assert sorted(p.name for p in parts.iterdir()) == ["000001.jsonl", "000002.jsonl"]


def test_reads_and_writes_stream_in_bounded_memory(tmp_path: Path) -> None:
    """60,000 rows (about 6 MB of JSON lines) go through with a small fraction of that held."""
    folder = RunFolder(tmp_path / "run")
    row = {"id": "0", "text": "x" * 80}

    def many() -> Iterator[dict[str, Any]]:
        for i in range(60_000):
            yield {**row, "id": str(i)}

    tracemalloc.start()
    try:
        assert folder.write_jsonl("big.jsonl", many()) == 60_000
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        count = sum(1 for _ in folder.read_jsonl("big.jsonl"))
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = (tmp_path / "run" / "big.jsonl").stat().st_size
    assert count == 60_000 and size > 6_000_000
    assert write_peak < 2_000_000, write_peak
    assert read_peak < 2_000_000, read_peak


def test_local_path_is_a_file_path_locally_and_a_url_on_object_storage(
    tmp_path: Path, memory_root: str
) -> None:
    local = RunFolder((tmp_path / "run").as_uri())
    path = local.local_path("report.json")
    assert path == tmp_path / "run" / "report.json" and path.parent.is_dir()
    assert RunFolder(memory_root).local_path("report.json") == f"{memory_root}/report.json"


def test_a_storage_url_no_filesystem_serves_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="run storage nosuchfs://bucket/runs: .*'nosuchfs'"):
        RunFolder("nosuchfs://bucket/runs")
    # known to fsspec, but no installed Airflow provider attaches it
    folder = RunFolder("ftp://files.example/runs")
    with pytest.raises(ConfigError, match="run storage ftp://.*scheme ftp.*provider"):
        folder.write_json("report.json", {})


def test_run_storage_defaults_to_the_local_runs_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_SYNC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CRM_SYNC_RUN_STORAGE", raising=False)
    assert run_storage() == (tmp_path / "home" / "runs").as_uri()
    monkeypatch.setenv("CRM_SYNC_RUN_STORAGE", str(tmp_path / "elsewhere"))
    assert run_storage() == (tmp_path / "elsewhere").as_uri()
    monkeypatch.setenv("CRM_SYNC_RUN_STORAGE", "s3://crm_sync_runs@bucket/prefix")
    assert run_storage() == "s3://crm_sync_runs@bucket/prefix"


def test_a_runs_folder_is_under_the_run_storage_by_dag_and_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory_root: str
) -> None:
    ctx = RunContext(
        dag_id="sync_leads_contacts",
        run_id="scheduled__2026-11-20T10:00:00+00:00",
        domain="person",
        window_start=datetime(2026, 11, 20, 9, tzinfo=UTC),
        window_end=datetime(2026, 11, 20, 10, tzinfo=UTC),
    )
    monkeypatch.setenv("CRM_SYNC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CRM_SYNC_RUN_STORAGE", raising=False)
    ctx.folder.write_json("report.json", {"ok": True})
    run_dir = tmp_path / "home" / "runs" / "sync_leads_contacts"
    assert (run_dir / "scheduled__2026-11-20T10_00_00_00_00" / "report.json").is_file()

    monkeypatch.setenv("CRM_SYNC_RUN_STORAGE", memory_root + "/")
    ctx.folder.write_json("report.json", {"ok": "remote"})
    assert RunFolder(
        f"{memory_root}/sync_leads_contacts/scheduled__2026-11-20T10_00_00_00_00"
    ).read_json("report.json") == {"ok": "remote"}
    # the scratch files of a task stay on its own disk, whatever the run storage
    assert ctx.scratch("match/lg.db").is_relative_to(tmp_path / "home" / "scratch")
