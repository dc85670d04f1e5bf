"""The Salesforce API budget against the sandbox's own call counter: a run that would exceed it
stops writing cleanly, reports it, alerts, and the next run finishes the job."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import H, freeze, reset_calls, run_dag, state_store

pytestmark = pytest.mark.e2e

DAG = "sync_leads_contacts"


def test_budget_stops_writing_cleanly_and_the_next_run_resumes(
    fresh, dags, monkeypatch, caplog
) -> None:
    # every run describes: the dry run below then costs what the real run's reads cost
    monkeypatch.setenv("CRM_SYNC_SCHEMA_TTL_MINUTES", "0")
    freeze(fresh, 40)
    fresh.lg.post(
        "import",
        {
            "leads": [
                {
                    "emailAddress": f"budget{i}@example.com",
                    "lastName": f"B{i}",
                    "companyName": "Budget Co",
                }
                for i in range(450)
            ]
        },
    )
    # what reading and planning this window costs, measured with a dry run
    reset_calls(fresh)
    dry = run_dag(dags, DAG, H, conf={"dry_run": True})
    assert dry.state == "success"
    reads = fresh.sf.get("calls")["total"]
    assert reads == dry.report["api_calls"]["salesforce"]
    # the cap leaves this run room for its reads and exactly one write call (200 records)
    monkeypatch.setenv("CRM_SYNC_SF_API_BUDGET", str(2 * reads + 1))
    reset_calls(fresh)
    out = run_dag(dags, DAG, H)
    assert out.state == "success", out.task_states  # not a failure: nothing is wrong with the data
    calls = fresh.sf.get("calls")
    assert calls["total"] == reads + 1
    assert calls["by_kind"].get("collections") == 1
    assert out.report["status"] == "budget_exhausted"
    assert out.report["salesforce"]["created"] == 200
    assert (
        out.report["budget"]["remaining"] == 0
        and "budget reached" in out.report["budget"]["stopped"]
    )
    assert state_store().get_watermark(DAG, "people") is None  # the window is not done
    assert state_store().count_links("person") == 200
    alerts = [r.getMessage() for r in caplog.records if r.name == "crm_sync.alerts"]
    assert any(
        a.startswith("[crm-sync] sync_leads_contacts run") and "budget_exhausted" in a
        for a in alerts
    )
    # a new day's budget: the same window again writes the rest, and nothing twice
    monkeypatch.setenv("CRM_SYNC_SF_API_BUDGET", "100000")
    reset_calls(fresh)
    again = run_dag(dags, DAG, H)
    assert again.state == "success" and again.report["status"] == "success"
    assert again.report["salesforce"]["created"] == 250
    assert state_store().count_links("person") == 450
    assert len({lk.sf_id for lk in state_store().all_links("person")}) == 450


def test_an_exhausted_budget_skips_the_run_before_reading(fresh, dags, monkeypatch) -> None:
    monkeypatch.setenv("CRM_SYNC_SF_API_BUDGET", "0")
    freeze(fresh, 40)
    fresh.lg.post(
        "import",
        {"leads": [{"emailAddress": "skip@example.com", "lastName": "S", "companyName": "C"}]},
    )
    reset_calls(fresh)
    out = run_dag(dags, DAG, H)
    assert out.state == "success"
    assert out.task_states["prepare"] == "skipped"
    assert fresh.sf.get("calls")["total"] == 0
    run = state_store().get_run(DAG, out.run_id)
    assert run.status == "budget_exhausted" and "CRM_SYNC_SF_API_BUDGET" in run.message
