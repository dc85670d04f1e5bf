"""The org schema: objects, fields, validation rules, and the describe payloads built from them.

Field metadata is the single source of truth: it drives the SQLite columns (:mod:`.storage`),
the checks on every write (:mod:`.dml`), SOQL type checking (:mod:`.query`) and the describe
JSON that clients read. The default org carries the standard fields a marketing sync touches plus
the custom fields this project's sync relies on (``LeadGen_Id__c`` and friends). More custom
fields and validation rules come from a schema file (``--schema-file``) or the admin API.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Field types, as describe reports them.
TEXT_TYPES = frozenset(
    {"string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "combobox"}
)
NUMBER_TYPES = frozenset({"int", "double", "currency", "percent"})
ID_TYPES = frozenset({"id", "reference"})
ALL_TYPES = TEXT_TYPES | NUMBER_TYPES | ID_TYPES | {"boolean", "date", "datetime"}

# Types an admin may give a new custom field, with the defaults a Salesforce admin would get.
CUSTOM_TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "string": {"length": 255},
    "textarea": {"length": 32768},
    "email": {"length": 80},
    "phone": {"length": 40},
    "url": {"length": 255},
    "picklist": {"length": 255},
    "boolean": {},
    "double": {"precision": 18, "scale": 0},
    "currency": {"precision": 18, "scale": 2},
    "percent": {"precision": 3, "scale": 0},
    "int": {"precision": 9, "scale": 0},
    "date": {},
    "datetime": {},
    "reference": {},
}

_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}

# Long text areas (over 255 characters) cannot be filtered or sorted in SOQL, as in a real org.
LONG_TEXT_THRESHOLD = 255


class SchemaError(ValueError):
    """A schema definition (file or admin call) is invalid."""


@dataclass(frozen=True)
class FieldDef:
    """One field of one object. Names keep the API casing; lookups are case-insensitive."""

    name: str
    label: str
    type: str
    length: int = 0
    precision: int = 0
    scale: int = 0
    required: bool = False  # must be non-blank after every write (REQUIRED_FIELD_MISSING)
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    unique: bool = False
    custom: bool = False
    calculated: bool = False
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    default: Any = None  # value set on create when the payload leaves the field out
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    system: bool = False  # maintained by the org (Id, audit fields, IsDeleted)

    @property
    def nillable(self) -> bool:
        return not (self.required or self.type in ("boolean", "id") or self.system)

    @property
    def filterable(self) -> bool:
        return not (self.type == "textarea" and self.length > LONG_TEXT_THRESHOLD)

    @property
    def sortable(self) -> bool:
        return self.filterable and self.type != "multipicklist"

    @property
    def permissionable(self) -> bool:
        """Whether field-level security applies (FieldPermissions rows exist for it).

        As in a real org: custom fields, and standard fields that are writable, optional and
        not maintained by the org. Required fields, ``Id``, owners, audit and formula fields
        are always visible and editable as their type allows [I].
        """
        if self.custom:
            return True
        if self.system or self.required or self.calculated or self.name == "OwnerId":
            return False
        return self.createable or self.updateable

    @property
    def is_text(self) -> bool:
        return self.type in TEXT_TYPES

    @property
    def polymorphic(self) -> bool:
        return len(self.reference_to) > 1

    def describe(self) -> dict[str, Any]:
        """The field entry of an sObject describe."""
        is_number = self.type in NUMBER_TYPES
        text_len = self.length if (self.is_text or self.type in ID_TYPES) else 0
        if self.type in ID_TYPES:
            text_len = 18
        return {
            "aggregatable": self.sortable,
            "autoNumber": False,
            "byteLength": text_len * 3,
            "calculated": self.calculated,
            "calculatedFormula": None,
            "cascadeDelete": False,
            "caseSensitive": False,
            "controllerName": None,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self.default if self.type in ("boolean", "picklist") else None,
            "defaultValueFormula": None,
            "defaultedOnCreate": self.default is not None or self.system,
            "dependentPicklist": False,
            "deprecatedAndHidden": False,
            "digits": self.precision if self.type == "int" else 0,
            "externalId": self.external_id,
            "filterable": self.filterable,
            "groupable": self.sortable and self.type not in ("double", "currency", "percent"),
            "htmlFormatted": False,
            "idLookup": self.type == "id" or self.external_id or self.name in ("Email", "Username"),
            "inlineHelpText": None,
            "label": self.label,
            "length": text_len,
            "name": self.name,
            "nameField": self.name == "Name",
            "namePointing": self.polymorphic,
            "nillable": self.nillable,
            "permissionable": self.permissionable,
            "picklistValues": [
                {
                    "active": True,
                    "defaultValue": value == self.default,
                    "label": value,
                    "validFor": None,
                    "value": value,
                }
                for value in self.picklist
            ],
            "polymorphicForeignKey": self.polymorphic,
            "precision": self.precision if is_number and self.type != "int" else 0,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "restrictedPicklist": self.restricted,
            "scale": self.scale if is_number and self.type != "int" else 0,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "sortable": self.sortable,
            "type": self.type,
            "unique": self.unique,
            "updateable": self.updateable,
        }


@dataclass
class ObjectDef:
    """One sObject type: its key prefix, object-level permissions and its fields in order."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: dict[str, FieldDef] = field(default_factory=dict)  # lower-cased name -> field
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    has_owner: bool = True

    def field(self, name: str) -> FieldDef | None:
        return self.fields.get(name.lower())

    def add(self, f: FieldDef) -> None:
        # Copy-on-write: request threads may be iterating the current dict.
        self.fields = {**self.fields, f.name.lower(): f}

    @property
    def field_list(self) -> list[FieldDef]:
        return list(self.fields.values())

    @property
    def soft_deletes(self) -> bool:
        """Whether rows go to the recycle bin (the object has ``IsDeleted``)."""
        return "isdeleted" in self.fields

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field whose relationship name is ``name`` (``Owner`` -> ``OwnerId``)."""
        lname = name.lower()
        for f in self.fields.values():
            if f.relationship_name and f.relationship_name.lower() == lname:
                return f
        return None

    def describe(self, api_version: str, all_fields: bool = True) -> dict[str, Any]:
        base = f"/services/data/v{api_version}/sobjects/{self.name}"
        out: dict[str, Any] = {
            "activateable": False,
            "createable": self.createable,
            "custom": False,
            "customSetting": False,
            "deletable": self.deletable,
            "deprecatedAndHidden": False,
            "feedEnabled": False,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": True,
            "mergeable": self.name in ("Lead", "Contact", "Account"),
            "mruEnabled": True,
            "name": self.name,
            "queryable": True,
            "replicateable": True,
            "retrieveable": True,
            "searchable": True,
            "triggerable": True,
            "undeletable": self.deletable,
            "updateable": self.updateable,
            "urls": {
                "rowTemplate": f"{base}/{{ID}}",
                "defaultValues": f"{base}/defaultValues?recordTypeId&fields",
                "describe": f"{base}/describe",
                "sobject": base,
            },
        }
        if all_fields:
            out["fields"] = [f.describe() for f in self.fields.values()]
            out["childRelationships"] = []
            out["recordTypeInfos"] = []
            out["supportedScopes"] = [
                {"label": "All " + self.label_plural.lower(), "name": "everything"}
            ]
        return out


@dataclass(frozen=True)
class ValidationRule:
    """A validation rule: ``field`` must satisfy ``condition`` after every write, else ``message``.

    Conditions: ``{"type": "not_blank"}`` or ``{"type": "regex", "pattern": "..."}`` (the value,
    when present, must match the whole pattern).
    """

    object: str
    name: str
    field: str
    condition: Mapping[str, Any]
    message: str
    active: bool = True

    def violated_by(self, value: Any) -> bool:
        if not self.active:
            return False
        blank = value is None or (isinstance(value, str) and not value.strip())
        kind = self.condition.get("type")
        if kind == "not_blank":
            return blank
        if kind == "regex":
            return not blank and re.fullmatch(self.condition["pattern"], str(value)) is None
        return False

    def to_json(self) -> dict[str, Any]:
        return {
            "object": self.object,
            "name": self.name,
            "field": self.field,
            "condition": dict(self.condition),
            "message": self.message,
            "active": self.active,
        }


def normalize_condition(raw: Any) -> dict[str, Any]:
    """Accept ``"not_blank"``, ``{"not_blank": true}``, ``{"regex": p}`` or the canonical form."""
    if raw == "not_blank" or (isinstance(raw, Mapping) and raw.get("not_blank") is True):
        return {"type": "not_blank"}
    if isinstance(raw, Mapping):
        if raw.get("type") == "not_blank":
            return {"type": "not_blank"}
        pattern = raw.get("pattern") if raw.get("type") == "regex" else raw.get("regex")
        if isinstance(pattern, str):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise SchemaError(f"invalid regex in validation rule: {exc}") from exc
            return {"type": "regex", "pattern": pattern}
    raise SchemaError(
        "a validation rule condition is 'not_blank' or {'regex': '<pattern>'} "
        "(or {'type': 'not_blank'|'regex', 'pattern': ...})"
    )


# ---------------------------------------------------------------------------- default schema

INDUSTRIES = (
    "Agriculture", "Apparel", "Banking", "Biotechnology", "Chemicals", "Communications",
    "Construction", "Consulting", "Education", "Electronics", "Energy", "Engineering",
    "Entertainment", "Environmental", "Finance", "Food & Beverage", "Government", "Healthcare",
    "Hospitality", "Insurance", "Machinery", "Manufacturing", "Media", "Not For Profit",
    "Recreation", "Retail", "Shipping", "Technology", "Telecommunications", "Transportation",
    "Utilities", "Other",
)  # fmt: skip
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
LEAD_STATUSES = (
    "Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted",
)  # fmt: skip
CONVERTED_LEAD_STATUS = "Closed - Converted"
# StageName -> (default probability, IsClosed, IsWon)
OPPORTUNITY_STAGES: dict[str, tuple[int, bool, bool]] = {
    "Prospecting": (10, False, False),
    "Qualification": (10, False, False),
    "Needs Analysis": (20, False, False),
    "Value Proposition": (50, False, False),
    "Id. Decision Makers": (60, False, False),
    "Perception Analysis": (70, False, False),
    "Proposal/Price Quote": (75, False, False),
    "Negotiation/Review": (90, False, False),
    "Closed Won": (100, True, True),
    "Closed Lost": (0, True, False),
}
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
TASK_CLOSED_STATUSES = frozenset({"Completed"})
PRODUCT_INTERESTS = ("Analytics", "CRM", "Email Marketing", "Automation")
CONTACT_ROLES = (
    "Business User", "Decision Maker", "Economic Buyer", "Economic Decision Maker", "Evaluator",
    "Executive Sponsor", "Influencer", "Technical Buyer", "Other",
)  # fmt: skip

# Children that go to the recycle bin with their parent, and come back on undelete (describe
# reports these relationships with ``cascadeDelete: true``).
CASCADE: dict[str, list[tuple[str, str]]] = {
    "Account": [("Contact", "AccountId"), ("Opportunity", "AccountId"), ("Task", "WhatId")],
    "Contact": [("OpportunityContactRole", "ContactId"), ("Task", "WhoId")],
    "Lead": [("Task", "WhoId")],
    "Opportunity": [("OpportunityContactRole", "OpportunityId"), ("Task", "WhatId")],
}
# The parent side's name of a lookup (``SELECT (SELECT ... FROM Contacts) FROM Account``);
# lookups not listed here (audit fields, owners, conversion and merge pointers) have none.
CHILD_RELATIONSHIP_NAMES: dict[tuple[str, str], str] = {
    ("Contact", "AccountId"): "Contacts",
    ("Opportunity", "AccountId"): "Opportunities",
    ("Task", "WhatId"): "Tasks",
    ("Task", "WhoId"): "Tasks",
    ("OpportunityContactRole", "OpportunityId"): "OpportunityContactRoles",
    ("OpportunityContactRole", "ContactId"): "OpportunityContactRoles",
}

KEY_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "Lead": "00Q",
    "Task": "00T",
    "Organization": "00D",
    "OpportunityContactRole": "00K",
    "Profile": "00e",
    "PermissionSet": "0PS",
    "PermissionSetAssignment": "0Pa",
    "FieldPermissions": "01k",
}


def _s(name: str, label: str, length: int, **kw: Any) -> FieldDef:
    return FieldDef(name, label, "string", length=length, **kw)


def _ref(name: str, label: str, to: Iterable[str], rel: str, **kw: Any) -> FieldDef:
    return FieldDef(name, label, "reference", reference_to=tuple(to), relationship_name=rel, **kw)


def _pick(name: str, label: str, values: Iterable[str], **kw: Any) -> FieldDef:
    return FieldDef(name, label, "picklist", length=255, picklist=tuple(values), **kw)


def _system_fields(obj: str, *, owner: bool, soft_delete: bool = True) -> list[FieldDef]:
    ro = {"createable": False, "updateable": False, "system": True}
    fields = [FieldDef("Id", f"{obj} ID", "id", length=18, **ro)]
    if owner:
        fields.append(_ref("OwnerId", "Owner ID", ["User"], "Owner"))
    if soft_delete:
        fields.append(FieldDef("IsDeleted", "Deleted", "boolean", default=False, **ro))
    fields += [
        FieldDef("CreatedDate", "Created Date", "datetime", **ro),
        _ref("CreatedById", "Created By ID", ["User"], "CreatedBy", **ro),
        FieldDef("LastModifiedDate", "Last Modified Date", "datetime", **ro),
        _ref("LastModifiedById", "Last Modified By ID", ["User"], "LastModifiedBy", **ro),
        FieldDef("SystemModstamp", "System Modstamp", "datetime", **ro),
    ]
    return fields


def _leadgen_custom_fields() -> list[FieldDef]:
    return [
        _s("LeadGen_Id__c", "Lead Gen & CRM Id", 32, external_id=True, unique=True, custom=True),
        FieldDef("LeadGen_URL__c", "Lead Gen & CRM URL", "url", length=255, custom=True),
        FieldDef(
            "LeadGen_Score__c", "Lead Gen & CRM Score", "double", precision=18, scale=0, custom=True
        ),
        _pick(
            "Product_Interest__c",
            "Product Interest",
            PRODUCT_INTERESTS,
            restricted=True,
            custom=True,
        ),
        _s("Customer_Tier__c", "Customer Tier", 40, custom=True),
    ]


def _calc(name: str, label: str, type_: str, **kw: Any) -> FieldDef:
    return FieldDef(name, label, type_, createable=False, updateable=False, calculated=True, **kw)


def _read_only(name: str, label: str, type_: str, **kw: Any) -> FieldDef:
    return FieldDef(name, label, type_, createable=False, updateable=False, **kw)


def default_objects() -> dict[str, ObjectDef]:
    """The default org: standard objects and the custom fields the sync relies on."""
    objs: dict[str, ObjectDef] = {}

    def obj(name: str, label: str, plural: str, fields: list[FieldDef], **kw: Any) -> None:
        o = ObjectDef(name, label, plural, KEY_PREFIXES[name], **kw)
        for f in fields:
            o.add(f)
        objs[name] = o

    obj(
        "Lead",
        "Lead",
        "Leads",
        [
            *_system_fields("Lead", owner=True),
            _ref("MasterRecordId", "Master Record ID", ["Lead"], "MasterRecord", createable=False, updateable=False),
            _s("FirstName", "First Name", 40),
            _s("LastName", "Last Name", 80, required=True),
            _calc("Name", "Full Name", "string", length=121),
            _s("Company", "Company", 255, required=True),
            FieldDef("Email", "Email", "email", length=80),
            _s("Title", "Title", 128),
            FieldDef("Phone", "Phone", "phone", length=40),
            FieldDef("MobilePhone", "Mobile Phone", "phone", length=40),
            FieldDef("Street", "Street", "textarea", length=255),
            _s("City", "City", 40),
            _s("State", "State/Province", 80),
            _s("PostalCode", "Zip/Postal Code", 20),
            _s("Country", "Country", 80),
            FieldDef("Website", "Website", "url", length=255),
            _pick("Industry", "Industry", INDUSTRIES),
            _pick("LeadSource", "Lead Source", LEAD_SOURCES),
            _pick("Status", "Status", LEAD_STATUSES, required=True, default=LEAD_STATUSES[0]),
            _pick("Rating", "Rating", ("Hot", "Warm", "Cold")),
            FieldDef("NumberOfEmployees", "Employees", "int", precision=8),
            FieldDef("AnnualRevenue", "Annual Revenue", "currency", precision=18, scale=0),
            FieldDef("Description", "Description", "textarea", length=32000),
            FieldDef("HasOptedOutOfEmail", "Email Opt Out", "boolean", default=False),
            _read_only("IsConverted", "Converted", "boolean", default=False),
            _read_only("ConvertedDate", "Converted Date", "date"),
            _ref("ConvertedAccountId", "Converted Account ID", ["Account"], "ConvertedAccount", createable=False, updateable=False),
            _ref("ConvertedContactId", "Converted Contact ID", ["Contact"], "ConvertedContact", createable=False, updateable=False),
            _ref("ConvertedOpportunityId", "Converted Opportunity ID", ["Opportunity"], "ConvertedOpportunity", createable=False, updateable=False),
            *_leadgen_custom_fields(),
        ],
    )  # fmt: skip
    obj(
        "Contact",
        "Contact",
        "Contacts",
        [
            *_system_fields("Contact", owner=True),
            _ref("MasterRecordId", "Master Record ID", ["Contact"], "MasterRecord", createable=False, updateable=False),
            _ref("AccountId", "Account ID", ["Account"], "Account"),
            _s("FirstName", "First Name", 40),
            _s("LastName", "Last Name", 80, required=True),
            _calc("Name", "Full Name", "string", length=121),
            FieldDef("Email", "Email", "email", length=80),
            _s("Title", "Title", 128),
            _s("Department", "Department", 80),
            FieldDef("Phone", "Business Phone", "phone", length=40),
            FieldDef("MobilePhone", "Mobile Phone", "phone", length=40),
            FieldDef("MailingStreet", "Mailing Street", "textarea", length=255),
            _s("MailingCity", "Mailing City", 40),
            _s("MailingState", "Mailing State/Province", 80),
            _s("MailingPostalCode", "Mailing Zip/Postal Code", 20),
            _s("MailingCountry", "Mailing Country", 80),
            _pick("LeadSource", "Lead Source", LEAD_SOURCES),
            FieldDef("Description", "Contact Description", "textarea", length=32000),
            FieldDef("HasOptedOutOfEmail", "Email Opt Out", "boolean", default=False),
            *_leadgen_custom_fields(),
        ],
    )  # fmt: skip
    obj(
        "Account",
        "Account",
        "Accounts",
        [
            *_system_fields("Account", owner=True),
            _ref("MasterRecordId", "Master Record ID", ["Account"], "MasterRecord", createable=False, updateable=False),
            _s("Name", "Account Name", 255, required=True),
            _pick("Type", "Account Type", ("Prospect", "Customer - Direct", "Customer - Channel", "Channel Partner / Reseller", "Installation Partner", "Technology Partner", "Other")),
            _pick("Industry", "Industry", INDUSTRIES),
            FieldDef("Phone", "Account Phone", "phone", length=40),
            FieldDef("Website", "Website", "url", length=255),
            FieldDef("BillingStreet", "Billing Street", "textarea", length=255),
            _s("BillingCity", "Billing City", 40),
            _s("BillingState", "Billing State/Province", 80),
            _s("BillingPostalCode", "Billing Zip/Postal Code", 20),
            _s("BillingCountry", "Billing Country", 80),
            FieldDef("AnnualRevenue", "Annual Revenue", "currency", precision=18, scale=0),
            FieldDef("NumberOfEmployees", "Employees", "int", precision=8),
            FieldDef("Description", "Account Description", "textarea", length=32000),
        ],
    )  # fmt: skip
    obj(
        "Opportunity",
        "Opportunity",
        "Opportunities",
        [
            *_system_fields("Opportunity", owner=True),
            _ref("AccountId", "Account ID", ["Account"], "Account"),
            _s("Name", "Name", 120, required=True),
            _pick("StageName", "Stage", OPPORTUNITY_STAGES, required=True, restricted=True),
            FieldDef("CloseDate", "Close Date", "date", required=True),
            FieldDef("Amount", "Amount", "currency", precision=18, scale=2),
            FieldDef("Probability", "Probability (%)", "percent", precision=3, scale=0),
            _calc("IsClosed", "Closed", "boolean", default=False),
            _calc("IsWon", "Won", "boolean", default=False),
            _pick("LeadSource", "Lead Source", LEAD_SOURCES),
            _pick("Type", "Opportunity Type", ("Existing Customer - Upgrade", "Existing Customer - Replacement", "Existing Customer - Downgrade", "New Customer")),
            _s("NextStep", "Next Step", 255),
            FieldDef("Description", "Description", "textarea", length=32000),
        ],
    )  # fmt: skip
    obj(
        "OpportunityContactRole",
        "Opportunity Contact Role",
        "Opportunity Contact Roles",
        [
            *_system_fields("OpportunityContactRole", owner=False),
            _ref(
                "OpportunityId",
                "Opportunity ID",
                ["Opportunity"],
                "Opportunity",
                required=True,
                updateable=False,
            ),
            _ref("ContactId", "Contact ID", ["Contact"], "Contact", required=True),
            _pick("Role", "Role", CONTACT_ROLES),
            FieldDef("IsPrimary", "Primary", "boolean", default=False),
        ],
        has_owner=False,
    )
    obj(
        "Task",
        "Task",
        "Tasks",
        [
            *_system_fields("Task", owner=True),
            _ref("WhoId", "Name ID", ["Contact", "Lead"], "Who"),
            _ref("WhatId", "Related To ID", ["Account", "Opportunity"], "What"),
            FieldDef("Subject", "Subject", "combobox", length=255),
            FieldDef("ActivityDate", "Due Date Only", "date"),
            _pick("Status", "Status", TASK_STATUSES, required=True, default="Not Started"),
            _pick("Priority", "Priority", ("High", "Normal", "Low"), required=True, default="Normal"),
            _pick("Type", "Type", ("Call", "Email", "Meeting", "Other")),
            _pick("TaskSubtype", "Task Subtype", ("Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"), restricted=True, updateable=False, default="Task"),
            FieldDef("Description", "Description", "textarea", length=32000),
            _calc("IsClosed", "Closed", "boolean", default=False),
            _read_only("CompletedDateTime", "Completed Date/Time", "datetime"),
            _s("LeadGen_Event_Id__c", "Lead Gen & CRM Event Id", 80, external_id=True, unique=True, custom=True),
        ],
    )  # fmt: skip
    obj(
        "User",
        "User",
        "Users",
        [
            *_system_fields("User", owner=False, soft_delete=False),
            _s("Username", "Username", 80, required=True, unique=True),
            FieldDef("Email", "Email", "email", length=128, required=True),
            _s("FirstName", "First Name", 40),
            _s("LastName", "Last Name", 80, required=True),
            _calc("Name", "Full Name", "string", length=121),
            _s("Alias", "Alias", 8),
            _s("Title", "Title", 80),
            FieldDef("IsActive", "Active", "boolean", default=True),
            _ref("ProfileId", "Profile ID", ["Profile"], "Profile"),
            _pick("UserType", "User Type", ("Standard",), default="Standard"),
        ],
        createable=False,
        updateable=False,
        deletable=False,
        has_owner=False,
    )
    obj(
        "Organization",
        "Organization",
        "Organizations",
        [
            *_system_fields("Organization", owner=False, soft_delete=False),
            _read_only("Name", "Name", "string", length=80),
            _read_only("IsSandbox", "Is Sandbox", "boolean", default=False),
            _read_only("OrganizationType", "Edition", "picklist", length=255),
            _read_only("InstanceName", "Instance Name", "string", length=5),
        ],
        createable=False,
        updateable=False,
        deletable=False,
        has_owner=False,
    )
    return objs


# Objects the admin "reset" wipes; User and Organization are the org itself and are kept.
DATA_OBJECTS = ("Lead", "Contact", "Account", "Opportunity", "OpportunityContactRole", "Task")


class Schema:
    """The live schema: default objects + schema file + admin additions, and validation rules."""

    def __init__(self, objects: dict[str, ObjectDef], rules: list[ValidationRule] | None = None):
        self.objects = objects
        self._by_lower = {name.lower(): o for name, o in objects.items()}
        self._by_prefix = {o.key_prefix: o for o in objects.values()}
        self.rules: list[ValidationRule] = list(rules or [])

    def copy(self) -> Schema:
        return Schema(copy.deepcopy(self.objects), list(self.rules))

    def get(self, name: str) -> ObjectDef | None:
        return self._by_lower.get(name.lower())

    def by_prefix(self, prefix: str) -> ObjectDef | None:
        return self._by_prefix.get(prefix)

    def rules_for(self, obj: str) -> list[ValidationRule]:
        return [r for r in self.rules if r.object == obj and r.active]

    # -- additions (admin API / schema file)
    def add_field(self, spec: Mapping[str, Any]) -> FieldDef:
        """Add a custom field from a JSON/YAML spec; return the new field."""
        obj = self.get(str(spec.get("object", "")))
        if obj is None:
            raise SchemaError(f"unknown object {spec.get('object')!r}")
        if obj.name in ("User", "Organization"):
            raise SchemaError(f"custom fields on {obj.name} are not supported by the sandbox")
        f = field_from_spec(obj.name, spec)
        existing = obj.field(f.name)
        if existing is not None:
            if existing == f:
                return existing  # idempotent re-add
            raise SchemaError(f"{obj.name}.{f.name} already exists with a different definition")
        for target in f.reference_to:
            if self.get(target) is None:
                raise SchemaError(f"referenceTo names unknown object {target!r}")
        obj.add(f)
        return f

    def _custom_field(self, obj_name: str, name: str) -> tuple[ObjectDef, FieldDef]:
        obj = self.get(str(obj_name))
        f = obj.field(str(name)) if obj else None
        if obj is None or f is None:
            raise SchemaError(f"unknown field {obj_name}.{name}")
        if not f.custom:
            raise SchemaError(f"{obj.name}.{f.name} is a standard field: only custom fields change")
        return obj, f

    def change_field(
        self, obj_name: str, name: str, changes: Mapping[str, Any]
    ) -> tuple[ObjectDef, FieldDef, FieldDef]:
        """Redefine a custom field from its spec plus ``changes``: (object, old, new)."""
        obj, old = self._custom_field(obj_name, name)
        spec = {**field_to_spec(obj.name, old), **changes, "object": obj.name, "name": old.name}
        new = field_from_spec(obj.name, spec)
        for target in new.reference_to:
            if self.get(target) is None:
                raise SchemaError(f"referenceTo names unknown object {target!r}")
        obj.add(new)  # same lower-cased key: replaces the old definition
        return obj, old, new

    def remove_field(self, obj_name: str, name: str) -> tuple[ObjectDef, FieldDef]:
        obj, f = self._custom_field(obj_name, name)
        obj.fields = {k: v for k, v in obj.fields.items() if k != f.name.lower()}
        self.rules = [r for r in self.rules if not (r.object == obj.name and r.field == f.name)]
        return obj, f

    def add_rule(self, spec: Mapping[str, Any]) -> ValidationRule:
        obj = self.get(str(spec.get("object", "")))
        if obj is None:
            raise SchemaError(f"unknown object {spec.get('object')!r}")
        fname = str(spec.get("field", ""))
        f = obj.field(fname)
        if f is None:
            raise SchemaError(f"unknown field {obj.name}.{fname}")
        name = str(spec.get("name") or "").strip()
        message = str(spec.get("message") or "").strip()
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,39}", name):
            raise SchemaError("a validation rule needs a name (letters, digits, underscores)")
        if not message:
            raise SchemaError("a validation rule needs an error message")
        rule = ValidationRule(
            obj.name,
            name,
            f.name,
            normalize_condition(spec.get("condition")),
            message,
            bool(spec.get("active", True)),
        )
        self.rules = [r for r in self.rules if not (r.object == obj.name and r.name == name)]
        self.rules.append(rule)
        return rule

    def remove_rule(self, obj: str, name: str) -> bool:
        before = len(self.rules)
        self.rules = [
            r for r in self.rules if not (r.object.lower() == obj.lower() and r.name == name)
        ]
        return len(self.rules) != before

    def apply_document(self, doc: Mapping[str, Any]) -> None:
        """Apply a schema document ``{"fields": [...], "validation_rules": [...]}``."""
        unknown = set(doc) - {"fields", "validation_rules"}
        if unknown:
            raise SchemaError(f"unknown schema file keys: {sorted(unknown)}")
        for spec in doc.get("fields") or []:
            self.add_field(spec)
        for spec in doc.get("validation_rules") or []:
            self.add_rule(spec)


def field_from_spec(obj_name: str, spec: Mapping[str, Any]) -> FieldDef:
    """Build a custom :class:`FieldDef` from an admin/schema-file spec, with real-org defaults."""
    name = str(spec.get("name", ""))
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*__c", name) or "__" in name[:-3]:
        raise SchemaError(f"custom field names end with __c and have no other '__': {name!r}")
    ftype = str(spec.get("type", "")).lower()
    aliases = {"text": "string", "number": "double", "checkbox": "boolean", "lookup": "reference"}
    ftype = aliases.get(ftype, ftype)
    if ftype not in CUSTOM_TYPE_DEFAULTS:
        raise SchemaError(
            f"unsupported custom field type {spec.get('type')!r}; use one of {sorted(CUSTOM_TYPE_DEFAULTS)}"
        )
    defaults = CUSTOM_TYPE_DEFAULTS[ftype]
    length = int(spec.get("length", defaults.get("length", 0)))
    if ftype == "string" and not 1 <= length <= 255:
        raise SchemaError("Text fields have a length between 1 and 255")
    picklist = tuple(str(v) for v in spec.get("picklistValues", spec.get("values", ())) or ())
    if ftype == "picklist" and not picklist:
        raise SchemaError("a picklist field needs picklistValues")
    reference_to = tuple(spec.get("referenceTo", ()) or ())
    if ftype == "reference" and len(reference_to) != 1:
        raise SchemaError("a lookup field needs exactly one referenceTo object")
    external_id = bool(spec.get("externalId", False))
    if external_id and ftype not in ("string", "email", "double", "int"):
        raise SchemaError("only Text, Email and Number fields can be External IDs")
    default = spec.get("defaultValue")
    if ftype == "boolean" and default is None:
        default = False
    label = str(spec.get("label") or name[:-3].replace("_", " "))
    return FieldDef(
        name=name,
        label=label,
        type=ftype,
        length=length,
        precision=int(spec.get("precision", defaults.get("precision", 0))),
        scale=int(spec.get("scale", defaults.get("scale", 0))),
        required=bool(spec.get("required", False)),
        external_id=external_id,
        unique=bool(spec.get("unique", False)),
        custom=True,
        picklist=picklist,
        restricted=bool(spec.get("restricted", spec.get("restrictedPicklist", False))),
        default=default,
        reference_to=reference_to,
        relationship_name=name[:-3] + "__r" if ftype == "reference" else None,
    )


def load_schema_file(path: str | Path) -> dict[str, Any]:
    """Read a schema document from JSON or YAML (by extension; YAML needs PyYAML)."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml  # local import: only schema files need it

        doc = yaml.safe_load(text)
    else:
        doc = json.loads(text)
    if not isinstance(doc, dict):
        raise SchemaError(
            f"{p}: a schema file holds a mapping with 'fields' and/or 'validation_rules'"
        )
    return doc


def field_to_spec(obj: str, f: FieldDef) -> dict[str, Any]:
    """Inverse of :func:`field_from_spec`, used to persist admin additions."""
    return {
        "object": obj,
        "name": f.name,
        "label": f.label,
        "type": f.type,
        "length": f.length,
        "precision": f.precision,
        "scale": f.scale,
        "required": f.required,
        "externalId": f.external_id,
        "unique": f.unique,
        "picklistValues": list(f.picklist),
        "restricted": f.restricted,
        "defaultValue": f.default,
        "referenceTo": list(f.reference_to),
    }
