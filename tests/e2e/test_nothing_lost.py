"""Nothing lost, nothing doubled (issue 14), end to end: the holes a code review found, each
reproduced against the sandboxes the way it bit a user."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.e2e.helpers import (
    H,
    freeze,
    lg_client,
    lg_get,
    lg_lead,
    run_dag,
    sf_create,
    sf_find,
    sf_get,
    sf_patch,
    state_store,
)

pytestmark = pytest.mark.e2e

PEOPLE = "sync_leads_contacts"
OPPS = "sync_opportunities"
ENGAGE = "sync_engagement_activities"
H2, H3 = H + timedelta(hours=1), H + timedelta(hours=2)


def sync(dags, dag_id: str, hour, **conf):
    out = run_dag(dags, dag_id, hour, conf)
    assert out.state == "success", out.task_states
    return out.report


def test_an_update_lead_gen_silently_ignores_is_quarantined_not_recorded_as_synced(
    fresh, dags
) -> None:
    """A rep sets a lead's email in Salesforce to one another lead uses: Lead Gen & CRM answers
    success and changes nothing. Before, the new email was recorded as synced and two runs later
    the rep's email was reverted in Salesforce, silently."""
    freeze(fresh, 40)
    ann = lg_lead(fresh, emailAddress="ann@example.com", lastName="Ann", companyName="A")
    bob = lg_lead(fresh, emailAddress="bob@example.com", lastName="Bob", companyName="B")
    sync(dags, PEOPLE, H)
    sf_ann = state_store().links_by_lg("person", [ann])[ann].sf_id
    freeze(fresh, 40, H2)
    sf_patch(fresh, "Lead", sf_ann, Email="bob@example.com")
    report = sync(dags, PEOPLE, H2, max_reject_rate=1.0)
    assert report["leadgen"]["failed"] == 1 and report["rejected_rows"] == 1
    [q] = state_store().quarantined(PEOPLE)
    assert q.category == "not applied" and q.field == "emailAddress"
    assert f"email bob@example.com is already used by lead {bob}" in q.message
    assert lg_get(fresh, ann)["emailAddress"] == "ann@example.com"
    # two more runs: the rep's email stays in Salesforce (never reverted), still quarantined
    for hour in (H3, H3 + timedelta(hours=1)):
        freeze(fresh, 30, hour)
        sync(dags, PEOPLE, hour, max_reject_rate=1.0)
    assert sf_get(fresh, "Lead", sf_ann)["Email"] == "bob@example.com"
    assert state_store().quarantined(PEOPLE)[0].attempts == 3


def test_email_pairing_never_claims_a_record_that_names_another_lead(fresh, dags) -> None:
    """A Salesforce Lead carries lead A's id in its record link; lead B has its email. B must not
    be paired with it (two active links to one record), A must."""
    freeze(fresh, 40)
    a = lg_lead(fresh, emailAddress="a.first@example.com", lastName="A", companyName="A")
    b = lg_lead(fresh, emailAddress="shared@example.com", lastName="B", companyName="B")
    sf_id = sf_create(
        fresh, "Lead", LastName="A", Company="A", Email="shared@example.com", LeadGen_Id__c=a
    )
    # (A's email cannot become shared@ in Lead Gen & CRM while B has it: quarantined, reported)
    sync(dags, PEOPLE, H, max_reject_rate=1.0)
    links = state_store().links_by_lg("person", [a, b])
    assert links[a].sf_id == sf_id
    assert links[b].sf_id != sf_id
    assert len(state_store().links_by_sf("person", [sf_id], active_only=True)[sf_id]) == 1


def test_an_inactive_lead_in_the_quarantine_leaves_it_instead_of_being_retried_forever(
    fresh, dags
) -> None:
    freeze(fresh, 40)
    bad = lg_lead(fresh, emailAddress="inactive@example.com", lastName="Gone")  # no company
    report = sync(dags, PEOPLE, H, max_reject_rate=1.0)
    assert report["rejected_rows"] == 1
    freeze(fresh, 40, H2)
    fresh.lg.post(f"leads/{bad}", {"fields": {"active": "0"}})
    report = sync(dags, PEOPLE, H2, max_reject_rate=1.0)
    assert report["quarantine_resolved"] == 1
    assert state_store().quarantined(PEOPLE) == []
    assert report["events"]["inactive_not_synced"] == 1


def test_a_lost_answer_to_an_opportunity_create_makes_one_opportunity_not_two(fresh, dags) -> None:
    freeze(fresh, 40)
    account = sf_create(fresh, "Account", Name="Lost Answer Co")
    opp = sf_create(
        fresh,
        "Opportunity",
        Name="Lost answer deal",
        StageName="Prospecting",
        CloseDate="2026-12-31",
        Amount=500,
        AccountId=account,
    )
    sync(dags, PEOPLE, H)
    # Lead Gen & CRM applies the create, then the connection drops before the answer
    fresh.lg.post("faults", {"method": "createOpportunities", "fault": "drop_after", "count": 1})
    fresh.lg.post("faults", {"method": "createAccounts", "fault": "drop_after", "count": 1})
    report = sync(dags, OPPS, H)
    opps = [
        o for o in lg_client().get_opportunities({}) if o["opportunityName"] == "Lost answer deal"
    ]
    accounts = [a for a in lg_client().get_accounts({}) if a["accountName"] == "Lost Answer Co"]
    assert len(opps) == 1 and len(accounts) == 1
    [link] = state_store().links_by_sf("opportunity", [opp])[opp]
    assert link.lg_id == str(opps[0]["id"])
    assert report["opportunities"]["created"] == 1 and report["accounts"]["created"] == 1


def test_an_event_held_for_a_week_expires_instead_of_being_reloaded_forever(fresh, dags) -> None:
    freeze(fresh, 40)
    [row] = fresh.lg.post(
        "import", {"leads": [{"emailAddress": "never@example.com", "lastName": "Never"}]}
    )["results"]
    lead = str(row["leadID"])
    fresh.lg.post("page-visits", {"leadID": int(lead), "url": "https://x.example/a"})
    # the lead never links (no company: quarantined by the people sync)
    sync(dags, PEOPLE, H, max_reject_rate=1.0)
    report = sync(dags, ENGAGE, H)
    assert report["events"]["held"] == 1 and report["held_expired"] == 0
    [held] = state_store().held(ENGAGE, "event")
    with state_store().engine.begin() as conn:  # a week goes by
        conn.exec_driver_sql(
            "UPDATE held_items SET first_seen = datetime(first_seen, '-8 days') WHERE id = ?",
            (held.id,),
        )
    freeze(fresh, 40, H2)
    sync(dags, PEOPLE, H2, max_reject_rate=1.0)
    report = sync(dags, ENGAGE, H2)
    assert report["held_expired"] == 1
    assert state_store().held(ENGAGE, "event") == []
    [gone] = state_store().held(ENGAGE, "event", status="expired")
    assert "CRM_SYNC_HELD_EXPIRY_HOURS" in gone.reason
    freeze(fresh, 40, H3)
    sync(dags, PEOPLE, H3, max_reject_rate=1.0)
    again = sync(dags, ENGAGE, H3)
    assert again["extracted"].get("page_visit", 0) == 0 and again["events"].get("held", 0) == 0
    assert sf_find(fresh, "Lead", "never@example.com") == []


def test_a_non_utc_account_syncs_the_right_window(fresh, dags, monkeypatch) -> None:
    """The account's API answers and reads timestamps in New York time; the connection says so
    (extra ``output_timezone``), and the windows are still right: an edit at 09:20 UTC (04:20 in
    New York) is in the 09:00-10:00 run, and the next hour's run does not see it again."""
    import json
    import os

    conn = json.loads(os.environ["AIRFLOW_CONN_LEADGEN_DEFAULT"])
    conn.setdefault("extra", {})["output_timezone"] = "America/New_York"
    monkeypatch.setenv("AIRFLOW_CONN_LEADGEN_DEFAULT", json.dumps(conn))
    fresh.lg.post("config", {"account_timezone": "America/New_York"})
    try:
        freeze(fresh, 40)
        lead = lg_lead(fresh, emailAddress="ny@example.com", lastName="York", companyName="NY")
        report = sync(dags, PEOPLE, H)
        assert report["extracted"]["lead"] == 1 and report["salesforce"]["created"] == 1
        freeze(fresh, 30, H2)
        again = sync(dags, PEOPLE, H2)
        assert again["extracted"]["lead"] == 0  # the 09:20 edit is not in 10:00-11:00
        assert state_store().links_by_lg("person", [lead])
    finally:
        fresh.lg.post("config", {"account_timezone": "UTC"})


def test_a_value_typed_in_the_lead_gen_ui_syncs_decoded_and_echoes_nothing(fresh, dags) -> None:
    """The UI stores "Smith & Sons <EU>" HTML-encoded; Salesforce gets the text, and the next run
    does not take the encoding for a change."""
    freeze(fresh, 40)
    lead = lg_lead(fresh, emailAddress="ui@example.com", lastName="Ui", companyName="X")
    sync(dags, PEOPLE, H)
    freeze(fresh, 40, H2)
    fresh.lg.post(
        f"leads/{lead}", {"fields": {"companyName": "Smith & Sons <EU>"}, "typed_in_ui": True}
    )
    sync(dags, PEOPLE, H2)
    sf_id = state_store().links_by_lg("person", [lead])[lead].sf_id
    assert sf_get(fresh, "Lead", sf_id)["Company"] == "Smith & Sons <EU>"
    freeze(fresh, 30, H3)
    fresh.lg.post(f"leads/{lead}", {"fields": {"title": "Owner"}})  # in the window again
    again = sync(dags, PEOPLE, H3)
    assert again["salesforce"] == {"updated": 1}  # the title only
    assert sf_get(fresh, "Lead", sf_id)["Company"] == "Smith & Sons <EU>"
