"""Scope filters in the specs: loaded (valid and invalid fixtures side by side), checked against
the live schemas, compiled to SOQL with every operand escaped."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from crm_sync.errors import ConfigError
from crm_sync.mapping.loader import SpecError, load_object_spec, spec_path
from crm_sync.mapping.models import ObjectSpec, SalesforceScope, Scope, ScopeCondition
from crm_sync.mapping.schema import check_spec_against_schema
from crm_sync.mapping.scope import (
    compile_soql,
    scope_problems_live,
    scope_warnings_live,
    soql_literal,
)
from sandbox.salesforce import soql
from tests.unit.scope_fixtures import lg_where, person_spec, scope_schema, sf_where

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "specs"
VALID = FIXTURES / "valid" / "scope"
INVALID = FIXTURES / "invalid" / "scope"


# -- load time ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(p.stem for p in VALID.glob("*.yaml")))
def test_valid_scope_fixtures_load(name: str) -> None:
    spec = load_object_spec(VALID / f"{name}.yaml")
    assert spec.scope is not None


def test_operands_keep_their_yaml_types() -> None:
    scope = load_object_spec(VALID / "every_operator.yaml").scope
    assert scope is not None and scope.salesforce is not None and scope.leadgen is not None
    by_field = {c.field: c for c in scope.salesforce.where}
    assert by_field["LeadSource"].values == ["Web", "Partner Referral"]
    assert by_field["NumberOfEmployees"].value == 50
    assert by_field["CreatedDate"].value == date(2024, 1, 1)
    assert by_field["LastModifiedDate"].value == datetime(2030, 1, 1, tzinfo=UTC)
    assert by_field["HasOptedOutOfEmail"].value is False
    assert by_field["OwnerId"].values == ["005000000000001AAA", "005000000000002"]
    assert scope.leadgen.lists == [123, 456]


INVALID_CASES = {
    "unknown_sf_field": "scope.salesforce.where[0].field: Lead has no standard field 'Countryy' (custom fields end in __c",
    "unknown_lg_field": "scope.leadgen.where[0].field: 'leadstatus' is not a standard Lead Gen & CRM lead field nor a custom field's systemName",
    "op_not_for_type": "scope.salesforce.where[0].op: 'contains' does not apply to LeadSource, a picklist field; use eq, ne, in, not_in, blank, not_blank",
    "op_not_for_checkbox": "scope.leadgen.where[0].op: 'in' does not apply to isUnsubscribed, a checkbox field; use eq, ne",
    "empty_values": "scope.salesforce.where[0].values: 'in' needs a non-empty list of values",
    "wrong_value_type": "scope.salesforce.where[0].value: PostalCode is a text field: 12345 is a number, not text (quote it to compare text)",
    "mixed_values": "scope.leadgen.where[0].values: values must all be of one type (got number and text)",
    "range_on_text": "scope.salesforce.where[0].value: 'gt' compares dates or datetimes or numbers, not text",
    "value_and_values": "scope.salesforce.where[0].values: 'eq' takes one value, not values",
    "missing_value": "scope.salesforce.where[0].value: 'ne' needs a value",
    "value_not_scalar": "scope.salesforce.where[0].value: must be text, a number, true/false, a date or a datetime (got a mapping)",
    "bad_id": "scope.salesforce.where[0].value: '005%' is not a 15- or 18-character Salesforce id",
    "unknown_op": "scope.salesforce.where[0].op: Input should be 'eq', 'ne', 'in', 'not_in', 'blank', 'not_blank', 'gt', 'gte', 'lt', 'lte' or 'contains' (got 'like')",
    "unknown_key": "scope.salesforce.order: unknown key (not allowed here)",
    "empty_scope": "scope: set salesforce, leadgen or both (or remove scope to sync every record)",
    "leadgen_nothing": "scope.leadgen: set where, lists or both",
    "bad_list": "scope.leadgen.lists[0]: Input should be greater than or equal to 1",
    "duplicate_list": "scope.leadgen.lists: lists [7] appear more than once",
    "empty_text": "scope.salesforce.where[0].value: an empty text matches nothing; use op: blank",
    "on_opportunities": "scope: only leads and contacts specs have a scope, not opportunities",
}


def test_every_invalid_scope_fixture_has_an_expected_message() -> None:
    assert sorted(p.stem for p in INVALID.glob("*.yaml")) == sorted(INVALID_CASES)


@pytest.mark.parametrize("name,expected", sorted(INVALID_CASES.items()))
def test_invalid_scope_fixtures_name_file_and_path(name: str, expected: str) -> None:
    with pytest.raises(SpecError) as exc:
        load_object_spec(INVALID / f"{name}.yaml")
    assert f"tests/fixtures/specs/invalid/scope/{name}.yaml: {expected}" in str(exc.value)


@pytest.mark.parametrize("name", ["leads", "contacts", "opportunities", "accounts"])
def test_shipped_specs_sync_every_record(name: str) -> None:
    assert load_object_spec(spec_path(name)).scope is None


# -- live schemas ---------------------------------------------------------------------------------
LIVE_PROBLEMS = [
    (
        sf_where({"field": "Region__c", "op": "eq", "value": "EU"}),
        "scope.salesforce.where[0].field",
        "Lead.Region__c does not exist or is not visible to the integration user",
    ),
    (
        sf_where({"field": "Notes__c", "op": "blank"}),
        "scope.salesforce.where[0].field",
        "Lead.Notes__c cannot be filtered in SOQL (textarea of 32768 characters)",
    ),
    (
        sf_where({"field": "Photo__c", "op": "blank"}),
        "scope.salesforce.where[0].field",
        "Photo__c (base64) cannot be filtered on",
    ),
    (  # a custom field: its type is only known live
        sf_where({"field": "Customer_Tier__c", "op": "gt", "value": 3}),
        "scope.salesforce.where[0].op",
        "'gt' does not apply to Customer_Tier__c, a text field",
    ),
    (
        sf_where({"field": "LeadGen_Score__c", "op": "eq", "value": "10"}),
        "scope.salesforce.where[0].value",
        "LeadGen_Score__c is a number field: '10' is text, not numbers",
    ),
    (
        sf_where({"field": "Interests__c", "op": "eq", "value": "CRM"}),
        "scope.salesforce.where[0].op",
        "'eq' does not apply to Interests__c, a multi-select picklist field; use blank, not_blank",
    ),
    (
        lg_where({"field": "customer_tier_5f1a2b3c4d5e0", "op": "blank"}),
        "scope.leadgen.where[0].field",
        "Lead Gen & CRM lead field 'customer_tier_5f1a2b3c4d5e0' does not exist",
    ),
    (
        lg_where({"field": "upload_5f1a2b3c4d5e8", "op": "not_blank"}),
        "scope.leadgen.where[0].field",
        "upload_5f1a2b3c4d5e8 (upload) cannot be filtered on",
    ),
    (
        lg_where({"field": "customer_tier_5f1a2b3c4d5e7", "op": "gte", "value": 2}),
        "scope.leadgen.where[0].op",
        "'gte' does not apply to customer_tier_5f1a2b3c4d5e7, a text field",
    ),
]


@pytest.mark.parametrize("spec,path,message", LIVE_PROBLEMS)
def test_live_check_names_the_condition(spec: ObjectSpec, path: str, message: str) -> None:
    problems = scope_problems_live(spec, scope_schema())
    assert [p for p, _ in problems] == [path]
    assert message in problems[0][1]


def test_live_check_runs_with_the_field_checks_of_the_prepare_stage() -> None:
    spec = sf_where({"field": "Region__c", "op": "blank"})
    problems = check_spec_against_schema(spec, scope_schema(), source="leads.yaml")
    assert ("scope.salesforce.where[0].field",) == tuple(p for p, _ in problems)


def test_a_good_scope_passes_the_live_check() -> None:
    spec = person_spec(
        salesforce={
            "where": [
                {"field": "LeadSource", "op": "in", "values": ["web", "Partner Referral"]},
                {"field": "NumberOfEmployees", "op": "gte", "value": 50},
                {"field": "AnnualRevenue", "op": "lt", "value": 10.5},
                {"field": "CreatedDate", "op": "gt", "value": date(2024, 1, 1)},
                {"field": "ConvertedDate", "op": "eq", "value": date(2025, 6, 30)},
                {"field": "HasOptedOutOfEmail", "op": "eq", "value": False},
                {"field": "OwnerId", "op": "in", "values": ["005000000000001AAA"]},
                {"field": "Customer_Tier__c", "op": "contains", "value": "old"},
                {"field": "Interests__c", "op": "not_blank"},
            ]
        },
        leadgen={
            "where": [
                {"field": "leadScore", "op": "gt", "value": 10},
                {"field": "product_interest_5f1a2b3c4d5e6", "op": "eq", "value": "CRM"},
                {"field": "updateTimestamp", "op": "gte", "value": date(2026, 1, 1)},
            ],
            "lists": [5],
        },
    )
    schema = scope_schema()
    assert scope_problems_live(spec, schema) == []
    assert scope_warnings_live(spec, schema) == []  # 'web' is Web: SOQL ignores case


def test_picklist_values_the_field_lacks_are_warnings_not_problems() -> None:
    spec = person_spec(
        salesforce={"where": [{"field": "LeadSource", "op": "in", "values": ["Web", "Webinar"]}]},
        leadgen={"where": [{"field": "tier_5f1a2b3c4d5e9", "op": "ne", "value": "Bronze"}]},
    )
    schema = scope_schema()
    assert scope_problems_live(spec, schema) == []
    warnings = scope_warnings_live(spec, schema)
    assert [p for p, _ in warnings] == ["scope.salesforce.where[0]", "scope.leadgen.where[0]"]
    assert "LeadSource has no value 'Webinar' (it offers 'Web', 'Phone Inquiry'" in warnings[0][1]
    assert "tier_5f1a2b3c4d5e9 has no value 'Bronze' (it offers 'Gold', 'Silver')" in warnings[1][1]


# -- SOQL -----------------------------------------------------------------------------------------
def compiled(*conditions: dict[str, object]) -> str:
    return compile_soql(sf_where(*conditions).scope, "Lead", scope_schema())


COMPILED = [
    ({"field": "LeadSource", "op": "eq", "value": "Web"}, "LeadSource = 'Web'"),
    ({"field": "LeadSource", "op": "ne", "value": "Web"}, "LeadSource != 'Web'"),
    (
        {"field": "LeadSource", "op": "in", "values": ["Web", "Partner Referral"]},
        "LeadSource IN ('Web', 'Partner Referral')",
    ),
    ({"field": "LeadSource", "op": "not_in", "values": ["Web"]}, "LeadSource NOT IN ('Web')"),
    ({"field": "Country", "op": "blank"}, "Country = null"),
    ({"field": "Country", "op": "not_blank"}, "Country != null"),
    ({"field": "NumberOfEmployees", "op": "gt", "value": 50}, "NumberOfEmployees > 50"),
    ({"field": "NumberOfEmployees", "op": "gte", "value": -3}, "NumberOfEmployees >= -3"),
    ({"field": "AnnualRevenue", "op": "lt", "value": 1e-7}, "AnnualRevenue < 0.0000001"),
    ({"field": "AnnualRevenue", "op": "lte", "value": 2.5e6}, "AnnualRevenue <= 2500000.0"),
    (
        {"field": "ConvertedDate", "op": "eq", "value": date(2025, 6, 30)},
        "ConvertedDate = 2025-06-30",
    ),
    (
        {"field": "CreatedDate", "op": "gte", "value": date(2024, 1, 1)},
        "CreatedDate >= 2024-01-01T00:00:00+00:00",
    ),
    (  # a datetime without an offset is UTC; sub-seconds are dropped on both sides
        {"field": "CreatedDate", "op": "lt", "value": datetime(2024, 1, 1, 10, 0, 0, 900)},
        "CreatedDate < 2024-01-01T10:00:00+00:00",
    ),
    (
        {
            "field": "CreatedDate",
            "op": "gt",
            "value": datetime(2024, 1, 1, 10, tzinfo=timezone(timedelta(hours=2))),
        },
        "CreatedDate > 2024-01-01T08:00:00+00:00",
    ),
    ({"field": "HasOptedOutOfEmail", "op": "eq", "value": True}, "HasOptedOutOfEmail = true"),
    ({"field": "HasOptedOutOfEmail", "op": "ne", "value": False}, "HasOptedOutOfEmail != false"),
    (
        {"field": "OwnerId", "op": "in", "values": ["005000000000001AAA", "005000000000002"]},
        "OwnerId IN ('005000000000001AAA', '005000000000002')",
    ),
    ({"field": "City", "op": "contains", "value": "York"}, "City LIKE '%York%'"),
]


@pytest.mark.parametrize("condition,expected", COMPILED)
def test_each_operator_compiles_to_its_soql(condition: dict[str, object], expected: str) -> None:
    assert compiled(condition) == f"({expected})"


def test_conditions_are_anded_and_a_scope_without_salesforce_side_compiles_to_nothing() -> None:
    assert compiled(
        {"field": "Country", "op": "not_blank"},
        {"field": "NumberOfEmployees", "op": "gt", "value": 5},
    ) == ("(Country != null) AND (NumberOfEmployees > 5)")
    lg_only = person_spec(leadgen={"lists": [3]})
    assert compile_soql(lg_only.scope, "Lead", scope_schema()) == ""
    assert compile_soql(None, "Lead", scope_schema()) == ""


HOSTILE = [
    "O'Brien",
    "it\\'s",
    "back\\slash\\",
    "\\",
    "line\nbreak\r\ttab",
    "50% off_now",
    "' OR Name != null OR Name = '",
    "x') OR (Id != null",
    "NULL",
    "true AND false",
    'say "hi"',
    "SELECT Id FROM User",
    "\b\f",
    "ünïcødé ✓",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_text_stays_one_literal(value: str) -> None:
    text = compiled({"field": "City", "op": "eq", "value": value})
    query = soql.parse(f"SELECT Id FROM Lead WHERE {text}")  # the sandbox's strict parser
    assert isinstance(query.where, soql.Comparison)
    assert (query.where.field.dotted, query.where.op) == ("City", "=")
    assert query.where.value.value == value


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_in_a_list_stay_separate_literals(value: str) -> None:
    text = compiled({"field": "City", "op": "not_in", "values": [value, "Leeds"]})
    query = soql.parse(f"SELECT Id FROM Lead WHERE {text}")
    assert isinstance(query.where, soql.InList) and query.where.negated
    assert [v.value for v in query.where.values] == [value, "Leeds"]


@pytest.mark.parametrize("value", HOSTILE)
def test_contains_escapes_like_wildcards_and_quotes(value: str) -> None:
    text = compiled({"field": "City", "op": "contains", "value": value})
    query = soql.parse(f"SELECT Id FROM Lead WHERE {text}")
    assert isinstance(query.where, soql.Comparison) and query.where.op == "LIKE"
    raw = query.where.value.raw  # the pattern as written: wildcards outside, escaped inside
    assert raw.startswith("%") and raw.endswith("%")
    assert "%" not in raw[1:-1].replace("\\%", "")
    assert "_" not in raw[1:-1].replace("\\_", "")


def test_percent_and_underscore_are_escaped_only_inside_like() -> None:
    assert compiled({"field": "City", "op": "contains", "value": "50%_x"}) == (
        "(City LIKE '%50\\%\\_x%')"
    )
    assert compiled({"field": "City", "op": "eq", "value": "50%_x"}) == "(City = '50%_x')"


def test_compile_refuses_what_the_live_check_would() -> None:
    with pytest.raises(ConfigError, match=r"where\[0\]: Lead.Region__c cannot be filtered on"):
        compiled({"field": "Region__c", "op": "eq", "value": "EU"})
    with pytest.raises(ConfigError, match="'gt' does not apply to Customer_Tier__c"):
        compiled({"field": "Customer_Tier__c", "op": "gt", "value": 3})


def test_a_field_name_that_is_not_an_identifier_never_reaches_the_query() -> None:
    bad = ScopeCondition.model_construct(field="City) OR (Id", op="blank", value=None, values=None)
    schema = scope_schema()
    schema.salesforce["Lead"][bad.field] = dataclasses.replace(
        schema.salesforce["Lead"]["City"], name=bad.field
    )
    with pytest.raises(ConfigError, match="not a Salesforce field name"):
        compile_soql(SalesforceScope.model_construct(where=[bad]), "Lead", schema)


def test_numbers_are_written_without_exponents() -> None:
    assert soql_literal("number", 1e21) == "1000000000000000000000"
    assert soql_literal("number", 12) == "12"
    assert soql_literal("number", -0.5) == "-0.5"


def test_scope_model_forbids_unknown_keys() -> None:
    with pytest.raises(ValueError, match="extra"):
        Scope.model_validate({"salesforce": {"where": []}, "leadgen_lists": [1]})
