"""Transform: canonical values and payloads (pure functions)."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_sync.mapping.loader import load_object_spec, spec_path
from crm_sync.mapping.models import FieldMapping
from crm_sync.mapping.owners import OwnerMap
from crm_sync.pipeline.transform import (
    INVALID,
    canonical_value,
    canonicalize_leadgen,
    canonicalize_salesforce,
    leadgen_value,
    salesforce_value,
)
from tests.unit.schema_fixtures import sandbox_like_schema

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "raw,sf_type,expected",
    [
        ("20", "double", "20"),
        (20.0, "double", "20"),
        ("3.50", "currency", "3.5"),
        ("1e2", "double", "100"),
        ("abc", "double", INVALID),
        ("1", "boolean", "true"),
        ("0", "boolean", "false"),
        (True, "boolean", "true"),
        ("maybe", "boolean", INVALID),
        ("2026-01-05 00:00:00", "date", "2026-01-05"),
        ("2026-13-05", "date", INVALID),
        ("2026-01-05 10:11:12", "datetime", "2026-01-05T10:11:12Z"),
        ("2026-01-05T10:11:12.000+0000", "datetime", "2026-01-05T10:11:12Z"),
        ("", "string", None),
        (None, "double", None),
        (" x ", "string", " x "),
    ],
)
def test_canonical_value_by_salesforce_type(raw, sf_type, expected) -> None:
    assert canonical_value(raw, sf_type) == expected


def test_leadgen_and_salesforce_canonical_forms_agree() -> None:
    spec = load_object_spec(spec_path("leads"))
    schema = sandbox_like_schema()
    owners = OwnerMap(
        lg_to_sf={"501": "005000000000001AAA"}, sf_to_lg={"005000000000001AAA": "501"}
    )
    lg = pd.DataFrame(
        [
            {
                "id": "11",
                "emailAddress": " Ann@Example.COM ",
                "firstName": " Ann ",
                "lastName": "Lee",
                "leadScore": "20",
                "isUnsubscribed": "1",
                "ownerID": "501",
                "leadStatus": "open",
                "active": "1",
                "updateTimestamp": "2026-11-27 09:00:00",
                "product_interest_5f1a2b3c4d5e6": "CRM",
            }
        ]
    )
    sf = pd.DataFrame(
        [
            {
                "Id": "00Q000000000001AAA",
                "Email": "ann@example.com",
                "FirstName": "Ann",
                "LastName": "Lee",
                "LeadGen_Score__c": 20.0,
                "HasOptedOutOfEmail": True,
                "OwnerId": "005000000000001AAA",
                "LastModifiedDate": "2026-11-27T08:00:00.000+0000",
                "Product_Interest__c": "CRM",
                "IsDeleted": False,
            }
        ]
    )
    a = canonicalize_leadgen(lg, spec, schema, owners).iloc[0]
    b = canonicalize_salesforce(sf, spec, schema).iloc[0]
    for key in (
        "emailAddress",
        "firstName",
        "lastName",
        "leadScore",
        "isUnsubscribed",
        "ownerID",
        "product_interest_5f1a2b3c4d5e6",
    ):
        assert a[key] == b[key], key
    assert (a["_lg_id"], b["_sf_id"]) == ("11", "00Q000000000001AAA")
    assert a["_lg_updated"] > b["_sf_modified"]  # both parsed to aware UTC, comparable


def test_unmapped_owner_is_blank_and_flagged() -> None:
    spec = load_object_spec(spec_path("leads"))
    lg = pd.DataFrame([{"id": "1", "ownerID": "999", "emailAddress": "x@y.z"}])
    out = canonicalize_leadgen(lg, spec, sandbox_like_schema(), OwnerMap()).iloc[0]
    assert out["ownerID"] is None
    assert bool(out["_lg_owner_unmapped"]) is True


def test_payload_values() -> None:
    row = FieldMapping(
        leadgen="isUnsubscribed", salesforce="HasOptedOutOfEmail", direction="two-way"
    )
    assert salesforce_value("true", "boolean") is True
    assert salesforce_value("20", "double") == 20.0
    assert salesforce_value("20", "int") == 20
    assert salesforce_value(None, "string") is None
    assert leadgen_value("true", row, "boolean", None) == "1"
    assert leadgen_value(None, row, "boolean", None) == ""
    mapped = FieldMapping(leadgen="c", salesforce="C__c", direction="pull", value_map={"Red": "R"})
    assert leadgen_value("R", mapped, "picklist", None) == "Red"
    assert leadgen_value("Z", mapped, "picklist", None) == "Z"
    owner = FieldMapping(
        leadgen="ownerID", salesforce="OwnerId", direction="two-way", transform=["owner"]
    )
    om = OwnerMap(sf_to_lg={"005A": "7"})
    assert leadgen_value("005A", owner, "reference", om) == "7"
    assert leadgen_value("005B", owner, "reference", om) is None
