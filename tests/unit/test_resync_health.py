"""Sync health's "Resync now": the record lookup offers it on a linked person to users who may
trigger sync_leads_contacts, and the API triggers that DAG with ``record_ids`` through Airflow's
REST API (replaced here by a recorder), over a real state store (TestClient)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.api_fastapi.core_api.security import get_user
from fastapi.testclient import TestClient

from crm_sync.health.app import create_app
from crm_sync.health.changes import airflow_trigger, dag_trigger_check
from crm_sync.state.store import SyncStore

pytestmark = pytest.mark.unit

JSON = {"Content-Type": "application/json"}
SF_ID = "00Q5e000001AbCdEAK"


class User:
    def get_name(self) -> str:
        return "rep"


@pytest.fixture
def rights() -> dict[str, bool]:
    return {"trigger": True}


@pytest.fixture
def triggered() -> list[tuple[str, dict[str, Any]]]:
    return []


@pytest.fixture
def client(tmp_path: Path, rights: dict[str, bool], triggered: list) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = SyncStore(url)
    store.upsert_link("person", "1001", "Lead", SF_ID, synced_values={"email": "ann@example.com"})
    store.dispose()
    app = create_app(state_url=url)

    def trigger(dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        triggered.append((dag_id, conf))
        return {"dag_run_id": f"manual__{len(triggered)}"}

    app.dependency_overrides[get_user] = User
    app.dependency_overrides[dag_trigger_check] = lambda: lambda dag_id: rights["trigger"]
    app.dependency_overrides[airflow_trigger] = lambda: trigger
    with TestClient(app) as c:
        yield c
    app.state.store_provider.dispose()


def resync(client: TestClient, *records: str) -> Any:
    return client.post("/api/records/resync", json={"records": list(records)}, headers=JSON)


def test_the_lookup_offers_resync_now_only_to_who_may_trigger_the_people_sync(
    client: TestClient, rights: dict[str, bool]
) -> None:
    page = client.get("/ui/lookup", params={"q": "1001"})
    assert page.status_code == 200
    assert 'data-record="1001"' in page.text and "Resync now" in page.text
    rights["trigger"] = False
    assert "Resync now" not in client.get("/ui/lookup", params={"q": "1001"}).text


def test_resync_now_triggers_the_people_sync_with_the_records(
    client: TestClient, triggered: list
) -> None:
    answer = resync(client, "1001", SF_ID, "Ann@Example.com")
    assert answer.status_code == 200
    assert answer.json() == {
        "dag_id": "sync_leads_contacts",
        "dag_run_id": "manual__1",
        "conf": {"record_ids": ["1001", SF_ID, "Ann@Example.com"]},
    }
    assert triggered == [
        ("sync_leads_contacts", {"record_ids": ["1001", SF_ID, "Ann@Example.com"]})
    ]


def test_resync_is_refused_without_the_right_for_bad_entries_and_cross_site(
    client: TestClient, rights: dict[str, bool], triggered: list
) -> None:
    bad = resync(client, "1001", "'; drop table")
    assert bad.status_code == 422 and "entry 2" in bad.text
    assert resync(client).status_code == 422  # nothing to resync
    assert resync(client, *[str(1000 + i) for i in range(1001)]).status_code == 422
    form = client.post("/api/records/resync", data={"records": "1001"})
    assert form.status_code == 415
    rights["trigger"] = False
    assert resync(client, "1001").status_code == 403
    assert triggered == []
