"""The result log: one answer per pair, in memory or on disk."""

from __future__ import annotations

import pytest

from crm_sync.pipeline.results import ResultLog

pytestmark = pytest.mark.unit


def row(pair: str, success: bool, note: str) -> dict:
    return {"pair": pair, "success": success, "note": note}


def test_the_on_disk_index_keeps_the_same_answer_per_pair_as_memory(make_ctx, tmp_path) -> None:
    """A success wins over failures (before or after it); among failures the last counts; rows
    of one pair spread over several appended batches (a retried load) are merged."""
    ctx = make_ctx()
    log = ResultLog(ctx.folder, "sf")
    log.append([row("a", False, "a1"), row("b", True, "b1"), row("c", False, "c1")])
    log.append([row("a", True, "a2"), row("b", False, "b2"), row("c", False, "c2")])
    log.append([row("a", False, "a3"), row("d", False, "d1"), row("d", True, "d2")])
    expected = {"a": "a2", "b": "b1", "c": "c2", "d": "d2"}
    latest = log.latest()
    try:
        assert {k: r["note"] for k, r in latest.items()} == expected
        assert {k: r["note"] for k, r in latest.get_many(["a", "b", "c", "d", "e"]).items()} == (
            expected
        )
        assert "e" not in latest and len(latest) == 4
    finally:
        latest.close()
