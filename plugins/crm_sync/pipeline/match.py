"""Match: changed records of both sides -> pairs (Lead Gen & CRM lead, Salesforce record, link).

Identity rules:

* A link in the state store wins. It follows the Salesforce record through its lifecycle:
  a converted Lead hands the link to its ``ConvertedContactId``; a record merged away hands it to
  its ``MasterRecordId``; a deleted record deactivates the lead (``active=0``) and marks the link
  deleted; an undeleted record restores the link; a deactivated lead that comes back (form fill,
  re-import) gets a fresh Salesforce Lead and the link is re-pointed.
* First pairing: by the record-link external id on the Salesforce record (it holds the Lead Gen &
  CRM id), else by email (case-insensitive). Several Salesforce matches -> prefer a Contact, then
  the most recently modified; the ambiguity is reported. Converted and deleted Salesforce
  records never match; neither does one already linked to another lead.
* Otherwise the record is new and is created on the other side.

The counterpart of a changed record is fetched by id when it did not change itself, so every
pair carries both sides' current values. Output: ``pairs/*.jsonl`` chunks.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from crm_sync.mapping.models import ObjectSpec
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.extract import sf_fields
from crm_sync.pipeline.files import chunked, dumps, read_jsonl, write_jsonl
from crm_sync.pipeline.transform import LG_CONTACT_STATUSES, is_blank, parse_sf_datetime

log = logging.getLogger(__name__)

DOMAIN = "person"
CHUNK = 500


def _truthy(v: Any) -> bool:
    return v is True or str(v).strip().lower() in ("1", "true")


def _lg_is_contact(rec: dict[str, Any]) -> bool:
    return (
        str(rec.get("leadStatus") or "") in LG_CONTACT_STATUSES or str(rec.get("isContact")) == "1"
    )


def _lg_active(rec: dict[str, Any]) -> bool:
    return str(rec.get("active", "1")).strip() != "0"


def _email(v: Any) -> str | None:
    return None if is_blank(v) else str(v).strip().lower()


def _link_dict(link: Any) -> dict[str, Any]:
    return {
        "lg_id": link.lg_id,
        "sf_id": link.sf_id,
        "sf_object": link.sf_object,
        "status": link.status,
        "synced_values": dict(link.synced_values or {}),
    }


class WorkIndex:
    """The extracted records, indexed on disk (SQLite) so lookups stay cheap and memory bounded."""

    def __init__(self, path: str):
        self.db = sqlite3.connect(path)
        self.db.executescript(
            """
            DROP TABLE IF EXISTS lg; DROP TABLE IF EXISTS sf;
            CREATE TABLE lg (id TEXT PRIMARY KEY, rec TEXT);
            CREATE TABLE sf (id TEXT PRIMARY KEY, object TEXT, email TEXT, modified TEXT, rec TEXT);
            """
        )

    def load(
        self, lg_rows: Iterator[dict[str, Any]], sf_rows: dict[str, Iterator[dict[str, Any]]]
    ) -> None:
        for chunk in chunked(lg_rows, 2000):
            self.db.executemany(
                "INSERT OR REPLACE INTO lg VALUES (?, ?)", [(str(r["id"]), dumps(r)) for r in chunk]
            )
        for sobject, rows in sf_rows.items():
            for chunk in chunked(rows, 2000):
                self.db.executemany(
                    "INSERT OR REPLACE INTO sf VALUES (?, ?, ?, ?, ?)",
                    [
                        (
                            r["Id"],
                            sobject,
                            _email(r.get("Email")),
                            str(r.get("LastModifiedDate") or ""),
                            dumps(r),
                        )
                        for r in chunk
                    ],
                )
        self.db.commit()

    def preferred_by_email(self) -> dict[str, str]:
        """For emails several changed Salesforce records share: the one that stands for the
        person (a Contact before a Lead, then the most recently modified). Only duplicated
        emails are returned, so memory follows the duplicates, not the run."""
        rows = self.db.execute(
            """
            SELECT email, id FROM sf
            WHERE email IN (SELECT email FROM sf WHERE email IS NOT NULL GROUP BY email HAVING COUNT(*) > 1)
            ORDER BY email, object = 'Contact' DESC, modified DESC, id
            """
        )
        out: dict[str, str] = {}
        for email, sid in rows:
            out.setdefault(email, sid)
        return out

    def lg_ids(self) -> Iterator[list[str]]:
        cur = self.db.execute("SELECT id FROM lg ORDER BY rowid")
        while rows := cur.fetchmany(CHUNK):
            yield [r[0] for r in rows]

    def sf_ids(self) -> Iterator[list[tuple[str, str]]]:
        cur = self.db.execute("SELECT id, object FROM sf ORDER BY rowid")
        while rows := cur.fetchmany(CHUNK):
            yield [(r[0], r[1]) for r in rows]

    def get_lg(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        import json

        out = {}
        for chunk in chunked(ids, 500):
            q = f"SELECT id, rec FROM lg WHERE id IN ({','.join('?' * len(chunk))})"
            out.update({i: json.loads(r) for i, r in self.db.execute(q, chunk)})
        return out

    def get_sf(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        import json

        out = {}
        for chunk in chunked(ids, 500):
            q = f"SELECT id, rec FROM sf WHERE id IN ({','.join('?' * len(chunk))})"
            out.update({i: json.loads(r) for i, r in self.db.execute(q, chunk)})
        return out

    def close(self) -> None:
        self.db.close()


@dataclass
class Matcher:
    """Holds the clients, specs and caches for one match pass."""

    ctx: RunContext
    sf: Any
    lg: Any
    store: Any
    specs: dict[str, ObjectSpec]
    index: WorkIndex
    counts: Counter = field(default_factory=Counter)
    covered_sf: set[str] = field(default_factory=set)
    covered_lg: set[str] = field(default_factory=set)
    preferred: dict[str, str] = field(default_factory=dict)
    _sf_cache: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    # -- lookups -----------------------------------------------------------------------------
    def sf_by_ids(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Current Salesforce records by id (deleted ones included), changed-set first."""
        want = [i for i in dict.fromkeys(ids) if i and i not in self._sf_cache]
        if want:
            found = self.index.get_sf(want)
            missing = [i for i in want if i not in found]
            for sobject, spec in self.specs.items():
                prefix = "00Q" if sobject == "Lead" else "003"
                mine = [i for i in missing if i.startswith(prefix)]
                if mine:
                    for r in self.sf.query_by_values(
                        sobject, sf_fields(spec), "Id", mine, include_deleted=True
                    ):
                        found[r["Id"]] = r
            for i in want:
                self._sf_cache[i] = found.get(i)
        return {i: self._sf_cache[i] for i in ids if i and self._sf_cache.get(i) is not None}

    def lg_by_ids(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        # Lead Gen & CRM ids are integers. A record-link field holding anything else (typed by
        # hand, left by another tool) can only be stale: it matches nothing and gets repaired.
        ids = [i for i in ids if str(i).strip().isdigit()]
        found = self.index.get_lg(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            for r in self.lg.get_leads_by_ids(missing):
                found[str(r["id"])] = r
        return found

    @staticmethod
    def sf_object_of(sf_id: str) -> str:
        return "Contact" if sf_id.startswith("003") else "Lead"

    # -- lifecycle ---------------------------------------------------------------------------
    def follow(
        self, rec: dict[str, Any], depth: int = 0
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str | None]:
        """Follow a linked Salesforce record through conversion and merges.

        Returns (current target record or None if deleted, events, link change kind)."""
        events: list[dict[str, Any]] = []
        if depth > 5:
            return None, [{"event": "lifecycle_loop", "detail": rec["Id"]}], "deleted"
        if _truthy(rec.get("IsDeleted")):
            master = rec.get("MasterRecordId")
            if master:
                target = self.sf_by_ids([master]).get(master)
                events.append(
                    {
                        "event": "merged",
                        "detail": f"{rec['Id']} merged into {master}",
                        "old_sf_id": rec["Id"],
                        "new_sf_id": master,
                    }
                )
                if target is None:
                    return None, events, "deleted"
                t, more, _ = self.follow(target, depth + 1)
                return t, events + more, "merged"
            return (
                None,
                [
                    {
                        "event": "deleted",
                        "detail": f"{rec['Id']} deleted in Salesforce",
                        "old_sf_id": rec["Id"],
                    }
                ],
                "deleted",
            )
        if _truthy(rec.get("IsConverted")) and rec.get("ConvertedContactId"):
            cid = rec["ConvertedContactId"]
            target = self.sf_by_ids([cid]).get(cid)
            events.append(
                {
                    "event": "converted",
                    "detail": f"Lead {rec['Id']} converted to Contact {cid}",
                    "old_sf_id": rec["Id"],
                    "new_sf_id": cid,
                }
            )
            if target is None:
                return None, events, "deleted"
            t, more, _ = self.follow(target, depth + 1)
            return t, events + more, "converted"
        return rec, events, None

    # -- pairs -------------------------------------------------------------------------------
    def duplicate(self, rec: dict[str, Any], sobject: str, detail: str) -> dict[str, Any]:
        """A Salesforce record that another record already stands in for: not synced, reported."""
        self.counts["duplicate_in_salesforce"] += 1
        return {
            "pair": f"sf:{rec['Id']}",
            "lg": None,
            "sf": rec,
            "sf_object": sobject,
            "link": None,
            "match": "duplicate",
            "skip_fields": True,
            "events": [{"event": "duplicate_in_salesforce", "detail": detail}],
            "lg_extra": [],
        }

    def linked_pair(
        self, lg_rec: dict[str, Any] | None, link: Any, sf_rec: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """A pair for an existing link, after following the Salesforce record's lifecycle."""
        lg_id = link.lg_id
        ld = _link_dict(link)
        pair: dict[str, Any] = {
            "pair": f"lg:{lg_id}",
            "lg": lg_rec,
            "link": ld,
            "match": "link",
            "events": [],
            "lg_extra": [],
        }
        self.covered_lg.add(lg_id)
        self.covered_sf.add(link.sf_id)
        if sf_rec is None:
            sf_rec = {"Id": link.sf_id, "IsDeleted": True}  # purged from the recycle bin
        if link.status == "deleted":
            if not _truthy(sf_rec.get("IsDeleted")):
                # undeleted in Salesforce: the old link comes back
                pair["events"].append(
                    {"event": "undeleted", "detail": f"{link.sf_id} restored from the recycle bin"}
                )
                pair["link_change"] = {
                    "kind": "undeleted",
                    "sf_id": sf_rec["Id"],
                    "sf_object": self.sf_object_of(sf_rec["Id"]),
                }
                if lg_rec is not None and not _lg_active(lg_rec):
                    pair["lg_extra"].append({"active": "1"})
                target, events, change = self.follow(sf_rec)
                pair["events"] += events
                if target is None:
                    return None
                pair["sf"], pair["sf_object"] = target, self.sf_object_of(target["Id"])
                return pair
            if lg_rec is not None and _lg_active(lg_rec):
                # reactivated in Lead Gen & CRM (form fill, re-import): a fresh Salesforce record
                pair.update(
                    sf=None,
                    sf_object="Contact" if _lg_is_contact(lg_rec) else "Lead",
                    match="reactivated",
                    link_change={"kind": "relinked"},
                )
                pair["events"].append(
                    {
                        "event": "reactivated",
                        "detail": f"lead {lg_id} active again; creating a new Salesforce record",
                    }
                )
                return pair
            return None  # still deleted and inactive: nothing to do, never re-created on its own
        target, events, change = self.follow(sf_rec)
        pair["events"] += events
        if target is None:
            # deleted in Salesforce -> deactivate in Lead Gen & CRM, never re-create
            pair.update(
                sf=None, sf_object=link.sf_object, skip_fields=True, link_change={"kind": "deleted"}
            )
            if lg_rec is None or _lg_active(lg_rec):
                pair["lg_extra"].append({"active": "0"})
                if lg_rec is None:
                    pair["lg"] = {"id": lg_id}
            return pair
        self.covered_sf.add(target["Id"])
        pair["sf"], pair["sf_object"] = target, self.sf_object_of(target["Id"])
        if change in ("converted", "merged"):
            pair["link_change"] = {
                "kind": change,
                "sf_id": target["Id"],
                "sf_object": pair["sf_object"],
            }
            others = [
                lk
                for lk in self.store.links_by_sf(DOMAIN, [target["Id"]], active_only=True).get(
                    target["Id"], []
                )
                if lk.lg_id != lg_id
            ]
            if others:
                # Two leads now stand for one Salesforce record. Syncing both would make them
                # overwrite each other's values there on every run, so this link is parked as a
                # collision (reported every run) until someone merges the leads.
                pair["events"].append(
                    {
                        "event": "merge_collision",
                        "detail": f"leads {lg_id} and {', '.join(o.lg_id for o in others)} now point at {target['Id']}; review and merge them in Lead Gen & CRM",
                    }
                )
                pair["link_change"] = {**pair["link_change"], "kind": "merge_collision"}
                pair["skip_fields"] = True
                pair["lg_extra"] = []
                return pair
        if pair["sf_object"] == "Contact" and lg_rec is not None and not _lg_is_contact(lg_rec):
            pair["lg_extra"].append({"leadStatus": "contact"})
            pair["events"].append(
                {"event": "became_contact", "detail": f"lead {lg_id} is a Contact in Salesforce"}
            )
        if pair["lg"] is None:
            pair["lg"] = self.lg_by_ids([lg_id]).get(lg_id)
            if pair["lg"] is None:
                pair["events"].append(
                    {
                        "event": "leadgen_missing",
                        "detail": f"lead {lg_id} no longer exists in Lead Gen & CRM",
                    }
                )
                return None
        return pair

    def candidates_for(self, lg_recs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Unlinked Salesforce Leads/Contacts matching each lead by external id or email."""
        ids = [str(r["id"]) for r in lg_recs]
        emails = sorted({e for r in lg_recs if (e := _email(r.get("emailAddress")))})
        by_lg: dict[str, list[dict[str, Any]]] = {}
        found: dict[str, dict[str, Any]] = {}
        for sobject, spec in self.specs.items():
            fields = sf_fields(spec)
            extra = " AND IsConverted = false" if sobject == "Lead" else ""
            if spec.record_link:
                for r in self.sf.query_by_values(
                    sobject,
                    fields,
                    spec.record_link.id_field,
                    ids,
                    where=f"IsDeleted = false{extra}",
                ):
                    found[r["Id"]] = r
            if emails:
                for r in self.sf.query_by_values(
                    sobject, fields, "Email", emails, where=f"IsDeleted = false{extra}"
                ):
                    found[r["Id"]] = r
        taken = self.store.links_by_sf(DOMAIN, list(found), active_only=True)
        lgid_field = next(
            (s.record_link.id_field for s in self.specs.values() if s.record_link), None
        )
        for r in found.values():
            owners = [lk.lg_id for lk in taken.get(r["Id"], [])]
            ext = str(r.get(lgid_field) or "") if lgid_field else ""
            for lg in lg_recs:
                lid = str(lg["id"])
                if owners and lid not in owners:
                    continue
                if ext == lid or (
                    _email(r.get("Email"))
                    and _email(r.get("Email")) == _email(lg.get("emailAddress"))
                ):
                    by_lg.setdefault(lid, []).append(r)
        return by_lg

    def choose(
        self, lg_rec: dict[str, Any], cands: list[dict[str, Any]], id_field: str | None
    ) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
        lid = str(lg_rec["id"])
        by_ext = [c for c in cands if id_field and str(c.get(id_field) or "") == lid]
        pool, how = (by_ext, "external_id") if by_ext else (cands, "email")

        def rank(c: dict[str, Any]) -> tuple[int, float]:
            ts = parse_sf_datetime(c.get("LastModifiedDate"))
            return (1 if c["Id"].startswith("003") else 0, ts.timestamp() if ts else 0.0)

        pool = sorted(pool, key=rank, reverse=True)
        events = []
        if len(pool) > 1:
            events.append(
                {
                    "event": "ambiguous_match",
                    "detail": f"lead {lid} matches {len(pool)} Salesforce records by {how}: {', '.join(c['Id'] for c in pool)}; chose {pool[0]['Id']}",
                }
            )
        return pool[0], how, events

    def pairs_from_leadgen(self) -> Iterator[dict[str, Any]]:
        id_field = next(
            (s.record_link.id_field for s in self.specs.values() if s.record_link), None
        )
        for ids in self.index.lg_ids():
            recs = self.index.get_lg(ids)
            links = self.store.links_by_lg(DOMAIN, ids)
            linked_sf = self.sf_by_ids([lk.sf_id for lk in links.values()])
            unlinked = []
            for lid in ids:
                rec = recs[lid]
                link = links.get(lid)
                if link is not None and link.status in ("active", "deleted"):
                    p = self.linked_pair(rec, link, linked_sf.get(link.sf_id))
                    if p is not None:
                        yield p
                    else:
                        self.counts["skipped"] += 1
                elif link is not None and link.status == "collision":
                    self.covered_lg.add(lid)
                    self.counts["collision_skipped"] += 1
                    yield {
                        "pair": f"lg:{lid}",
                        "lg": rec,
                        "sf": None,
                        "sf_object": link.sf_object,
                        "link": _link_dict(link),
                        "match": "link",
                        "skip_fields": True,
                        "events": [
                            {
                                "event": "merge_collision",
                                "detail": f"lead {lid} shares Salesforce {link.sf_id} with another lead since a merge; not synced until resolved",
                            }
                        ],
                        "lg_extra": [],
                    }
                elif _lg_active(rec):
                    unlinked.append(rec)
            if not unlinked:
                continue
            cands = self.candidates_for(unlinked)
            for rec in unlinked:
                lid = str(rec["id"])
                self.covered_lg.add(lid)
                options = [c for c in cands.get(lid, []) if c["Id"] not in self.covered_sf]
                if options:
                    chosen, how, events = self.choose(rec, options, id_field)
                    self.covered_sf.add(chosen["Id"])
                    sobject = self.sf_object_of(chosen["Id"])
                    extra = []
                    if sobject == "Contact" and not _lg_is_contact(rec):
                        extra.append({"leadStatus": "contact"})
                        events.append(
                            {
                                "event": "became_contact",
                                "detail": f"lead {lid} matched Salesforce Contact {chosen['Id']}",
                            }
                        )
                    self.counts[f"matched_{how}"] += 1
                    yield {
                        "pair": f"lg:{lid}",
                        "lg": rec,
                        "sf": chosen,
                        "sf_object": sobject,
                        "link": None,
                        "match": how,
                        "events": events,
                        "lg_extra": extra,
                    }
                else:
                    self.counts["new_from_leadgen"] += 1
                    yield {
                        "pair": f"lg:{lid}",
                        "lg": rec,
                        "sf": None,
                        "sf_object": "Contact" if _lg_is_contact(rec) else "Lead",
                        "link": None,
                        "match": "new",
                        "events": [],
                        "lg_extra": [],
                    }

    def pairs_from_salesforce(self) -> Iterator[dict[str, Any]]:
        id_field = next(
            (s.record_link.id_field for s in self.specs.values() if s.record_link), None
        )
        for id_objs in self.index.sf_ids():
            ids = [i for i, _ in id_objs if i not in self.covered_sf]
            if not ids:
                continue
            recs = self.index.get_sf(ids)
            self._sf_cache.update(recs)
            links = self.store.links_by_sf(DOMAIN, ids)
            linked_lg_ids = [
                lk.lg_id for lst in links.values() for lk in lst if lk.lg_id not in self.covered_lg
            ]
            lg_recs = self.lg_by_ids(linked_lg_ids) if linked_lg_ids else {}
            unlinked: list[dict[str, Any]] = []
            for sid in ids:
                if sid in self.covered_sf:
                    continue  # reached earlier in this chunk, e.g. as the master of a merge
                rec = recs[sid]
                lks = [
                    lk
                    for lk in links.get(sid, [])
                    if lk.status in ("active", "deleted") and lk.lg_id not in self.covered_lg
                ]
                if links.get(sid) and not lks:
                    continue  # its lead was handled from the Lead Gen & CRM side
                if lks:
                    for lk in lks:
                        p = self.linked_pair(lg_recs.get(lk.lg_id), lk, rec)
                        if p is not None:
                            yield p
                    continue
                if _truthy(rec.get("IsDeleted")) or _truthy(rec.get("IsConverted")):
                    self.counts["ignored_deleted_or_converted"] += 1
                    continue
                unlinked.append(rec)
            if not unlinked:
                continue
            # first pairing from the Salesforce side: external id, then email
            by_id = (
                self.lg_by_ids([str(r[id_field]) for r in unlinked if id_field and r.get(id_field)])
                if id_field
                else {}
            )
            emails = sorted({e for r in unlinked if (e := _email(r.get("Email")))})
            by_email: dict[str, dict[str, Any]] = {}
            if emails:
                for lg in self.lg.get_leads_by_emails(emails):
                    if e := _email(lg.get("emailAddress")):
                        by_email[e] = lg
            cand_ids = [str(x["id"]) for x in list(by_id.values()) + list(by_email.values())]
            taken = self.store.links_by_lg(DOMAIN, cand_ids)
            for rec in unlinked:
                sid = rec["Id"]
                if sid in self.covered_sf:
                    continue  # became a merge master or conversion target of a pair above
                self.covered_sf.add(sid)
                sobject = self.sf_object_of(sid)
                lg = None
                how = None
                if id_field and rec.get(id_field) and str(rec[id_field]) in by_id:
                    lg, how = by_id[str(rec[id_field])], "external_id"
                elif (e := _email(rec.get("Email"))) and e in by_email:
                    lg, how = by_email[e], "email"
                if lg is not None:
                    lid = str(lg["id"])
                    lk = taken.get(lid)
                    if lid in self.covered_lg or (
                        lk is not None and lk.status == "active" and lk.sf_id != sid
                    ):
                        yield self.duplicate(
                            rec,
                            sobject,
                            f"{sobject} {sid} matches lead {lid} by {how}, which is already linked to {lk.sf_id if lk else 'another record'}; not synced",
                        )
                        continue
                    self.covered_lg.add(lid)
                    extra, events = [], []
                    if sobject == "Contact" and not _lg_is_contact(lg):
                        extra.append({"leadStatus": "contact"})
                        events.append(
                            {
                                "event": "became_contact",
                                "detail": f"lead {lid} matched Salesforce Contact {sid}",
                            }
                        )
                    if not _lg_active(lg):
                        # an inactive lead is never woken up by Salesforce activity
                        self.counts["inactive_match_skipped"] += 1
                        continue
                    self.counts[f"matched_{how}"] += 1
                    yield {
                        "pair": f"lg:{lid}",
                        "lg": lg,
                        "sf": rec,
                        "sf_object": sobject,
                        "link": None,
                        "match": how,
                        "events": events,
                        "lg_extra": extra,
                    }
                elif (e := _email(rec.get("Email"))) and self.preferred.get(e, sid) != sid:
                    # Another changed Salesforce record with this email stands for the person;
                    # creating a lead for each would make them fight over one Lead Gen & CRM lead.
                    yield self.duplicate(
                        rec,
                        sobject,
                        f"{sobject} {sid} shares {e} with {self.preferred[e]}, which is synced instead; merge them in Salesforce",
                    )
                else:
                    self.counts["new_from_salesforce"] += 1
                    yield {
                        "pair": f"sf:{sid}",
                        "lg": None,
                        "sf": rec,
                        "sf_object": sobject,
                        "link": None,
                        "match": "new",
                        "events": [],
                        "lg_extra": [],
                    }


def match_people(
    ctx: RunContext, sf: Any, lg: Any, store: Any, specs: dict[str, ObjectSpec]
) -> dict[str, Any]:
    """Build ``pairs/pairs.jsonl`` from the extract files; return counts."""
    index = WorkIndex(str(ctx.path("work.db")))
    try:
        index.load(
            read_jsonl(ctx.run_dir / "extract" / "lg.jsonl"),
            {s: read_jsonl(ctx.run_dir / "extract" / f"sf_{s}.jsonl") for s in specs},
        )
        m = Matcher(ctx, sf, lg, store, specs, index)
        m.preferred = index.preferred_by_email()

        def all_pairs() -> Iterator[dict[str, Any]]:
            yield from m.pairs_from_leadgen()
            yield from m.pairs_from_salesforce()

        events: Counter = Counter()

        def counted() -> Iterator[dict[str, Any]]:
            for p in all_pairs():
                m.counts["pairs"] += 1
                for e in p.get("events") or []:
                    events[e["event"]] += 1
                yield p

        n = write_jsonl(ctx.path("pairs", "pairs.jsonl"), counted())
    finally:
        index.close()
    log.info(
        "match: pairs=%d %s events=%s sf_api_calls=%d lg_api_calls=%d",
        n,
        " ".join(f"{k}={v}" for k, v in sorted(m.counts.items()) if k != "pairs"),
        dict(events),
        sf.api_calls,
        lg.api_calls,
    )
    return {
        "pairs": n,
        "counts": dict(m.counts),
        "events": dict(events),
        "sf_api_calls": sf.api_calls,
        "lg_api_calls": lg.api_calls,
    }
