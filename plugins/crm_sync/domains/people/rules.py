"""What a person is on each side, and the facts of the people sync every stage shares.

A person is a Lead Gen & CRM lead on one side and a Salesforce Lead or Contact on the other. A
lead whose status is one of :data:`LG_CONTACT_STATUSES` (or flagged ``isContact``) stands for a
Contact; an inactive lead (``active=0``) is never woken up by Salesforce activity.
"""

from __future__ import annotations

from typing import Any

from crm_sync.clients.sf_ids import is_of
from crm_sync.mapping.models import ObjectSpec
from crm_sync.pipeline.transform import canonical_email

DOMAIN = "person"  # link domain of the people sync (the other DAGs read these links)
STREAM = "people"
DAG_ID = "sync_leads_contacts"
SPEC_NAMES = {"Lead": "leads", "Contact": "contacts"}
OBJECTS = ("Lead", "Contact")
LG_OBJECT = "lead"

LG_CONTACT_STATUSES = frozenset({"contact", "contactWithOpp", "customer"})

# Salesforce fields the sync reads on Leads/Contacts besides the mapped ones.
SF_PERSON_SYSTEM_FIELDS = (
    "Id",
    "LastModifiedDate",
    "SystemModstamp",
    "IsDeleted",
    "MasterRecordId",
    "OwnerId",
    "Email",
)
SF_LEAD_SYSTEM_FIELDS = (
    *SF_PERSON_SYSTEM_FIELDS,
    "IsConverted",
    "ConvertedContactId",
    "ConvertedAccountId",
)


def is_contact(rec: dict[str, Any]) -> bool:
    """The lead stands for a Contact (its status, or the ``isContact`` flag)."""
    return (
        str(rec.get("leadStatus") or "") in LG_CONTACT_STATUSES or str(rec.get("isContact")) == "1"
    )


def is_active(rec: dict[str, Any]) -> bool:
    return str(rec.get("active", "1")).strip() != "0"


def email_key(v: Any) -> str | None:
    """An email as both sides compare it: its canonical form (``canonical_email``: invisible
    characters and surrounding blanks gone, an international domain in punycode, as Salesforce
    stores it), lower case; None when blank. Pairing uses the same form the load writes, so a
    lead whose address differs only in such characters still finds its Salesforce record."""
    email = canonical_email(v)
    return email.lower() if email else None


def sf_object_of(sf_id: str) -> str:
    return "Contact" if is_of(sf_id, "Contact") else "Lead"


def target_object(lg_rec: dict[str, Any]) -> str:
    """The Salesforce object a new record for this lead is created as."""
    return "Contact" if is_contact(lg_rec) else "Lead"


def sf_fields(spec: ObjectSpec) -> list[str]:
    """Every Salesforce field the sync reads for ``spec``'s object, system fields first."""
    system = SF_LEAD_SYSTEM_FIELDS if spec.salesforce_object == "Lead" else SF_PERSON_SYSTEM_FIELDS
    fields: list[str] = list(system)
    for row in spec.fields:
        if row.salesforce not in fields:
            fields.append(row.salesforce)
    if spec.record_link:
        for name in (spec.record_link.id_field, spec.record_link.url_field):
            if name and name not in fields:
                fields.append(name)
    if spec.scope is not None and spec.scope.salesforce is not None:
        # every record read must carry what its scope is decided on (domains/people/scope.py)
        for cond in spec.scope.salesforce.where:
            if cond.field not in fields:
                fields.append(cond.field)
    return fields


def record_link_field(specs: dict[str, ObjectSpec]) -> str | None:
    """The Salesforce field holding the lead id (the record link's external id), if mapped."""
    return next((s.record_link.id_field for s in specs.values() if s.record_link), None)
