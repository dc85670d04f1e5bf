"""Extract (Salesforce only: this DAG never reads Lead Gen & CRM changes).

The run's opportunities: changed in the window (``queryAll`` on SystemModstamp, so deleted ones
too), the parents of roles changed in the window, those with a held role whose contact is linked
now, and those quarantined earlier (retried every run). Each carries all of its current roles
(``_roles``). Accounts: referenced by those opportunities or by contacts changed in the window
that are linked to a person, when not linked yet; linked ones that changed in the window; and
quarantined ones.

Records and id sets wait in task-local on-disk indexes, so a full resync of a large org holds one
chunk of records in memory at a time.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crm_sync.clients.sf_ids import is_of
from crm_sync.definitions import SF_TO_LG
from crm_sync.domains.opportunities.rules import (
    ACCOUNT_SYSTEM_FIELDS,
    CHUNK,
    DOMAIN_ACCOUNT,
    DOMAIN_PERSON,
    HELD_KIND,
    OPP_SYSTEM_FIELDS,
    ROLE_FIELDS,
    active_links,
    sf_fields,
)
from crm_sync.pipeline.files import DiskIndex, chunked
from crm_sync.pipeline.transform import truthy

if TYPE_CHECKING:
    from crm_sync.tasks import TaskRuntime

log = logging.getLogger(__name__)


@dataclass
class _Reader:
    """The run's Salesforce reads: the window's changes, or everything on a full resync."""

    rt: TaskRuntime
    counts: Counter = field(default_factory=Counter)

    def query(self, sobject: str, fields: list[str], where: str | None = None) -> Iterator[dict]:
        ctx, sf = self.rt.run, self.rt.salesforce
        if ctx.full_resync:
            soql = f"SELECT {', '.join(fields)} FROM {sobject}"
            if where:
                soql += f" WHERE {where}"
            return sf.query(soql, include_deleted=where is None)
        return sf.query_window(
            sobject,
            fields,
            ctx.window_start,
            ctx.window_end,
            include_deleted=where is None,
            where=where,
        )

    def by_ids(
        self, sobject: str, fields: list[str], ids: list[str], field_name: str = "Id"
    ) -> Iterator[dict[str, Any]]:
        if not ids:
            return iter(())
        deleted = field_name == "Id"
        return self.rt.salesforce.query_by_values(
            sobject, fields, field_name, ids, include_deleted=deleted
        )


def _held_roles(r: _Reader, retry_roles: list[str], wanted: set[str]) -> list[dict[str, Any]]:
    """Held roles: still there? contact linked now? Only those that can complete pull their
    opportunity into the run; the others wait without costing more than this one query."""
    ctx, store = r.rt.run, r.rt.store
    held = store.held(ctx.dag_id, HELD_KIND)
    role_ids = [h.item_key for h in held] + retry_roles
    role_recs = {
        x["Id"]: x for x in r.by_ids("OpportunityContactRole", list(ROLE_FIELDS), role_ids)
    }
    linked_contacts = active_links(
        store, DOMAIN_PERSON, {x["ContactId"] for x in role_recs.values() if x.get("ContactId")}
    )
    held_rows = []
    for h in held:
        rec = role_recs.get(h.item_key)
        if rec is None or truthy(rec.get("IsDeleted")):
            state = "gone"
        elif rec.get("ContactId") in linked_contacts:
            state = "ready"
            wanted.add(rec["OpportunityId"])
        else:
            state = "waiting"
        held_rows.append({"role_id": h.item_key, "state": state, "payload": h.payload})
    r.counts.update(f"held_{x['state']}" for x in held_rows)
    for rid in retry_roles:
        if rid in role_recs and role_recs[rid].get("OpportunityId"):
            wanted.add(role_recs[rid]["OpportunityId"])
    return held_rows


def _opportunities(r: _Reader, retry: list[str], index: DiskIndex) -> None:
    """The run's opportunities, each with its current roles -> ``extract/opportunities.jsonl``
    (and the held roles' states -> ``extract/held.jsonl``). The records wait in ``index`` (on
    disk), so a full resync holds one chunk of them in memory, not every opportunity."""
    ctx = r.rt.run
    opp_fields = sf_fields(r.rt.specs["Opportunity"], OPP_SYSTEM_FIELDS)
    r.counts["Opportunity"] = index.put_many(
        (x["Id"], x) for x in r.query("Opportunity", opp_fields)
    )
    wanted: set[str] = set()  # not changed themselves: a changed or held role, a retry
    if not ctx.full_resync:
        changed_roles = list(r.query("OpportunityContactRole", list(ROLE_FIELDS)))
        r.counts["OpportunityContactRole"] = len(changed_roles)
        wanted |= {x["OpportunityId"] for x in changed_roles if x.get("OpportunityId")}
    held_rows = _held_roles(r, [i for i in retry if is_of(i, "OpportunityContactRole")], wanted)
    wanted |= {i for i in retry if is_of(i, "Opportunity")}
    missing = sorted(i for i in wanted if i not in index)
    index.put_many((x["Id"], x) for x in r.by_ids("Opportunity", opp_fields, missing))

    def with_roles() -> Iterator[dict[str, Any]]:
        for chunk in chunked(index.query("SELECT k, v FROM rec ORDER BY k"), CHUNK):
            opps = [json.loads(v) for _, v in chunk]
            live = [x["Id"] for x in opps if not truthy(x.get("IsDeleted"))]
            roles: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for x in r.by_ids("OpportunityContactRole", list(ROLE_FIELDS), live, "OpportunityId"):
                roles[x["OpportunityId"]].append(x)
            r.counts["roles_in_run"] += sum(len(v) for v in roles.values())
            for x in opps:
                yield {**x, "_roles": roles.get(x["Id"], [])}

    r.counts["roles_in_run"] = 0
    r.counts["opportunities_in_run"] = ctx.folder.write_jsonl(
        "extract/opportunities.jsonl", with_roles()
    )
    ctx.folder.write_jsonl("extract/held.jsonl", held_rows)


def _referenced(r: _Reader, opps: DiskIndex, into: DiskIndex) -> None:
    """Accounts the run needs whatever changed: those of its live opportunities and those of
    the contacts changed in the window that are linked to a person (ids only, on disk)."""
    for chunk in chunked(opps.query("SELECT v FROM rec"), CHUNK):
        recs = (json.loads(v) for (v,) in chunk)
        into.put_many(
            (x["AccountId"], 1)
            for x in recs
            if x.get("AccountId") and not truthy(x.get("IsDeleted"))
        )
    contacts = r.query("Contact", ["Id", "AccountId"], where="AccountId != null")
    r.counts["Contact"] = 0
    for chunk in chunked(contacts, CHUNK):
        r.counts["Contact"] += len(chunk)
        linked = active_links(r.rt.store, DOMAIN_PERSON, [c["Id"] for c in chunk])
        into.put_many((c["AccountId"], 1) for c in chunk if c["Id"] in linked)


def _accounts(r: _Reader, opps: DiskIndex, retry: list[str]) -> None:
    """The run's accounts -> ``extract/accounts.jsonl``: changed ones that are linked or
    referenced, referenced ones not linked yet, and quarantined ones. Streamed in chunks."""
    ctx, store = r.rt.run, r.rt.store
    acc_fields = sf_fields(r.rt.specs["Account"], ACCOUNT_SYSTEM_FIELDS)
    retried = {i for i in retry if is_of(i, "Account")}
    changed = DiskIndex(ctx.scratch("extract/accounts.db"))
    referenced = DiskIndex(ctx.scratch("extract/referenced.db"))
    try:
        _referenced(r, opps, referenced)
        r.counts["Account"] = changed.put_many((x["Id"], x) for x in r.query("Account", acc_fields))

        def kept() -> Iterator[dict[str, Any]]:
            for chunk in chunked(changed.query("SELECT k, v FROM rec ORDER BY k"), CHUNK):
                ids = [k for k, _ in chunk]
                linked = active_links(store, DOMAIN_ACCOUNT, ids)
                wanted = set(referenced.get_many(ids)) | set(linked) | retried
                yield from (json.loads(v) for k, v in chunk if k in wanted)
            # referenced and not changed: needed when not linked yet (or quarantined)
            for chunk in chunked(referenced.query("SELECT k FROM rec ORDER BY k"), CHUNK):
                ids = [k for (k,) in chunk if k not in changed]
                linked = active_links(store, DOMAIN_ACCOUNT, ids)
                todo = [i for i in ids if i not in linked or i in retried]
                yield from r.by_ids("Account", acc_fields, todo)
            # quarantined, neither changed nor referenced: retried
            extra = sorted(i for i in retried if i not in changed and i not in referenced)
            yield from r.by_ids("Account", acc_fields, extra)

        r.counts["accounts_in_run"] = ctx.folder.write_jsonl("extract/accounts.jsonl", kept())
    finally:
        changed.close()
        referenced.close()


def extract(rt: TaskRuntime) -> dict[str, Any]:
    """Opportunities, roles and accounts of this run -> ``extract/*.jsonl``."""
    ctx = rt.run
    r = _Reader(rt)
    retry = [
        k[3:]
        for k in rt.store.retry_keys(ctx.dag_id, SF_TO_LG, include_parked=ctx.retry_quarantined)
        if k.startswith("sf:")
    ]
    r.counts["retried"] = len(retry)
    opps = DiskIndex(ctx.scratch("extract/opportunities.db"))
    try:
        _opportunities(r, retry, opps)
        _accounts(r, opps, retry)
    finally:
        opps.close()
    log.info(
        "extract salesforce: %s in [%s, %s) api_calls=%d",
        " ".join(f"{k}={v}" for k, v in sorted(r.counts.items())),
        ctx.window_start.isoformat(),
        ctx.window_end.isoformat(),
        rt.salesforce.api_calls,
    )
    return {"extracted": dict(r.counts)}
