"""People (``sync_leads_contacts``): one person on each side, each side once.

* ``missing_in_salesforce``: an active lead whose link is absent, deleted, or points at a
  Salesforce record that is deleted, gone or converted.
* ``missing_in_leadgen``: a live, unconverted Salesforce Lead/Contact with no active link, or
  linked to a lead that no longer exists.
* ``duplicate_record_link`` / ``duplicate_email_salesforce`` / ``duplicate_email_leadgen``: two
  records for one person.

What the state store or the spec explains is not reported (see docs/verify.md): an open or parked
quarantine row of the record, a merge collision the sync parked, a spec that switches creates off,
a Salesforce record the sync reports as a duplicate of an already linked person every run
(``duplicate_in_salesforce``), a Salesforce record whose lead is inactive (the sync never wakes
a lead from Salesforce).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import crm_sync.verify._lib as _lib
from crm_sync.verify.model import Violation
from crm_sync.verify.snapshot import batches
from crm_sync.verify.sources import Sources

PEOPLE = _lib.DAG_PEOPLE

_LEADS_WITHOUT_LIVE_LINK = """
SELECT l.id, l.is_contact, k.sf_id, k.sf_object, k.status, s.id, s.converted_to
FROM lg_lead l
LEFT JOIN link k ON k.domain = 'person' AND k.lg_id = l.id
LEFT JOIN sf_person s ON s.id = k.sf_id
WHERE k.lg_id IS NULL OR k.status != 'active' OR s.id IS NULL OR s.converted = 1
ORDER BY l.id
"""


def _create_off(src: Sources, sobject: str, side: str) -> bool:
    """True when the spec of ``sobject`` switches off creates on ``side``."""
    person = src.specs[sobject].person
    if person is None:
        return False
    return not (person.create_in_salesforce if side == "salesforce" else person.create_in_leadgen)


def missing_in_salesforce(src: Sources) -> Iterator[Violation]:
    """Active leads with no linked, live, unconverted Salesforce Lead or Contact."""
    src.load_leads()
    src.load_people()
    src.load_links()
    for lid, is_contact, sf_id, sf_object, status, live, converted_to in src.snap.rows(
        _LEADS_WITHOUT_LIVE_LINK
    ):
        if status == "collision":
            continue  # parked by the sync after a merge, reported by every run
        if src.quarantined(PEOPLE, f"lg:{lid}", f"sf:{sf_id}"):
            continue
        if status is None:
            if _create_off(src, "Contact" if is_contact else "Lead", "salesforce"):
                continue
            why = "no link: no Salesforce Lead or Contact stands for this lead"
        elif status == "deleted":
            why = (
                f"the lead is active but its link is deleted (Salesforce {sf_object} {sf_id} "
                "was deleted); the sync creates a new record only when the lead is reactivated"
            )
        elif status != "active":
            why = f"its link to Salesforce {sf_object} {sf_id} has status {status!r}"
        elif live is None:
            why = f"the linked Salesforce {sf_object} {sf_id} is deleted or does not exist"
        else:
            why = (
                f"the linked Lead {sf_id} was converted to Contact {converted_to}; "
                "the link did not follow the conversion"
            )
        yield Violation("missing_in_salesforce", why, (lid,), (sf_id,) if sf_id else ())


_SALESFORCE_PEOPLE = """
SELECT s.id, s.object, s.lgid, s.email,
       (SELECT group_concat(k.lg_id) FROM link k
         WHERE k.domain = 'person' AND k.sf_id = s.id AND k.status = 'active'),
       (SELECT group_concat(k.status) FROM link k
         WHERE k.domain = 'person' AND k.sf_id = s.id AND k.status != 'active')
FROM sf_person s
WHERE s.converted = 0
ORDER BY s.id
"""


def missing_in_leadgen(src: Sources) -> Iterator[Violation]:
    """Live, unconverted Salesforce Leads/Contacts with no lead standing for them."""
    src.load_leads()
    src.load_people()
    src.load_links()
    for chunk in batches(src.snap.rows(_SALESFORCE_PEOPLE), 500):
        yield from _missing_in_leadgen_chunk(src, chunk)


def _missing_in_leadgen_chunk(src: Sources, chunk: list[tuple[Any, ...]]) -> Iterator[Violation]:
    snap = src.snap
    # Leads that are not active (or not there) are looked up once per chunk, in batched calls.
    linked_ids = {i for *_, linked, _o in chunk if linked for i in linked.split(",")}
    unlinked = [r for r in chunk if not r[4]]
    want_ids = {r[2] for r in unlinked if r[2]} | linked_ids
    want_ids = {i for i in want_ids if not snap.has("lg_lead", "id", i)}
    want_emails = {r[3] for r in unlinked if r[3] and not snap.has("lg_lead", "email", r[3])}
    elsewhere = src.leads_anywhere(want_ids, want_emails)
    for sid, sobject, lgid, email, linked, others in chunk:
        leads = linked.split(",") if linked else []
        if src.quarantined(PEOPLE, f"sf:{sid}", *(f"lg:{i}" for i in leads)):
            continue
        if leads:
            gone = [i for i in leads if i in want_ids and i not in elsewhere]
            if len(gone) == len(leads):
                why = f"linked to lead {', '.join(gone)}, which does not exist in Lead Gen & CRM"
                yield Violation("missing_in_leadgen", why, tuple(gone), (sid,))
            continue
        if "collision" in (others or "").split(",") or _create_off(src, sobject, "leadgen"):
            continue
        why = _unlinked_reason(src, sid, sobject, lgid, email, elsewhere)
        if why is not None:
            yield Violation("missing_in_leadgen", why[0], why[1], (sid,))


def _unlinked_reason(
    src: Sources,
    sid: str,
    sobject: str,
    lgid: str | None,
    email: str | None,
    elsewhere: dict[str, dict[str, Any]],
) -> tuple[str, tuple[str, ...]] | None:
    """Why an unlinked Salesforce record is a violation, with the lead it matches; None when
    the sync's own rules explain it (duplicate of a linked person, inactive lead)."""
    match, how = None, None
    if lgid and (lgid in elsewhere or src.snap.has("lg_lead", "id", lgid)):
        match, how = lgid, "record-link id"
    elif email:
        row = src.snap.scalar(
            "SELECT id FROM lg_lead WHERE email = ? ORDER BY id LIMIT 1", (email,)
        )
        found = elsewhere.get(f"email:{email}")
        match = row or (str(found["id"]) if found else None)
        how = "email" if match else None
    if match is None:
        return f"no link, and no lead matches its record-link id or email ({sobject})", ()
    other = src.snap.scalar(
        "SELECT sf_id FROM link WHERE domain = 'person' AND lg_id = ? AND status = 'active'",
        (match,),
    )
    if other is not None and other != sid:
        return None  # the sync reports it as duplicate_in_salesforce every time it changes
    lead = elsewhere.get(match) or elsewhere.get(f"email:{email}")
    if lead is not None and str(lead.get("active", "1")).strip() == "0":
        return None  # an inactive lead is never reactivated by Salesforce activity
    return f"not linked, although lead {match} matches it by {how}", (match,)


def duplicates(src: Sources) -> Iterator[Violation]:
    """Two records for one person, on either side."""
    src.load_leads()
    src.load_people()
    src.load_links()
    yield from _duplicate_record_links(src)
    yield from _duplicate_linked_emails(src)
    for email, ids in src.snap.rows(
        "SELECT email, group_concat(id) FROM lg_lead WHERE email IS NOT NULL "
        "GROUP BY email HAVING count(*) > 1 ORDER BY email"
    ):
        leads = tuple(sorted(ids.split(","), key=_num))
        linked = _linked_sf(src, leads)
        why = f"{len(leads)} active leads share the email {email}"
        yield Violation("duplicate_email_leadgen", why, leads, linked)


def _duplicate_record_links(src: Sources) -> Iterator[Violation]:
    for lgid, records in src.snap.rows(
        "SELECT lower(lgid), group_concat(object || ' ' || id) FROM sf_person "
        "WHERE converted = 0 AND lgid IS NOT NULL GROUP BY lower(lgid) HAVING count(*) > 1 "
        "ORDER BY lower(lgid)"
    ):
        named = sorted(records.split(","))
        ids = tuple(r.split(" ")[1] for r in named)
        active = src.snap.scalar(
            "SELECT sf_id FROM link WHERE domain = 'person' AND lg_id = ? AND status = 'active'",
            (lgid,),
        )
        why = f"{len(ids)} live Salesforce records carry LeadGen_Id__c {lgid} ({', '.join(named)})"
        why += f"; the link points at {active}" if active else "; none of them is linked"
        yield Violation("duplicate_record_link", why, (lgid,), ids)


def _duplicate_linked_emails(src: Sources) -> Iterator[Violation]:
    for email, sf_ids, lg_ids in src.snap.rows(
        "SELECT s.email, group_concat(DISTINCT s.id), group_concat(DISTINCT k.lg_id) "
        "FROM sf_person s JOIN link k ON k.domain = 'person' AND k.status = 'active' "
        "AND k.sf_id = s.id WHERE s.converted = 0 AND s.email IS NOT NULL "
        "GROUP BY s.email HAVING count(DISTINCT s.id) > 1 ORDER BY s.email"
    ):
        leads = tuple(sorted(lg_ids.split(","), key=_num))
        records = tuple(sorted(sf_ids.split(",")))
        same = src.snap.scalar(
            f"SELECT count(*) FROM lg_lead WHERE email = ? AND id IN ({','.join('?' * len(leads))})",
            (email, *leads),
        )
        if same == len(leads) == len(records):
            # One Salesforce record per lead, and the leads share the email: the sync never
            # merges people, and duplicate_email_leadgen reports the cause.
            continue
        why = (
            f"{len(records)} linked Salesforce records share the email {email}; "
            "the sync should have paired one of them"
        )
        yield Violation("duplicate_email_salesforce", why, leads, records)


def _linked_sf(src: Sources, leads: tuple[str, ...]) -> tuple[str, ...]:
    rows = src.snap.rows(
        f"SELECT sf_id FROM link WHERE domain = 'person' AND status = 'active' "
        f"AND lg_id IN ({','.join('?' * len(leads))}) ORDER BY sf_id",
        leads,
    )
    return tuple(r[0] for r in rows)


def _num(i: str) -> tuple[int, str]:
    return (int(i) if i.isdigit() else -1, i)
