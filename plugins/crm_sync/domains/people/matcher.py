"""The matcher: lookups and first-pairing rules of the people match (see :mod:`.match`).

Match: changed records of both sides -> pairs (Lead Gen & CRM lead, Salesforce record, link).

Identity rules:

* A link in the state store wins, following the Salesforce record through its lifecycle (see
  :mod:`.lifecycle`).
* First pairing: by the record-link external id on the Salesforce record (it holds the Lead Gen &
  CRM id), else by email (case-insensitive). Several Salesforce matches -> prefer a Contact, then
  the most recently modified; the ambiguity is reported. Converted and deleted Salesforce
  records never match; neither does one already linked to another lead.
* Otherwise the record is new and is created on the other side.

The counterpart of a changed record is fetched by id when it did not change itself, so every
pair carries both sides' current values. Output: ``pairs/pairs.jsonl``.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crm_sync.clients.sf_ids import is_of
from crm_sync.domains.people.candidates import CandidateSource, index_row
from crm_sync.domains.people.pairs import Pair, make_pair
from crm_sync.domains.people.rules import (
    is_contact,
    record_link_field,
    sf_fields,
    sf_object_of,
    target_object,
)
from crm_sync.mapping.models import ObjectSpec
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.files import DiskIndex
from crm_sync.pipeline.spill import DiskSet
from crm_sync.pipeline.transform import parse_sf_datetime

if TYPE_CHECKING:
    from crm_sync.clients.leadgen import LeadGenClient
    from crm_sync.clients.salesforce import SalesforceClient
    from crm_sync.state.store import SyncStore

log = logging.getLogger(__name__)
_LG_ID = re.compile(r"[0-9]{1,19}")  # what a Lead Gen & CRM id can be (ASCII, 64-bit)


def sf_index_rows(
    sobject: str, rows: Iterator[dict[str, Any]], id_field: str | None
) -> Iterator[tuple[Any, ...]]:
    for r in rows:
        yield index_row(sobject, r, id_field)


@dataclass
class Matcher:
    """The clients, specs and on-disk indexes of one match pass (see the module docstring)."""

    ctx: RunContext
    sf: SalesforceClient
    lg: LeadGenClient
    store: SyncStore
    specs: dict[str, ObjectSpec]
    lg_index: DiskIndex
    sf_index: DiskIndex
    # Salesforce records read by id that did not change in the window (None: not found), so
    # each is read once per run and every pair sees the same version of it.
    sf_fetched: DiskIndex
    # Ids already handed to a pair (each record belongs to one pair per run); on disk past a
    # buffer, so a full resync of a large org does not hold them all in memory.
    covered_sf: DiskSet | set[str]
    covered_lg: DiskSet | set[str]
    # where first-pairing candidates come from (sharing ``counts``)
    candidates: CandidateSource
    counts: Counter = field(default_factory=Counter)
    preferred: dict[str, str] = field(default_factory=dict)

    @property
    def id_field(self) -> str | None:
        return record_link_field(self.specs)

    # -- lookups -----------------------------------------------------------------------------
    def sf_by_ids(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Current Salesforce records by id (deleted ones included): the changed set first,
        then those read earlier in this run, then one query per object for the rest."""
        want = [i for i in dict.fromkeys(ids) if i]
        found = self.sf_index.get_many(want)
        rest = [i for i in want if i not in found]
        if rest:
            found.update(self.sf_fetched.get_many(rest))
            missing = [i for i in rest if i not in found]
            read: dict[str, dict[str, Any] | None] = dict.fromkeys(missing)
            for sobject, spec in self.specs.items():
                mine = [i for i in missing if is_of(i, sobject)]
                if mine:
                    for r in self.sf.query_by_values(
                        sobject, sf_fields(spec), "Id", mine, include_deleted=True
                    ):
                        read[r["Id"]] = r
            if read:
                self.sf_fetched.put_many(read.items())
                found.update(read)
        return {i: r for i, r in found.items() if r is not None}

    def lg_by_ids(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        # Lead Gen & CRM ids are integers (64-bit). A record-link field holding anything else
        # (typed by hand, left by another tool, "١٢٣" that str.isdigit accepts) can only be
        # stale: it matches nothing and gets repaired.
        ids = [i for i in ids if _LG_ID.fullmatch(str(i))]
        found = self.lg_index.get_many(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            for r in self.lg.get_leads_by_ids(missing):
                found[str(r["id"])] = r
        return found

    def preferred_by_email(self) -> dict[str, str]:
        """For emails several changed Salesforce records share: the one that stands for the
        person (a Contact before a Lead, then the most recently modified). Only duplicated
        emails are returned, so memory follows the duplicates, not the run."""
        rows = self.sf_index.query(
            """
            SELECT email, k FROM rec
            WHERE email IN (SELECT email FROM rec WHERE email IS NOT NULL GROUP BY email HAVING COUNT(*) > 1)
            ORDER BY email, object = 'Contact' DESC, modified DESC, k
            """
        )
        out: dict[str, str] = {}
        for email, sid in rows:
            out.setdefault(email, sid)
        return out

    def duplicate(self, rec: dict[str, Any], sobject: str, detail: str) -> Pair:
        """A Salesforce record that another record already stands in for: not synced, reported."""
        self.counts["duplicate_in_salesforce"] += 1
        return make_pair(
            f"sf:{rec['Id']}",
            lg=None,
            sf=rec,
            sf_object=sobject,
            link=None,
            match="duplicate",
            skip_fields=True,
            events=[{"event": "duplicate_in_salesforce", "detail": detail}],
        )

    def first_pairing(
        self, lg_rec: dict[str, Any], sf_rec: dict[str, Any], how: str, events: list[dict[str, Any]]
    ) -> Pair:
        """A lead paired for the first time with a Salesforce record (by external id or email)."""
        lid, sid = str(lg_rec["id"]), sf_rec["Id"]
        sobject = sf_object_of(sid)
        extra = []
        if sobject == "Contact" and not is_contact(lg_rec):
            extra.append({"leadStatus": "contact"})
            events.append(
                {
                    "event": "became_contact",
                    "detail": f"lead {lid} matched Salesforce Contact {sid}",
                }
            )
        self.counts[f"matched_{how}"] += 1
        return make_pair(
            f"lg:{lid}",
            lg=lg_rec,
            sf=sf_rec,
            sf_object=sobject,
            link=None,
            match=how,
            events=events,
            lg_extra=extra,
        )


def choose(
    lg_rec: dict[str, Any], cands: list[dict[str, Any]], id_field: str | None
) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    """The Salesforce record that stands for ``lg_rec`` among its candidates: by external id if
    any carries it, else by email; a Contact before a Lead, then the newest. Ambiguity is an
    event."""
    lid = str(lg_rec["id"])
    by_ext = [c for c in cands if id_field and str(c.get(id_field) or "") == lid]
    pool, how = (by_ext, "external_id") if by_ext else (cands, "email")

    def rank(c: dict[str, Any]) -> tuple[int, float]:
        ts = parse_sf_datetime(c.get("LastModifiedDate"))
        return (1 if is_of(c["Id"], "Contact") else 0, ts.timestamp() if ts else 0.0)

    pool = sorted(pool, key=rank, reverse=True)
    events = []
    if len(pool) > 1:
        events.append(
            {
                "event": "ambiguous_match",
                "detail": f"lead {lid} matches {len(pool)} Salesforce records by {how}: "
                f"{', '.join(c['Id'] for c in pool)}; chose {pool[0]['Id']}",
            }
        )
    return pool[0], how, events


def new_from_leadgen(m: Matcher, rec: dict[str, Any]) -> Pair:
    m.counts["new_from_leadgen"] += 1
    return make_pair(
        f"lg:{rec['id']}", lg=rec, sf=None, sf_object=target_object(rec), link=None, match="new"
    )


def new_from_salesforce(m: Matcher, rec: dict[str, Any]) -> Pair:
    m.counts["new_from_salesforce"] += 1
    return make_pair(
        f"sf:{rec['Id']}",
        lg=None,
        sf=rec,
        sf_object=sf_object_of(rec["Id"]),
        link=None,
        match="new",
    )
