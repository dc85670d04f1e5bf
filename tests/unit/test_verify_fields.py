"""Linked pairs that disagree: what the spec explains (directions, blanks, owners, quarantine)
and what it does not."""

from __future__ import annotations

import pytest

from crm_sync.mapping.models import FieldMapping
from crm_sync.verify import fields
from tests.unit import test_verify_fakes as fk
from tests.unit.test_verify_fakes import store_fixture  # noqa: F401 (the store fixture)

pytestmark = pytest.mark.unit


L1, L2 = fk.sf_id("00Q", 1), fk.sf_id("00Q", 2)
C1 = fk.sf_id("003", 1)


def row(direction: str, blank: str = "keep", owner: bool = False) -> FieldMapping:
    return FieldMapping(
        leadgen="ownerID" if owner else "title",
        salesforce="OwnerId" if owner else "Title",
        direction=direction,
        blank=blank,
        transform=["owner"] if owner else [],
    )


@pytest.mark.parametrize(
    ("direction", "blank", "a", "b", "expected"),
    [
        ("push", "keep", None, "x", True),  # a blank Lead Gen & CRM value never overwrites
        ("push", "keep", "x", None, False),  # ... but a value fills a blank Salesforce field
        ("push", "keep", "x", "y", False),
        ("pull", "keep", "x", None, True),
        ("pull", "keep", None, "y", False),
        ("two-way", "keep", None, "y", True),
        ("two-way", "keep", "x", None, True),
        ("two-way", "keep", "x", "y", False),
        ("two-way", "overwrite", None, "y", False),
        ("pull", "overwrite", "x", None, False),
    ],
)
def test_blank_policy_and_direction_explain_only_the_blank_that_may_not_overwrite(
    direction, blank, a, b, expected
) -> None:
    assert fields.explained(row(direction, blank), a, b, fk.OWNERS) is expected


@pytest.mark.parametrize(
    ("direction", "a", "b", "expected"),
    [
        ("two-way", "005A", "005B", False),  # both mapped: the sync would have written one
        ("two-way", None, "005B", True),  # Lead Gen & CRM owner maps to no active user
        ("two-way", "005A", "005Z", True),  # Salesforce owner has no Lead Gen & CRM user
        ("push", "005A", "005Z", False),  # push can write 005A over an unmapped owner
        ("pull", None, "005B", False),  # pull can write user 12 over an unmapped owner
        ("pull", "005A", "005Z", True),
    ],
)
def test_owners_are_compared_through_the_owner_map(direction, a, b, expected) -> None:
    assert fields.explained(row(direction, owner=True), a, b, fk.OWNERS) is expected


def mismatches(src) -> list[tuple[str, str | None, tuple[str, ...]]]:
    return [(v.kind, v.field, v.salesforce) for v in fields.field_mismatches(src)]


def test_equal_canonical_values_are_clean(store) -> None:
    # " Ann@X.com " and "ann@x.com" are equal after [trim, lower]; "1" and true too.
    sf = fk.FakeSalesforce(
        Lead=[fk.sf_person(L1, "1", "ann@x.com", HasOptedOutOfEmail=True, OwnerId="005A")]
    )
    lg = fk.FakeLeadGen([fk.lead("1", " Ann@X.com ", isUnsubscribed="1", ownerID="11")])
    fk.link(store, "1", L1)
    assert mismatches(fk.sources(sf, lg, store)) == []


def test_unexplained_differences_are_reported_per_field(store) -> None:
    sf = fk.FakeSalesforce(
        Lead=[fk.sf_person(L1, "1", Description="from Salesforce", Title="CEO", OwnerId="005B")]
    )
    lg = fk.FakeLeadGen([fk.lead("1", description="edited in Lead Gen", title="CTO", ownerID="11")])
    fk.link(store, "1", L1)
    found = list(fields.field_mismatches(fk.sources(sf, lg, store)))
    assert [(v.kind, v.field) for v in found] == [
        ("field_mismatch", "title"),
        ("field_mismatch", "description"),
        ("field_mismatch", "ownerID"),
    ]
    assert found[1].why == (
        "description (pull, Lead.Description): Lead Gen & CRM 'edited in Lead Gen' "
        "vs Salesforce 'from Salesforce'"
    )
    assert found[1].leadgen == ("1",) and found[1].salesforce == (L1,)


def test_contacts_are_compared_with_the_contacts_spec(store) -> None:
    sf = fk.FakeSalesforce(Contact=[fk.sf_person(C1, "1", MailingCity="Paris")])
    lg = fk.FakeLeadGen(
        [fk.lead("1", city="Lyon", companyName="not on Contacts", leadStatus="contact")]
    )
    fk.link(store, "1", C1)
    assert mismatches(fk.sources(sf, lg, store)) == [("field_mismatch", "city", (C1,))]


def test_blank_on_one_side_and_none_rows_are_explained(store) -> None:
    sf = fk.FakeSalesforce(Lead=[fk.sf_person(L1, "1", Title="CEO", Description=None)])
    lg = fk.FakeLeadGen([fk.lead("1", title="", description="kept in Lead Gen")])
    fk.link(store, "1", L1)
    assert mismatches(fk.sources(sf, lg, store)) == []


def test_an_open_quarantine_row_explains_the_pair(store) -> None:
    sf = fk.FakeSalesforce(
        Lead=[fk.sf_person(L1, "1", Title="CEO"), fk.sf_person(L2, "2", Title="CEO")]
    )
    lg = fk.FakeLeadGen([fk.lead("1", title="CTO"), fk.lead("2", title="CTO")])
    fk.link(store, "1", L1)
    fk.link(store, "2", L2)
    fk.quarantine(store, "sync_leads_contacts", "lg:1")
    assert mismatches(fk.sources(sf, lg, store)) == [("field_mismatch", "title", (L2,))]


def test_record_link_id_that_is_not_the_linked_lead_is_reported(store) -> None:
    sf = fk.FakeSalesforce(Lead=[fk.sf_person(L1, "99", "p1@x.com", LastName="L1")])
    lg = fk.FakeLeadGen([fk.lead("1")])
    fk.link(store, "1", L1)
    found = list(fields.field_mismatches(fk.sources(sf, lg, store)))
    assert [(v.kind, v.leadgen, v.salesforce) for v in found] == [
        ("record_link_mismatch", ("1",), (L1,))
    ]
    assert "LeadGen_Id__c is '99'" in found[0].why
