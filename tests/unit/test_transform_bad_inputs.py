"""The bad-input rules of the transform (docs/reliability.md, "Bad input"), value by value; the
whole catalogue runs end to end in tests/e2e/test_bad_inputs.py."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_sync.mapping.loader import load_object_spec, spec_path
from crm_sync.mapping.models import FieldMapping
from crm_sync.mapping.schema import LgField, SfField
from crm_sync.pipeline.transform import (
    INVALID,
    canonical_email,
    canonical_value,
    canonicalize_leadgen,
    canonicalize_salesforce,
    invalid_source,
    is_invalid,
    map_value,
    parse_date,
    parse_number,
    picklist_spelling,
    salesforce_value,
)
from crm_sync.pipeline.validate import json_safe, quoted
from tests.unit.schema_fixtures import sandbox_like_schema

pytestmark = pytest.mark.unit

CURRENCY = SfField(name="Budget__c", type="currency", precision=16, scale=2)
WHOLE = SfField(name="Headcount__c", type="int", digits=8)
PICK = SfField(name="P__c", type="picklist", picklist_values=["CRM", "Email Marketing"])


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("Zoe\u0308", "Zoë"),  # NFD -> NFC
        ("Ann\u200b", "Ann"),
        ("\ufeffBob\u2060", "Bob"),
        ("Ann\x00\x07\x1b\x7f\x85", "Ann"),
        ("a\tb\nc\r\n", "a\tb\nc\r\n"),  # tabs and line breaks kept
        ("Fam 👨\u200d👩", "Fam 👨\u200d👩"),  # zero-width joiner kept
        ("\u200b\x00", None),  # only invisible characters: blank
        ("null", "null"),  # text: the surname Null exists
        ("Tom &amp; Jerry", "Tom & Jerry"),  # compared decoded, as Lead Gen & CRM reads it
        ("\x00invalid", "invalid"),  # text that looks like the marker is text
    ],
)
def test_text_is_nfc_without_invisible_or_control_characters(raw, expected) -> None:
    assert canonical_value(raw, "string") == expected


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("  Ann@Example.COM \n", "Ann@example.com"),
        ("ann@bücher.example", "ann@xn--bcher-kva.example"),
        ("ANN@BÜCHER.EXAMPLE", "ANN@xn--bcher-kva.example"),
        ("ann@example.com.", "ann@example.com"),
        ("an\u200bn@exa\u200dmple.com", "ann@example.com"),
        ("ann @example.com", "ann @example.com"),  # left for the format check to refuse
        ("no-at-sign", "no-at-sign"),
        ("\u00a0", None),
    ],
)
def test_emails_are_cleaned_but_never_guessed(raw, expected) -> None:
    assert canonical_email(raw) == expected
    assert canonical_value(raw, "email") == expected


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("1,234.50", "1234.5"),
        ("1 234 567.89", "1234567.89"),
        ("1\u00a0234", "1234"),
        ("1'234", "1234"),
        ("-0", "0"),
        ("+5", "5"),
        ("1e3", "1000"),
        ("0.005", "0.01"),  # half up to the field's scale
        ("3.14159", "3.14"),
        ("9999999999999.99", "9999999999999.99"),
        ("99999999999999.99", INVALID),  # 16 significant digits: the API's doubles lose one
        ("100000000000000", INVALID),  # more than 14 digits before the point
        ("1.234,50", INVALID),
        ("1,5", INVALID),
        ("12,34", INVALID),
        ("1,234 567", INVALID),
        ("$1,234", INVALID),
        ("(42)", INVALID),
        ("NaN", INVALID),
        ("12\x005", "125"),
        ("null", None),
        ("N/A", None),
        ("0", "0"),
    ],
)
def test_numbers_have_one_reading_or_none(raw, expected) -> None:
    assert canonical_value(raw, "currency", CURRENCY) == expected


def test_whole_number_fields_refuse_fractions_and_extra_digits() -> None:
    assert canonical_value("12.0", "int", WHOLE) == "12"
    assert canonical_value("12.5", "int", WHOLE) == INVALID
    assert canonical_value("99999999", "int", WHOLE) == "99999999"
    assert canonical_value("123456789", "int", WHOLE) == INVALID
    assert parse_number(True) == 1 and parse_number(float("inf")) is None


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("31/12/2026", "2026-12-31"),
        ("12/31/2026", "2026-12-31"),
        ("05/05/2026", "2026-05-05"),
        ("01/02/2026", INVALID),  # 1 February or 2 January
        ("2026/11/20", "2026-11-20"),
        ("20261120", "2026-11-20"),
        ("2026-11-20T23:30:00-05:00", "2026-11-20"),
        ("1700-01-01", "1700-01-01"),
        ("1699-12-31", INVALID),
        ("4001-01-01", INVALID),
        ("2026-02-30", INVALID),
        ("0000-00-00", None),
        ("NULL", None),
    ],
)
def test_dates_are_certain_and_in_salesforce_range(raw, expected) -> None:
    assert canonical_value(raw, "date") == expected


def test_datetimes_are_utc_and_in_range() -> None:
    assert canonical_value("2026-11-20T10:00:00+02:00", "datetime") == "2026-11-20T08:00:00Z"
    assert canonical_value("9999-12-31 23:59:59", "datetime") == INVALID
    assert canonical_value("0000-00-00 00:00:00", "datetime") is None
    assert parse_date("31/02/2026") is None


@pytest.mark.parametrize(
    "raw,expected",
    [(" YES ", "true"), ("off", "false"), ("None", None), ("checked", INVALID), ("✓", INVALID)],
)
def test_checkbox_spellings(raw, expected) -> None:
    assert canonical_value(raw, "boolean") == expected


def test_picklists_are_spelled_as_salesforce_spells_them() -> None:
    assert picklist_spelling(" crm ", PICK) == "CRM"
    assert picklist_spelling("EMAIL  MARKETING\u00a0", PICK) == "Email Marketing"
    assert picklist_spelling("Widgets", PICK) == "Widgets"  # the restricted check refuses it
    assert picklist_spelling(" crm ", None) == " crm "
    assert map_value(" e-mail ", {"E-Mail": "Email Marketing"}) == "Email Marketing"
    assert map_value("other", {"E-Mail": "Email Marketing"}) == "other"


def test_unreadable_values_carry_their_source_text_into_the_reason() -> None:
    spec = load_object_spec(spec_path("leads"))
    schema = sandbox_like_schema()
    lg = pd.DataFrame([{"id": "1", "emailAddress": "a@b.example", "leadScore": "twelve"}])
    value = canonicalize_leadgen(lg, spec, schema, None).iloc[0]["leadScore"]
    assert is_invalid(value) and invalid_source(value) == "twelve"
    assert salesforce_value(value, "double") == value  # passed on, for the gate to refuse
    assert json_safe(value) == "twelve" and json_safe(INVALID) == "<unparseable>"
    assert quoted("back\\slash\n") == "'back\\slash\\n'"


def test_an_empty_custom_checkbox_is_false_on_both_sides() -> None:
    spec = load_object_spec(spec_path("leads")).model_copy(
        update={
            "fields": [
                FieldMapping(leadgen="consent_1", salesforce="Consent__c", direction="two-way")
            ]
        }
    )
    schema = sandbox_like_schema()
    schema.salesforce["Lead"]["Consent__c"] = SfField(name="Consent__c", type="boolean")
    schema.leadgen["lead"]["consent_1"] = LgField(
        name="consent_1", data_type="checkbox", is_custom=True
    )
    lg = pd.DataFrame([{"id": "1", "consent_1": ""}, {"id": "2", "consent_1": "1"}])
    sf = pd.DataFrame([{"Id": "00Q000000000001AAA", "Consent__c": False}])
    assert list(canonicalize_leadgen(lg, spec, schema, None)["consent_1"]) == ["false", "true"]
    assert list(canonicalize_salesforce(sf, spec, schema)["consent_1"]) == ["false"]
