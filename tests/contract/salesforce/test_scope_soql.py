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

from crm_sync.mapping.schema import LiveSchema
from crm_sync.mapping.scope import compile_soql
from crm_sync.pipeline.scope import bind_scope, in_scope
from tests.unit.scope_fixtures import cond, sf_where

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


SCOPES: list[list[dict[str, Any]]] = [
    [cond("City", "eq", "O'Brien's Town")],
    [cond("City", "eq", "o'brien's town")],
    [cond("City", "ne", "back\\slash")],
    [cond("City", "eq", "line\nbreak")],
    [cond("City", "in", values=["' OR Name != null OR Name = '", "SELECT Id FROM User"])],
    [cond("City", "not_in", values=["New York", "line\nbreak", "50% off_now"])],
    [cond("City", "contains", "50%")],
    [cond("City", "contains", "a_b")],
    [cond("City", "contains", "'")],
    [cond("City", "contains", "\\")],
    [cond("City", "blank")],
    [cond("City", "not_blank")],
    [cond("Rating", "eq", "HOT")],
    [cond("Rating", "in", values=["Hot", "Warm"])],
    [cond("Rating", "not_in", values=["Hot", "Warm"])],
    [cond("Rating", "ne", "Cold")],
    [cond("LeadGen_Score__c", "gt", 10)],
    [cond("LeadGen_Score__c", "gte", 50)],
    [cond("LeadGen_Score__c", "lt", 50.5)],
    [cond("LeadGen_Score__c", "lte", 0)],
    [cond("LeadGen_Score__c", "eq", 50)],
    [cond("LeadGen_Score__c", "ne", 50)],
    [cond("LeadGen_Score__c", "in", values=[10, 12.25, -5])],
    [cond("LeadGen_Score__c", "not_in", values=[10, 90])],
    [cond("LeadGen_Score__c", "blank")],
    [cond("HasOptedOutOfEmail", "eq", True)],
    [cond("HasOptedOutOfEmail", "ne", True)],
    [cond("CreatedDate", "gte", datetime(2026, 11, 1, 10, 30, tzinfo=UTC))],
    [cond("CreatedDate", "gt", datetime(2026, 11, 1, 10, 30))],
    [cond("CreatedDate", "lt", date(2026, 11, 1))],
    [cond("CreatedDate", "lte", datetime(2026, 11, 1, 10, 30, tzinfo=UTC))],
    [cond("Email", "contains", "@x.com")],
    [cond("Email", "ne", "a@x.com")],
    [
        cond("Rating", "not_blank"),
        cond("LeadGen_Score__c", "gte", 10),
        cond("City", "not_in", values=["axb"]),
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
        spec = sf_where(*where)
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
