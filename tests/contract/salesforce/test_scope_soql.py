"""Scope filters: the SOQL ``compile_soql`` writes selects exactly the records ``in_scope`` keeps.

The records (hostile text included: quotes, backslashes, LIKE wildcards, a newline, SOQL
keywords) are written to the Salesforce sandbox, read back through ``SalesforceClient`` as the
extract reads them, and every scope in the table is evaluated both ways: by the sandbox's SOQL
engine (``WHERE <compile_soql(...)>``) and by ``in_scope`` over all records.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from crm_sync.mapping.models import ObjectSpec
from crm_sync.mapping.schema import LiveSchema
from crm_sync.mapping.scope import compile_soql
from crm_sync.pipeline.scope import bind_scope, in_scope

pytestmark = pytest.mark.contract

FIELDS = ("City", "Rating", "LeadGen_Score__c", "HasOptedOutOfEmail", "Email", "CreatedDate")
# LastName, City, Rating, score, opted out, Email, created at
RECORDS = [
    ("A", "O'Brien's Town", "Hot", 10, False, "a@x.com", "2026-11-01T10:00:00Z"),
    ("B", "back\\slash", "Warm", 50, False, "b@y.com", "2026-11-01T10:30:00Z"),
    ("C", None, None, None, False, None, "2026-11-01T11:00:00Z"),
    ("D", "50% off_now", "Cold", 90, True, "d@x.com", "2026-11-01T11:30:00Z"),
    ("E", "line\nbreak", "hot", 50.5, False, None, "2026-11-02T00:00:00Z"),
    ("F", "' OR Name != null OR Name = '", None, 0, True, "f@x.com", "2026-10-31T23:59:59Z"),
    ("G", "SELECT Id FROM User", "Warm", None, False, "g@z.com", "2026-11-01T10:30:01Z"),
    ("H", "New York", "Cold", 50, False, "h@x.com", "2026-11-01T09:00:00Z"),
    ("I", "50 percent", None, -5, False, None, "2026-11-01T12:00:00Z"),
    ("J", "axb", "Hot", 12.25, False, "j@x.com", "2026-11-01T12:00:00Z"),
    ("K", "a_b", None, None, True, "k@x.com", "2026-11-01T12:00:00Z"),
]


def c(field: str, op: str, value: Any = None, values: list[Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        out["value"] = value
    if values is not None:
        out["values"] = values
    return out


SCOPES: list[list[dict[str, Any]]] = [
    [c("City", "eq", "O'Brien's Town")],
    [c("City", "eq", "o'brien's town")],
    [c("City", "ne", "back\\slash")],
    [c("City", "eq", "line\nbreak")],
    [c("City", "in", values=["' OR Name != null OR Name = '", "SELECT Id FROM User"])],
    [c("City", "not_in", values=["New York", "line\nbreak", "50% off_now"])],
    [c("City", "contains", "50%")],
    [c("City", "contains", "a_b")],
    [c("City", "contains", "'")],
    [c("City", "contains", "\\")],
    [c("City", "blank")],
    [c("City", "not_blank")],
    [c("Rating", "eq", "HOT")],
    [c("Rating", "in", values=["Hot", "Warm"])],
    [c("Rating", "not_in", values=["Hot", "Warm"])],
    [c("Rating", "ne", "Cold")],
    [c("LeadGen_Score__c", "gt", 10)],
    [c("LeadGen_Score__c", "gte", 50)],
    [c("LeadGen_Score__c", "lt", 50.5)],
    [c("LeadGen_Score__c", "lte", 0)],
    [c("LeadGen_Score__c", "eq", 50)],
    [c("LeadGen_Score__c", "ne", 50)],
    [c("LeadGen_Score__c", "in", values=[10, 12.25, -5])],
    [c("LeadGen_Score__c", "not_in", values=[10, 90])],
    [c("LeadGen_Score__c", "blank")],
    [c("HasOptedOutOfEmail", "eq", True)],
    [c("HasOptedOutOfEmail", "ne", True)],
    [c("CreatedDate", "gte", datetime(2026, 11, 1, 10, 30, tzinfo=UTC))],
    [c("CreatedDate", "gt", datetime(2026, 11, 1, 10, 30))],
    [c("CreatedDate", "lt", date(2026, 11, 1))],
    [c("CreatedDate", "lte", datetime(2026, 11, 1, 10, 30, tzinfo=UTC))],
    [c("Email", "contains", "@x.com")],
    [c("Email", "ne", "a@x.com")],
    [
        c("Rating", "not_blank"),
        c("LeadGen_Score__c", "gte", 10),
        c("City", "not_in", values=["axb"]),
    ],
]


@pytest.fixture
def leads(admin) -> dict[str, str]:
    ids = {}
    for last, city, rating, score, opted_out, email, at in RECORDS:
        ids[last] = admin.create(
            "Lead",
            LastName=last,
            Company="Corp",
            City=city,
            Rating=rating,
            LeadGen_Score__c=score,
            HasOptedOutOfEmail=opted_out,
            Email=email,
            _at=at,
        )
    return ids


def test_compile_soql_and_in_scope_select_the_same_records(client, leads) -> None:
    schema = LiveSchema()
    schema.add_salesforce_describe("Lead", client.describe("Lead"))
    records = list(client.query(f"SELECT Id, {', '.join(FIELDS)} FROM Lead"))
    assert len(records) == len(RECORDS)
    name = {v: k for k, v in leads.items()}
    mismatches = []
    sizes = []
    for where in SCOPES:
        spec = ObjectSpec.model_validate(
            {
                "version": 1,
                "kind": "leads",
                "leadgen_object": "lead",
                "salesforce_object": "Lead",
                "scope": {"salesforce": {"where": where}},
                "fields": [{"leadgen": "emailAddress", "salesforce": "Email", "direction": "push"}],
            }
        )
        soql_where = compile_soql(spec.scope, "Lead", schema)
        by_soql = {r["Id"] for r in client.query(f"SELECT Id FROM Lead WHERE {soql_where}")}
        scope = bind_scope(spec, "salesforce", schema)
        by_python = {r["Id"] for r in records if in_scope(scope, r)}
        sizes.append(len(by_soql))
        if by_soql != by_python:
            mismatches.append(
                f"{soql_where}: SOQL {sorted(name[i] for i in by_soql)} "
                f"!= in_scope {sorted(name[i] for i in by_python)}"
            )
    assert not mismatches, "\n".join(mismatches)
    # Every scope keeps some records and drops others: none of the comparisons is vacuous.
    vacuous = [w for n, w in zip(sizes, SCOPES, strict=True) if not 0 < n < len(RECORDS)]
    assert not vacuous
