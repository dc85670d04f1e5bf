"""ResultLog.done / latest: the answers for a whole run, indexed on disk (pipeline/results.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_sync.pipeline.files import RunFolder
from crm_sync.pipeline.results import INDEX_CHUNK, ResultLog, index_dir, outcome_row

pytestmark = pytest.mark.unit


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ResultLog:
    monkeypatch.setenv("CRM_SYNC_SCRATCH", str(tmp_path / "scratch"))
    return ResultLog(RunFolder(tmp_path / "run"), "lg")


def row(pair: str, ok: bool, code: str | None = None) -> dict:
    return outcome_row(
        pair, "leadgen", "create", id=f"id-{pair}" if ok else None, success=ok, error_code=code
    )


def test_latest_prefers_a_success_then_the_last_answer(log: ResultLog) -> None:
    log.append([row("a", False, "E1"), row("b", True), row("c", False, "E1")])
    log.append([row("a", True), row("b", False, "E2"), row("c", False, "E2")])
    log.append([row("a", False, "E3")])
    latest = log.latest()
    assert len(latest) == 3 and set(latest) == {"a", "b", "c"}
    assert latest["a"]["success"] and latest["b"]["success"]
    assert latest["c"]["error_code"] == "E2"
    assert latest.get("zzz") is None and "zzz" not in latest
    assert sorted(r["pair"] for r in latest.values()) == ["a", "b", "c"]
    with pytest.raises(KeyError):
        latest["zzz"]


def test_done_is_a_set_of_pairs_with_union(log: ResultLog) -> None:
    log.append([row("a", True), row("b", False, "E1")])
    assert set(log.done()) == {"a", "b"} and len(log.done()) == 2
    done = log.done(success_only=True)
    assert "a" in done and "b" not in done and len(done) == 1
    done |= {"c", "a"}
    assert set(done) == {"a", "c"} and len(done) == 2  # "a" is counted once


def test_many_results_across_chunks_cost_disk_not_memory(log: ResultLog, tmp_path: Path) -> None:
    n = INDEX_CHUNK * 2 + 17
    log.append([row(f"p{i}", i % 3 != 0, "E") for i in range(n)])
    log.append([row(f"p{i}", True) for i in range(0, n, 3)])  # the failures retried, now done
    latest = log.latest()
    assert len(latest) == n
    assert all(r["success"] for r in latest.values())
    folder = index_dir()  # scratch/results/<pid>
    assert len(list(folder.glob("*.db"))) == 1  # the index lives in a file under the scratch
    latest.close()
    assert list(folder.glob("*.db")) == []


def test_an_index_removes_its_file_when_collected(log: ResultLog, tmp_path: Path) -> None:
    import gc

    log.append([row("a", True)])
    index = log.done()
    folder = index_dir()  # scratch/results/<pid>
    assert len(list(folder.glob("*.db"))) == 1
    del index
    gc.collect()
    assert list(folder.glob("*.db")) == []
