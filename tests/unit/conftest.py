"""Fixtures the unit tests share: a run context in a throw-away run folder, and the live schema
of the sandbox org and account (built in process from the sandboxes' own object definitions,
no server)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crm_sync.mapping.schema import LiveSchema
from crm_sync.pipeline.context import RunContext

WINDOW = (datetime(2026, 11, 20, 9, tzinfo=UTC), datetime(2026, 11, 20, 10, tzinfo=UTC))


@pytest.fixture
def make_ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., RunContext]:
    """``make_ctx(dag_id, **fields)``: the scheduled run of the hour 09:00-10:00, whose run
    folder and scratch files live under this test's temporary directory."""
    monkeypatch.setenv("CRM_SYNC_HOME", str(tmp_path / "crm_sync"))

    def make(dag_id: str = "sync_leads_contacts", **kw: Any) -> RunContext:
        fields: dict[str, Any] = {
            "dag_id": dag_id,
            "run_id": "manual__1",
            "domain": "test",
            "window_start": WINDOW[0],
            "window_end": WINDOW[1],
            "run_type": "scheduled",
            "run_kind": "scheduled",
        }
        fields.update(kw)
        return RunContext(**fields)

    return make


@pytest.fixture(scope="session")
def sandbox_schema() -> LiveSchema:
    """Describe of every sandbox Salesforce object and every Lead Gen & CRM field."""
    from tests.sandbox_schema import sandbox_live_schema

    return sandbox_live_schema()
