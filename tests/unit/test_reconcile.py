"""Reconcile: per-field direction rules, conflicts, ties, blanks, echo suppression."""

from __future__ import annotations

import pytest

from crm_sync.domains.people.plan import new_lead_fields
from crm_sync.mapping.loader import load_object_spec, spec_path
from crm_sync.mapping.models import FieldMapping, Side
from crm_sync.mapping.owners import OwnerMap
from crm_sync.pipeline.reconcile import ReconcileContext, decide, reconcile
from tests.unit.schema_fixtures import sandbox_like_schema

pytestmark = pytest.mark.unit


def row(direction: str, blank: str = "keep") -> FieldMapping:
    return FieldMapping(leadgen="title", salesforce="Title", direction=direction, blank=blank)


def d(
    direction,
    a,
    b,
    last=None,
    *,
    has_last=True,
    lg_newer=None,
    tie=Side.SALESFORCE,
    blank="keep",
    linked=True,
):
    return decide(
        row(direction, blank),
        a,
        b,
        last,
        linked=linked,
        has_last=has_last,
        lg_newer=lg_newer,
        tie=tie,
    )


def test_equal_values_are_never_written() -> None:
    for direction in ("push", "pull", "two-way"):
        r = d(direction, "x", "x", "old")
        assert not r.write_sf and not r.write_lg and r.agreed


def test_push_writes_salesforce_pull_writes_leadgen() -> None:
    assert d("push", "a", "b", "b").write_sf and not d("push", "a", "b", "b").write_lg
    r = d("pull", "a", "b", "a")
    assert r.write_lg and not r.write_sf and r.value == "b"


def test_push_overrides_even_when_only_salesforce_changed() -> None:
    r = d("push", "same", "edited-in-sf", "same")
    assert r.write_sf and r.value == "same"


def test_two_way_one_side_changed_wins_from_that_side() -> None:
    r = d("two-way", "new", "old", "old")
    assert r.write_sf and r.value == "new" and not r.conflict
    r = d("two-way", "old", "new", "old")
    assert r.write_lg and r.value == "new" and not r.conflict


def test_two_way_true_conflict_goes_to_newer_record() -> None:
    r = d("two-way", "lg-edit", "sf-edit", "old", lg_newer=True)
    assert r.conflict and r.write_sf and r.value == "lg-edit"
    r = d("two-way", "lg-edit", "sf-edit", "old", lg_newer=False)
    assert r.conflict and r.write_lg and r.value == "sf-edit"


def test_two_way_tie_goes_to_configured_side() -> None:
    r = d("two-way", "lg-edit", "sf-edit", "old", lg_newer=None, tie=Side.SALESFORCE)
    assert r.write_lg and r.value == "sf-edit"
    r = d("two-way", "lg-edit", "sf-edit", "old", lg_newer=None, tie=Side.LEADGEN)
    assert r.write_sf and r.value == "lg-edit"


def test_blank_never_overwrites_by_default() -> None:
    assert not d("push", None, "b", "b").write_sf
    assert not d("pull", "a", None, "a").write_lg
    r = d("two-way", "a", None, "a")  # cleared in Salesforce
    assert not r.write_lg and not r.write_sf and not r.agreed


def test_blank_overwrites_when_the_row_says_so() -> None:
    assert d("push", None, "b", "b", blank="overwrite").write_sf
    r = d("two-way", "a", None, "a", blank="overwrite")
    assert r.write_lg and r.value is None


def test_first_pairing_fills_blanks_from_either_side() -> None:
    r = d("two-way", None, "sf", None, has_last=False, linked=False, lg_newer=True)
    assert r.write_lg and r.value == "sf"
    r = d("two-way", "lg", None, None, has_last=False, linked=False, lg_newer=False)
    assert r.write_sf and r.value == "lg"


def test_direction_none_does_nothing() -> None:
    r = d("none", "a", "b", "c")
    assert not (r.write_lg or r.write_sf)


# -- whole pairs ---------------------------------------------------------------------------

SF_ID = "00Q000000000001AAA"


def ctx(owners: OwnerMap | None = None) -> ReconcileContext:
    return ReconcileContext(
        specs={
            "Lead": load_object_spec(spec_path("leads")),
            "Contact": load_object_spec(spec_path("contacts")),
        },
        schema=sandbox_like_schema(),
        owners=owners or OwnerMap(),
        app_base_url="https://app.example",
        create_defaults=new_lead_fields,  # what the people DAG gives a new lead
    )


def lg_rec(**kw):
    base = {
        "id": "11",
        "emailAddress": "ann@example.com",
        "firstName": "Ann",
        "lastName": "Lee",
        "companyName": "Acme",
        "leadStatus": "open",
        "active": "1",
        "updateTimestamp": "2026-11-27 09:00:00",
    }
    base.update(kw)
    return base


def sf_rec(**kw):
    base = {
        "Id": SF_ID,
        "Email": "ann@example.com",
        "FirstName": "Ann",
        "LastName": "Lee",
        "Company": "Acme",
        "LeadGen_Id__c": "11",
        "LeadGen_URL__c": "https://app.example/Contacts/View/11",
        "LastModifiedDate": "2026-11-27T08:00:00.000+0000",
        "IsDeleted": False,
    }
    base.update(kw)
    return base


LAST = {
    "emailAddress": "ann@example.com",
    "firstName": "Ann",
    "lastName": "Lee",
    "companyName": "Acme",
}


def pair(lg=None, sf=None, link=True, last=LAST, **kw):
    p = {
        "pair": "lg:11",
        "lg": lg,
        "sf": sf,
        "sf_object": "Lead",
        "match": "link" if link else "new",
        "link": {"lg_id": "11", "sf_id": SF_ID, "sf_object": "Lead", "synced_values": dict(last)}
        if link
        else None,
    }
    p.update(kw)
    return p


def test_idle_pair_plans_nothing() -> None:
    [plan] = reconcile([pair(lg_rec(), sf_rec())], ctx())
    assert plan.sf_op is None and plan.lg_op is None
    # the first pass records the agreed blanks too, so the next one has nothing left to record
    assert plan.agreed_now["title"] is None
    [again] = reconcile([pair(lg_rec(), sf_rec(), last={**LAST, **plan.agreed_now})], ctx())
    assert again.sf_op is None and again.lg_op is None and again.agreed_now == {}


def test_edit_in_leadgen_updates_salesforce_only() -> None:
    [plan] = reconcile([pair(lg_rec(firstName="Anne"), sf_rec())], ctx())
    assert plan.sf_op == "update"
    assert plan.sf_payload == {"FirstName": "Anne", "Id": SF_ID}
    assert plan.agreed_if_sf == {"firstName": "Anne"}
    assert plan.lg_op is None


def test_edit_in_salesforce_updates_leadgen_only() -> None:
    [plan] = reconcile([pair(lg_rec(), sf_rec(Company="Acme Corp"))], ctx())
    assert plan.lg_op == "update"
    assert plan.lg_payload == {"companyName": "Acme Corp", "id": "11"}
    assert plan.sf_op is None


def test_record_link_is_repaired_on_linked_records() -> None:
    [plan] = reconcile([pair(lg_rec(), sf_rec(LeadGen_Id__c=None, LeadGen_URL__c=None))], ctx())
    assert plan.sf_payload == {
        "LeadGen_Id__c": "11",
        "LeadGen_URL__c": "https://app.example/Contacts/View/11",
        "Id": SF_ID,
    }


def test_new_leadgen_record_creates_salesforce_lead_with_link_fields() -> None:
    [plan] = reconcile([pair(lg_rec(leadScore="35", title="CTO"), None, link=False)], ctx())
    assert plan.sf_op == "create"
    assert plan.sf_payload["LeadGen_Id__c"] == "11"
    assert plan.sf_payload["LeadGen_URL__c"] == "https://app.example/Contacts/View/11"
    assert plan.sf_payload["LeadGen_Score__c"] == 35.0
    assert plan.sf_payload["Title"] == "CTO"
    assert plan.sf_payload["Company"] == "Acme"
    # pull-only fields are not sent on create
    assert "Customer_Tier__c" not in plan.sf_payload


def test_new_salesforce_contact_creates_leadgen_contact() -> None:
    p = {
        "pair": "sf:003X",
        "lg": None,
        "sf": sf_rec(Id="003000000000001AAA", Customer_Tier__c="Gold"),
        "sf_object": "Contact",
        "match": "new",
        "link": None,
    }
    [plan] = reconcile([p], ctx())
    assert plan.lg_op == "create"
    assert plan.lg_payload["leadStatus"] == "contact"
    assert plan.lg_payload["customer_tier_5f1a2b3c4d5e7"] == "Gold"
    assert plan.lg_payload["emailAddress"] == "ann@example.com"
    # lead score is push-only: never written to Lead Gen & CRM
    assert "leadScore" not in plan.lg_payload


def test_lead_score_edit_in_salesforce_is_overwritten_not_pulled() -> None:
    last = {**LAST, "leadScore": "20"}
    [plan] = reconcile(
        [pair(lg_rec(leadScore="20"), sf_rec(LeadGen_Score__c=99), last=last)], ctx()
    )
    assert plan.sf_payload.get("LeadGen_Score__c") == 20.0
    assert "leadScore" not in plan.lg_payload


def test_conflict_is_reported() -> None:
    lg = lg_rec(title="CEO", updateTimestamp="2026-11-27 09:30:00")
    sf = sf_rec(Title="CTO", LastModifiedDate="2026-11-27T09:00:00.000+0000")
    [plan] = reconcile([pair(lg, sf, last={**LAST, "title": "VP"})], ctx())
    assert plan.conflicts == [
        {"field": "title", "winner": "leadgen", "leadgen": "CEO", "salesforce": "CTO"}
    ]
    assert plan.sf_payload["Title"] == "CEO"


def test_unmapped_leadgen_owner_is_not_written_and_reported() -> None:
    owners = OwnerMap(lg_to_sf={"1": "005000000000001AAA"}, sf_to_lg={"005000000000001AAA": "1"})
    last = {**LAST, "ownerID": "005000000000001AAA"}
    [plan] = reconcile(
        [pair(lg_rec(ownerID="2"), sf_rec(OwnerId="005000000000001AAA"), last=last)], ctx(owners)
    )
    assert "OwnerId" not in plan.sf_payload
    assert any(e["event"] == "owner_unmapped_lg" for e in plan.events)


def test_mapped_owner_change_flows_both_ways() -> None:
    owners = OwnerMap(
        lg_to_sf={"1": "005000000000001AAA", "2": "005000000000002AAA"},
        sf_to_lg={"005000000000001AAA": "1", "005000000000002AAA": "2"},
    )
    last = {**LAST, "ownerID": "005000000000001AAA"}
    [plan] = reconcile(
        [pair(lg_rec(ownerID="2"), sf_rec(OwnerId="005000000000001AAA"), last=last)], ctx(owners)
    )
    assert plan.sf_payload["OwnerId"] == "005000000000002AAA"
    [plan] = reconcile(
        [pair(lg_rec(ownerID="1"), sf_rec(OwnerId="005000000000002AAA"), last=last)], ctx(owners)
    )
    assert plan.lg_payload["ownerID"] == "2"


FALLBACK_SF, FALLBACK_LG = "005000000000009AAA", "9"


def test_the_fallback_owner_of_a_new_record_never_flows_back_over_an_unmapped_owner() -> None:
    """A lead whose owner has no Salesforce user is created there with the fallback owner; the
    next runs must not rewrite the lead's owner to the fallback's Lead Gen & CRM user."""
    owners = OwnerMap(
        lg_to_sf={FALLBACK_LG: FALLBACK_SF},
        sf_to_lg={FALLBACK_SF: FALLBACK_LG},
        fallback_sf=FALLBACK_SF,
    )
    [created] = reconcile([pair(lg_rec(ownerID="7"), None, link=False)], ctx(owners))
    assert created.sf_op == "create" and created.sf_payload["OwnerId"] == FALLBACK_SF
    agreed = {**LAST, **created.agreed_if_sf}
    # the next run, both sides unchanged: nothing to write, the fallback becomes the baseline
    [plan] = reconcile(
        [pair(lg_rec(ownerID="7"), sf_rec(OwnerId=FALLBACK_SF), last=agreed)], ctx(owners)
    )
    assert "ownerID" not in plan.lg_payload and "OwnerId" not in plan.sf_payload
    assert plan.agreed_now.get("ownerID") == FALLBACK_SF
    # a rep in Salesforce reassigns the lead to a mapped user: that still flows
    owners.sf_to_lg["005000000000002AAA"] = "2"
    owners.lg_to_sf["2"] = "005000000000002AAA"
    last = {**agreed, "ownerID": FALLBACK_SF}
    [plan] = reconcile(
        [pair(lg_rec(ownerID="7"), sf_rec(OwnerId="005000000000002AAA"), last=last)], ctx(owners)
    )
    assert plan.lg_payload["ownerID"] == "2"
