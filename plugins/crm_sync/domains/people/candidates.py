"""Where the first-pairing candidates of an unlinked lead come from: a Salesforce query, or
what this run has read already.

A lead without a link is looked up in Salesforce by the record-link id and by email (SOQL ``IN``
lists, Leads and Contacts). Two facts make most of those queries unnecessary (issue 16: the
initial load of 100k people spent 574 s and 3,116 queries on them, and every quarantined lead
repeated its lookup every hour):

* **complete extract**: a full resync without a Salesforce scope read every live Lead and
  Contact into the run's index (``match/sf.db``), so the index answers every lookup;
* **recorded miss**: the lookup of this lead, with this email, found nothing at time T (state
  store ``match_misses``), and this run's Salesforce window reads every change since T (its
  lower bound plus the lookback overlap, which absorbs clock skew, is at or before T): a record
  that has gained the email or the id since then changed after T, so it is in the window's
  extract, which is in the index.

Both read the index plus the **tail**: the live Leads and Contacts changed at or after the
window's upper bound (one query per object, once per run), since a record created while the run
was under way is past the window yet visible to a lookup. What remains is the race any lookup has
(a record created between this read and the load), reported by the next run as a duplicate.

Queries go only for the leads neither fact covers; the leads those find nothing for are recorded
as misses, stamped with the time taken before the query was sent (not by a dry run, which leaves
the state store as it found it, so it costs what the real run will).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from crm_sync.domains.people.rules import DOMAIN, email_key, record_link_field, sf_fields
from crm_sync.mapping.scope import compile_soql
from crm_sync.pipeline.files import DiskIndex
from crm_sync.pipeline.transform import truthy
from crm_sync.pipeline.window import BACKFILL, TARGETED

if TYPE_CHECKING:
    from crm_sync.clients.salesforce import SalesforceClient
    from crm_sync.mapping.models import ObjectSpec
    from crm_sync.state.store import SyncStore
    from crm_sync.tasks import TaskRuntime

log = logging.getLogger(__name__)

INDEX_COLUMNS = ("object", "email", "modified", "ext")
# How far past the window the tail read reaches: any later modification time is a clock error.
_TAIL_REACH = timedelta(days=3650)


def index_row(sobject: str, rec: dict[str, Any], id_field: str | None) -> tuple[Any, ...]:
    """A Salesforce record as a row of the match's index (key, record, INDEX_COLUMNS)."""
    ext = str(rec.get(id_field) or "") if id_field else ""
    return (
        rec["Id"],
        rec,
        sobject,
        email_key(rec.get("Email")),
        str(rec.get("LastModifiedDate") or ""),
        ext or None,
    )


def is_live(rec: dict[str, Any]) -> bool:
    """What a lookup's ``IsDeleted = false AND IsConverted = false`` keeps."""
    return not truthy(rec.get("IsDeleted")) and not truthy(rec.get("IsConverted"))


@dataclass
class CandidateSource:
    """The lookups of one match pass (see the module docstring)."""

    sf: SalesforceClient
    store: SyncStore
    specs: dict[str, ObjectSpec]
    id_field: str | None
    sf_index: DiskIndex
    tail_path: Any
    # True: the index holds every live Lead and Contact (full resync, no Salesforce scope).
    complete: bool
    # Misses checked at or after this are covered by the window (None: never, e.g. a
    # targeted run reads no window).
    miss_floor: datetime | None
    window_end: datetime
    counts: Counter
    # a dry run leaves the state store as it found it: what it learns is not kept
    record: bool = True
    _tail: DiskIndex | None = None

    @classmethod
    def of(cls, rt: TaskRuntime, sf_index: DiskIndex, counts: Counter) -> CandidateSource:
        ctx, specs = rt.run, rt.specs
        scoped = any(compile_soql(spec.scope, name, rt.schema) for name, spec in specs.items())
        targeted = ctx.run_kind == TARGETED
        complete = ctx.full_resync and not scoped and not targeted
        floor = None
        if not targeted and not (ctx.full_resync and scoped):
            floor = ctx.window_start + timedelta(minutes=ctx.lookback_minutes)
            if ctx.run_kind != BACKFILL and not ctx.dry_run:
                # no later window starts before this one's (backfills aside): older misses are
                # of no use to anyone
                rt.store.prune_misses(DOMAIN, floor)
        return cls(
            sf=rt.salesforce,
            store=rt.store,
            specs=specs,
            id_field=record_link_field(specs),
            sf_index=sf_index,
            tail_path=ctx.scratch("match/sf_tail.db"),
            complete=complete,
            miss_floor=floor,
            window_end=ctx.window_end,
            counts=counts,
            record=not ctx.dry_run,
        )

    def close(self) -> None:
        if self._tail is not None:
            self._tail.close()

    def find(self, lg_recs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Live Salesforce Leads/Contacts carrying one of the leads' ids (record-link field) or
        emails, by Id; a query only for the leads the run's reads do not cover."""
        covered = self._covered(lg_recs)
        ask = [r for r in lg_recs if str(r["id"]) not in covered]
        found: dict[str, dict[str, Any]] = {}
        if covered:
            found.update(self._known([r for r in lg_recs if str(r["id"]) in covered]))
            self.counts["lookups_answered_locally"] += len(covered)
        if ask:
            checked_at = datetime.now(UTC)
            asked = self._query(ask)
            found.update(asked)
            misses = {
                str(r["id"]): email_key(r.get("emailAddress")) or ""
                for r in ask
                if not any(self._fits(r, c) for c in asked.values())
            }
            if self.record:
                self.store.record_lookups(DOMAIN, [str(r["id"]) for r in ask], misses, checked_at)
            self.counts["lookups_queried"] += len(ask)
        return found

    # -- the two ways ----------------------------------------------------------------------
    def _covered(self, lg_recs: list[dict[str, Any]]) -> set[str]:
        ids = [str(r["id"]) for r in lg_recs]
        if self.complete:
            return set(ids)
        if self.miss_floor is None:
            return set()
        misses = self.store.misses_since(DOMAIN, ids, self.miss_floor)
        return {
            str(r["id"])
            for r in lg_recs
            if misses.get(str(r["id"])) == (email_key(r.get("emailAddress")) or "")
        }

    def _known(self, lg_recs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        ids = [str(r["id"]) for r in lg_recs]
        emails = [e for r in lg_recs if (e := email_key(r.get("emailAddress")))]
        out: dict[str, dict[str, Any]] = {}
        for index in (self.sf_index, self.tail()):
            for column, values in (("ext", ids), ("email", emails)):
                if values:
                    out.update(index.where_in(column, values))
        return {k: r for k, r in out.items() if is_live(r)}

    def tail(self) -> DiskIndex:
        """Live Leads and Contacts changed at or after the window's end, read once per run."""
        if self._tail is None:
            tail = DiskIndex(self.tail_path, columns=INDEX_COLUMNS)
            for sobject, spec in self.specs.items():
                rows = self.sf.query_window(
                    sobject, sf_fields(spec), self.window_end, self.window_end + _TAIL_REACH
                )
                tail.put_many(index_row(sobject, r, self.id_field) for r in rows)
            tail.index("email", "ext")
            self._tail = tail
        return self._tail

    def _query(self, lg_recs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        ids = [str(r["id"]) for r in lg_recs]
        emails = sorted({e for r in lg_recs if (e := email_key(r.get("emailAddress")))})
        found: dict[str, dict[str, Any]] = {}
        for sobject, spec in self.specs.items():
            live = "IsDeleted = false" + (" AND IsConverted = false" if sobject == "Lead" else "")
            lookups: list[tuple[str, Iterable[str]]] = (
                [(spec.record_link.id_field, ids)] if spec.record_link else []
            )
            if emails:
                lookups.append(("Email", emails))
            for field_name, values in lookups:
                for r in self.sf.query_by_values(
                    sobject, sf_fields(spec), field_name, list(values), where=live
                ):
                    found[r["Id"]] = r
        return found

    def _fits(self, lg: dict[str, Any], rec: dict[str, Any]) -> bool:
        """``rec`` carries the lead's id in the record-link field, or its email."""
        lid = str(lg["id"])
        if self.id_field and str(rec.get(self.id_field) or "") == lid:
            return True
        email = email_key(lg.get("emailAddress"))
        return bool(email) and email == email_key(rec.get("Email"))
