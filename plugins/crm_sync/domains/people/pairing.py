"""The two passes of the people match: every changed lead, then every changed Salesforce record
not reached from a lead. Each pass reads its changed records in chunks from the on-disk index,
looks up links and counterparts per chunk, and yields pairs (see :mod:`.match`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crm_sync.domains.people.lifecycle import linked_pair, parked_pair
from crm_sync.domains.people.matcher import (
    Matcher,
    choose,
    new_from_leadgen,
    new_from_salesforce,
)
from crm_sync.domains.people.pairs import Pair, make_pair
from crm_sync.domains.people.rules import (
    DOMAIN,
    email_key,
    is_active,
    sf_object_of,
    target_object,
)
from crm_sync.pipeline.transform import truthy

# Changed records per step of each pass: their links, counterparts and candidates are looked up
# together, so one sObject Collections retrieve carries up to 2,000 ids (its limit).
CHUNK = 2000
LINKED = ("active", "deleted", "undone")


def pairs_from_leadgen(m: Matcher) -> Iterator[Pair]:
    """Every changed lead: its link (lifecycle followed), else a first pairing, else new."""
    for chunk in m.lg_index.key_chunks(CHUNK):
        ids = [k for (k,) in chunk]
        recs = m.lg_index.get_many(ids)
        links = m.store.links_by_lg(DOMAIN, ids)
        linked_sf = m.sf_by_ids([lk.sf_id for lk in links.values()])
        unlinked = []
        for lid in ids:
            rec, link = recs[lid], links.get(lid)
            if link is not None and link.status in LINKED:
                p = linked_pair(m, rec, link, linked_sf.get(link.sf_id))
                if p is not None:
                    yield p
                else:
                    m.counts["skipped"] += 1
            elif link is not None and link.status == "collision":
                m.covered_lg.add(lid)
                m.counts["collision_skipped"] += 1
                yield parked_pair(rec, link)
            elif is_active(rec):
                unlinked.append(rec)
            else:
                yield _inactive(m, rec)
        if unlinked:
            yield from _pair_leads(m, unlinked)


def _inactive(m: Matcher, rec: dict[str, Any]) -> Pair:
    """An unlinked inactive lead (brought back by the quarantine: the window hides inactive
    leads): nothing to sync, so its quarantine row is resolved instead of retried forever."""
    m.covered_lg.add(str(rec["id"]))
    m.counts["inactive_not_synced"] += 1
    return make_pair(
        f"lg:{rec['id']}",
        lg=rec,
        sf=None,
        sf_object=target_object(rec),
        link=None,
        match="inactive",
        skip_fields=True,
        events=[{"event": "inactive_not_synced", "detail": f"lead {rec['id']} is inactive"}],
    )


def _pair_leads(m: Matcher, unlinked: list[dict[str, Any]]) -> Iterator[Pair]:
    cands = _candidates_for(m, unlinked)
    for rec in unlinked:
        lid = str(rec["id"])
        m.covered_lg.add(lid)
        options = [c for c in cands.get(lid, []) if c["Id"] not in m.covered_sf]
        if not options:
            yield new_from_leadgen(m, rec)
            continue
        chosen, how, events = choose(rec, options, m.id_field)
        m.covered_sf.add(chosen["Id"])
        yield m.first_pairing(rec, chosen, how, events)


def _candidates_for(m: Matcher, lg_recs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Unlinked Salesforce Leads/Contacts matching each lead by external id or email."""
    found = m.candidates.find(lg_recs)
    taken = m.store.links_by_sf(DOMAIN, list(found), active_only=True)
    id_field = m.id_field
    by_lg: dict[str, list[dict[str, Any]]] = {}
    for r in found.values():
        owners = [lk.lg_id for lk in taken.get(r["Id"], [])]
        ext = str(r.get(id_field) or "") if id_field else ""
        email = email_key(r.get("Email"))
        for lg in lg_recs:
            lid = str(lg["id"])
            if owners and lid not in owners:
                continue
            if ext and ext != lid and ext.isdigit():
                continue  # the record says it stands for another lead: never claim it by email
            if ext == lid or (email and email == email_key(lg.get("emailAddress"))):
                by_lg.setdefault(lid, []).append(r)
    return by_lg


def pairs_from_salesforce(m: Matcher) -> Iterator[Pair]:
    """Every changed Salesforce record not reached from a lead: its link, else a first pairing
    with a lead (external id, then email), else a new lead."""
    for chunk in m.sf_index.key_chunks(CHUNK):
        ids = [k for (k,) in chunk if k not in m.covered_sf]
        if not ids:
            continue
        recs = m.sf_index.get_many(ids)
        links = m.store.links_by_sf(DOMAIN, ids)
        linked_lg_ids = [
            lk.lg_id for lst in links.values() for lk in lst if lk.lg_id not in m.covered_lg
        ]
        lg_recs = m.lg_by_ids(linked_lg_ids) if linked_lg_ids else {}
        unlinked: list[dict[str, Any]] = []
        for sid in ids:
            if sid in m.covered_sf:
                continue  # reached earlier in this chunk, e.g. as the master of a merge
            rec = recs[sid]
            lks = [
                lk
                for lk in links.get(sid, [])
                if lk.status in LINKED and lk.lg_id not in m.covered_lg
            ]
            if links.get(sid) and not lks:
                continue  # its lead was handled from the Lead Gen & CRM side
            for lk in lks:
                p = linked_pair(m, lg_recs.get(lk.lg_id), lk, rec)
                if p is not None:
                    yield p
            if lks:
                continue
            if truthy(rec.get("IsDeleted")) or truthy(rec.get("IsConverted")):
                m.counts["ignored_deleted_or_converted"] += 1
                continue
            unlinked.append(rec)
        if unlinked:
            yield from _pair_records(m, unlinked)


def _pair_records(m: Matcher, unlinked: list[dict[str, Any]]) -> Iterator[Pair]:
    """First pairing from the Salesforce side: external id, then email."""
    id_field = m.id_field
    by_id = m.lg_by_ids([str(r[id_field]) for r in unlinked if r.get(id_field)]) if id_field else {}
    emails = sorted({e for r in unlinked if (e := email_key(r.get("Email")))})
    by_email: dict[str, dict[str, Any]] = {}
    if emails:
        for lg in m.lg.get_leads_by_emails(emails):
            if e := email_key(lg.get("emailAddress")):
                by_email[e] = lg
    taken = m.store.links_by_lg(
        DOMAIN, [str(x["id"]) for x in [*by_id.values(), *by_email.values()]]
    )
    for rec in unlinked:
        sid = rec["Id"]
        if sid in m.covered_sf:
            continue  # became a merge master or conversion target of a pair above
        m.covered_sf.add(sid)
        email = email_key(rec.get("Email"))
        if id_field and rec.get(id_field) and str(rec[id_field]) in by_id:
            yield from _paired_lead(m, rec, by_id[str(rec[id_field])], "external_id", taken)
        elif email and email in by_email:
            yield from _paired_lead(m, rec, by_email[email], "email", taken)
        elif email and m.preferred.get(email, sid) != sid:
            # Another changed Salesforce record with this email stands for the person;
            # creating a lead for each would make them fight over one Lead Gen & CRM lead.
            yield m.duplicate(
                rec,
                sf_object_of(sid),
                f"{sf_object_of(sid)} {sid} shares {email} with {m.preferred[email]}, which is "
                "synced instead; merge them in Salesforce",
            )
        else:
            yield new_from_salesforce(m, rec)


def _paired_lead(
    m: Matcher, rec: dict[str, Any], lg: dict[str, Any], how: str, taken: dict[str, Any]
) -> Iterator[Pair]:
    sid, lid = rec["Id"], str(lg["id"])
    sobject = sf_object_of(sid)
    lk = taken.get(lid)
    if lid in m.covered_lg or (lk is not None and lk.status == "active" and lk.sf_id != sid):
        yield m.duplicate(
            rec,
            sobject,
            f"{sobject} {sid} matches lead {lid} by {how}, which is already linked to "
            f"{lk.sf_id if lk else 'another record'}; not synced",
        )
        return
    m.covered_lg.add(lid)
    if not is_active(lg):
        # an inactive lead is never woken up by Salesforce activity
        m.counts["inactive_match_skipped"] += 1
        return
    yield m.first_pairing(lg, rec, how, [])
