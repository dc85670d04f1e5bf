"""Specs checked against the live schemas: every problem names the spec row."""

from __future__ import annotations

import pytest

from crm_sync.mapping.models import FieldMapping, ObjectSpec, RecordLink
from crm_sync.mapping.schema import LiveSchema, check_spec_against_schema
from tests.unit.schema_fixtures import sandbox_like_schema

pytestmark = pytest.mark.unit


def spec(*rows: FieldMapping, link: RecordLink | None = None) -> ObjectSpec:
    return ObjectSpec(
        version=1,
        kind="leads",
        leadgen_object="lead",
        salesforce_object="Lead",
        record_link=link,
        fields=list(rows),
    )


def check(s: ObjectSpec, schema: LiveSchema | None = None) -> list[tuple[str, str]]:
    return check_spec_against_schema(s, schema or sandbox_like_schema(), source="leads.yaml")


def test_shipped_like_rows_pass() -> None:
    assert (
        check(
            spec(
                FieldMapping(leadgen="emailAddress", salesforce="Email", direction="two-way"),
                FieldMapping(leadgen="leadScore", salesforce="LeadGen_Score__c", direction="push"),
                FieldMapping(
                    leadgen="isUnsubscribed", salesforce="HasOptedOutOfEmail", direction="two-way"
                ),
                FieldMapping(
                    leadgen="ownerID",
                    salesforce="OwnerId",
                    direction="two-way",
                    transform=["owner"],
                ),
                link=RecordLink(),
            )
        )
        == []
    )


def test_missing_fields_on_either_side() -> None:
    problems = check(
        spec(
            FieldMapping(leadgen="emailAddress", salesforce="Email", direction="two-way"),
            FieldMapping(leadgen="title", salesforce="Titel__c", direction="push"),
            FieldMapping(
                leadgen="favorite_color_5a0dd86e6e290", salesforce="Title", direction="pull"
            ),
        )
    )
    assert problems == [
        (
            "fields[1].salesforce",
            "Lead.Titel__c does not exist or is not visible to the integration user",
        ),
        (
            "fields[2].leadgen",
            "Lead Gen & CRM lead field 'favorite_color_5a0dd86e6e290' does not exist (custom fields are named by systemName)",
        ),
    ]


def test_incompatible_types() -> None:
    [(path, msg)] = check(
        spec(FieldMapping(leadgen="isUnsubscribed", salesforce="Title", direction="push"))
    )
    assert path == "fields[0]" and "incompatible types" in msg and "bit" in msg


def test_read_only_target_for_a_direction_that_writes_it() -> None:
    problems = check(
        spec(FieldMapping(leadgen="lastName", salesforce="LastModifiedDate", direction="push"))
    )
    assert (
        "fields[0].direction",
        "Lead.LastModifiedDate is read-only for the integration user, so 'push' cannot write it",
    ) in problems


def test_value_map_outside_a_restricted_picklist() -> None:
    row = FieldMapping(
        leadgen="product_interest_5f1a2b3c4d5e6",
        salesforce="Product_Interest__c",
        direction="push",
        value_map={"Web": "Websites"},
    )
    [(path, msg)] = check(spec(row))
    assert path == "fields[0].value_map" and "Websites" in msg


def test_record_link_must_exist_and_be_an_external_id() -> None:
    problems = check(
        spec(
            FieldMapping(leadgen="emailAddress", salesforce="Email", direction="push"),
            link=RecordLink(id_field="Title", url_field="Missing__c"),
        )
    )
    assert (
        "record_link.id_field",
        "Lead.Title must be an External ID field so writes can be upserts",
    ) in problems
    assert any(p[0] == "record_link.url_field" and "does not exist" in p[1] for p in problems)


def test_unavailable_object() -> None:
    s = ObjectSpec(
        version=1,
        kind="contacts",
        leadgen_object="lead",
        salesforce_object="Contact",
        fields=[FieldMapping(leadgen="emailAddress", salesforce="Email", direction="two-way")],
    )
    empty = LiveSchema()
    assert check(s, empty) == [
        (
            "salesforce_object",
            "Salesforce object 'Contact' is not available to the integration user",
        )
    ]
