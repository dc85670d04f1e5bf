"""Static description of the objects the sandbox serves: fields, types, limits, defaults.

One :class:`FieldDef` per standard field, in the order the real API returns them (the lead list
is the real 2022 ``getLeads`` order from the reference, section 7.1). The same definitions drive
storage (column names), validation of writes, conversion of reads (everything reads back as a
string) and the standard rows of ``getFields``.
"""

from __future__ import annotations

from dataclasses import dataclass

# leadStatus picklist (reference 7.1): the vendor sample lists the first four, RMUIT adds
# contactWithOpp and DLL customer.
LEAD_STATUSES = ("unqualified", "open", "qualified", "contact", "contactWithOpp", "customer")
# isContact / isQualified / isCustomer are read-only flags; the sandbox derives them from
# leadStatus (reference 7.1 marks the relation [I]; the choice is documented).
CONTACT_STATUSES = frozenset({"contact", "contactWithOpp", "customer"})
QUALIFIED_STATUSES = frozenset({"qualified", "contact", "contactWithOpp", "customer"})

# dataType values accepted by createFields (vendor example comment, reference 7.2).
CUSTOM_DATA_TYPES = frozenset(
    {
        "string",
        "textarea",
        "hidden",
        "picklist",
        "country",
        "state",
        "boolean",
        "checkbox",
        "radio",
        "phone",
        "date",
        "datetime",
        "url",
        "bit",
        "upload",
        "attachment",
    }
)
# Opportunity and account custom fields allow fewer types (reference 7.2).
NON_LEAD_DATA_TYPES = frozenset(
    {
        "string",
        "textarea",
        "hidden",
        "picklist",
        "boolean",
        "checkbox",
        "date",
        "datetime",
        "url",
        "bit",
    }
)
RELATIONSHIPS = ("lead", "opportunity", "account")


@dataclass(frozen=True)
class FieldDef:
    """One standard field.

    ``kind`` decides storage and conversion: ``id`` (the primary key), ``int``, ``decimal``,
    ``str``, ``bool`` (stored 0/1, read "0"/"1"), ``picklist``, ``date`` (read back as
    ``YYYY-MM-DD 00:00:00``), ``ts`` (server-maintained timestamp) or ``derived`` (computed on
    read, never stored). ``nullable=False`` fields reject ``null`` with object error 205, as the
    real API does for standard string fields (reference 5; RMUIT: "probably every non-custom
    string field"). ``ref=True`` marks integer id references (ownerID, accountID, ...): they are
    nullable but refuse ``""`` with 205, as RMUIT observed ("Sharpspring won't accept empty
    strings as values in integer ID columns").
    """

    name: str
    label: str
    kind: str
    data_type: str
    length: int | None = None
    writable: bool = True
    nullable: bool = True
    options: tuple[str, ...] = ()
    ref: bool = False


def _s(name: str, label: str, length: int = 255, data_type: str = "string", **kw) -> FieldDef:
    """A standard text field: never nullable (send ``""`` to clear it)."""
    return FieldDef(name, label, "str", data_type, length, nullable=False, **kw)


def _ref(name: str, label: str, **kw) -> FieldDef:
    """An integer id reference: nullable, ``""`` refused."""
    return FieldDef(name, label, "int", "int", ref=True, **kw)


LEAD_FIELDS: tuple[FieldDef, ...] = (
    FieldDef("id", "Lead ID", "id", "int", writable=False, nullable=False),
    _ref("accountID", "Account"),
    _ref("ownerID", "Owner"),
    _s("companyName", "Company Name", 100),
    _s("title", "Title"),
    _s("firstName", "First Name", 50),
    _s("lastName", "Last Name", 50),
    _s("street", "Street"),
    _s("city", "City"),
    _s("country", "Country", data_type="country"),
    _s("state", "State", 50, data_type="state"),
    _s("zipcode", "Zipcode", 50),
    _s("emailAddress", "Email", 150),
    _s("website", "Website", data_type="url"),
    _s("phoneNumber", "Phone Number", data_type="phone"),
    _s("officePhoneNumber", "Office Phone Number", data_type="phone"),
    _s("phoneNumberExtension", "Phone Number Extension", 50),
    _s("mobilePhoneNumber", "Mobile Phone Number", data_type="phone"),
    _s("faxNumber", "Fax Number", data_type="phone"),
    FieldDef("description", "Description", "str", "textarea", 65535, nullable=False),
    _ref("campaignID", "Campaign"),
    _s("trackingID", "Tracking ID"),
    _s("industry", "Industry"),
    # RMUIT: active and isUnsubscribed "can be (re)set to null, unlike string fields".
    FieldDef("active", "Active", "bool", "boolean"),
    FieldDef("isQualified", "Is Qualified", "derived", "boolean", writable=False),
    FieldDef("isContact", "Is Contact", "derived", "boolean", writable=False),
    FieldDef("isCustomer", "Is Customer", "derived", "boolean", writable=False),
    FieldDef("status", "Status", "int", "int", writable=False),
    FieldDef("updateTimestamp", "Updated", "ts", "datetime", writable=False),
    FieldDef("createTimestamp", "Created", "ts", "datetime", writable=False),
    FieldDef("leadScoreWeighted", "Lead Score Weighted", "int", "int"),
    FieldDef("leadScore", "Lead Score", "int", "int"),
    FieldDef("isUnsubscribed", "Is Unsubscribed", "bool", "boolean"),
    FieldDef(
        "leadStatus", "Lead Status", "picklist", "picklist", nullable=False, options=LEAD_STATUSES
    ),
    _s("persona", "Persona", 128),
)

ACCOUNT_FIELDS: tuple[FieldDef, ...] = (
    FieldDef("id", "Account ID", "id", "int", writable=False, nullable=False),
    _ref("ownerID", "Owner"),
    _s("accountName", "Account Name"),
    _s("industry", "Industry"),
    _s("phone", "Phone", data_type="phone"),
    FieldDef("annualRevenue", "Annual Revenue", "decimal", "string"),
    FieldDef("numberOfEmployees", "Number of Employees", "int", "int"),
    _s("website", "Website", data_type="url"),
    FieldDef("yearStarted", "Year Started", "int", "int"),
    _s("fax", "Fax", data_type="phone"),
    _s("billingCity", "Billing City"),
    _s("billingCountry", "Billing Country", data_type="country"),
    _s("billingPostalCode", "Billing Postal Code", 50),
    _s("billingState", "Billing State", 50, data_type="state"),
    _s("billingStreetAddress", "Billing Street Address"),
    _s("shippingCity", "Shipping City"),
    _s("shippingCountry", "Shipping Country", data_type="country"),
    _s("shippingPostalCode", "Shipping Postal Code", 50),
    _s("shippingState", "Shipping State", 50, data_type="state"),
    _s("shippingStreetAddress", "Shipping Street Address"),
)

OPPORTUNITY_FIELDS: tuple[FieldDef, ...] = (
    FieldDef("id", "Opportunity ID", "id", "int", writable=False, nullable=False),
    _ref("ownerID", "Owner"),
    _ref("dealStageID", "Deal Stage"),
    _ref("accountID", "Account"),
    _ref("campaignID", "Campaign"),
    _s("opportunityName", "Opportunity Name"),
    FieldDef("probability", "Probability", "int", "int"),
    FieldDef("amount", "Amount", "decimal", "string"),
    FieldDef("isClosed", "Is Closed", "bool", "boolean"),
    FieldDef("isWon", "Is Won", "bool", "boolean"),
    FieldDef("closeDate", "Close Date", "date", "date"),
    FieldDef("isActive", "Is Active", "bool", "boolean"),
    _ref("primaryLeadID", "Primary Lead"),
    _ref("originatingLeadID", "Originating Lead"),
)

DEAL_STAGE_FIELDS: tuple[FieldDef, ...] = (
    FieldDef("id", "Deal Stage ID", "id", "int", writable=False, nullable=False),
    _s("dealStageName", "Deal Stage Name"),
    FieldDef("description", "Description", "str", "textarea", 65535, nullable=False),
    FieldDef("defaultProbability", "Default Probability", "int", "int"),
    FieldDef("weight", "Weight", "int", "int"),
    FieldDef("isEditable", "Is Editable", "bool", "boolean"),
)

OPPORTUNITY_LEAD_FIELDS: tuple[FieldDef, ...] = (
    FieldDef("id", "Opportunity Lead ID", "id", "int", writable=False, nullable=False),
    _ref("opportunityID", "Opportunity", nullable=False),
    _ref("leadID", "Lead", nullable=False),
)

# The default account's custom lead fields. Their systemNames are fixed (not generated) so the
# sync's mapping specs can name them; createFields generates new ones with the real rule.
DEFAULT_CUSTOM_FIELDS: tuple[dict, ...] = (
    {
        "relationship": "lead",
        "systemName": "product_interest_5f1a2b3c4d5e6",
        "label": "Product Interest",
        "dataType": "picklist",
        "dataLength": 255,
        "options": ["Analytics", "CRM", "Email Marketing", "Automation"],
    },
    {
        "relationship": "lead",
        "systemName": "customer_tier_5f1a2b3c4d5e7",
        "label": "Customer Tier",
        "dataType": "string",
        "dataLength": 255,
        "options": [],
    },
    {
        "relationship": "lead",
        "systemName": "salesforce_url_5f1a2b3c4d5e8",
        "label": "Salesforce URL",
        "dataType": "url",
        "dataLength": 255,
        "options": [],
    },
)

FIELDS_BY_RELATIONSHIP: dict[str, tuple[FieldDef, ...]] = {
    "lead": LEAD_FIELDS,
    "account": ACCOUNT_FIELDS,
    "opportunity": OPPORTUNITY_FIELDS,
}

# Id ranges: the real API hands out large, unrelated integers per object type (lead ids are
# 11-12 digits, user ids about 9). Each table's AUTOINCREMENT sequence starts at its base, and
# ids are never reused after a delete (as in the real system).
ID_BASES: dict[str, int] = {
    "leads": 718081893000,
    "users": 313361051,
    "fields": 3104000,
    "accounts": 40210000,
    "opportunities": 2018800000,
    "opportunity_leads": 851000000,
    "deal_stages": 31270000,
    "campaigns": 357630000,
    "emails": 500232000,
    "email_jobs": 1204300000,
    "events": 960000000000,
    "forms": 7201000,
    "lists": 412000000,
    "list_members": 3300000000,
}
