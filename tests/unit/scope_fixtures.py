"""Specs with a scope and a live schema with fields of every family, for the scope unit tests."""

from __future__ import annotations

from typing import Any

from crm_sync.mapping.models import ObjectSpec
from crm_sync.mapping.schema import LiveSchema
from tests.unit.schema_fixtures import LG_CUSTOM, PERSON_FIELDS, _f, sandbox_like_schema

PICKLIST = [{"value": v, "active": True} for v in ("Web", "Phone Inquiry", "Partner Referral")]
EXTRA_LEAD_FIELDS = [
    _f("LeadSource", "picklist", picklistValues=PICKLIST),
    _f("NumberOfEmployees", "int", 0, digits=8),
    _f("AnnualRevenue", "currency", 0, precision=18, scale=2),
    _f("CreatedDate", "datetime", 0, createable=False, updateable=False),
    _f("ConvertedDate", "date", 0, createable=False, updateable=False),
    _f("Notes__c", "textarea", 32768, filterable=False),
    _f("Photo__c", "base64", 0),
    _f("Interests__c", "multipicklist", 4099),
]


def scope_schema() -> LiveSchema:
    schema = sandbox_like_schema()
    base = [f for f in PERSON_FIELDS if f["name"] != "Description"]
    lead_only = [_f("Company"), _f("Country", length=80), _f("City", length=40)]
    schema.add_salesforce_describe("Lead", {"fields": base + lead_only + EXTRA_LEAD_FIELDS})
    schema.add_leadgen_fields(
        [
            *LG_CUSTOM,
            {"systemName": "upload_5f1a2b3c4d5e8", "relationship": "lead", "dataType": "upload"},
            {
                "systemName": "tier_5f1a2b3c4d5e9",
                "relationship": "lead",
                "dataType": "picklist",
                "options": "Gold,Silver",
            },
        ]
    )
    return schema


def person_spec(**scope: object) -> ObjectSpec:
    return ObjectSpec.model_validate(
        {
            "version": 1,
            "kind": "leads",
            "leadgen_object": "lead",
            "salesforce_object": "Lead",
            "scope": scope,
            "fields": [{"leadgen": "emailAddress", "salesforce": "Email", "direction": "two-way"}],
        }
    )


def sf_where(*conditions: dict[str, object]) -> ObjectSpec:
    return person_spec(salesforce={"where": list(conditions)})


def lg_where(*conditions: dict[str, object]) -> ObjectSpec:
    return person_spec(leadgen={"where": list(conditions)})


def cond(field: str, op: str, value: Any = None, values: list[Any] | None = None) -> dict:
    """One condition as a spec writes it (``value``/``values`` only when given)."""
    out: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        out["value"] = value
    if values is not None:
        out["values"] = values
    return out
