"""Chaos fixtures: the end-to-end sandboxes and DAGs (``tests/e2e/conftest.py``, reused as they
are), plus a seeded world of a few hundred people with opportunities and marketing activity.

Every chaos test starts from empty sandboxes and an empty state store (the e2e ``fresh``
fixture), seeds them, and ends with the invariant checker and the write logs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.helpers import World, seed_world
from tests.e2e.conftest import (  # noqa: F401 - fixtures
    dags,
    fresh,
    postgres,
    preflight_passed,
    sandboxes,
    state_db,
)

REPO_MAPPINGS = Path(__file__).resolve().parents[2] / "include" / "mappings"
# More Tasks than this in one load go through Bulk API 2.0 (the shipped spec says 2000): the
# initial engagement load of the seeded history then runs as Bulk 2.0 ingest jobs, which the
# storm's session expiries hit.
ENGAGEMENT_BULK_THRESHOLD = 100


@pytest.fixture
def mappings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped mapping specs with a lower engagement Bulk threshold
    (``CRM_SYNC_MAPPINGS_DIR``): configuration only, as an operator would set it."""
    folder = tmp_path / "mappings"
    shutil.copytree(REPO_MAPPINGS, folder)
    spec = folder / "engagement.yaml"
    text = spec.read_text()
    assert "bulk_threshold: 2000" in text, "engagement.yaml changed: adapt the chaos fixture"
    spec.write_text(
        text.replace("bulk_threshold: 2000", f"bulk_threshold: {ENGAGEMENT_BULK_THRESHOLD}")
    )
    monkeypatch.setenv("CRM_SYNC_MAPPINGS_DIR", str(folder))
    return folder


@pytest.fixture
def world(fresh: Any, dags: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> World:  # noqa: F811
    """Both sandboxes seeded three hours before the first synced hour (see ``seed_world``).

    Backups are required again (``fresh`` waives them): the first writing run of the test
    takes one through Bulk API 2.0 queries, under the same faults and kills as the rest."""
    monkeypatch.setenv("CRM_SYNC_REQUIRE_BACKUP", "true")
    return seed_world(fresh)


def leadgen_extras(monkeypatch: pytest.MonkeyPatch, **extras: Any) -> None:
    """Add documented extras to the ``leadgen_default`` connection for this test."""
    conn = json.loads(os.environ["AIRFLOW_CONN_LEADGEN_DEFAULT"])
    conn["extra"] = {**conn.get("extra", {}), **extras}
    monkeypatch.setenv("AIRFLOW_CONN_LEADGEN_DEFAULT", json.dumps(conn))


@pytest.fixture
def quick_retries(fresh: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Lead Gen & CRM client retries paced at 0.1 s, 0.2 s, ... instead of 0.5 s, 1 s, ...
    (the connection's ``backoff_base`` extra): the same retries, a storm that takes less CI
    time. Salesforce keeps its own pacing (0.5 s, 1 s, ...)."""
    leadgen_extras(monkeypatch, backoff_base=0.1)
