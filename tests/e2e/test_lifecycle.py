"""Leads/contacts lifecycle end to end: deletion -> deactivation, reactivation, undelete,
conversion, merges, owners, lead score, record link."""

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

H2, H3 = H + timedelta(hours=1), H + timedelta(hours=2)


def synced_lead(fresh, dags, email: str, **fields) -> tuple[str, str]:
    freeze(fresh, 40)
    lead_id = lg_lead(
        fresh,
        emailAddress=email,
        firstName="Lee",
        lastName=fields.pop("lastName", "Cycle"),
        companyName="Cycle Co",
        **fields,
    )
    out = run_dag(dags, DAG, H)
    assert out.state == "success", out.task_states
    return lead_id, state_store().links_by_lg("person", [lead_id])[lead_id].sf_id


def events_of(lead_id: str) -> list[str]:
    return [e.event for e in state_store().link_events("person", lg_id=lead_id)]


def test_delete_deactivates_then_form_fill_relinks_to_a_fresh_lead(fresh, dags) -> None:
    lead_id, sf_id = synced_lead(fresh, dags, "gone@example.com")
    fresh.sf.post("actions/delete", {"ids": [sf_id], "_at": at(30, H2)})
    out = run_dag(dags, DAG, H2)
    assert out.state == "success", out.task_states
    assert lg_get(fresh, lead_id)["active"] == "0"
    assert state_store().links_by_lg("person", [lead_id])[lead_id].status == "deleted"
    assert out.report["events"]["deleted"] == 1
    assert out.report["leadgen"]["deactivated"] == 1
    # the sync never re-creates a deleted record on its own
    reset_calls(fresh)
    again = run_dag(dags, DAG, H2)
    assert again.state == "success"
    assert write_calls(fresh) == {"salesforce": {}, "leadgen": {}}
    assert sf_find(fresh, "Lead", "gone@example.com") == []
    # the lead fills out a form: reactivated in Lead Gen & CRM -> a new Salesforce Lead, relinked
    fresh.lg.post(
        "forms/submit",
        {"emailAddress": "gone@example.com", "formName": "Comeback", "_at": lg_at(30, H3)},
    )
    out = run_dag(dags, DAG, H3)
    assert out.state == "success", out.task_states
    [new] = sf_find(fresh, "Lead", "gone@example.com")
    assert new["Id"] != sf_id and new["LeadGen_Id__c"] == lead_id
    link = state_store().links_by_lg("person", [lead_id])[lead_id]
    assert (link.sf_id, link.status) == (new["Id"], "active")
    assert events_of(lead_id) == ["created", "deactivated", "relinked"]
    assert out.report["events"]["reactivated"] == 1


def test_undelete_restores_the_old_link(fresh, dags) -> None:
    lead_id, sf_id = synced_lead(fresh, dags, "back@example.com")
    fresh.sf.post("actions/delete", {"ids": [sf_id], "_at": at(40, H2)})
    assert run_dag(dags, DAG, H2).state == "success"
    assert lg_get(fresh, lead_id)["active"] == "0"
    fresh.sf.post("actions/undelete", {"ids": [sf_id], "_at": at(30, H3)})
    out = run_dag(dags, DAG, H3)
    assert out.state == "success", out.task_states
    link = state_store().links_by_lg("person", [lead_id])[lead_id]
    assert (link.sf_id, link.status) == (sf_id, "active")
    assert lg_get(fresh, lead_id)["active"] == "1"
    assert events_of(lead_id) == ["created", "deactivated", "undeleted"]
    assert len(sf_find(fresh, "Lead", "back@example.com")) == 1


def test_conversion_moves_the_link_and_later_edits_flow_both_ways(fresh, dags) -> None:
    lead_id, sf_id = synced_lead(fresh, dags, "convert@example.com")
    conv = fresh.sf.post(
        "actions/convert-lead", {"leadId": sf_id, "doNotCreateOpportunity": True, "_at": at(30, H2)}
    )
    contact_id = conv["contactId"]
    out = run_dag(dags, DAG, H2)
    assert out.state == "success", out.task_states
    link = state_store().links_by_lg("person", [lead_id])[lead_id]
    assert (link.sf_object, link.sf_id) == ("Contact", contact_id)
    assert lg_get(fresh, lead_id)["leadStatus"] == "contact"
    contact = sf_get(fresh, "Contact", contact_id)
    assert contact["LeadGen_Id__c"] == lead_id
    assert contact["LeadGen_URL__c"] == f"{APP_BASE_URL}/Contacts/View/{lead_id}"
    # edits on both sides after the conversion: no write ever targets the converted Lead
    fresh.lg.post(f"leads/{lead_id}", {"fields": {"title": "Director"}, "_at": lg_at(30, H3)})
    sf_patch(fresh, "Contact", contact_id, {"Phone": "+1 555 0142", "_at": at(25, H3)})
    out = run_dag(dags, DAG, H3)
    assert out.state == "success", out.task_states
    assert sf_get(fresh, "Contact", contact_id)["Title"] == "Director"
    assert lg_get(fresh, lead_id)["phoneNumber"] == "+1 555 0142"
    assert out.report["quarantined"] == 0
    assert "converted" in events_of(lead_id)


def test_merge_moves_the_link_to_the_master(fresh, dags) -> None:
    freeze(fresh, 45)
    master = sf_create(
        fresh, "Contact", FirstName="Mia", LastName="Master", Email="mia@example.com"
    )
    lead_id, loser = synced_lead(fresh, dags, "loser@example.com", lastName="Loser")
    # the loser was created in Salesforce as a Lead by the sync; merge leads of the same kind:
    # make a second Lead the master instead
    fresh.sf.post("clock", {"now": at(50, H2)})
    master_lead = sf_create(
        fresh, "Lead", LastName="Master", Company="Cycle Co", Email="master.lead@example.com"
    )
    fresh.sf.post(
        "actions/merge",
        {"object": "Lead", "masterId": master_lead, "mergeIds": [loser], "_at": at(30, H2)},
    )
    out = run_dag(dags, DAG, H2)
    assert out.state == "success", out.task_states
    link = state_store().links_by_lg("person", [lead_id])[lead_id]
    assert (link.sf_id, link.status) == (master_lead, "active")
    assert "merged" in events_of(lead_id)
    assert out.report["events"]["merged"] == 1
    assert master  # the unrelated contact stays linked to its own lead
    assert sf_get(fresh, "Lead", master_lead)["LeadGen_Id__c"] == lead_id


def test_mapped_owner_syncs_both_ways_unmapped_is_reported_not_written(fresh, dags) -> None:
    users = {u["Username"]: u["Id"] for u in fresh.sf.get("users")["users"]}
    sally, priya = users["sally.sales@sandbox.example"], users["priya.patel@sandbox.example"]
    morgan, nair, hannah = (
        "313361052",
        "313361053",
        "313361055",
    )  # Lead Gen & CRM users (owners.yaml)
    lead_id, sf_id = synced_lead(fresh, dags, "owner@example.com", ownerID=morgan)
    assert sf_get(fresh, "Lead", sf_id)["OwnerId"] == sally  # Morgan -> Sally
    # Lead Gen & CRM reassigns to Priya Nair -> Salesforce owner becomes Priya Patel
    fresh.lg.post(f"leads/{lead_id}", {"fields": {"ownerID": nair}, "_at": lg_at(30, H2)})
    assert run_dag(dags, DAG, H2).state == "success"
    assert sf_get(fresh, "Lead", sf_id)["OwnerId"] == priya
    # Salesforce reassigns back to Sally -> Lead Gen & CRM owner becomes Morgan
    sf_patch(fresh, "Lead", sf_id, {"OwnerId": sally, "_at": at(30, H3)})
    assert run_dag(dags, DAG, H3).state == "success"
    assert lg_get(fresh, lead_id)["ownerID"] == morgan
    # an unmapped owner (Hannah has no Salesforce account) is never written, and is reported
    h4 = H3 + timedelta(hours=1)
    fresh.lg.post(f"leads/{lead_id}", {"fields": {"ownerID": hannah}, "_at": lg_at(30, h4)})
    out = run_dag(dags, DAG, h4)
    assert out.state == "success"
    assert sf_get(fresh, "Lead", sf_id)["OwnerId"] == sally
    assert out.report["events"]["owner_unmapped_lg"] == 1
    assert any(hannah in d for d in out.report["event_examples"]["owner_unmapped_lg"])


def test_record_link_is_written_on_existing_records_paired_by_email(fresh, dags) -> None:
    freeze(fresh, 50)
    existing = sf_create(fresh, "Contact", LastName="Known", Email="known@example.com")
    freeze(fresh, 40)
    lead_id = lg_lead(fresh, emailAddress="known@example.com", firstName="Kay", lastName="Known")
    assert run_dag(dags, DAG, H).state == "success"
    rec = sf_get(fresh, "Contact", existing)
    assert rec["LeadGen_Id__c"] == lead_id
    assert rec["LeadGen_URL__c"] == f"{APP_BASE_URL}/Contacts/View/{lead_id}"
    # a salesperson clears the link by mistake: the next run repairs it
    sf_patch(fresh, "Contact", existing, {"LeadGen_URL__c": None, "_at": at(30, H2)})
    assert run_dag(dags, DAG, H2).state == "success"
    assert (
        sf_get(fresh, "Contact", existing)["LeadGen_URL__c"]
        == f"{APP_BASE_URL}/Contacts/View/{lead_id}"
    )


def test_merging_two_linked_records_is_reported_not_collapsed(fresh, dags) -> None:
    freeze(fresh, 40)
    a = lg_lead(
        fresh,
        emailAddress="twin.a@example.com",
        firstName="Ann",
        lastName="Twin",
        companyName="Twins",
    )
    b = lg_lead(
        fresh,
        emailAddress="twin.b@example.com",
        firstName="Bea",
        lastName="Twin",
        companyName="Twins",
    )
    assert run_dag(dags, DAG, H).state == "success"
    links = state_store().links_by_lg("person", [a, b])
    fresh.sf.post(
        "actions/merge",
        {
            "object": "Lead",
            "masterId": links[a].sf_id,
            "mergeIds": [links[b].sf_id],
            "_at": at(30, H2),
        },
    )
    out = run_dag(dags, DAG, H2)
    assert out.state == "success", out.task_states
    assert out.report["events"]["merge_collision"] == 1
    links = state_store().links_by_lg("person", [a, b])
    assert (links[a].status, links[b].status) == ("active", "collision")
    assert links[b].sf_id == links[a].sf_id
    assert lg_get(fresh, b)["active"] == "1"  # not deactivated: both leads are kept for a human
    # no ping-pong between the two leads over the shared Salesforce record
    reset_calls(fresh)
    fresh.lg.post(f"leads/{b}", {"fields": {"title": "Changed after merge"}, "_at": lg_at(30, H3)})
    out = run_dag(dags, DAG, H3)
    assert out.state == "success"
    assert write_calls(fresh) == {"salesforce": {}, "leadgen": {}}
    assert out.report["events"]["merge_collision"] == 1
