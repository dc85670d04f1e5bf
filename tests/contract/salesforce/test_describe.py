"""Describe: global, per object, metadata; field metadata the sync relies on."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.contract


def test_global_describe_lists_the_org_objects(sf):
    names = {o["name"]: o for o in sf.describe()["sobjects"]}
    for name in (
        "Lead",
        "Contact",
        "Account",
        "Opportunity",
        "OpportunityContactRole",
        "Task",
        "User",
        "Organization",
    ):
        assert name in names
    assert names["Lead"]["keyPrefix"] == "00Q"
    assert names["Contact"]["keyPrefix"] == "003"
    assert names["User"]["createable"] is False


def test_object_metadata_and_trailing_slashes(sf):
    meta = sf.Lead.metadata()
    assert meta["objectDescribe"]["name"] == "Lead"
    assert "recentItems" in meta
    # Any API version and an optional trailing slash reach the same resource.
    assert sf.restful("sobjects/Lead/describe/")["name"] == "Lead"
    versioned = sf.session.get(
        f"https://{sf.sf_instance}/services/data/v61.0/sobjects/Contact/describe",
        headers=sf.headers,
    )
    assert versioned.status_code == 200 and versioned.json()["name"] == "Contact"


def test_custom_fields_in_the_default_schema(client):
    lead = client.field_map("Lead")
    lg = lead["LeadGen_Id__c"]
    assert (lg["type"], lg["length"], lg["externalId"], lg["unique"], lg["custom"]) == (
        "string",
        32,
        True,
        True,
        True,
    )
    assert lead["LeadGen_URL__c"]["type"] == "url" and lead["LeadGen_URL__c"]["length"] == 255
    score = lead["LeadGen_Score__c"]
    assert (score["type"], score["precision"], score["scale"]) == ("double", 18, 0)
    interest = lead["Product_Interest__c"]
    assert interest["restrictedPicklist"] is True
    assert [p["value"] for p in interest["picklistValues"]] == [
        "Analytics",
        "CRM",
        "Email Marketing",
        "Automation",
    ]
    assert lead["Customer_Tier__c"]["length"] == 40
    contact = client.field_map("Contact")
    assert contact["LeadGen_Id__c"]["externalId"] is True
    task = client.field_map("Task")
    assert (
        task["LeadGen_Event_Id__c"]["length"] == 80
        and task["LeadGen_Event_Id__c"]["unique"] is True
    )


def test_standard_field_metadata(client):
    lead = client.field_map("Lead")
    assert lead["LastName"]["nillable"] is False and lead["Company"]["nillable"] is False
    assert lead["Name"]["createable"] is False and lead["Name"]["updateable"] is False
    assert lead["IsConverted"]["createable"] is False
    assert (
        lead["OwnerId"]["referenceTo"] == ["User"]
        and lead["OwnerId"]["relationshipName"] == "Owner"
    )
    task = client.field_map("Task")
    assert task["IsClosed"]["createable"] is False and task["IsClosed"]["updateable"] is False
    assert (
        task["WhoId"]["referenceTo"] == ["Contact", "Lead"]
        and task["WhoId"]["polymorphicForeignKey"] is True
    )
    assert task["TaskSubtype"]["createable"] is True and task["TaskSubtype"]["updateable"] is False
    opp = client.field_map("Opportunity")
    assert opp["CloseDate"]["type"] == "date" and opp["StageName"]["restrictedPicklist"] is True
    assert opp["IsWon"]["calculated"] is True


def test_describe_is_cached_per_client(client):
    client.describe("Lead")
    client.field_map("Lead")
    client.describe("Lead")
    assert client.calls["describe"] == 1


def test_admin_added_field_appears_in_describe_and_is_writable(client, admin):
    admin.post(
        "/schema/fields",
        {
            "object": "Lead",
            "name": "Favorite_Color__c",
            "type": "picklist",
            "picklistValues": ["Red", "Blue"],
            "restricted": True,
        },
    )
    assert client.field_map("Lead")["Favorite_Color__c"]["restrictedPicklist"] is True
    ok, bad = client.create("Lead", [
        {"LastName": "A", "Company": "C", "Favorite_Color__c": "Red"},
        {"LastName": "B", "Company": "C", "Favorite_Color__c": "Green"},
    ])  # fmt: skip
    assert ok.success and not bad.success
    assert bad.error_code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_unknown_object_describe_is_a_config_error(client):
    from crm_sync.errors import ConfigError

    with pytest.raises(ConfigError):
        client.describe("NoSuchObject__c")
