"""State store invariants: two active links to one record; quarantine rows without a reason."""

from __future__ import annotations

import pytest

from crm_sync.verify import state_checks
from tests.unit import test_verify_fakes as fk
from tests.unit.test_verify_fakes import store_fixture  # noqa: F401 (the store fixture)

pytestmark = pytest.mark.unit


L1, L2 = fk.sf_id("00Q", 1), fk.sf_id("00Q", 2)
O1 = fk.sf_id("006", 1)


def found(src, domains=None) -> list[tuple[str, tuple[str, ...], tuple[str, ...], str]]:
    return [
        (v.kind, v.leadgen, v.salesforce, v.dag) for v in state_checks.double_links(src, domains)
    ]


def without_one_link_guarantee(store) -> None:
    """A store from before revision 0002 (or written by another tool): the database does not
    refuse a second active link to one record, so the checker must find it."""
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX uq_links_active_sf_record")


def test_two_active_links_to_one_salesforce_record_are_reported(store) -> None:
    without_one_link_guarantee(store)
    fk.link(store, "1", L1)
    fk.link(store, "2", L1)
    fk.link(store, "3", L2)
    assert found(fk.sources(None, None, store)) == [
        ("double_link", ("1", "2"), (L1,), "sync_leads_contacts")
    ]


def test_parked_collision_and_deleted_links_are_not_double(store) -> None:
    fk.link(store, "1", L1)
    fk.link(store, "2", L1, status="collision")
    fk.link(store, "3", L1, status="deleted")
    assert found(fk.sources(None, None, store)) == []


def test_domains_filter_the_report(store) -> None:
    without_one_link_guarantee(store)
    fk.link(store, "1", L1)
    fk.link(store, "2", L1)
    assert found(fk.sources(None, None, store), ["opportunity"]) == []


def member(store, lg_id: str, lead: str, opp_lg: str = "500") -> None:
    fk.link(
        store, lg_id, O1, domain="membership", synced_values={"lead": lead, "opportunity": opp_lg}
    )


def test_two_memberships_for_one_lead_on_one_opportunity_are_reported(store) -> None:
    member(store, "m1", "7")
    member(store, "m2", "7")
    member(store, "m3", "8")  # another lead on the same opportunity: normal
    assert found(fk.sources(None, None, store)) == [
        ("double_link", ("m1", "m2"), (O1,), "sync_opportunities")
    ]


def test_quarantine_row_without_a_reason_is_reported_with_its_ids(store) -> None:
    fk.quarantine(store, "sync_leads_contacts", "lg:1", lg_id="1")
    fk.quarantine(store, "sync_leads_contacts", "lg:2", lg_id="2", message="  ")
    fk.quarantine(store, "sync_opportunities", f"sf:{O1}", sf_id=O1, check="", category="")
    src = fk.sources(None, None, store)
    rows = list(state_checks.quarantine_reasons(src))
    assert [(v.kind, v.leadgen, v.salesforce, v.dag) for v in rows] == [
        ("quarantine_without_reason", ("2",), (), "sync_leads_contacts"),
        ("quarantine_without_reason", (), (O1,), "sync_opportunities"),
    ]
    assert rows[0].why.endswith("(lg:2, open) has no message")
    assert rows[1].why.endswith("has no check, category")
    assert src.read["state_quarantine_rows"] == 3
    only = list(state_checks.quarantine_reasons(src, ["sync_opportunities"]))
    assert [v.dag for v in only] == ["sync_opportunities"]
