"""Opportunities, accounts and memberships (``sync_opportunities``): each once on each side.

* ``opportunity_missing``: a live Opportunity whose stage the stage map names has no active
  opportunity link, or its linked Lead Gen & CRM opportunity does not exist.
* ``opportunity_orphan``: an active opportunity link whose Opportunity is deleted or gone (the
  sync deletes the Lead Gen & CRM record and closes the link).
* ``account_missing`` / ``account_orphan``: the same for Accounts that a synced opportunity or a
  linked contact refers to (the only ones the sync pulls).
* ``membership_missing``: a live contact role on a linked opportunity whose contact is linked to
  a lead, with no active membership link for that (opportunity, lead), or whose Lead Gen & CRM
  opportunity lead does not exist. ``membership_orphan``: an active membership link that no live
  role asks for.

Explained: an open quarantine row of the Salesforce record (``sf:<id>``, a membership by its
role or opportunity), a contact role still held by the sync. Opportunities in a stage the map
lacks are quarantined by the sync and are not expected in Lead Gen & CRM. Two active links to
one record are ``double_link`` (see :mod:`crm_sync.verify.state_checks`).
"""

from __future__ import annotations

from collections.abc import Iterator

import crm_sync.verify._lib as _lib
from crm_sync.verify.model import Violation
from crm_sync.verify.sources import Sources

DAG = _lib.DAG_OPPORTUNITIES

_ACTIVE = "k.status = 'active' AND k.domain = '{domain}'"

OPPS_WITHOUT_LINK = f"""
SELECT o.id, o.stage FROM sf_opp o JOIN mapped_stage m ON m.name = o.stage
WHERE NOT EXISTS (SELECT 1 FROM link k WHERE {_ACTIVE.format(domain="opportunity")}
                  AND k.sf_id = o.id)
ORDER BY o.id
"""
# Active links of {domain} whose Salesforce record (table {sf}) or Lead Gen & CRM record
# (lg_obj kind {lg}) is not there.
LINKS_WITH_GAPS = """
SELECT k.lg_id, k.sf_id, EXISTS (SELECT 1 FROM {sf} s WHERE s.id = k.sf_id),
       EXISTS (SELECT 1 FROM lg_obj g WHERE g.kind = '{lg}' AND g.id = k.lg_id)
FROM link k WHERE k.domain = '{domain}' AND k.status = 'active'
ORDER BY k.sf_id, k.lg_id
"""
REFERENCED_ACCOUNTS = f"""
SELECT a.account, min(a.why) FROM (
    SELECT o.account, 'opportunity ' || o.id AS why
      FROM sf_opp o JOIN mapped_stage m ON m.name = o.stage WHERE o.account IS NOT NULL
    UNION ALL
    SELECT c.account, 'contact ' || c.id FROM sf_contact_account c
      JOIN link k ON {_ACTIVE.format(domain="person")} AND k.sf_id = c.id
) a JOIN sf_account s ON s.id = a.account
WHERE NOT EXISTS (SELECT 1 FROM link k WHERE {_ACTIVE.format(domain="account")}
                  AND k.sf_id = a.account)
GROUP BY a.account ORDER BY a.account
"""
# Roles that ask for a membership: live role, linked opportunity, contact linked to a lead.
WANTED_MEMBERSHIPS = f"""
SELECT r.opp, p.lg_id, o.lg_id, group_concat(r.id)
FROM sf_role r
JOIN link o ON o.domain = 'opportunity' AND o.status = 'active' AND o.sf_id = r.opp
JOIN link p ON p.domain = 'person' AND p.status = 'active' AND p.sf_id = r.contact
JOIN sf_opp so ON so.id = r.opp
JOIN mapped_stage m ON m.name = so.stage
GROUP BY r.opp, p.lg_id, o.lg_id
HAVING NOT EXISTS (SELECT 1 FROM link k WHERE {_ACTIVE.format(domain="membership")}
                   AND k.sf_id = r.opp AND k.lead = p.lg_id AND k.opp_lg = o.lg_id)
ORDER BY r.opp, p.lg_id
"""
MEMBERSHIP_LINKS = """
SELECT k.lg_id, k.sf_id, k.lead,
       EXISTS (SELECT 1 FROM lg_obj g WHERE g.kind = 'opportunity_lead' AND g.id = k.lg_id),
       EXISTS (SELECT 1 FROM sf_role r
               JOIN link o ON o.domain = 'opportunity' AND o.status = 'active'
                          AND o.sf_id = r.opp AND o.lg_id = k.opp_lg
               JOIN link p ON p.domain = 'person' AND p.status = 'active'
                          AND p.sf_id = r.contact AND p.lg_id = k.lead
               WHERE r.opp = k.sf_id)
FROM link k WHERE k.domain = 'membership' AND k.status = 'active'
ORDER BY k.sf_id, k.lg_id
"""


def opportunity_checks(src: Sources) -> Iterator[Violation]:
    """Every opportunity, account and membership invariant (see the module docstring)."""
    src.load_links()
    src.load_opportunity_side()
    stages = _lib.load_stage_map().stages
    src.snap.insert("mapped_stage", ("name",), ((name,) for name in stages))
    yield from _opportunities(src)
    yield from _accounts(src)
    yield from _memberships(src)


def _opportunities(src: Sources) -> Iterator[Violation]:
    for sf_id, stage in src.snap.rows(OPPS_WITHOUT_LINK):
        if not src.quarantined(DAG, f"sf:{sf_id}"):
            why = (
                f"Opportunity in stage {stage!r} has no active link to a Lead Gen & CRM opportunity"
            )
            yield Violation("opportunity_missing", why, (), (sf_id,))
    yield from _link_gaps(src, _lib.DOMAIN_OPPORTUNITY, "sf_opp", "opportunity")


def _link_gaps(src: Sources, domain: str, sf_table: str, lg_kind: str) -> Iterator[Violation]:
    """Active links of ``domain`` whose record is gone on either side."""
    sobject = domain.title()
    sql = LINKS_WITH_GAPS.format(sf=sf_table, lg=lg_kind, domain=domain)
    for lg_id, sf_id, sf_live, lg_there in src.snap.rows(sql):
        if (sf_live and lg_there) or src.quarantined(DAG, f"sf:{sf_id}"):
            continue
        if not sf_live:
            why = (
                f"the link of Lead Gen & CRM {lg_kind} {lg_id} is active but Salesforce "
                f"{sobject} {sf_id} is deleted or does not exist"
            )
            yield Violation(f"{domain}_orphan", why, (lg_id,), (sf_id,))
        else:
            why = f"the linked Lead Gen & CRM {lg_kind} {lg_id} does not exist"
            yield Violation(f"{domain}_missing", why, (lg_id,), (sf_id,))


def _accounts(src: Sources) -> Iterator[Violation]:
    for sf_id, referrer in src.snap.rows(REFERENCED_ACCOUNTS):
        if not src.quarantined(DAG, f"sf:{sf_id}"):
            why = f"Account referenced by {referrer} has no active link to a Lead Gen & CRM account"
            yield Violation("account_missing", why, (), (sf_id,))
    yield from _link_gaps(src, _lib.DOMAIN_ACCOUNT, "sf_account", "account")


def _memberships(src: Sources) -> Iterator[Violation]:
    held = src.held(DAG, _lib.ROLE_HELD_KIND)
    for opp, lead, opp_lg, role_ids in src.snap.rows(WANTED_MEMBERSHIPS):
        roles = sorted(role_ids.split(","))
        if any(r in held for r in roles) or src.quarantined(
            DAG, f"sf:{opp}", *(f"sf:{r}" for r in roles)
        ):
            continue
        why = (
            f"contact role {', '.join(roles)} puts lead {lead} on opportunity {opp} "
            f"(Lead Gen & CRM {opp_lg}), but no active membership link stands for it"
        )
        yield Violation("membership_missing", why, (lead, opp_lg), (opp, *roles))
    for member, opp, lead, lg_there, wanted in src.snap.rows(MEMBERSHIP_LINKS):
        if (lg_there and wanted) or src.quarantined(DAG, f"sf:{opp}"):
            continue
        if not wanted:
            why = (
                f"membership {member} (lead {lead} on opportunity {opp}) is active but no live "
                "contact role of a linked contact asks for it"
            )
            yield Violation("membership_orphan", why, (member, lead or ""), (opp,))
        else:
            why = f"the linked Lead Gen & CRM opportunity lead {member} does not exist"
            yield Violation("membership_missing", why, (member, lead or ""), (opp,))
