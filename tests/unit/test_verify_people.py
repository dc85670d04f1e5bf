"""People invariants: missing on one side, two records for one person; each found, and each
explained or clean case not reported."""

from __future__ import annotations

import pytest

from crm_sync.mapping.models import PersonRules
from crm_sync.verify import people
from tests.unit import test_verify_fakes as fk
from tests.unit.test_verify_fakes import store_fixture  # noqa: F401 (the store fixture)

pytestmark = pytest.mark.unit


L1, L2, L3 = fk.sf_id("00Q", 1), fk.sf_id("00Q", 2), fk.sf_id("00Q", 3)
C1 = fk.sf_id("003", 1)
PEOPLE = "sync_leads_contacts"


def kinds(violations) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    return [(v.kind, v.leadgen, v.salesforce) for v in violations]


def missing(src) -> list:
    return kinds([*people.missing_in_salesforce(src), *people.missing_in_leadgen(src)])


def test_linked_pair_on_both_sides_is_clean(store) -> None:
    sf = fk.FakeSalesforce(Lead=[fk.sf_person(L1, "1")])
    lg = fk.FakeLeadGen([fk.lead("1")])
    fk.link(store, "1", L1)
    assert missing(fk.sources(sf, lg, store)) == []


def test_unlinked_lead_is_missing_in_salesforce_unless_quarantined(store) -> None:
    sf, lg = fk.FakeSalesforce(), fk.FakeLeadGen([fk.lead("1"), fk.lead("2")])
    fk.quarantine(store, PEOPLE, "lg:2")
    found = missing(fk.sources(sf, lg, store))
    assert found == [("missing_in_salesforce", ("1",), ())]


def test_create_switched_off_in_the_spec_explains_an_unlinked_lead(store) -> None:
    sf, lg = fk.FakeSalesforce(), fk.FakeLeadGen([fk.lead("1"), fk.lead("2", leadStatus="contact")])
    src = fk.sources(sf, lg, store)
    contacts = src.specs["Contact"]
    src.specs["Contact"] = contacts.model_copy(
        update={"person": PersonRules(create_in_salesforce=False)}
    )
    # The contact-status lead would become a Contact: creates are off there, so only lead 1.
    assert missing(src) == [("missing_in_salesforce", ("1",), ())]


def test_link_to_deleted_or_converted_salesforce_record_is_missing(store) -> None:
    sf = fk.FakeSalesforce(
        Lead=[
            fk.sf_person(L1, "1", IsDeleted=True),
            fk.sf_person(L2, "2", IsConverted=True, ConvertedContactId=C1),
        ],
        Contact=[fk.sf_person(C1, "2")],
    )
    lg = fk.FakeLeadGen([fk.lead("1"), fk.lead("2")])
    fk.link(store, "1", L1)
    fk.link(store, "2", L2)
    found = list(people.missing_in_salesforce(fk.sources(sf, lg, store)))
    assert kinds(found) == [
        ("missing_in_salesforce", ("1",), (L1,)),
        ("missing_in_salesforce", ("2",), (L2,)),
    ]
    assert "deleted or does not exist" in found[0].why
    assert f"converted to Contact {C1}" in found[1].why


def test_active_lead_with_deleted_link_is_missing_but_a_collision_is_explained(store) -> None:
    sf = fk.FakeSalesforce(Lead=[fk.sf_person(L3, "3")])
    lg = fk.FakeLeadGen([fk.lead("1"), fk.lead("2"), fk.lead("3")])
    fk.link(store, "1", L1, status="deleted")
    fk.link(store, "2", L3, status="collision")
    fk.link(store, "3", L3)
    found = missing(fk.sources(sf, lg, store))
    assert found == [("missing_in_salesforce", ("1",), (L1,))]


def test_unlinked_salesforce_record_is_missing_in_leadgen_unless_quarantined(store) -> None:
    sf = fk.FakeSalesforce(
        Lead=[fk.sf_person(L1, None, "new@x.com"), fk.sf_person(L2, None, "q@x.com")]
    )
    fk.quarantine(store, PEOPLE, f"sf:{L2}")
    found = missing(fk.sources(sf, fk.FakeLeadGen(), store))
    assert found == [("missing_in_leadgen", (), (L1,))]


def test_converted_and_deleted_salesforce_records_are_not_expected_in_leadgen(store) -> None:
    sf = fk.FakeSalesforce(
        Lead=[
            fk.sf_person(L1, None, "a@x.com", IsConverted=True, ConvertedContactId=C1),
            fk.sf_person(L2, None, "b@x.com", IsDeleted=True),
        ]
    )
    assert missing(fk.sources(sf, fk.FakeLeadGen(), store)) == []


def test_duplicate_of_an_already_linked_person_explains_an_unlinked_record(store) -> None:
    # L2 carries lead 1's record-link id, L3 lead 1's email: the sync reports both as
    # duplicate_in_salesforce every time they change and never links them.
    sf = fk.FakeSalesforce(
        Lead=[
            fk.sf_person(L1, "1"),
            fk.sf_person(L2, "1", "other@x.com"),
            fk.sf_person(L3, None, "p1@x.com"),
        ]
    )
    lg = fk.FakeLeadGen([fk.lead("1")])
    fk.link(store, "1", L1)
    assert kinds(people.missing_in_leadgen(fk.sources(sf, lg, store))) == []


def test_unlinked_record_matching_an_unlinked_active_lead_names_the_lead(store) -> None:
    sf = fk.FakeSalesforce(Lead=[fk.sf_person(L1, None, "p5@x.com")])
    lg = fk.FakeLeadGen([fk.lead("5")])
    found = list(people.missing_in_leadgen(fk.sources(sf, lg, store)))
    assert kinds(found) == [("missing_in_leadgen", ("5",), (L1,))]
    assert "lead 5 matches it by email" in found[0].why


def test_record_matching_an_inactive_lead_is_explained(store) -> None:
    sf = fk.FakeSalesforce(
        Lead=[fk.sf_person(L1, "7", "gone@x.com"), fk.sf_person(L2, None, "p8@x.com")]
    )
    lg = fk.FakeLeadGen([fk.lead("7", "gone@x.com", active="0"), fk.lead("8", active="0")])
    src = fk.sources(sf, lg, store)
    assert kinds(people.missing_in_leadgen(src)) == []
    assert lg.calls["getLeads"] >= 2  # one getLeads page, batched look-ups by id and email


def test_linked_lead_that_no_longer_exists_is_missing_in_leadgen(store) -> None:
    sf = fk.FakeSalesforce(Lead=[fk.sf_person(L1, "1"), fk.sf_person(L2, "2")])
    lg = fk.FakeLeadGen([fk.lead("2", active="0")])  # lead 1 is gone, lead 2 only inactive
    fk.link(store, "1", L1)
    fk.link(store, "2", L2)
    found = list(people.missing_in_leadgen(fk.sources(sf, lg, store)))
    assert kinds(found) == [("missing_in_leadgen", ("1",), (L1,))]
    assert "does not exist" in found[0].why


def test_two_live_records_with_one_record_link_id_are_a_duplicate(store) -> None:
    sf = fk.FakeSalesforce(
        Lead=[
            fk.sf_person(L1, "1"),
            fk.sf_person(L2, "2", IsConverted=True, ConvertedContactId=C1),
        ],
        Contact=[
            fk.sf_person(C1, "1", "c@x.com"),
            fk.sf_person(fk.sf_id("003", 2), "2", "d@x.com"),
        ],
    )
    lg = fk.FakeLeadGen([fk.lead("1"), fk.lead("2")])
    fk.link(store, "1", L1)
    found = [v for v in people.duplicates(fk.sources(sf, lg, store))]
    # Lead 2's converted Lead keeps its id: not a second live record.
    assert kinds(found) == [("duplicate_record_link", ("1",), (C1, L1))]
    assert f"the link points at {L1}" in found[0].why


def test_two_linked_records_sharing_an_email_are_a_duplicate(store) -> None:
    # Leads 1 and 2 have different emails but their Salesforce records share one.
    sf = fk.FakeSalesforce(
        Lead=[fk.sf_person(L1, "1", "same@x.com"), fk.sf_person(L2, "2", "same@x.com")]
    )
    lg = fk.FakeLeadGen([fk.lead("1"), fk.lead("2")])
    fk.link(store, "1", L1)
    fk.link(store, "2", L2)
    found = kinds(people.duplicates(fk.sources(sf, lg, store)))
    assert found == [("duplicate_email_salesforce", ("1", "2"), (L1, L2))]


def test_leads_sharing_an_email_are_reported_once_on_the_leadgen_side(store) -> None:
    # Two leads with one email each got their own Salesforce record (the sync never merges
    # people): the cause is on the Lead Gen & CRM side and is reported there only.
    sf = fk.FakeSalesforce(
        Lead=[fk.sf_person(L1, "1", "same@x.com"), fk.sf_person(L2, "2", "same@x.com")]
    )
    lg = fk.FakeLeadGen([fk.lead("1", "same@x.com"), fk.lead("2", "Same@X.com ")])
    fk.link(store, "1", L1)
    fk.link(store, "2", L2)
    found = kinds(people.duplicates(fk.sources(sf, lg, store)))
    assert found == [("duplicate_email_leadgen", ("1", "2"), (L1, L2))]


def test_distinct_people_are_not_duplicates(store) -> None:
    sf = fk.FakeSalesforce(Lead=[fk.sf_person(L1, "1"), fk.sf_person(L2, "2")])
    lg = fk.FakeLeadGen([fk.lead("1"), fk.lead("2"), fk.lead("3", "")])
    fk.link(store, "1", L1)
    fk.link(store, "2", L2)
    assert kinds(people.duplicates(fk.sources(sf, lg, store))) == []


def test_a_quarantined_lead_explains_its_record_linked_to_it(store) -> None:
    sf = fk.FakeSalesforce(Lead=[fk.sf_person(L1, "1")])
    fk.link(store, "1", L1)
    fk.quarantine(store, PEOPLE, "lg:1")
    assert kinds(people.missing_in_leadgen(fk.sources(sf, fk.FakeLeadGen(), store))) == []


def test_inactive_leads_are_never_expected_in_salesforce_even_if_listed(store) -> None:
    lg = fk.FakeLeadGen([fk.lead("1", active="0"), fk.lead("2")])
    lg.get_leads = lambda where=None, fields=None: iter(lg.leads)  # an account that lists all
    found = missing(fk.sources(fk.FakeSalesforce(), lg, store))
    assert found == [("missing_in_salesforce", ("2",), ())]
