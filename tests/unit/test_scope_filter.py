"""Scope at run time: in_scope on records as each API returns them, the frame variant, list
membership and the prepare stage's list check."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import pandas as pd
import pytest

from crm_sync.errors import ConfigError
from crm_sync.mapping.models import ObjectSpec
from crm_sync.pipeline.scope import (
    bind_scope,
    check_scopes,
    in_scope,
    read_list_members,
    scope_mask,
)
from tests.unit.scope_fixtures import cond, lg_where, person_spec, scope_schema, sf_where

pytestmark = pytest.mark.unit


def sf_holds(condition: dict[str, Any], value: Any) -> bool:
    scope = bind_scope(sf_where(condition), "salesforce", scope_schema())
    return in_scope(scope, {"Id": "00Q000000000001AAA", condition["field"]: value})


def lg_holds(condition: dict[str, Any], value: Any) -> bool:
    scope = bind_scope(lg_where(condition), "leadgen", scope_schema())
    return in_scope(scope, {"id": "1", condition["field"]: value})


# (condition, record value as Salesforce's JSON has it, in scope?) — SOQL's semantics
SALESFORCE_CASES = [
    (cond("LeadSource", "eq", "Web"), "Web", True),
    (cond("LeadSource", "eq", "Web"), "WEB", True),  # SOQL compares text without case
    (cond("LeadSource", "eq", "Web"), None, False),
    (cond("LeadSource", "ne", "Web"), None, True),  # != keeps nulls
    (cond("LeadSource", "ne", "Web"), "web", False),
    (cond("LeadSource", "in", values=["Web", "Phone Inquiry"]), "phone inquiry", True),
    (cond("LeadSource", "in", values=["Web"]), None, False),
    (cond("LeadSource", "not_in", values=["Web"]), None, True),  # NOT IN keeps nulls
    (cond("LeadSource", "not_in", values=["Web"]), "Partner Referral", True),
    (cond("LeadSource", "not_in", values=["Web"]), "Web", False),
    (cond("Country", "blank"), None, True),
    (cond("Country", "blank"), "", True),  # Salesforce stores an empty text as null
    (cond("Country", "blank"), "DE", False),
    (cond("Country", "not_blank"), "DE", True),
    (cond("Country", "not_blank"), None, False),
    (cond("City", "contains", "york"), "New York", True),
    (cond("City", "contains", "50%"), "Save 50% now", True),
    (cond("City", "contains", "50%"), "Save 500 now", False),  # % is not a wildcard here
    (cond("City", "contains", "a_b"), "axb", False),
    (cond("NumberOfEmployees", "gt", 50), 51, True),
    (cond("NumberOfEmployees", "gt", 50), 50, False),
    (cond("NumberOfEmployees", "gte", 50), 50.0, True),
    (cond("NumberOfEmployees", "gt", 50), None, False),  # ranges never match null
    (cond("NumberOfEmployees", "lt", 50), None, False),
    (cond("NumberOfEmployees", "eq", 50), 50.0, True),
    (cond("NumberOfEmployees", "in", values=[1, 2]), 2, True),
    (cond("AnnualRevenue", "lte", 10.5), 10.5, True),
    (cond("AnnualRevenue", "lt", 10.5), 10.5, False),
    (cond("ConvertedDate", "eq", date(2025, 6, 30)), "2025-06-30", True),
    (cond("ConvertedDate", "gt", date(2025, 6, 30)), "2025-07-01", True),
    (cond("ConvertedDate", "ne", date(2025, 6, 30)), None, True),
    (cond("CreatedDate", "gte", date(2024, 1, 1)), "2024-01-01T00:00:00.000+0000", True),
    (cond("CreatedDate", "gte", date(2024, 1, 1)), "2023-12-31T23:59:59.999+0000", False),
    (cond("CreatedDate", "lt", date(2024, 1, 1)), "2023-12-31T23:59:59.999+0000", True),
    (cond("HasOptedOutOfEmail", "eq", True), True, True),
    (cond("HasOptedOutOfEmail", "eq", False), False, True),
    (cond("HasOptedOutOfEmail", "ne", True), False, True),
    (cond("OwnerId", "eq", "005000000000001"), "005000000000001AAA", True),  # 15 = 18
    (cond("OwnerId", "in", values=["005000000000002AAA"]), "005000000000001AAA", False),
    (cond("OwnerId", "eq", "005000000000001AAA"), "005000000000001", True),
    (cond("OwnerId", "eq", "005000000000001AAA"), "005O00000000001AAA", False),
    (cond("Interests__c", "not_blank"), "CRM;Email", True),
    (cond("Interests__c", "blank"), None, True),
]


@pytest.mark.parametrize("condition,value,expected", SALESFORCE_CASES)
def test_salesforce_records(condition: dict, value: Any, expected: bool) -> None:
    assert sf_holds(condition, value) is expected


# Lead Gen & CRM sends everything as text: "20", "0"/"1", "YYYY-MM-DD HH:MM:SS" (UTC), "" unset
LEADGEN_CASES = [
    (cond("leadScore", "gt", 10), "20", True),
    (cond("leadScore", "gt", 10), "9", False),
    (cond("leadScore", "gt", 10), "", False),
    (cond("leadScore", "ne", 10), "", True),
    (cond("leadScore", "ne", 10), "10.0", False),
    (cond("leadScore", "gt", 10), "lots", False),  # unreadable: only ne / not_in / not_blank
    (cond("leadScore", "ne", 10), "lots", True),
    (cond("leadScore", "not_blank"), "lots", True),
    (cond("leadStatus", "not_in", values=["unqualified"]), "open", True),
    (cond("leadStatus", "not_in", values=["unqualified"]), "Unqualified", False),
    (cond("leadStatus", "in", values=["open", "qualified"]), "", False),
    (cond("active", "eq", True), "1", True),
    (cond("active", "eq", True), "0", False),
    (cond("isUnsubscribed", "eq", False), "", True),  # an unset bit is false
    (cond("isUnsubscribed", "eq", False), None, True),
    (cond("updateTimestamp", "gte", date(2026, 1, 1)), "2026-01-01 00:00:00", True),
    (cond("updateTimestamp", "gte", date(2026, 1, 1)), "2025-12-31 23:59:59", False),
    (cond("updateTimestamp", "blank"), "", True),
    (cond("product_interest_5f1a2b3c4d5e6", "eq", "CRM"), "crm", True),
    (cond("customer_tier_5f1a2b3c4d5e7", "contains", "old"), "Gold", True),
    (cond("customer_tier_5f1a2b3c4d5e7", "blank"), "   ", True),
    (cond("id", "in", values=[1001, 1002]), "1002", True),
]


@pytest.mark.parametrize("condition,value,expected", LEADGEN_CASES)
def test_leadgen_records(condition: dict, value: Any, expected: bool) -> None:
    assert lg_holds(condition, value) is expected


def test_all_conditions_must_hold() -> None:
    spec = sf_where(cond("Country", "not_blank"), cond("NumberOfEmployees", "gte", 10))
    scope = bind_scope(spec, "salesforce", scope_schema())
    assert in_scope(scope, {"Country": "DE", "NumberOfEmployees": 10})
    assert not in_scope(scope, {"Country": "DE", "NumberOfEmployees": 9})
    assert not in_scope(scope, {"Country": None, "NumberOfEmployees": 10})


def test_a_side_without_scope_lets_every_record_through() -> None:
    spec = sf_where(cond("Country", "not_blank"))
    assert bind_scope(spec, "leadgen", scope_schema()) is None
    assert in_scope(None, {"anything": 1})
    unscoped = ObjectSpec.model_validate({**spec.model_dump(), "scope": None})
    assert bind_scope(unscoped, "salesforce", scope_schema()) is None


def test_lists_need_their_members_and_then_decide_with_the_conditions() -> None:
    spec = person_spec(leadgen={"where": [cond("leadScore", "gt", 10)], "lists": [7, 8]})
    with pytest.raises(ValueError, match="read_list_members"):
        bind_scope(spec, "leadgen", scope_schema())
    scope = bind_scope(spec, "leadgen", scope_schema(), members=[1001, "1002"])
    assert scope is not None and scope.fields == ["leadScore", "id"]
    assert in_scope(scope, {"id": "1001", "leadScore": "20"})
    assert in_scope(scope, {"id": 1002, "leadScore": "11"})
    assert not in_scope(scope, {"id": "1003", "leadScore": "20"})  # not a member
    assert not in_scope(scope, {"id": "1001", "leadScore": "5"})  # a member, out of the where


def test_a_record_without_a_scope_field_is_an_error_not_a_blank() -> None:
    scope = bind_scope(sf_where(cond("Country", "ne", "DE")), "salesforce", scope_schema())
    with pytest.raises(ValueError, match="has no field 'Country'"):
        in_scope(scope, {"Id": "00Q000000000001AAA"})


def test_binding_refuses_a_field_the_live_schema_lacks() -> None:
    with pytest.raises(ConfigError, match=r"scope.salesforce.where\[0\]: Region__c"):
        bind_scope(sf_where(cond("Region__c", "blank")), "salesforce", scope_schema())


def test_the_frame_variant_agrees_with_in_scope_row_by_row() -> None:
    spec = person_spec(
        leadgen={
            "where": [
                cond("leadScore", "gte", 10),
                cond("leadStatus", "ne", "unqualified"),
                cond("customer_tier_5f1a2b3c4d5e7", "contains", "o"),
            ],
            "lists": [1],
        }
    )
    scope = bind_scope(spec, "leadgen", scope_schema(), members={"1", "2", "4", "6"})
    rows = [
        {"id": "1", "leadScore": "10", "leadStatus": "open", "customer_tier_5f1a2b3c4d5e7": "Gold"},
        {"id": "2", "leadScore": "9", "leadStatus": "open", "customer_tier_5f1a2b3c4d5e7": "Gold"},
        {"id": "3", "leadScore": "50", "leadStatus": "", "customer_tier_5f1a2b3c4d5e7": "Bronze"},
        {"id": "4", "leadScore": "", "leadStatus": "open", "customer_tier_5f1a2b3c4d5e7": "x"},
        {"id": "6", "leadScore": "12", "leadStatus": "", "customer_tier_5f1a2b3c4d5e7": "Bronze"},
        {
            "id": "6",
            "leadScore": "12",
            "leadStatus": "UNQUALIFIED",
            "customer_tier_5f1a2b3c4d5e7": "o",
        },
    ]
    frame = pd.DataFrame(rows, index=[10, 11, 12, 12, 14, 10])  # labels need not be unique
    mask = scope_mask(scope, frame)
    assert list(mask.index) == [10, 11, 12, 12, 14, 10]
    assert (
        list(mask) == [in_scope(scope, r) for r in rows] == [True, False, False, False, True, False]
    )
    assert scope_mask(None, frame).all()
    with pytest.raises(ValueError, match="no column 'leadStatus'"):
        scope_mask(scope, frame.drop(columns=["leadStatus"]))


class FakeLeadGen:
    """Lists and members as getActiveLists / getListMembers return them; counts calls."""

    def __init__(self, lists: dict[int, list[str]]):
        self.lists = lists
        self.calls: list[str] = []

    def get_active_lists(self) -> list[dict[str, Any]]:
        self.calls.append("getActiveLists")
        return [{"id": str(i), "name": f"list {i}"} for i in self.lists]

    def get_list_members(self, list_id: int) -> list[dict[str, Any]]:
        self.calls.append(f"getListMembers {list_id}")
        return [{"id": "9", "listID": str(list_id), "leadID": m} for m in self.lists[list_id]]


def test_members_of_any_listed_list() -> None:
    lg = FakeLeadGen({7: ["1001", "1002"], 8: ["1002", "1003"], 9: ["1009"]})
    assert read_list_members(lg, [7, 8]) == {"1001", "1002", "1003"}  # type: ignore[arg-type]
    assert lg.calls == ["getListMembers 7", "getListMembers 8"]


def test_prepare_fails_on_a_list_that_does_not_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    lg = FakeLeadGen({7: []})
    specs = {"Lead": person_spec(leadgen={"lists": [7, 70]})}
    with pytest.raises(ConfigError) as exc:
        check_scopes(specs, scope_schema(), lg)  # type: ignore[arg-type]
    assert (
        "include/mappings/leads.yaml: scope.leadgen.lists[1]: Lead Gen & CRM list 70 does not exist"
        in str(exc.value)
    )
    assert "lists[0]" not in str(exc.value)


def test_prepare_reads_no_lists_when_no_spec_names_one(caplog: pytest.LogCaptureFixture) -> None:
    lg = FakeLeadGen({})
    spec = sf_where(cond("LeadSource", "eq", "Webinar"))
    with caplog.at_level(logging.WARNING, logger="crm_sync.pipeline.scope"):
        warnings = check_scopes({"Lead": spec}, scope_schema(), lg)  # type: ignore[arg-type]
    assert lg.calls == []
    assert warnings == [
        "include/mappings/leads.yaml: scope.salesforce.where[0]: LeadSource has no value "
        "'Webinar' (it offers 'Web', 'Phone Inquiry', 'Partner Referral')"
    ]
    assert "LeadSource has no value 'Webinar'" in caplog.text
