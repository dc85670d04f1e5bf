"""A small LiveSchema resembling the sandbox org and account, for pure unit tests."""

from __future__ import annotations

from crm_sync.mapping.schema import LiveSchema


def _f(name, type_="string", length=255, **kw):
    d = {
        "name": name,
        "type": type_,
        "length": length,
        "nillable": True,
        "createable": True,
        "updateable": True,
    }
    d.update(kw)
    return d


PERSON_FIELDS = [
    _f("Id", "id", 18, createable=False, updateable=False),
    _f("FirstName", length=40),
    _f("LastName", length=80, nillable=False),
    _f("Email", "email", 80),
    _f("Title", length=128),
    _f("Phone", "phone", 40),
    _f("MobilePhone", "phone", 40),
    _f("Description", "textarea", 32000),
    _f("HasOptedOutOfEmail", "boolean", 0),
    _f("OwnerId", "reference", 18, referenceTo=["User"]),
    _f("LeadGen_Id__c", length=32, externalId=True),
    _f("LeadGen_URL__c", "url", 255),
    _f("LeadGen_Score__c", "double", 0, precision=18, scale=0),
    _f(
        "Product_Interest__c",
        "picklist",
        255,
        restrictedPicklist=True,
        picklistValues=[
            {"value": v, "active": True}
            for v in ("Analytics", "CRM", "Email Marketing", "Automation")
        ],
    ),
    _f("Customer_Tier__c", length=40),
    _f("LastModifiedDate", "datetime", 0, createable=False, updateable=False),
]
LEAD_ONLY = [
    _f("Company", length=255, nillable=False),
    _f("Street", "textarea", 255),
    _f("City", length=40),
    _f("State", length=80),
    _f("PostalCode", length=20),
    _f("Country", length=80),
    _f("Website", "url", 255),
    _f("Industry", "picklist", 255),
]
CONTACT_ONLY = [
    _f("MailingStreet", "textarea", 255),
    _f("MailingCity", length=40),
    _f("MailingState", length=80),
    _f("MailingPostalCode", length=20),
    _f("MailingCountry", length=80),
]

LG_CUSTOM = [
    {
        "systemName": "product_interest_5f1a2b3c4d5e6",
        "relationship": "lead",
        "dataType": "picklist",
        "isCustom": "1",
        "dataLength": "255",
    },
    {
        "systemName": "customer_tier_5f1a2b3c4d5e7",
        "relationship": "lead",
        "dataType": "string",
        "isCustom": "1",
        "dataLength": "255",
    },
]


def sandbox_like_schema() -> LiveSchema:
    s = LiveSchema()
    s.add_salesforce_describe("Lead", {"fields": PERSON_FIELDS + LEAD_ONLY})
    s.add_salesforce_describe("Contact", {"fields": PERSON_FIELDS + CONTACT_ONLY})
    s.add_leadgen_fields(LG_CUSTOM)
    return s
