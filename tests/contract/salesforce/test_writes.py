"""Single-record REST writes, sObject Collections and the org's rules."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import (
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

from crm_sync.errors import ConfigError

pytestmark = pytest.mark.contract


# --------------------------------------------------------------------- single records


def test_sobject_create_get_update_delete(sf, admin):
    created = sf.Lead.create(
        {"LastName": "Curie", "Company": "Sorbonne", "Email": "marie@example.com"}
    )
    assert (
        created["success"] is True and created["id"].startswith("00Q") and len(created["id"]) == 18
    )
    rec = sf.Lead.get(created["id"])
    assert rec["Name"] == "Curie" and rec["Status"] == "Open - Not Contacted"
    assert rec["OwnerId"] == rec["CreatedById"]  # the integration user owns what it creates
    assert sf.Lead.update(created["id"], {"FirstName": "Marie"}) == 204
    assert sf.Lead.get(created["id"])["Name"] == "Marie Curie"
    assert sf.Lead.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.get(created["id"])
    assert admin.record("Lead", created["id"])["IsDeleted"] is True


def test_create_answers_201(sf):
    response = sf.session.post(
        f"https://{sf.sf_instance}/services/data/v59.0/sobjects/Account/",
        json={"Name": "Status Check"},
        headers=sf.headers,
    )
    assert response.status_code == 201


def test_upsert_by_external_id_creates_then_updates(sf):
    first = sf.Lead.upsert(
        "LeadGen_Id__c/abc123", {"LastName": "Ext", "Company": "C"}, raw_response=True
    )
    assert first.status_code == 201 and first.json()["created"] is True
    second = sf.Lead.upsert("LeadGen_Id__c/abc123", {"Title": "CTO"}, raw_response=True)
    assert second.status_code == 200
    assert second.json() == {
        "id": first.json()["id"],
        "success": True,
        "errors": [],
        "created": False,
    }
    rec = sf.Lead.get_by_custom_id("LeadGen_Id__c", "abc123")
    assert rec["Title"] == "CTO" and rec["LeadGen_Id__c"] == "abc123"


def test_upsert_matching_several_records_answers_300(sf, admin):
    admin.post(
        "/schema/fields",
        {
            "object": "Contact",
            "name": "Legacy_Key__c",
            "type": "string",
            "length": 20,
            "externalId": True,
        },
    )
    admin.create("Contact", LastName="One", Legacy_Key__c="K1")
    admin.create("Contact", LastName="Two", Legacy_Key__c="K1")
    with pytest.raises(SalesforceMoreThanOneRecord) as exc_info:
        sf.Contact.upsert("Legacy_Key__c/K1", {"Title": "x"})
    assert len(exc_info.value.content) == 2


def test_update_of_missing_record_is_not_found(sf):
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.update("00Q5e000000ZZZZEAA", {"Title": "x"})


# ------------------------------------------------------------------------ org rules

RULE_CASES = [
    ("required", {"FirstName": "No"}, "REQUIRED_FIELD_MISSING", ("LastName", "Company")),
    ("too long", {"LastName": "x" * 81, "Company": "C"}, "STRING_TOO_LONG", ("LastName",)),
    ("picklist", {"LastName": "P", "Company": "C", "Product_Interest__c": "Teleporters"},
     "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ("Product_Interest__c",)),
    ("email", {"LastName": "E", "Company": "C", "Email": "not-an-email"}, "INVALID_EMAIL_ADDRESS", ("Email",)),
    ("read-only field", {"LastName": "R", "Company": "C", "Name": "Full"}, "INVALID_FIELD_FOR_INSERT_UPDATE", ("Name",)),
    ("malformed id", {"LastName": "M", "Company": "C", "OwnerId": "12345"}, "MALFORMED_ID", ("OwnerId",)),
    ("dangling owner", {"LastName": "D", "Company": "C", "OwnerId": "0055e000000ZZZZAAA"}, "INVALID_CROSS_REFERENCE_KEY", ("OwnerId",)),
    ("wrong reference type", {"LastName": "W", "Company": "C", "OwnerId": "00Q5e0000000001EAA"},
     "FIELD_INTEGRITY_EXCEPTION", ("OwnerId",)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "record", "code", "fields"), RULE_CASES, ids=[c[0] for c in RULE_CASES]
)
def test_org_rules_per_record(client, case, record, code, fields):
    good, bad = client.create("Lead", [{"LastName": "Fine", "Company": "C"}, record])
    assert good.success and good.created is True
    assert not bad.success and bad.index == 1
    assert bad.error_code == code
    assert bad.errors[0].fields == fields


def test_inactive_owner(client, admin):
    inactive = next(u["Id"] for u in admin.get("/users")["users"] if not u["IsActive"])
    [res] = client.create("Lead", [{"LastName": "I", "Company": "C", "OwnerId": inactive}])
    assert res.error_code == "INACTIVE_OWNER_OR_USER"


def test_dangling_task_who(client):
    [res] = client.create("Task", [{"Subject": "s", "WhoId": "00Q5e000000ZZZZEAA"}])
    assert res.error_code == "INVALID_CROSS_REFERENCE_KEY" and res.errors[0].fields == ("WhoId",)


def test_duplicate_external_id(client):
    results = client.create(
        "Lead",
        [
            {"LastName": "A", "Company": "C", "LeadGen_Id__c": "dup"},
            {"LastName": "B", "Company": "C", "LeadGen_Id__c": "DUP"},  # unique is case-insensitive
        ],
    )
    assert results[0].success
    assert results[1].error_code == "DUPLICATE_VALUE"
    assert results[0].id in results[1].errors[0].message


def test_validation_rule(client, admin):
    admin.post(
        "/schema/validation-rules",
        {
            "object": "Lead",
            "name": "Phone_Format",
            "field": "Phone",
            "condition": {"regex": r"\+?[0-9 ()-]{7,}"},
            "message": "Phone must be digits",
        },
    )
    ok, bad, blank = client.create(
        "Lead",
        [
            {"LastName": "A", "Company": "C", "Phone": "+1 555-0100"},
            {"LastName": "B", "Company": "C", "Phone": "call me"},
            {"LastName": "C", "Company": "C"},
        ],
    )
    assert ok.success and blank.success
    assert bad.error_code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert bad.errors[0].message == "Phone must be digits" and bad.errors[0].fields == ("Phone",)


def test_cannot_update_converted_lead(client, admin):
    lead = admin.create("Lead", LastName="Convert", Company="Conv Inc")
    admin.post("/actions/convert-lead", {"leadId": lead})
    [res] = client.update("Lead", [{"Id": lead, "Title": "x"}])
    assert res.error_code == "CANNOT_UPDATE_CONVERTED_LEAD" and res.id == lead


def test_entity_is_deleted(client, admin):
    lead = admin.create("Lead", LastName="Gone", Company="C")
    admin.post("/actions/delete", {"ids": [lead]})
    [upd] = client.update("Lead", [{"Id": lead, "Title": "x"}])
    [dele] = client.delete([lead])
    assert upd.error_code == "ENTITY_IS_DELETED" and dele.error_code == "ENTITY_IS_DELETED"


def test_bad_number_fails_the_whole_request_and_the_client_isolates_it(sf, client):
    bad = {
        "attributes": {"type": "Lead"},
        "LastName": "N",
        "Company": "C",
        "NumberOfEmployees": "lots",
    }
    with pytest.raises(SalesforceMalformedRequest) as exc_info:
        sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": [bad]})
    assert exc_info.value.content[0]["errorCode"] == "JSON_PARSER_ERROR"
    records = [{"LastName": f"R{i}", "Company": "C"} for i in range(8)]
    records[5]["NumberOfEmployees"] = "lots"
    results = client.create("Lead", records)
    assert [r.success for r in results] == [True] * 5 + [False] + [True] * 2
    assert results[5].error_code == "JSON_PARSER_ERROR"
    assert len({r.id for r in results if r.success}) == 7
    # Bisection: 1 rejected call of 8, then 4+4, then 2+2 on the bad half, then 1+1.
    assert client.calls["collections"] == 7


def test_unknown_payload_field_is_invalid_field(sf, client):
    with pytest.raises(SalesforceMalformedRequest) as exc_info:
        sf.Lead.create({"LastName": "U", "Company": "C", "Shoe_Size__c": 9})
    assert exc_info.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(ConfigError, match="Shoe_Size__c"):
        client.create("Lead", [{"LastName": "U", "Company": "C", "Shoe_Size__c": 9}])


# ----------------------------------------------------------------------- collections


def test_more_than_200_records_is_refused(sf):
    records = [{"attributes": {"type": "Account"}, "Name": f"A{i}"} for i in range(201)]
    with pytest.raises(SalesforceMalformedRequest) as exc_info:
        sf.restful(
            "composite/sobjects", method="POST", json={"allOrNone": False, "records": records}
        )
    assert exc_info.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert "cannot submit more than 200 records" in exc_info.value.content[0]["message"]


def test_all_or_none_rolls_back_everything(sf, admin):
    records = [
        {"attributes": {"type": "Account"}, "Name": "Good 1"},
        {"attributes": {"type": "Account"}, "Phone": "555"},  # Name missing
        {"attributes": {"type": "Account"}, "Name": "Good 2"},
    ]
    results = sf.restful(
        "composite/sobjects", method="POST", json={"allOrNone": True, "records": records}
    )
    codes = [r["errors"][0]["statusCode"] for r in results]
    assert codes == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "REQUIRED_FIELD_MISSING",
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    ]
    assert all(r["success"] is False for r in results)
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 0
    partial = sf.restful(
        "composite/sobjects", method="POST", json={"allOrNone": False, "records": records}
    )
    assert [r["success"] for r in partial] == [True, False, True]


def test_client_writes_in_chunks_and_keeps_input_order(client, admin):
    records = [{"LastName": f"L{i:03d}", "Company": "C"} for i in range(450)]
    for i in (7, 250, 449):
        del records[i]["Company"]
    results = client.create("Lead", records)
    assert [r.index for r in results] == list(range(450))
    assert [i for i, r in enumerate(results) if not r.success] == [7, 250, 449]
    assert client.calls["collections"] == 3  # 200 + 200 + 50
    by_id = {r["Id"]: r["LastName"] for r in client.query("SELECT Id, LastName FROM Lead")}
    for i, res in enumerate(results):
        if res.success:
            assert by_id[res.id] == f"L{i:03d}"
    assert admin.calls()["by_kind"]["collections"] == 3


def test_client_upsert_reports_created_and_updated(client):
    first = client.upsert("Contact", "LeadGen_Id__c", [
        {"LeadGen_Id__c": "c1", "LastName": "One"},
        {"LeadGen_Id__c": "c2", "LastName": "Two"},
    ])  # fmt: skip
    assert [r.created for r in first] == [True, True]
    second = client.upsert("Contact", "LeadGen_Id__c", [
        {"LeadGen_Id__c": "c2", "Title": "CEO"},
        {"LeadGen_Id__c": "c3", "LastName": "Three"},
        {"LastName": "No key"},
    ])  # fmt: skip
    assert [r.created for r in second[:2]] == [False, True]
    assert second[0].id == first[1].id
    assert second[2].error_code == "MISSING_ARGUMENT"
    assert client.calls["collections"] == 2  # the keyless record never left the client


def test_client_update_and_delete_mixed_objects(client, admin):
    lead = admin.create("Lead", LastName="L", Company="C")
    acc = admin.create("Account", Name="A")
    [u1, u2] = client.update("Lead", [{"Id": lead, "Title": "VP"}, {"Title": "no id"}])
    assert u1.success and u1.id == lead and u2.error_code == "MISSING_ARGUMENT"
    results = client.delete([acc, "not-an-id", lead])
    assert [r.success for r in results] == [True, False, True]
    assert results[1].error_code == "MALFORMED_ID"
    assert [r.id for r in results] == [acc, "not-an-id", lead]
