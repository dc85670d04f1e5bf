"""Opportunities, accounts and memberships: each live, synced record once on each side."""

from __future__ import annotations

import pytest

from crm_sync.verify import opportunities
from tests.unit import test_verify_fakes as fk
from tests.unit.test_verify_fakes import store_fixture  # noqa: F401 (the store fixture)

pytestmark = pytest.mark.unit


O1, O2 = fk.sf_id("006", 1), fk.sf_id("006", 2)
A1, A2 = fk.sf_id("001", 1), fk.sf_id("001", 2)
C1, C2 = fk.sf_id("003", 1), fk.sf_id("003", 2)
R1, R2 = fk.sf_id("00K", 1), fk.sf_id("00K", 2)
DAG = "sync_opportunities"


def deal(store, *, roles=((R1, C1),), memberships=(("m1", "7"),), opp_stage="Prospecting"):
    """One synced deal: Opportunity O1 (LG 500) on Account A1 (LG 900), contact C1 linked to
    lead 7, and what the sync keeps for it. Returns the fakes."""
    sf = fk.FakeSalesforce(
        Opportunity=[{"Id": O1, "StageName": opp_stage, "AccountId": A1}],
        OpportunityContactRole=[{"Id": r, "OpportunityId": O1, "ContactId": c} for r, c in roles],
        Account=[{"Id": A1}],
        Contact=[{"Id": C1, "AccountId": A1}],
    )
    lg = fk.FakeLeadGen(
        opportunities=[{"id": "500"}],
        accounts=[{"id": "900"}],
        opportunity_leads=[{"id": m} for m, _ in memberships],
    )
    fk.link(store, "7", C1)
    fk.link(store, "500", O1, domain="opportunity")
    fk.link(store, "900", A1, domain="account")
    for m, lead in memberships:
        fk.link(
            store,
            m,
            O1,
            domain="membership",
            synced_values={"lead": lead, "opportunity": "500", "contact": C1},
        )
    return sf, lg


def check(sf, lg, store) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    src = fk.sources(sf, lg, store)
    return [(v.kind, v.leadgen, v.salesforce) for v in opportunities.opportunity_checks(src)]


def test_a_synced_deal_is_clean(store) -> None:
    sf, lg = deal(store)
    assert check(sf, lg, store) == []


def test_opportunity_in_a_mapped_stage_without_a_link_is_missing(store) -> None:
    sf, lg = deal(store)
    sf.add("Opportunity", Id=O2, StageName="Closed Won", AccountId=None)
    sf.add("Opportunity", Id=fk.sf_id("006", 3), StageName="Not In The Map", AccountId=None)
    assert check(sf, lg, store) == [("opportunity_missing", (), (O2,))]


def test_a_quarantined_opportunity_is_explained(store) -> None:
    sf, lg = deal(store)
    sf.add("Opportunity", Id=O2, StageName="Closed Won", AccountId=None)
    fk.quarantine(store, DAG, f"sf:{O2}", domain="opportunity")
    assert check(sf, lg, store) == []


def test_linked_opportunity_deleted_in_leadgen_is_missing(store) -> None:
    sf, lg = deal(store, memberships=())
    lg.objects["opportunities"] = []
    out = check(sf, lg, store)
    assert ("opportunity_missing", ("500",), (O1,)) in out


def test_link_to_a_deleted_opportunity_is_an_orphan(store) -> None:
    sf, lg = deal(store, roles=(), memberships=())
    sf.records["Opportunity"][0]["IsDeleted"] = True
    assert check(sf, lg, store) == [("opportunity_orphan", ("500",), (O1,))]


def test_referenced_account_without_a_link_is_missing_and_a_dead_link_is_an_orphan(store) -> None:
    sf, lg = deal(store)
    sf.add("Account", Id=A2)
    sf.add("Contact", Id=C2, AccountId=A2)  # not linked to a person: its account is not pulled
    fk.link(store, "8", C2)  # now it is linked: A2 must be in Lead Gen & CRM
    sf.records["Account"][0]["IsDeleted"] = True  # A1 deleted in Salesforce, link still active
    out = check(sf, lg, store)
    assert ("account_missing", (), (A2,)) in out
    assert ("account_orphan", ("900",), (A1,)) in out


def test_role_of_a_linked_contact_without_a_membership_is_missing(store) -> None:
    sf, lg = deal(store, memberships=())
    out = check(sf, lg, store)
    assert out == [("membership_missing", ("7", "500"), (O1, R1))]


def test_held_role_or_quarantined_role_explains_a_missing_membership(store) -> None:
    sf, lg = deal(store, roles=((R1, C1), (R2, C2)), memberships=())
    fk.link(store, "8", C2)
    store.hold(DAG, "contact_role", R1, payload={}, reason="contact not linked")
    fk.quarantine(store, DAG, f"sf:{R2}", domain="membership")
    assert check(sf, lg, store) == []


def test_membership_without_a_role_is_an_orphan_and_one_gone_in_leadgen_is_missing(store) -> None:
    sf, lg = deal(store, memberships=(("m1", "7"), ("m2", "8")))
    lg.objects["opportunity_leads"] = [{"id": "m2"}]
    out = check(sf, lg, store)
    assert out == [
        ("membership_missing", ("m1", "7"), (O1,)),
        ("membership_orphan", ("m2", "8"), (O1,)),
    ]
