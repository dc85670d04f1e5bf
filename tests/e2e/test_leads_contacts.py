"""sync_leads_contacts end to end: real DAG runs (dag.test()) against both sandboxes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.e2e.conftest import APP_BASE_URL
from tests.e2e.helpers import (
    H,
    at,
    freeze,
    lg_at,
    lg_get,
    lg_lead,
    reset_calls,
    run_dag,
    sf_create,
    sf_find,
    sf_get,
    sf_patch,
    state_store,
    write_calls,
)

pytestmark = pytest.mark.e2e

DAG = "sync_leads_contacts"


def test_new_records_flow_both_ways_with_record_link(fresh, dags) -> None:
    freeze(fresh, 40)
    lead_id = lg_lead(
        fresh,
        emailAddress="ann.lee@example.com",
        firstName="Ann",
        lastName="Lee",
        companyName="Acme",
        title="CTO",
    )
    contact_id = sf_create(
        fresh,
        "Contact",
        FirstName="Bob",
        LastName="Stone",
        Email="Bob.Stone@Example.com",
        Title="VP",
    )
    out = run_dag(dags, DAG, H)
    assert out.state == "success", out.task_states
    report = out.report
    assert report["salesforce"]["created"] == 1
    assert report["leadgen"]["created"] == 1

    [sf_lead] = sf_find(fresh, "Lead", "ann.lee@example.com")
    rec = sf_get(fresh, "Lead", sf_lead["Id"])
    assert rec["LastName"] == "Lee" and rec["Company"] == "Acme" and rec["Title"] == "CTO"
    assert rec["LeadGen_Id__c"] == lead_id
    assert rec["LeadGen_URL__c"] == f"{APP_BASE_URL}/Contacts/View/{lead_id}"

    links = state_store().all_links("person")
    by_sf = {lk.sf_id: lk for lk in links}
    assert by_sf[sf_lead["Id"]].lg_id == lead_id
    contact_link = by_sf[contact_id]
    lg_contact = lg_get(fresh, contact_link.lg_id)
    assert lg_contact["emailAddress"] == "bob.stone@example.com"
    assert lg_contact["leadStatus"] == "contact" and lg_contact["title"] == "VP"
    sf_contact = sf_get(fresh, "Contact", contact_id)
    assert sf_contact["LeadGen_Id__c"] == contact_link.lg_id
    assert sf_contact["LeadGen_URL__c"] == f"{APP_BASE_URL}/Contacts/View/{contact_link.lg_id}"


def test_idle_rerun_writes_nothing(fresh, dags) -> None:
    freeze(fresh, 40)
    lg_lead(
        fresh,
        emailAddress="idle@example.com",
        firstName="Ida",
        lastName="Le",
        companyName="Idle Co",
    )
    sf_create(fresh, "Contact", LastName="Quiet", Email="quiet@example.com")
    first = run_dag(dags, DAG, H)
    assert first.state == "success", first.task_states
    reset_calls(fresh)
    second = run_dag(dags, DAG, H)
    assert second.state == "success", second.task_states
    assert write_calls(fresh) == {"salesforce": {}, "leadgen": {}}
    assert second.report["planned_rows"] == 0
    assert second.report["unchanged"] == second.report["pairs"] == 2


H2 = H + timedelta(hours=1)


def linked_pair(fresh, dags, email: str) -> tuple[str, str]:
    """Create a lead in Lead Gen & CRM, sync it in hour H, return (lead id, Salesforce id)."""
    freeze(fresh, 40)
    lead_id = lg_lead(
        fresh,
        emailAddress=email,
        firstName="Pat",
        lastName="Doe",
        companyName="Doe Inc",
        title="Engineer",
    )
    out = run_dag(dags, DAG, H)
    assert out.state == "success", out.task_states
    link = state_store().links_by_lg("person", [lead_id])[lead_id]
    return lead_id, link.sf_id


def test_two_way_edits_flow_from_the_side_that_changed(fresh, dags) -> None:
    lead_id, sf_id = linked_pair(fresh, dags, "twoway@example.com")
    freeze(fresh, 40, H2)
    fresh.lg.post(f"leads/{lead_id}", {"fields": {"title": "Principal Engineer"}})
    fresh.sf.post("clock", {"now": at(30, H2)})
    sf_patch(fresh, "Lead", sf_id, {"Phone": "+1 555 0100", "Product_Interest__c": "Analytics"})
    out = run_dag(dags, DAG, H2)
    assert out.state == "success", out.task_states
    assert sf_get(fresh, "Lead", sf_id)["Title"] == "Principal Engineer"
    lead = lg_get(fresh, lead_id)
    assert lead["phoneNumber"] == "+1 555 0100"
    assert (
        lead["product_interest_5f1a2b3c4d5e6"] == "Analytics"
    )  # custom field, Salesforce -> Lead Gen & CRM
    assert out.report["events"].get("conflict", 0) == 0


@pytest.mark.parametrize(
    "lg_minutes,sf_minutes,winner",
    [(20, 30, "leadgen"), (30, 20, "salesforce"), (25, 25, "salesforce")],
    ids=["leadgen-newer", "salesforce-newer", "tie-goes-to-salesforce"],
)
def test_true_conflict_newer_change_wins_ties_to_configured_side(
    fresh, dags, lg_minutes, sf_minutes, winner
) -> None:
    lead_id, sf_id = linked_pair(fresh, dags, f"conflict-{winner}-{lg_minutes}@example.com")
    fresh.lg.post(
        f"leads/{lead_id}", {"fields": {"title": "From LeadGen"}, "_at": lg_at(lg_minutes, H2)}
    )
    sf_patch(fresh, "Lead", sf_id, {"Title": "From Salesforce", "_at": at(sf_minutes, H2)})
    out = run_dag(dags, DAG, H2)
    assert out.state == "success", out.task_states
    expected = "From LeadGen" if winner == "leadgen" else "From Salesforce"
    assert sf_get(fresh, "Lead", sf_id)["Title"] == expected
    assert lg_get(fresh, lead_id)["title"] == expected
    assert out.report["events"]["conflict"] == 1


def test_push_field_overrides_and_pull_field_reverts(fresh, dags) -> None:
    lead_id, sf_id = linked_pair(fresh, dags, "pushpull@example.com")
    freeze(fresh, 40, H2)
    # lead score is push: a Salesforce edit is overwritten, never pulled back
    fresh.lg.post(f"leads/{lead_id}/score", {"leadScore": 42})
    sf_patch(fresh, "Lead", sf_id, {"LeadGen_Score__c": 99, "Customer_Tier__c": "Gold"})
    out = run_dag(dags, DAG, H2)
    assert out.state == "success", out.task_states
    assert sf_get(fresh, "Lead", sf_id)["LeadGen_Score__c"] == 42
    lead = lg_get(fresh, lead_id)
    assert lead["leadScore"] == "42"
    assert lead["customer_tier_5f1a2b3c4d5e7"] == "Gold"  # pull: Salesforce -> Lead Gen & CRM
    # a marketer edits the pull-only field: Salesforce wins it back on the next run
    h3 = H2 + timedelta(hours=1)
    fresh.lg.post(
        f"leads/{lead_id}",
        {"fields": {"customer_tier_5f1a2b3c4d5e7": "Platinum"}, "_at": lg_at(30, h3)},
    )
    out = run_dag(dags, DAG, h3)
    assert out.state == "success", out.task_states
    assert lg_get(fresh, lead_id)["customer_tier_5f1a2b3c4d5e7"] == "Gold"


def test_blank_never_overwrites_and_does_not_ping_pong(fresh, dags) -> None:
    lead_id, sf_id = linked_pair(fresh, dags, "blank@example.com")
    sf_patch(fresh, "Lead", sf_id, {"Title": None, "_at": at(30, H2)})
    out = run_dag(dags, DAG, H2)
    assert out.state == "success", out.task_states
    assert lg_get(fresh, lead_id)["title"] == "Engineer"  # the blank did not win
    assert sf_get(fresh, "Lead", sf_id)["Title"] is None  # nor was the user's edit reverted
    reset_calls(fresh)
    again = run_dag(dags, DAG, H2)
    assert again.state == "success"
    assert write_calls(fresh) == {"salesforce": {}, "leadgen": {}}


def test_email_match_pairs_instead_of_duplicating_and_reports_ambiguity(fresh, dags) -> None:
    freeze(fresh, 50)
    existing = sf_create(fresh, "Lead", LastName="Kim", Company="K Corp", Email="Kim@Example.com")
    lead_dup = sf_create(fresh, "Lead", LastName="Wu", Company="W Corp", Email="wu@example.com")
    contact_dup = sf_create(fresh, "Contact", LastName="Wu", Email="wu@example.com")
    freeze(fresh, 40)
    kim = lg_lead(
        fresh, emailAddress="kim@example.com", firstName="Kim", lastName="Kim", companyName="K Corp"
    )
    wu = lg_lead(
        fresh, emailAddress="wu@example.com", firstName="Wu", lastName="Wu", companyName="W Corp"
    )
    out = run_dag(dags, DAG, H)
    assert out.state == "success", out.task_states
    links = state_store().links_by_lg("person", [kim, wu])
    assert links[kim].sf_id == existing
    assert links[wu].sf_id == contact_dup  # a Contact beats a Lead
    assert out.report["events"]["ambiguous_match"] == 1
    assert any(
        contact_dup in d and lead_dup in d for d in out.report["event_examples"]["ambiguous_match"]
    )
    assert len(sf_find(fresh, "Lead", "kim@example.com")) == 1  # no duplicate created
    assert sf_get(fresh, "Lead", existing)["LeadGen_Id__c"] == kim
    assert lg_get(fresh, wu)["leadStatus"] == "contact"  # paired with a Contact: a contact now


def test_three_backfilled_hours_each_sync_only_their_window(fresh, dags) -> None:
    hours = [H - timedelta(hours=2), H - timedelta(hours=1), H]
    ids = []
    for i, hour in enumerate(hours):
        freeze(fresh, 30, hour)
        ids.append(
            lg_lead(
                fresh,
                emailAddress=f"hour{i}@example.com",
                firstName=f"H{i}",
                lastName="Hour",
                companyName="Hours Ltd",
            )
        )
    fresh.sf.post("clock", {"now": None})
    fresh.lg.post("clock", {"now": None})
    synced = []
    for hour in hours:
        out = run_dag(dags, DAG, hour)
        assert out.state == "success", out.task_states
        synced.append(out.report["extracted"]["lead"])
        assert out.report["salesforce"]["created"] == 1
    assert synced == [1, 1, 1]
    assert {lk.lg_id for lk in state_store().all_links("person")} == set(ids)


def test_dry_run_writes_nothing_and_reports_everything(fresh, dags) -> None:
    freeze(fresh, 40)
    lg_lead(
        fresh, emailAddress="dry@example.com", firstName="Dry", lastName="Run", companyName="Dry Co"
    )
    sf_create(fresh, "Contact", LastName="Wet", Email="wet@example.com")
    reset_calls(fresh)
    out = run_dag(dags, DAG, H, conf={"dry_run": True})
    assert out.state == "success", out.task_states
    assert write_calls(fresh) == {"salesforce": {}, "leadgen": {}}
    assert out.report["status"] == "dry_run"
    assert out.report["salesforce"]["would_create"] == 1
    assert out.report["leadgen"]["would_create"] == 1
    assert out.report["planned_rows"] == 2
    assert state_store().all_links("person") == []
    # and the real run afterwards does it all
    real = run_dag(dags, DAG, H)
    assert real.report["salesforce"]["created"] == 1 and real.report["leadgen"]["created"] == 1


def test_spec_with_unknown_field_fails_before_any_write(
    fresh, dags, tmp_path, monkeypatch, caplog
) -> None:
    import shutil

    from tests.e2e.conftest import REPO_MAPPINGS

    bad = tmp_path / "mappings"
    shutil.copytree(REPO_MAPPINGS, bad)
    text = (bad / "leads.yaml").read_text().replace("salesforce: Title,", "salesforce: Titel__c,")
    (bad / "leads.yaml").write_text(text)
    monkeypatch.setenv("CRM_SYNC_MAPPINGS_DIR", str(bad))
    freeze(fresh, 40)
    lg_lead(
        fresh, emailAddress="spec@example.com", firstName="S", lastName="Pec", companyName="Spec Co"
    )
    reset_calls(fresh)
    out = run_dag(dags, DAG, H)
    assert out.state == "failed"
    assert out.task_states["prepare"] == "failed"
    assert write_calls(fresh) == {"salesforce": {}, "leadgen": {}}
    # The preflight (the specs changed, so it runs again) names the field and the fix; the
    # extract never ran, so no record was even read on either side.
    assert "Lead.Titel__c does not exist or is hidden" in caplog.text
    assert {t: out.task_states[t] for t in ("extract_leadgen", "extract_salesforce")} == {
        "extract_leadgen": "upstream_failed",
        "extract_salesforce": "upstream_failed",
    }
    lg_methods = fresh.lg.get("calls")["by_method"]
    assert not [m for m in lg_methods if m.startswith("getLeads")], lg_methods


def test_a_salesforce_record_failure_does_not_stop_the_batch(fresh, dags) -> None:
    fresh.sf.post(
        "schema/validation-rules",
        {
            "object": "Lead",
            "name": "No_Test_Company",
            "field": "Company",
            "condition": {"regex": "^(?!Rejected).*"},
            "message": "Company may not start with Rejected",
        },
    )
    freeze(fresh, 40)
    good = [
        lg_lead(
            fresh,
            emailAddress=f"ok{i}@example.com",
            firstName="Ok",
            lastName=f"L{i}",
            companyName="Fine Inc",
        )
        for i in range(3)
    ]
    bad = lg_lead(
        fresh,
        emailAddress="rejected@example.com",
        firstName="No",
        lastName="Pe",
        companyName="Rejected Corp",
    )
    out = run_dag(dags, DAG, H, conf={"max_reject_rate": 0.5})
    assert out.state == "success", out.task_states
    assert out.report["salesforce"]["created"] == 3
    assert out.report["salesforce"]["failed"] == 1
    links = state_store().links_by_lg("person", good + [bad])
    assert set(links) == set(good)
    [q] = state_store().quarantined(DAG)
    assert (q.lg_id, q.error_code, q.category) == (
        bad,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "validation rule",
    )
    assert "Company may not start with Rejected" in q.message


def test_salesforce_duplicates_by_email_make_one_lead_not_two(fresh, dags) -> None:
    freeze(fresh, 40)
    lead = sf_create(fresh, "Lead", LastName="Dup", Company="D", Email="dup@example.com")
    contact = sf_create(fresh, "Contact", LastName="Dup", Email="Dup@Example.com")
    other = sf_create(fresh, "Lead", LastName="Dup2", Company="D", Email="dup@example.com")
    out = run_dag(dags, DAG, H)
    assert out.state == "success", out.task_states
    assert out.report["leadgen"]["created"] == 1
    [link] = state_store().all_links("person")
    assert link.sf_id == contact  # the Contact stands for the person
    assert out.report["events"]["duplicate_in_salesforce"] == 2
    assert all(
        x in " ".join(out.report["event_examples"]["duplicate_in_salesforce"])
        for x in (lead, other)
    )
    assert sf_get(fresh, "Lead", lead)["LeadGen_Id__c"] is None  # the duplicates are left alone
    reset_calls(fresh)
    assert run_dag(dags, DAG, H).state == "success"
    assert write_calls(fresh) == {"salesforce": {}, "leadgen": {}}
