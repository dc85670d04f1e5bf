"""Memberships and the primary lead (pure).

Every contact role whose contact is linked becomes one opportunity lead (one per opportunity and
lead: several roles of one person are one membership); the primary role's lead is the
opportunity's ``primaryLeadID``. A role whose contact is not linked yet is *pending*: held in the
state store and completed by a later run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from crm_sync.domains.opportunities.rules import lg_id
from crm_sync.pipeline.transform import truthy


@dataclass
class MembershipChanges:
    """What one opportunity's contact roles ask of its opportunity leads.

    ``creates``: ``{"lead_lg", "contact_sf", "roles"}`` per lead to add. ``deletes``: the
    membership links (dicts) to remove. ``pending``: ``{"role_id", "contact_sf"}`` per role whose
    contact is not linked yet. ``covered``: roles whose membership exists already and stays.
    """

    creates: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    covered: list[str] = field(default_factory=list)


def live_roles(roles: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Roles that count: not deleted, with a contact; ordered by id (deterministic choices)."""
    return sorted(
        (r for r in roles if not truthy(r.get("IsDeleted")) and r.get("ContactId")),
        key=lambda r: str(r["Id"]),
    )


def plan_memberships(
    roles: Iterable[dict[str, Any]],
    contacts: dict[str, str],
    existing: Iterable[dict[str, Any]],
    *,
    opportunity_lg: str | None,
    recreate: bool,
) -> MembershipChanges:
    """Diff the opportunity's current roles against its membership links.

    ``contacts``: Salesforce Contact id -> linked Lead Gen & CRM lead id. ``existing``: active
    membership links of the opportunity (``synced_values``: lead, contact, opportunity, roles).
    Lead Gen & CRM keeps one opportunity lead per (opportunity, lead), so roles are grouped by
    lead. ``recreate``: the opportunity gets a new Lead Gen & CRM record, so every membership is
    made again on it.
    """
    out = MembershipChanges()
    wanted: dict[str, dict[str, Any]] = {}
    for r in live_roles(roles):
        cid = str(r["ContactId"])
        lead = contacts.get(cid)
        if lead is None:
            out.pending.append({"role_id": str(r["Id"]), "contact_sf": cid})
            continue
        w = wanted.setdefault(lead, {"lead_lg": lead, "contact_sf": cid, "roles": []})
        w["roles"].append(str(r["Id"]))
    kept: set[str] = set()
    for link in existing:
        sv = link.get("synced_values") or {}
        lead = lg_id(sv.get("lead"))
        same_opp = opportunity_lg is None or lg_id(sv.get("opportunity")) == lg_id(opportunity_lg)
        if not recreate and lead in wanted and lead not in kept and same_opp:
            kept.add(lead)
        else:
            out.deletes.append(link)
    out.covered = sorted(r for lead in kept for r in wanted[lead]["roles"])
    out.creates = [w for lead, w in wanted.items() if lead not in kept]
    return out


def primary_lead(
    roles: Iterable[dict[str, Any]], contacts: dict[str, str]
) -> tuple[str | None, bool]:
    """The opportunity's ``primaryLeadID`` from its roles: ``(lead id, False)``; ``("", False)``
    when no role is primary (clear it); ``(None, True)`` when the primary contact is not linked
    yet (leave the field alone until it is). Several primaries (possible in old data): the
    lowest role id wins."""
    primaries = [r for r in live_roles(roles) if truthy(r.get("IsPrimary"))]
    if not primaries:
        return "", False
    lead = contacts.get(str(primaries[0]["ContactId"]))
    if lead is None:
        return None, True
    return lead, False
