"""Sync health: a run's changes (page and API) and its Undo (preview first, then a confirmed
trigger of ``crm_sync_undo`` through Airflow's REST API), over a real state store (TestClient)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.api_fastapi.core_api.security import get_user
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crm_sync.health.app import create_app, dag_edit_check
from crm_sync.health.changes import airflow_trigger, dag_trigger_check
from crm_sync.state.store import SyncStore

pytestmark = pytest.mark.unit

DAG, RUN = "sync_leads_contacts", "manual__2026-11-20T10:25:00+00:00_abc"
PREVIEW = "manual__2026-11-20T10:41:00+00:00_xyz"
JSON = {"Content-Type": "application/json"}


class User:
    def get_name(self) -> str:
        return "rep"


def change(rid: str, fld: str, kind: str = "update", **kw: Any) -> dict[str, Any]:
    return {
        "dag_id": DAG,
        "run_id": RUN,
        "system": kw.pop("system", "salesforce"),
        "object": kw.pop("object", "Lead"),
        "record_id": rid,
        "field": fld,
        "kind": kind,
        "before": kw.pop("before", None),
        "after": kw.pop("after", None),
        "meta": kw.pop("meta", {}),
    }


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = SyncStore(url)
    store.start_run(DAG, RUN, window_start=None, window_end=None, dry_run=False, full_resync=False)
    store.finish_run(DAG, RUN, status="success", report={})
    store.log_changes(
        [change(f"00Q{i:03d}", "Title", before="VP", after=f"CTO {i}") for i in range(120)]
        + [
            change("901", "title", system="leadgen", object="lead", before="Eng", after="Lead"),
            change("00Q999", "", "create", after={"LastName": "New"}),
        ]
    )
    store.dispose()
    return url


@pytest.fixture
def rights() -> dict[str, bool]:
    return {"trigger": True, "edit": True}


@pytest.fixture
def triggered() -> list[tuple[str, dict[str, Any]]]:
    return []


@pytest.fixture
def client(url: str, rights: dict[str, bool], triggered: list) -> Iterator[TestClient]:
    app: FastAPI = create_app(state_url=url)

    def trigger(dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        triggered.append((dag_id, conf))
        return {"dag_run_id": f"manual__{len(triggered)}"}

    app.dependency_overrides[get_user] = User
    app.dependency_overrides[dag_trigger_check] = lambda: lambda dag_id: rights["trigger"]
    app.dependency_overrides[dag_edit_check] = lambda: lambda dag_id: rights["edit"]
    app.dependency_overrides[airflow_trigger] = lambda: trigger
    with TestClient(app) as c:
        yield c
    app.state.store_provider.dispose()


def test_the_api_lists_a_runs_changes_paged_and_filtered(client: TestClient) -> None:
    first = client.get("/api/changes", params={"dag_id": DAG, "run_id": RUN, "limit": 50}).json()
    assert first["total"] == 122 and len(first["items"]) == 50
    assert first["items"][0]["record_id"] == "00Q000"
    assert first["items"][0]["before"] == "VP" and first["items"][0]["after"] == "CTO 0"
    assert {(s["system"], s["kind"], s["entries"]) for s in first["summary"]} == {
        ("salesforce", "update", 120),
        ("leadgen", "update", 1),
        ("salesforce", "create", 1),
    }
    page3 = client.get(
        "/api/changes", params={"dag_id": DAG, "run_id": RUN, "limit": 50, "offset": 100}
    ).json()
    assert len(page3["items"]) == 22
    lg = client.get("/api/changes", params={"dag_id": DAG, "run_id": RUN, "system": "leadgen"})
    assert [i["record_id"] for i in lg.json()["items"]] == ["901"]
    one = client.get("/api/changes", params={"dag_id": DAG, "run_id": RUN, "record": "00Q007"})
    assert [i["after"] for i in one.json()["items"]] == ["CTO 7"]
    by_object = client.get("/api/changes", params={"dag_id": DAG, "run_id": RUN, "object": "lead"})
    assert by_object.json()["total"] == 1
    assert client.get("/api/changes", params={"dag_id": DAG, "run_id": "nope"}).status_code == 404
    bad = client.get("/api/changes", params={"dag_id": DAG, "run_id": RUN, "record": "'; drop"})
    assert bad.status_code == 422


def test_the_page_shows_the_changes_and_offers_undo_only_to_who_may_trigger_it(
    client: TestClient, rights: dict[str, bool]
) -> None:
    params = {"dag_id": DAG, "run_id": RUN, "system": "leadgen"}
    page = client.get("/ui/changes", params=params)
    assert page.status_code == 200
    assert "901" in page.text and "Undo this run" in page.text and 'id="preview"' in page.text
    rights["trigger"] = False
    assert "Undo this run" not in client.get("/ui/changes", params=params).text
    rights.update(trigger=True, edit=False)
    assert "Undo this run" not in client.get("/ui/changes", params=params).text
    missing = client.get("/ui/changes", params={"dag_id": DAG, "run_id": "nope"})
    assert missing.status_code == 404 and "Undo this run" not in missing.text


def test_the_overview_links_each_run_to_its_changes(client: TestClient) -> None:
    page = client.get("/ui/overview").text
    assert (
        "changes?dag_id=sync_leads_contacts&amp;run_id=manual__2026-11-20T10%3A25%3A00%2B00%3A00_abc"
        in page
    )


def undo(client: TestClient, **body: Any) -> Any:
    return client.post(
        "/api/changes/undo", json={"dag_id": DAG, "run_id": RUN, **body}, headers=JSON
    )


def test_undo_is_a_dry_run_first_and_a_confirmed_real_one_after_its_preview(
    client: TestClient, url: str, triggered: list
) -> None:
    resp = undo(client, dry_run=True, delete_created=True)
    assert resp.status_code == 200 and resp.json()["dag_run_id"] == "manual__1"
    assert triggered == [
        ("crm_sync_undo", {"dag_id": DAG, "run_id": RUN, "dry_run": True, "delete_created": True})
    ]
    # a real undo without a confirmation, or without a finished preview of the same undo
    assert undo(client, dry_run=False).status_code == 409
    assert undo(client, dry_run=False, confirm=True, preview_run_id=PREVIEW).status_code == 409
    store = SyncStore(url, migrate=False)
    report = {"target": {"dag_id": DAG, "run_id": RUN}, "delete_created": True}
    store.start_run(
        "crm_sync_undo",
        PREVIEW,
        window_start=None,
        window_end=None,
        dry_run=True,
        full_resync=False,
    )
    assert undo(client, dry_run=False, confirm=True, preview_run_id=PREVIEW).status_code == 409
    store.finish_run("crm_sync_undo", PREVIEW, status="dry_run", report=report)
    other = undo(client, dry_run=False, confirm=True, preview_run_id=PREVIEW, delete_created=False)
    assert other.status_code == 409  # the preview was of an undo that deletes created records
    store.dispose()
    assert len(triggered) == 1
    ok = undo(client, dry_run=False, confirm=True, preview_run_id=PREVIEW, delete_created=True)
    assert ok.status_code == 200
    assert triggered[-1][1] == {
        "dag_id": DAG,
        "run_id": RUN,
        "dry_run": False,
        "delete_created": True,
    }


def test_undo_is_refused_without_the_rights_for_unknown_runs_and_cross_site(
    client: TestClient, rights: dict[str, bool], triggered: list
) -> None:
    rights["trigger"] = False
    assert undo(client).status_code == 403
    rights.update(trigger=True, edit=False)
    assert undo(client).status_code == 403
    rights["edit"] = True
    assert (
        client.post(
            "/api/changes/undo", json={"dag_id": DAG, "run_id": "nope"}, headers=JSON
        ).status_code
        == 404
    )
    form = client.post("/api/changes/undo", data={"dag_id": DAG, "run_id": RUN})
    assert form.status_code == 415
    assert triggered == []


def test_the_trigger_goes_to_airflows_rest_api_with_the_callers_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import requests
    from starlette.requests import Request

    sent: dict[str, Any] = {}

    class Answer:
        status_code, content = 200, b"{}"

        def json(self) -> dict[str, Any]:
            return {"dag_run_id": "manual__9"}

    def post(url: str, **kw: Any) -> Answer:
        sent.update(url=url, **kw)
        return Answer()

    monkeypatch.setattr(requests, "post", post)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.internal:8080/")
    scope = {"type": "http", "headers": [(b"authorization", b"Bearer tok-123")], "method": "POST"}
    trigger = airflow_trigger(Request(scope), User())
    assert trigger("crm_sync_undo", {"run_id": RUN}) == {"dag_run_id": "manual__9"}
    assert sent["url"] == "http://airflow.internal:8080/api/v2/dags/crm_sync_undo/dagRuns"
    assert sent["json"] == {"logical_date": None, "conf": {"run_id": RUN}}
    assert sent["headers"] == {"Authorization": "Bearer tok-123"}
