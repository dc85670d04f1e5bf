"""Match: each extracted opportunity and account with its link and its current Lead Gen & CRM
record; opportunities also with the persons linked to their contacts, their membership links and
their account's Lead Gen & CRM id.

A link is ``linked`` (active), ``deleted`` (by an earlier run) or absent (``new``); a linked
record gone from Lead Gen & CRM is ``recreate`` (Salesforce brings it back), a deleted link whose
record is live again is ``undeleted``. Linked records are read by id, 500 per call (never a scan
of every opportunity or account), and "gone" is confirmed by a single read.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from crm_sync.domains.opportunities.rules import (
    CHUNK,
    DOMAIN_ACCOUNT,
    DOMAIN_MEMBERSHIP,
    DOMAIN_OPPORTUNITY,
    DOMAIN_PERSON,
    active_links,
    lg_id,
)
from crm_sync.pipeline.files import DiskIndex, chunked
from crm_sync.pipeline.transform import truthy

if TYPE_CHECKING:
    from crm_sync.state.models import Link
    from crm_sync.tasks import TaskRuntime

log = logging.getLogger(__name__)
LOOKUP_CHUNK = 5000  # records whose Lead Gen & CRM counterparts are read together (10 calls)


def current_records(
    ids: Iterable[str],
    by_ids: Callable[[list[str]], Iterable[dict[str, Any]]],
    one: Callable[[str], dict[str, Any] | None],
) -> dict[str, dict[str, Any]]:
    """Current Lead Gen & CRM records for ``ids`` (500 per call); absent = gone. A record the
    batch read did not return is asked for once more on its own before it counts as gone: the
    sync re-creates a gone record, so a record missing by mistake would be made twice."""
    wanted = sorted({lg_id(i) for i in ids if lg_id(i)})
    out: dict[str, dict[str, Any]] = {}
    if not wanted:
        return out
    for r in by_ids(wanted):
        out[lg_id(r.get("id"))] = r
    for rid in wanted:
        if rid not in out and (again := one(rid)) is not None:
            out[rid] = again
    return out


def link_state(links: list[Link]) -> tuple[Link | None, str]:
    """The link that speaks for a Salesforce record, and its state: ``linked``, ``deleted``
    (deleted by an earlier run) or ``new``."""
    active = [lk for lk in links if lk.status == "active"]
    if active:
        return active[0], "linked"
    deleted = [lk for lk in links if lk.status == "deleted"]
    if deleted:
        return deleted[-1], "deleted"
    return None, "new"


def _pair(rec: dict[str, Any], link: Link | None, state: str, current: dict, domain: str) -> dict:
    lg_rec = current.get(link.lg_id) if link is not None and state == "linked" else None
    if state == "linked" and lg_rec is None:
        state = "recreate"  # deleted in Lead Gen & CRM: Salesforce brings it back
    elif state == "deleted" and not truthy(rec.get("IsDeleted")):
        state = "undeleted"
    return {
        "pair": f"{domain[:3]}:{rec['Id']}",
        "sf": rec,
        "lg": lg_rec,
        "link": link.as_dict() if link is not None else None,
        "state": state,
    }


def match_file(
    rt: TaskRuntime,
    *,
    domain: str,
    name: str,
    by_ids: Callable[[list[str]], Iterable[dict[str, Any]]],
    one: Callable[[str], dict[str, Any] | None],
    enrich: Callable[[list[dict[str, Any]]], None] | None = None,
) -> Counter:
    """Pair each record of ``extract/<name>`` with its link and current Lead Gen & CRM record
    -> ``pairs/<name>``."""
    ctx, store, folder = rt.run, rt.store, rt.run.folder
    counts: Counter = Counter()
    index = DiskIndex(ctx.scratch(f"match/{domain}.db"))
    try:
        # pass 1: the current Lead Gen & CRM records of the linked ones (read by id, 500 per
        # call), a chunk at a time into the on-disk index
        for chunk in chunked(folder.read_jsonl(f"extract/{name}"), LOOKUP_CHUNK):
            wanted = []
            for lk_list in store.links_by_sf(domain, [r["Id"] for r in chunk]).values():
                link, state = link_state(lk_list)
                if state == "linked" and link is not None:
                    wanted.append(link.lg_id)
            index.put_many(current_records(wanted, by_ids, one).items())

        def pairs() -> Iterator[dict[str, Any]]:
            for chunk in chunked(folder.read_jsonl(f"extract/{name}"), CHUNK):
                links = store.links_by_sf(domain, [r["Id"] for r in chunk])
                chosen = {sid: link_state(lks) for sid, lks in links.items()}
                current = index.get_many(
                    [lk.lg_id for lk, st in chosen.values() if st == "linked" and lk]
                )
                out = []
                for rec in chunk:
                    link, state = chosen.get(rec["Id"], (None, "new"))
                    out.append(_pair(rec, link, state, current, domain))
                    counts[out[-1]["state"]] += 1
                if enrich is not None:
                    enrich(out)
                yield from out

        counts["pairs"] = folder.write_jsonl(f"pairs/{name}", pairs())
    finally:
        index.close()
    return counts


def _enrich(rt: TaskRuntime) -> Callable[[list[dict[str, Any]]], None]:
    store = rt.store

    def enrich(pairs: list[dict[str, Any]]) -> None:
        sf_ids = [p["sf"]["Id"] for p in pairs]
        contact_ids = {
            r["ContactId"] for p in pairs for r in p["sf"].get("_roles") or [] if r.get("ContactId")
        }
        persons = active_links(store, DOMAIN_PERSON, contact_ids)
        members = store.links_by_sf(DOMAIN_MEMBERSHIP, sf_ids, active_only=True)
        accounts = active_links(
            store, DOMAIN_ACCOUNT, {p["sf"]["AccountId"] for p in pairs if p["sf"].get("AccountId")}
        )
        for p in pairs:
            roles = p["sf"].get("_roles") or []
            p["contacts"] = {
                r["ContactId"]: persons[r["ContactId"]].lg_id
                for r in roles
                if r.get("ContactId") in persons
            }
            p["memberships"] = [lk.as_dict() for lk in members.get(p["sf"]["Id"], [])]
            acc = accounts.get(p["sf"].get("AccountId") or "")
            p["account_lg"] = acc.lg_id if acc is not None else None

    return enrich


def match(rt: TaskRuntime) -> dict[str, Any]:
    """``extract/*.jsonl`` -> ``pairs/*.jsonl`` (see the module docstring)."""
    lg = rt.leadgen
    # (link domain, extract/pairs file, readers by ids and by one id, enrichment)
    objects = (
        (
            DOMAIN_OPPORTUNITY,
            "opportunities.jsonl",
            lg.get_opportunities_by_ids,
            lg.get_opportunity,
            _enrich(rt),
        ),
        (DOMAIN_ACCOUNT, "accounts.jsonl", lg.get_accounts_by_ids, lg.get_account, None),
    )
    opp, acc = (
        match_file(rt, domain=domain, name=name, by_ids=by_ids, one=one, enrich=enrich)
        for domain, name, by_ids, one, enrich in objects
    )
    log.info(
        "match: opportunities %s; accounts %s; lg_api_calls=%d",
        " ".join(f"{k}={v}" for k, v in sorted(opp.items())),
        " ".join(f"{k}={v}" for k, v in sorted(acc.items())),
        lg.api_calls,
    )
    return {"opportunities": dict(opp), "accounts": dict(acc)}
