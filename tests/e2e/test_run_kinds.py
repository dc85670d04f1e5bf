"""Run kinds end to end (issue 14): "Trigger" syncs up to now in all three DAGs, a backfill syncs
exactly its interval without moving the watermark, and a failed window is always synced by a
later run. (The scheduled kind runs under the real scheduler: test_scheduler_after_demo.py.)"""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest

from tests.e2e.helpers import (
    H,
    at,
    freeze,
    lg_at,
    lg_client,
    lg_get,
    lg_lead,
    run_dag,
    sf_client,
    sf_create,
    sf_get,
    sf_patch,
    state_store,
)

pytestmark = pytest.mark.e2e

PEOPLE = "sync_leads_contacts"
OPPS = "sync_opportunities"
ENGAGE = "sync_engagement_activities"


def now_run(dags, dag_id: str, minutes_after: int, **conf) -> dict:
    """The Trigger button, pressed ``minutes_after`` the hour H (sandbox clocks set to then)."""
    out = run_dag(dags, dag_id, H + timedelta(minutes=minutes_after), conf, now=True)
    assert out.state == "success", out.task_states
    assert out.report["run_kind"] == "now"
    return out.report


def clocks(fresh, minutes_after: int) -> None:
    freeze(fresh, -minutes_after)


def test_trigger_syncs_an_edit_made_a_minute_ago_both_ways(fresh, dags) -> None:
    clocks(fresh, 5)
    lead = lg_lead(fresh, emailAddress="now@example.com", lastName="Now", companyName="Now Inc")
    first = now_run(dags, PEOPLE, 6)
    assert first["salesforce"]["created"] == 1
    sf_id = state_store().links_by_lg("person", [lead])[lead].sf_id
    assert state_store().get_watermark(PEOPLE, "people") == H + timedelta(minutes=6)
    # 40 minutes later a rep edits the lead in Salesforce, a marketer in Lead Gen & CRM, and
    # someone presses Trigger a minute after: no waiting for the next hour
    clocks(fresh, 46)
    sf_patch(fresh, "Lead", sf_id, Title="Head of Ops")
    fresh.lg.post(f"leads/{lead}", {"fields": {"phoneNumber": "+1 555 0111"}})
    again = now_run(dags, PEOPLE, 47)
    assert lg_get(fresh, lead)["title"] == "Head of Ops"
    assert sf_get(fresh, "Lead", sf_id)["Phone"] == "+1 555 0111"
    assert again["window"]["start"] == (H + timedelta(minutes=6 - 5)).isoformat()  # wm - lookback
    assert state_store().get_watermark(PEOPLE, "people") == H + timedelta(minutes=47)


def test_trigger_syncs_an_opportunity_change_and_an_event_made_a_minute_ago(fresh, dags) -> None:
    clocks(fresh, 5)
    account = sf_create(fresh, "Account", Name="Trigger Co")
    contact = sf_create(
        fresh, "Contact", LastName="Tee", Email="tee@example.com", AccountId=account
    )
    opp = sf_create(
        fresh,
        "Opportunity",
        Name="Trigger deal",
        StageName="Prospecting",
        CloseDate="2026-12-31",
        AccountId=account,
    )
    now_run(dags, PEOPLE, 6)
    now_run(dags, OPPS, 7)
    now_run(dags, ENGAGE, 8)
    [link] = state_store().links_by_sf("opportunity", [opp])[opp]
    lead = state_store().links_by_sf("person", [contact])[contact][0].lg_id
    # a minute before the trigger: the deal moves on, the contact opens an email
    clocks(fresh, 40)
    sf_patch(fresh, "Opportunity", opp, StageName="Negotiation/Review")
    job = fresh.lg.post("emails/send", {"subject": "Offer", "leadIDs": [int(lead)]})
    now_run(dags, OPPS, 41)
    [lg_opp] = lg_client().get_opportunities_by_ids([link.lg_id])
    stages = {d["dealStageName"]: str(d["id"]) for d in lg_client().get_deal_stages()}
    assert str(lg_opp["dealStageID"]) == stages["Negotiation"]
    now_run(dags, ENGAGE, 42)
    tasks = list(sf_client().query_by_values("Task", ["Id", "Subject"], "WhoId", [contact]))
    assert [t["Subject"] for t in tasks] == ["Marketing email sent: Offer"]
    assert job["emailJobID"]


def test_a_backfill_syncs_exactly_its_interval_and_never_moves_the_watermark(fresh, dags) -> None:
    clocks(fresh, 5)
    lead = lg_lead(fresh, emailAddress="bf@example.com", lastName="Back", companyName="Fill")
    other = lg_lead(fresh, emailAddress="bf2@example.com", lastName="Other", companyName="O")
    now_run(dags, PEOPLE, 6)
    links = state_store().links_by_lg("person", [lead, other])
    wm = state_store().get_watermark(PEOPLE, "people")
    # an edit made at 07:30 (backdated), synced by a backfill of 07:00-08:00 ...
    sf_patch(
        fresh, "Lead", links[lead].sf_id, Title="Backfilled", _at=at(30, H - timedelta(hours=2))
    )
    # ... and an edit of another person at 10:20, outside that hour: the backfill leaves it
    fresh.lg.post(f"leads/{other}", {"fields": {"title": "Later"}, "_at": lg_at(-20)})
    out = run_dag(dags, PEOPLE, H - timedelta(hours=2))  # the hour that ends at 08:00
    assert out.state == "success" and out.report["run_kind"] == "backfill"
    assert out.report["window"]["end"] == (H - timedelta(hours=2)).isoformat()
    assert lg_get(fresh, lead)["title"] == "Backfilled"
    assert sf_get(fresh, "Lead", links[other].sf_id).get("Title") is None
    assert state_store().get_watermark(PEOPLE, "people") == wm
    # the next Trigger picks the other edit up
    now_run(dags, PEOPLE, 30)
    assert sf_get(fresh, "Lead", links[other].sf_id)["Title"] == "Later"


def test_a_failed_window_is_synced_by_a_later_run_even_after_a_backfill(
    fresh, dags, monkeypatch
) -> None:
    # the failing run's client retries (5 per call, each task attempt) without waiting seconds
    conn = json.loads(os.environ["AIRFLOW_CONN_LEADGEN_DEFAULT"])
    conn.setdefault("extra", {})["backoff_base"] = 0.01
    monkeypatch.setenv("AIRFLOW_CONN_LEADGEN_DEFAULT", json.dumps(conn))
    clocks(fresh, 5)
    lead = lg_lead(fresh, emailAddress="gap@example.com", lastName="Gap", companyName="Gap Co")
    now_run(dags, PEOPLE, 6)
    sf_id = state_store().links_by_lg("person", [lead])[lead].sf_id
    # 10:30: an edit; 10:35: a run that fails (Lead Gen & CRM down for every call it makes)
    clocks(fresh, 30)
    sf_patch(fresh, "Lead", sf_id, Title="Lost?")
    fresh.lg.post("faults", {"method": "*", "fault": "500", "count": 10_000})
    failed = run_dag(dags, PEOPLE, H + timedelta(minutes=35), now=True)
    assert failed.state == "failed"
    fresh.lg.delete("faults")
    assert state_store().get_watermark(PEOPLE, "people") == H + timedelta(minutes=6)
    # a backfill of a later hour succeeds: it must not move the watermark over the gap
    out = run_dag(dags, PEOPLE, H + timedelta(hours=3))
    assert out.state == "success" and out.report["run_kind"] == "backfill"
    assert state_store().get_watermark(PEOPLE, "people") == H + timedelta(minutes=6)
    assert lg_get(fresh, lead)["title"] != "Lost?"  # outside the backfill's hour
    # the next run catches up from the watermark: the 10:30 edit is synced
    later = now_run(dags, PEOPLE, 50)
    assert lg_get(fresh, lead)["title"] == "Lost?"
    assert later["window"]["start"] == (H + timedelta(minutes=1)).isoformat()
