"""The facts of the opportunities sync every stage shares: what is read, what is written where,
and how a plan names its source record."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from crm_sync.mapping.models import ObjectSpec
from crm_sync.pipeline.transform import is_blank

if TYPE_CHECKING:
    from crm_sync.state.models import Link
    from crm_sync.state.store import SyncStore


DAG_ID = "sync_opportunities"
DOMAIN_OPPORTUNITY = "opportunity"
DOMAIN_ACCOUNT = "account"
DOMAIN_MEMBERSHIP = "membership"
DOMAIN_PERSON = "person"  # links written by sync_leads_contacts
STREAM = "opportunities"
HELD_KIND = "contact_role"
SPEC_NAMES = {"Opportunity": "opportunities", "Account": "accounts"}
STAGE_SPEC_NAME = "opportunity_stages"

# Salesforce fields read besides the spec rows (lifecycle, references, stage).
OPP_SYSTEM_FIELDS = (
    "Id",
    "IsDeleted",
    "LastModifiedDate",
    "SystemModstamp",
    "OwnerId",
    "AccountId",
    "StageName",
)
ACCOUNT_SYSTEM_FIELDS = (
    "Id",
    "IsDeleted",
    "MasterRecordId",
    "LastModifiedDate",
    "SystemModstamp",
    "OwnerId",
)
ROLE_FIELDS = ("Id", "IsDeleted", "OpportunityId", "ContactId", "IsPrimary", "Role")

# Lead Gen & CRM fields of an opportunity that the domain resolves (not spec rows).
REF_STAGE = "dealStageID"
REF_ACCOUNT = "accountID"
REF_PRIMARY = "primaryLeadID"
REFERENCES = (REF_STAGE, REF_ACCOUNT, REF_PRIMARY)

CHUNK = 1000
LG_BATCH = 500

KIND_OPPORTUNITY = "opportunity"
KIND_ACCOUNT = "account"
KIND_MEMBERSHIP = "membership"
KIND_PENDING = "role_pending"
# report section per plan kind
SECTIONS = {
    KIND_OPPORTUNITY: "opportunities",
    KIND_ACCOUNT: "accounts",
    KIND_MEMBERSHIP: "memberships",
}
LG_TARGET = {
    KIND_OPPORTUNITY: "opportunity",
    KIND_ACCOUNT: "account",
    KIND_MEMBERSHIP: "opportunityLead",
}
LINK_DOMAIN = {
    KIND_OPPORTUNITY: DOMAIN_OPPORTUNITY,
    KIND_ACCOUNT: DOMAIN_ACCOUNT,
    KIND_MEMBERSHIP: DOMAIN_MEMBERSHIP,
}
SF_OBJECT = {KIND_OPPORTUNITY: "Opportunity", KIND_ACCOUNT: "Account"}


def lg_id(v: Any) -> str:
    """A Lead Gen & CRM id as text ("" for none): reads give strings, creates give numbers."""
    return "" if is_blank(v) else str(v).strip()


def record_key(plan: dict[str, Any]) -> str:
    """The quarantine key of a plan's *source* record (what a later run re-reads)."""
    if plan["kind"] == KIND_MEMBERSHIP:
        roles = plan.get("roles") or []
        return f"sf:{roles[0]}" if roles else f"sf:{plan['opportunity_sf']}"
    return f"sf:{plan['sf_id']}"


def sf_fields(spec: ObjectSpec, system: Iterable[str]) -> list[str]:
    """The Salesforce fields read for ``spec``'s object: ``system`` ones, then the spec's."""
    out = list(dict.fromkeys(system))
    for row in spec.fields:
        if row.salesforce not in out:
            out.append(row.salesforce)
    return out


def active_links(store: SyncStore, domain: str, sf_ids: Iterable[str]) -> dict[str, Link]:
    """Salesforce id -> its active link (the first one) in ``domain``."""
    out = {}
    for sid, links in store.links_by_sf(domain, list(sf_ids), active_only=True).items():
        out[sid] = links[0]
    return out
