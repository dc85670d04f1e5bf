"""The Sync health API on a state store filled by real sync runs (not synthetic rows): what a
data engineer sees after the DAGs ran against the sandboxes."""

from __future__ import annotations

import csv
import io
import os
from datetime import timedelta

import pytest
from airflow.api_fastapi.core_api.security import get_user
from fastapi.testclient import TestClient

from crm_sync.health.app import create_app, dag_edit_check
from crm_sync.health.changes import dag_trigger_check
from tests.e2e.helpers import H, freeze, lg_at, lg_lead, run_dag, sf_create, state_store

pytestmark = pytest.mark.e2e

DAG = "sync_leads_contacts"


class _User:
    def get_name(self) -> str:
        return "admin"


def test_every_page_and_endpoint_on_a_store_filled_by_real_runs(fresh, dags) -> None:
    freeze(fresh, 40)
    lead = lg_lead(
        fresh,
        emailAddress="real.one@example.com",
        firstName="Real",
        lastName="One",
        companyName="Real Co",
    )
    bad = lg_lead(fresh, emailAddress="real.bad@example.com", firstName="No", lastName="Company")
    contact = sf_create(fresh, "Contact", LastName="Two", Email="real.two@example.com")
    first = run_dag(dags, DAG, H, conf={"max_reject_rate": 0.5})
    assert first.state == "success", first.task_states
    link = state_store().links_by_lg("person", [lead])[lead]
    fresh.sf.post(
        "actions/delete",
        {"ids": [link.sf_id], "_at": (H + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")},
    )
    fresh.lg.post(
        f"leads/{bad}",
        {"fields": {"title": "still no company"}, "_at": lg_at(20, H + timedelta(hours=1))},
    )
    second = run_dag(dags, DAG, H + timedelta(hours=1), conf={"max_reject_rate": 0.5})
    assert second.state == "success", second.task_states

    app = create_app(state_url=os.environ["AIRFLOW_CONN_SYNC_STATE"])
    app.dependency_overrides[get_user] = lambda: _User()
    app.dependency_overrides[dag_edit_check] = lambda: lambda dag_id: True
    app.dependency_overrides[dag_trigger_check] = lambda: lambda dag_id: True
    with TestClient(app) as c:
        runs = c.get("/api/runs", params={"dag_id": DAG}).json()["runs"]
        assert [r["run_id"] for r in runs] == [second.run_id, first.run_id]
        assert runs[1]["counters"]["salesforce"]["created"] == 1
        assert runs[1]["counters"]["leadgen"]["created"] == 1
        assert runs[0]["counters"]["links"]["deactivated"] == 1
        assert runs[0]["api_calls"]["salesforce"] == second.report["api_calls"]["salesforce"]
        detail = c.get(f"/api/runs/{DAG}/{first.run_id}").json()
        assert detail["report"]["pairs"] == first.report["pairs"]
        budget = c.get("/api/budget").json()
        assert (
            budget["used"]
            == first.report["api_calls"]["salesforce"] + second.report["api_calls"]["salesforce"]
        )
        assert c.get("/api/dags").json()["dags"][0]["dag_id"] == DAG

        q = c.get("/api/quarantine", params={"dag_id": DAG}).json()
        assert q["total"] == 1
        [item] = q["items"]
        assert (
            item["lg_id"] == bad and item["category"] == "required field" and item["attempts"] == 2
        )
        assert "Company" in item["message"]
        groups = c.get("/api/quarantine/groups", params={"dag_id": DAG}).json()
        assert [(g["category"], g["rows"]) for g in groups["groups"]] == [("required field", 1)]
        rows = list(
            csv.DictReader(io.StringIO(c.get("/api/quarantine.csv", params={"dag_id": DAG}).text))
        )
        assert [r["lg_id"] for r in rows] == [bad]
        assert c.get(f"/api/quarantine/{item['id']}").json()["record_key"] == f"lg:{bad}"
        marked = c.post("/api/quarantine/retry", json={"ids": [item["id"]]})
        assert marked.status_code == 200 and marked.json()["marked"] == 1
        assert state_store().quarantined(DAG)[0].status == "retry"

        found = c.get("/api/lookup", params={"q": "real.one@example.com"}).json()
        [rec] = found["records"]
        assert rec["lg_id"] == lead and rec["status"] == "deleted"
        assert [h["event"] for h in rec["history"]] == ["created", "deactivated"]
        by_sf = c.get("/api/lookup", params={"q": contact}).json()
        assert by_sf["records"][0]["sf_id"] == contact
        assert by_sf["records"][0]["synced_values"]["emailAddress"] == "real.two@example.com"

        for page in ("/ui/overview", "/ui/quarantine", f"/ui/lookup?q={lead}"):
            html = c.get(page)
            assert html.status_code == 200 and "Sync health" in html.text
        # an active person can be resynced from the lookup; a deleted one cannot
        assert f'data-record="{lead}"' not in c.get(f"/ui/lookup?q={lead}").text
        two = by_sf["records"][0]["lg_id"]
        assert f'data-record="{two}"' in c.get(f"/ui/lookup?q={contact}").text
        assert bad in c.get("/ui/quarantine").text
    app.state.store_provider.dispose()
