"""What a person is on each side (domains/people/rules.py): contact status, activity, emails,
the Salesforce object of an id and the fields read."""

from __future__ import annotations

import pytest

from crm_sync.domains.people import rules
from crm_sync.mapping.loader import load_object_spec, spec_path

pytestmark = pytest.mark.unit


def test_contact_status_detection() -> None:
    leads = [
        {"id": "1", "leadStatus": "contact"},
        {"id": "2", "leadStatus": "customer"},
        {"id": "3", "leadStatus": "open", "isContact": "0"},
        {"id": "4", "leadStatus": "qualified", "isContact": "1"},
    ]
    assert [rules.is_contact(r) for r in leads] == [True, True, False, True]
    assert [rules.target_object(r) for r in leads] == ["Contact", "Contact", "Lead", "Contact"]


def test_a_lead_is_active_unless_it_says_active_0() -> None:
    assert rules.is_active({}) and rules.is_active({"active": "1"})
    assert not rules.is_active({"active": " 0 "})


def test_emails_compare_trimmed_and_lower_case() -> None:
    assert rules.email_key("  Ann@Example.COM ") == "ann@example.com"
    assert rules.email_key("   ") is None and rules.email_key(None) is None


def test_the_object_of_an_id_comes_from_its_key_prefix() -> None:
    assert rules.sf_object_of("003000000000001AAA") == "Contact"
    assert rules.sf_object_of("00Q000000000001AAA") == "Lead"


def test_fields_read_are_system_fields_then_spec_rows_then_record_link() -> None:
    leads = load_object_spec(spec_path("leads"))
    fields = rules.sf_fields(leads)
    assert fields[: len(rules.SF_LEAD_SYSTEM_FIELDS)] == list(rules.SF_LEAD_SYSTEM_FIELDS)
    assert "IsConverted" in fields and len(fields) == len(set(fields))
    assert leads.record_link.id_field in fields
    contacts = rules.sf_fields(load_object_spec(spec_path("contacts")))
    assert "IsConverted" not in contacts


def test_emails_pair_in_the_form_the_load_writes() -> None:
    """International domains, root dots and invisible characters do not keep a lead from its
    Salesforce record (the bad-input catalogue's e-idn-pairs-punycode, e-trailing-dot-pairs)."""
    assert rules.email_key("Ann@Bücher.example") == "ann@xn--bcher-kva.example"
    assert rules.email_key("ann@xn--bcher-kva.example") == "ann@xn--bcher-kva.example"
    assert rules.email_key("ann@example.com.") == "ann@example.com"
    assert rules.email_key("an\u200bn@example.com") == "ann@example.com"
    assert rules.email_key("\u200b") is None
