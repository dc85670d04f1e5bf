"""sync_opportunities end to end: real DAG runs (dag.test()) against both sandboxes.

Each test builds a small deal in Salesforce inside the hour that ends at ``H`` (sandbox clocks
frozen there), lets ``sync_leads_contacts`` link the contacts, runs ``sync_opportunities`` and
reads the result back from Lead Gen & CRM through the API and from the sync state store.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import REPO_MAPPINGS
from tests.e2e.helpers import run_dag, state_store

pytestmark = pytest.mark.e2e

DAG = "sync_opportunities"
PEOPLE = "sync_leads_contacts"
H = datetime(2026, 11, 20, 10, tzinfo=UTC)
H2 = H + timedelta(hours=1)


def sf_ts(minutes_before: int, hour: datetime = H) -> str:
    return (hour - timedelta(minutes=minutes_before)).strftime("%Y-%m-%dT%H:%M:%SZ")


def lg_ts(minutes_before: int, hour: datetime = H) -> str:
    return (hour - timedelta(minutes=minutes_before)).strftime("%Y-%m-%d %H:%M:%S")


def freeze(fresh, minutes_before: int, hour: datetime = H) -> None:
    """Freeze both sandbox clocks inside the hour ending at ``hour``."""
    fresh.sf.post("clock", {"now": sf_ts(minutes_before, hour)})
    fresh.lg.post("clock", {"now": lg_ts(minutes_before, hour)})


def sf_create(fresh, sobject: str, **fields: Any) -> str:
    return fresh.sf.post(f"records/{sobject}", fields)["id"]


def sf_patch(fresh, sobject: str, sf_id: str, **fields: Any) -> None:
    r = requests.patch(
        f"{fresh.sf.base}/records/{sobject}/{sf_id}",
        json=fields,
        verify=fresh.sf.verify,
        timeout=60,
    )
    assert r.status_code < 300, r.text


def lg_client():
    from crm_sync.runtime import leadgen_client

    return leadgen_client()


def lg_opportunity(lg_id: str) -> dict[str, Any] | None:
    rows = list(lg_client().get_opportunities({"id": lg_id}))
    return rows[0] if rows else None


def lg_memberships(lg_opp_id: str) -> set[str]:
    """Lead ids on a Lead Gen & CRM opportunity."""
    return {r["leadID"] for r in lg_client().get_opportunity_leads({"opportunityID": lg_opp_id})}


def write_calls(fresh) -> dict[str, dict[str, int]]:
    sf = fresh.sf.get("calls")["by_kind"]
    lg = fresh.lg.get("calls")["by_method"]
    return {
        "salesforce": {k: v for k, v in sf.items() if k in ("collections", "bulk2", "sobject")},
        "leadgen": {k: v for k, v in lg.items() if k.startswith(("create", "update", "delete"))},
    }


def reset_calls(fresh) -> None:
    fresh.sf.post("calls/reset")
    fresh.lg.post("calls/reset")


def people_synced_until(hour: datetime) -> None:
    """Tell the sensor that sync_leads_contacts covered the hour (when nothing changed for it)."""
    state_store().advance_watermark(PEOPLE, "people", hour, "test")


def link(domain: str, sf_id: str):
    links = state_store().links_by_sf(domain, [sf_id], active_only=True).get(sf_id, [])
    assert len(links) == 1, f"{domain} {sf_id}: {links}"
    return links[0]


def person(sf_contact_id: str) -> str:
    return link("person", sf_contact_id).lg_id


def sf_user(fresh, username: str) -> str:
    return next(u["Id"] for u in fresh.sf.get("users")["users"] if u["Username"] == username)


def lg_user(email: str) -> str:
    return next(str(u["id"]) for u in lg_client().get_user_profiles() if u["emailAddress"] == email)


@dataclass
class Deal:
    account: str
    contacts: list[str]
    opportunity: str
    roles: list[str]


def new_deal(fresh, dags, *, stage: str = "Prospecting", contacts: int = 2) -> Deal:
    """An account, ``contacts`` contacts on it, an opportunity with one role per contact (the
    first primary), all made at H-40; the people DAG links the contacts for hour H."""
    freeze(fresh, 40)
    account = sf_create(
        fresh,
        "Account",
        Name="Acme Corp",
        Industry="Technology",
        Phone="+1 555 0100",
        BillingCity="Springfield",
        NumberOfEmployees=250,
    )
    people = [
        sf_create(
            fresh,
            "Contact",
            FirstName=f"Pat{i}",
            LastName="Acme",
            Email=f"pat{i}@acme.example",
            AccountId=account,
        )
        for i in range(contacts)
    ]
    opp = sf_create(
        fresh,
        "Opportunity",
        Name="Acme - Analytics",
        StageName=stage,
        CloseDate="2026-12-31",
        Amount=50000,
        AccountId=account,
        OwnerId=sf_user(fresh, "sally.sales@sandbox.example"),
    )
    roles = [
        sf_create(
            fresh,
            "OpportunityContactRole",
            OpportunityId=opp,
            ContactId=c,
            Role="Decision Maker" if i == 0 else "Evaluator",
            IsPrimary=i == 0,
        )
        for i, c in enumerate(people)
    ]
    out = run_dag(dags, PEOPLE, H)
    assert out.state == "success", out.task_states
    return Deal(account, people, opp, roles)


def synced(dags, hour: datetime = H, **conf: Any):
    out = run_dag(dags, DAG, hour, conf)
    assert out.state == "success", (out.task_states, out.report)
    return out


def custom_field_on_both_sides(tmp_path: Path, monkeypatch) -> str:
    """``Competitor__c`` on Salesforce Opportunities, a "Competitor" opportunity field in Lead Gen
    & CRM, and a copy of the mappings whose opportunities.yaml pulls one into the other. Returns
    the Lead Gen & CRM systemName (generated by the API)."""
    lg = lg_client()
    [res] = lg.create_fields([{"relationship": "opportunity", "label": "Competitor"}])
    assert res.success
    system_name = next(
        f["systemName"]
        for f in lg.get_fields()
        if f["relationship"] == "opportunity" and f["label"] == "Competitor"
    )
    mappings_copy(
        tmp_path,
        monkeypatch,
        "opportunities.yaml",
        "fields:\n",
        f"fields:\n  - {{leadgen: {system_name}, salesforce: Competitor__c, direction: pull}}\n",
    )
    return system_name


def test_new_opportunity_with_two_roles_brings_account_and_memberships(
    fresh, dags, tmp_path, monkeypatch
) -> None:
    fresh.sf.post(
        "schema/fields",
        {"object": "Opportunity", "name": "Competitor__c", "type": "string", "length": 80},
    )
    competitor = custom_field_on_both_sides(tmp_path, monkeypatch)
    deal = new_deal(fresh, dags)
    sf_patch(fresh, "Opportunity", deal.opportunity, Competitor__c="Globex")
    out = synced(dags)
    r = out.report
    assert r["opportunities"]["created"] == 1
    assert r["accounts"]["created"] == 1
    assert r["memberships"]["created"] == 2
    assert r["memberships"]["pending"] == 0
    assert r["deal_stages"]["created"] == 7  # the map's deal stages, made in an empty account
    assert r["quarantined"] == 0

    opp_link = link("opportunity", deal.opportunity)
    lg_opp = lg_opportunity(opp_link.lg_id)
    assert lg_opp["opportunityName"] == "Acme - Analytics"
    assert lg_opp["amount"] == "50000"
    assert lg_opp["probability"] == "10"  # Salesforce's default for Prospecting
    assert lg_opp["closeDate"].startswith("2026-12-31")
    assert (lg_opp["isClosed"], lg_opp["isWon"]) == ("0", "0")
    assert lg_opp["ownerID"] == lg_user("morgan.reyes@northwind-sandbox.example")  # owners.yaml
    assert lg_opp[competitor] == "Globex"  # custom field to custom field
    stages = {s["id"]: s["dealStageName"] for s in lg_client().get_deal_stages()}
    assert stages[lg_opp["dealStageID"]] == "Prospecting"
    account_lg = link("account", deal.account).lg_id
    assert lg_opp["accountID"] == account_lg
    [acc] = list(lg_client().get_accounts({"id": account_lg}))
    assert (acc["accountName"], acc["industry"], acc["numberOfEmployees"]) == (
        "Acme Corp",
        "Technology",
        "250",
    )
    leads = [person(c) for c in deal.contacts]
    assert lg_opp["primaryLeadID"] == leads[0]
    assert lg_memberships(opp_link.lg_id) == set(leads)
    members = state_store().links_by_sf("membership", [deal.opportunity], active_only=True)
    assert {lk.synced_values["lead"] for lk in members[deal.opportunity]} == set(leads)


def test_idle_rerun_writes_nothing(fresh, dags) -> None:
    new_deal(fresh, dags)
    # a dry run first: everything planned and reported, nothing written, no state kept
    reset_calls(fresh)
    dry = synced(dags, dry_run=True)
    assert write_calls(fresh) == {"salesforce": {}, "leadgen": {}}
    assert dry.report["status"] == "dry_run"
    assert dry.report["opportunities"]["would_create"] == 1
    assert dry.report["accounts"]["would_create"] == 1
    assert dry.report["memberships"]["would_create"] == 2
    assert dry.report["deal_stages"]["would_create"] == 7
    assert state_store().all_links("opportunity") == []
    synced(dags)
    reset_calls(fresh)
    again = synced(dags)
    assert write_calls(fresh) == {"salesforce": {}, "leadgen": {}}
    r = again.report
    assert r["planned_rows"] == 0 and r["leadgen"]["writes"] == 0
    assert r["opportunities"]["unchanged"] == r["accounts"]["unchanged"] == 1
    assert r["memberships"]["unchanged"] == 2
    assert "created" not in r["memberships"] and "deleted" not in r["memberships"]


def test_stage_change_moves_the_deal_and_overwrites_a_leadgen_edit(fresh, dags) -> None:
    deal = new_deal(fresh, dags)
    synced(dags)
    opp_lg = link("opportunity", deal.opportunity).lg_id
    # a marketer renames the opportunity in Lead Gen & CRM; then sales moves the stage
    freeze(fresh, 50, H2)
    [res] = lg_client().update_opportunities([{"id": opp_lg, "opportunityName": "Renamed in LG"}])
    assert res.success
    freeze(fresh, 30, H2)
    sf_patch(fresh, "Opportunity", deal.opportunity, StageName="Negotiation/Review")
    people_synced_until(H2)
    reset_calls(fresh)
    out = synced(dags, H2)
    lg_opp = lg_opportunity(opp_lg)
    stages = {s["id"]: s["dealStageName"] for s in lg_client().get_deal_stages()}
    assert stages[lg_opp["dealStageID"]] == "Negotiation"
    assert lg_opp["probability"] == "90"  # Salesforce's default for the new stage came along
    assert lg_opp["opportunityName"] == "Acme - Analytics"  # one way: the LG edit is undone
    assert out.report["opportunities"]["updated"] == 1
    assert out.report["events"]["leadgen_edit_overwritten"] == 1
    assert "opportunityName" in out.report["event_examples"]["leadgen_edit_overwritten"][0]
    assert write_calls(fresh)["leadgen"] == {"updateOpportunities": 1}


def test_amount_change_updates_only_the_amount(fresh, dags) -> None:
    deal = new_deal(fresh, dags)
    synced(dags)
    opp_lg = link("opportunity", deal.opportunity).lg_id
    before = lg_opportunity(opp_lg)
    freeze(fresh, 30, H2)
    sf_patch(fresh, "Opportunity", deal.opportunity, Amount=72500.5)
    people_synced_until(H2)
    reset_calls(fresh)
    out = synced(dags, H2)
    after = lg_opportunity(opp_lg)
    assert after["amount"] == "72500.5"
    assert {k: v for k, v in after.items() if k != "amount"} == {
        k: v for k, v in before.items() if k != "amount"
    }
    assert out.report["opportunities"]["updated"] == 1
    assert out.report["events"].get("leadgen_edit_overwritten", 0) == 0
    assert write_calls(fresh)["leadgen"] == {"updateOpportunities": 1}
    assert link("opportunity", deal.opportunity).synced_values["amount"] == "72500.5"


def test_role_added_and_role_removed_change_the_memberships(fresh, dags) -> None:
    deal = new_deal(fresh, dags, contacts=3)
    synced(dags)
    opp_lg = link("opportunity", deal.opportunity).lg_id
    leads = [person(c) for c in deal.contacts]
    assert lg_memberships(opp_lg) == set(leads)
    freeze(fresh, 30, H2)
    fresh.sf.post("actions/delete", {"ids": [deal.roles[1]]})
    sf_create(
        fresh,
        "OpportunityContactRole",
        OpportunityId=deal.opportunity,
        ContactId=deal.contacts[1],
        Role="Influencer",
    )  # the same person in a second role: still one membership
    fresh.sf.post("actions/delete", {"ids": [deal.roles[2]]})
    people_synced_until(H2)
    reset_calls(fresh)
    out = synced(dags, H2)
    assert lg_memberships(opp_lg) == {leads[0], leads[1]}
    m = out.report["memberships"]
    # Pat1 lost one role and got another: still on the deal, nothing to write for them
    assert (m.get("created", 0), m["deleted"], m["unchanged"]) == (0, 1, 2)
    assert write_calls(fresh)["leadgen"] == {"deleteOpportunityLeads": 1}
    members = state_store().links_by_sf("membership", [deal.opportunity], active_only=True)
    assert sorted(lk.synced_values["lead"] for lk in members[deal.opportunity]) == sorted(leads[:2])
    # a new role for a linked contact that had none before
    freeze(fresh, 20, H2)
    sf_create(
        fresh, "OpportunityContactRole", OpportunityId=deal.opportunity, ContactId=deal.contacts[2]
    )
    out = synced(dags, H2)
    assert lg_memberships(opp_lg) == set(leads)
    assert out.report["memberships"]["created"] == 1


def test_opportunity_deleted_in_salesforce_is_deleted_with_its_memberships(fresh, dags) -> None:
    deal = new_deal(fresh, dags)
    synced(dags)
    opp_lg = link("opportunity", deal.opportunity).lg_id
    freeze(fresh, 30, H2)
    fresh.sf.post("actions/delete", {"ids": [deal.opportunity]})
    people_synced_until(H2)
    reset_calls(fresh)
    out = synced(dags, H2)
    assert lg_opportunity(opp_lg) is None
    assert lg_memberships(opp_lg) == set()
    assert out.report["opportunities"]["deleted"] == 1
    assert write_calls(fresh)["leadgen"] == {"deleteOpportunities": 1}
    [lk] = state_store().links_by_sf("opportunity", [deal.opportunity])[deal.opportunity]
    assert lk.status == "deleted"
    assert state_store().links_by_sf("membership", [deal.opportunity]) == {}
    assert link("account", deal.account)  # the account stays: contacts still refer to it
    reset_calls(fresh)
    synced(dags, H2)
    assert write_calls(fresh)["leadgen"] == {}


def mappings_copy(tmp_path: Path, monkeypatch, name: str, old: str, new: str) -> Path:
    """A copy of include/mappings with one edit in ``name``, used by the runs that follow."""
    target = tmp_path / "mappings"
    shutil.copytree(REPO_MAPPINGS, target)
    text = (target / name).read_text()
    assert old in text
    (target / name).write_text(text.replace(old, new))
    monkeypatch.setenv("CRM_SYNC_MAPPINGS_DIR", str(target))
    return target


def test_unmapped_stage_is_quarantined_then_synced_once_mapped(
    fresh, dags, tmp_path, monkeypatch
) -> None:
    mappings_copy(
        tmp_path,
        monkeypatch,
        "opportunity_stages.yaml",
        "  Negotiation/Review: Negotiation\n",
        "",
    )
    deal = new_deal(fresh, dags, stage="Negotiation/Review")
    good = sf_create(
        fresh,
        "Opportunity",
        Name="Acme - CRM",
        StageName="Qualification",
        CloseDate="2027-01-31",
        AccountId=deal.account,
    )
    out = synced(dags, max_reject_rate=0.6)
    r = out.report
    assert r["opportunities"] == {"created": 1, "quarantined": 1}
    assert r["memberships"]["waiting_for_opportunity"] == 2  # retried with their opportunity
    assert link("opportunity", good)
    assert state_store().links_by_sf("opportunity", [deal.opportunity]) == {}
    [q] = state_store().quarantined(DAG)
    assert (q.sf_id, q.category, q.check, q.field) == (
        deal.opportunity,
        "picklist",
        "picklist:stage_map",
        "dealStageID",
    )
    assert "'Negotiation/Review' has no deal stage" in q.message
    assert "opportunity_stages.yaml" in q.message
    assert any("'Negotiation/Review' is not mapped" in w for w in r["warnings"])
    # the map gets the row: the next run retries the quarantined opportunity by itself
    monkeypatch.delenv("CRM_SYNC_MAPPINGS_DIR")
    people_synced_until(H2)
    out = synced(dags, H2)
    assert out.report["opportunities"]["created"] == 1
    assert out.report["memberships"]["created"] == 2
    assert out.report["quarantine_resolved"] == 1
    assert state_store().quarantined(DAG) == []
    opp_lg = link("opportunity", deal.opportunity).lg_id
    stages = {s["id"]: s["dealStageName"] for s in lg_client().get_deal_stages()}
    assert stages[lg_opportunity(opp_lg)["dealStageID"]] == "Negotiation"


def test_role_whose_contact_links_in_the_next_hour_completes_then(fresh, dags) -> None:
    deal = new_deal(fresh, dags, contacts=1)  # the people run for H links Pat0 only
    freeze(fresh, 20)
    late = sf_create(fresh, "Contact", FirstName="Lee", LastName="Late", Email="lee@acme.example")
    late_role = sf_create(
        fresh, "OpportunityContactRole", OpportunityId=deal.opportunity, ContactId=late
    )
    out = synced(dags)
    assert out.report["memberships"]["created"] == 1
    assert out.report["memberships"]["pending"] == 1
    [held] = state_store().held(DAG, "contact_role")
    assert (held.item_key, held.waiting_for) == (late_role, f"person:{late}")
    # next hour: the contact changes, the people DAG links it; the role's own change is older
    # than this window, so only the held item brings it back
    freeze(fresh, 30, H2)
    sf_patch(fresh, "Contact", late, Title="CFO")
    assert run_dag(dags, PEOPLE, H2).state == "success"
    out = synced(dags, H2)
    assert out.report["extracted"]["OpportunityContactRole"] == 0
    assert out.report["memberships"]["created"] == 1
    assert out.report["memberships"]["completed"] == 1
    assert out.report["memberships"]["pending"] == 0
    opp_lg = link("opportunity", deal.opportunity).lg_id
    assert lg_memberships(opp_lg) == {person(deal.contacts[0]), person(late)}
    assert state_store().held(DAG, "contact_role") == []
    assert [h.item_key for h in state_store().held(DAG, "contact_role", status="delivered")] == [
        late_role
    ]


def test_spec_asking_to_push_opportunities_is_refused_at_load(
    fresh, dags, tmp_path, monkeypatch
) -> None:
    from crm_sync.errors import ConfigError
    from crm_sync.mapping.loader import load_object_spec

    bad = mappings_copy(
        tmp_path,
        monkeypatch,
        "opportunities.yaml",
        "{leadgen: amount, salesforce: Amount, direction: pull",
        "{leadgen: amount, salesforce: Amount, direction: push",
    )
    with pytest.raises(
        ConfigError, match=r"fields\[1\]\.direction: opportunities are synced one way"
    ):
        load_object_spec(bad / "opportunities.yaml")
    freeze(fresh, 40)
    sf_create(fresh, "Opportunity", Name="X", StageName="Prospecting", CloseDate="2026-12-31")
    people_synced_until(H)
    reset_calls(fresh)
    out = run_dag(dags, DAG, H)
    assert out.state == "failed"
    assert out.task_states["prepare"] == "failed"
    assert out.task_states["wait_for_people_sync"] == "success"
    assert out.report is None  # refused before the run even started
    assert write_calls(fresh) == {"salesforce": {}, "leadgen": {}}
    assert fresh.sf.get("calls")["total"] == 0 and fresh.lg.get("calls")["total"] == 0
