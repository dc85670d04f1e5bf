"""Mapping specs: valid and invalid fixtures side by side; errors name the file and the path."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_sync.errors import ConfigError
from crm_sync.mapping.loader import (
    SpecError,
    load_engagement_spec,
    load_object_spec,
    load_owner_spec,
    load_stage_spec,
    spec_path,
)
from crm_sync.mapping.models import BlankPolicy, Direction, Side

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "specs"


@pytest.mark.parametrize("name", sorted(p.stem for p in (FIXTURES / "valid").glob("*.yaml")))
def test_valid_fixture_specs_load(name: str) -> None:
    spec = load_object_spec(FIXTURES / "valid" / f"{name}.yaml")
    assert spec.version == 1
    assert spec.fields


def test_valid_spec_values_are_typed() -> None:
    spec = load_object_spec(FIXTURES / "valid" / "custom_and_rules.yaml")
    email = spec.row("emailAddress")
    assert email.direction is Direction.TWO_WAY
    assert email.blank is BlankPolicy.OVERWRITE
    assert email.transform == ["trim", "lower"]
    assert spec.two_way_tie is Side.LEADGEN
    assert spec.row("favorite_color_5a0dd86e6e290").value_map == {"Red": "R", "Blue": "B"}
    assert [f.key for f in spec.synced_fields] == [
        "emailAddress",
        "leadScore",
        "favorite_color_5a0dd86e6e290",
    ]


INVALID_CASES = {
    "bad_direction": "tests/fixtures/specs/invalid/bad_direction.yaml: fields[3].direction: Input should be 'push', 'pull', 'two-way' or 'none' (got 'both')",
    "unknown_key": "tests/fixtures/specs/invalid/unknown_key.yaml: fields[0].blank_policy: unknown key (not allowed here)",
    "wrong_version": "tests/fixtures/specs/invalid/wrong_version.yaml: version: Input should be 1 (got 2)",
    "score_pulled": "tests/fixtures/specs/invalid/score_pulled.yaml: fields[1].direction: leadScore is computed by Lead Gen & CRM and can only be pushed to Salesforce (got 'two-way')",
    "duplicate_field": "tests/fixtures/specs/invalid/duplicate_field.yaml: fields[1].salesforce: 'Email' is already mapped in fields[0]",
    "opportunity_pushed": "tests/fixtures/specs/invalid/opportunity_pushed.yaml: fields[1].direction: opportunities are synced one way, from Salesforce: only 'pull' or 'none' is allowed (got 'push')",
    "bad_regex": "tests/fixtures/specs/invalid/bad_regex.yaml: fields[0].rules[0].regex: invalid regular expression",
    "not_yaml": "tests/fixtures/specs/invalid/not_yaml.yaml: line 3, column 1: not valid YAML",
    "opportunities_two_way": "tests/fixtures/specs/invalid/opportunities_two_way.yaml: fields[2].direction: opportunities are synced one way, from Salesforce: only 'pull' or 'none' is allowed (got 'two-way')",
    "opportunities_accounts_pushed": "tests/fixtures/specs/invalid/opportunities_accounts_pushed.yaml: fields[1].direction: accounts are synced one way, from Salesforce: only 'pull' or 'none' is allowed (got 'push')",
    "readonly_pulled": "tests/fixtures/specs/invalid/readonly_pulled.yaml: fields[0].direction: updateTimestamp is read-only in Lead Gen & CRM",
}


def test_every_invalid_fixture_has_an_expected_message() -> None:
    assert sorted(p.stem for p in (FIXTURES / "invalid").glob("*.yaml")) == sorted(INVALID_CASES)


@pytest.mark.parametrize("name,expected", sorted(INVALID_CASES.items()))
def test_invalid_fixture_specs_name_file_and_path(name: str, expected: str) -> None:
    with pytest.raises(SpecError) as exc:
        load_object_spec(FIXTURES / "invalid" / f"{name}.yaml")
    assert isinstance(exc.value, ConfigError)  # fatal: the run fails at once, no retries
    assert expected in str(exc.value)


def test_missing_file_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="nope.yaml: file not found"):
        load_object_spec(FIXTURES / "nope.yaml")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="expected a mapping at the top level, got list"):
        load_object_spec(p)


@pytest.mark.parametrize("name", ["leads", "contacts"])
def test_shipped_person_specs_load(name: str) -> None:
    spec = load_object_spec(spec_path(name))
    assert spec.record_link is not None and spec.record_link.id_field == "LeadGen_Id__c"
    assert spec.row("leadScore").direction is Direction.PUSH
    assert spec.row("ownerID").transform == ["owner"]


def test_shipped_owner_spec_loads() -> None:
    spec = load_owner_spec(spec_path("owners"))
    assert spec.auto_match_by_email is True


def test_owner_spec_rows_need_both_sides(tmp_path: Path) -> None:
    p = tmp_path / "owners.yaml"
    p.write_text("version: 1\nusers:\n  - {leadgen_id: '1'}\n")
    with pytest.raises(
        SpecError, match=r"users\[0\]: set salesforce_id, salesforce_username or salesforce_email"
    ):
        load_owner_spec(p)


def test_stage_spec_requires_stages(tmp_path: Path) -> None:
    p = tmp_path / "stages.yaml"
    p.write_text("version: 1\nstages: {}\n")
    with pytest.raises(SpecError, match="stages: Dictionary should have at least 1 item"):
        load_stage_spec(p)


def test_engagement_spec_rejects_unknown_event_type(tmp_path: Path) -> None:
    p = tmp_path / "engagement.yaml"
    p.write_text("version: 1\nevents:\n  phone_call: {subject: x}\n")
    with pytest.raises(SpecError, match=r"events\.phone_call"):
        load_engagement_spec(p)
