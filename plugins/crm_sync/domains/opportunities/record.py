"""Record: what became of each plan (per object section), roles to hold and to release.

The spine (:func:`crm_sync.pipeline.apply.record_run`) applies the quarantine, the threshold, the
report and the watermark; links were recorded by the load stage batch by batch. This module
counts each plan under its object's section (opportunities, accounts, memberships), quarantines
what the gate or Lead Gen & CRM refused, holds the contact roles whose contact is not linked yet
and releases the held roles that are now delivered (their membership exists) or gone (deleted in
Salesforce before their contact was linked).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crm_sync.definitions import SF_TO_LG
from crm_sync.domains.opportunities.rules import (
    HELD_KIND,
    KIND_MEMBERSHIP,
    KIND_PENDING,
    LG_TARGET,
    LINK_DOMAIN,
    SECTIONS,
    record_key,
)
from crm_sync.pipeline.apply import StateChanges
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.quarantine import QuarantineEntry, Source
from crm_sync.pipeline.results import ResultLog, ResultRow
from crm_sync.pipeline.spill import DiskList
from crm_sync.pipeline.tally import RunTally

if TYPE_CHECKING:
    from crm_sync.tasks import TaskRuntime

Plan = dict[str, Any]
VERB = {"create": "created", "update": "updated", "delete": "deleted"}


def _pending_list() -> DiskList[Plan]:
    return DiskList(dict, dict, lambda p: str(p["sf_id"]))


@dataclass
class Sections:
    """The domain's part of the tally: per-object counters and the roles to hold or release.

    What grows with the run stays bounded: the roles waiting for their contact go to disk past
    a buffer, and of the roles the run delivers only those held before it are kept (``held``:
    the only ones :func:`hold_and_release` releases; ``None`` keeps every one)."""

    by_object: dict[str, Counter] = field(
        default_factory=lambda: {s: Counter() for s in SECTIONS.values()}
    )
    pending: DiskList[Plan] = field(default_factory=_pending_list)
    delivered: set[str] = field(default_factory=set)
    held: frozenset[str] | None = None

    def deliver(self, roles: Iterable[str]) -> None:
        self.delivered.update(r for r in roles if self.held is None or r in self.held)


def _source(ctx: RunContext, plan: Plan) -> Source:
    kind = plan["kind"]
    return Source(
        domain=LINK_DOMAIN[kind],
        direction=SF_TO_LG,
        record_key=record_key(plan),
        target_object=LG_TARGET[kind],
        lg_id=plan.get("lg_id"),
        sf_id=plan.get("sf_id"),
        payload=plan.get("lg_payload") or {},
    )


def _written(t: RunTally, s: Sections, plan: Plan, res: ResultRow, section: Counter) -> None:
    """A successful write: its section's verb, the roles it delivers, the links it made."""
    if res.get("unchanged"):
        section["unchanged"] += 1
        t.sides["leadgen"]["unchanged"] += 1
    else:
        section[VERB[plan["lg_op"]]] += 1
        t.sides["leadgen"]["writes"] += 1
    for flag in ("already_gone", "adopted"):
        if res.get(flag):
            section[flag] += 1
    if plan["kind"] == KIND_MEMBERSHIP and plan["lg_op"] == "create":
        s.deliver(plan.get("roles") or [])
    for name, n in (res.get("links") or {}).items():  # type: ignore[attr-defined]
        t.links[name] += n


def count_plan(
    ctx: RunContext, t: RunTally, s: Sections, plan: Plan, results: dict[str, ResultRow]
) -> None:
    """Tally one plan: its row outcome, its section's counters, quarantine and passed keys."""
    kind = plan["kind"]
    t.add_events(plan.get("events") or [])
    if kind == KIND_PENDING:
        s.pending.append(plan)
        s.by_object["memberships"]["pending"] += 1
        t.row(writes=False, outcome="held")
        return
    section = s.by_object[SECTIONS[kind]]
    if not ctx.dry_run:
        s.deliver(plan.get("roles_covered") or [])
    if plan.get("memberships_kept"):
        s.by_object["memberships"]["unchanged"] += plan["memberships_kept"]
    op, key = plan.get("lg_op"), record_key(plan)
    if not op:
        section["unchanged"] += 1
        t.passed_key(SF_TO_LG, key)
        t.row(writes=False)
        return
    if plan.get("lg_rejected"):
        section["quarantined"] += 1
        t.row(
            writes=True,
            rejected=[QuarantineEntry.from_gate(ctx, _source(ctx, plan), plan["lg_rejected"])],
        )
        return
    if ctx.dry_run:
        section[f"would_{op}"] += 1
        t.row(writes=True)
        return
    res = results.get(plan["pair"])
    t.add_events((res or {}).get("events") or [])  # type: ignore[arg-type]
    if res is None:
        # not attempted: a membership whose opportunity could not be written this run
        section["waiting_for_opportunity" if kind == KIND_MEMBERSHIP else "not_attempted"] += 1
        t.row(writes=True, attempted=False)
        return
    if res["success"]:
        _written(t, s, plan, res, section)
        t.passed_key(SF_TO_LG, key)
        t.row(writes=True)
        return
    section["failed"] += 1
    t.sides["leadgen"]["failed"] += 1
    who = f"Lead Gen & CRM {LG_TARGET[kind]} {plan.get('lg_id') or '(new)'} (Salesforce {plan['sf_id']})"
    entry = QuarantineEntry.from_write(ctx, _source(ctx, plan), res, who=who, op=op)
    t.row(writes=True, rejected=[entry])


def tally(
    ctx: RunContext,
    t: RunTally,
    plans: Iterable[Plan],
    results: Mapping[str, ResultRow],
    held: frozenset[str] | None = None,
) -> Sections:
    """Count every plan; ``held``: the roles held before the run (the only delivered ones the
    caller needs; ``None``: all of them)."""
    s = Sections(held=held)
    for plan in plans:
        count_plan(ctx, t, s, plan, results)
    for section in s.by_object.values():
        section["quarantined"] += 0  # present in every report, even when zero
    return s


def held_keys(ctx: RunContext, store: Any) -> frozenset[str]:
    """The contact roles held before this run (the walk's own holds are applied after it)."""
    return frozenset(h.item_key for h in store.held(ctx.dag_id, HELD_KIND))


def hold_and_release(
    ctx: RunContext, ch: StateChanges, s: Sections, held_rows: list[dict[str, Any]]
) -> None:
    """Roles waiting for their contact are held (new ones and those still waiting); held roles
    whose membership now exists are released as delivered, deleted ones as dropped."""
    in_run = {p["sf_id"] for p in s.pending}
    waiting = [h for h in held_rows if h["state"] == "waiting" and h["role_id"] not in in_run]
    gone = {h["role_id"] for h in held_rows if h["state"] == "gone"}
    mem = s.by_object["memberships"]
    mem["pending"] += len(waiting)
    holds = [
        (p["sf_id"], {"opportunity_sf": p["opportunity_sf"], "contact_sf": p["contact_sf"]})
        for p in s.pending
    ] + [(h["role_id"], h.get("payload") or {}) for h in waiting]
    for role_id, payload in holds:
        contact = payload.get("contact_sf")
        ch.call(
            "hold",
            ctx.dag_id,
            HELD_KIND,
            role_id,
            payload=payload,
            reason=f"contact {contact} is not linked to a Lead Gen & CRM lead yet",
            waiting_for=f"person:{contact}",
            run_id=ctx.run_id,
        )
    if ctx.dry_run:
        return
    held_now = s.held if s.held is not None else held_keys(ctx, ch.store)
    delivered, dropped = s.delivered & held_now, gone & held_now
    mem["completed"] += len(delivered)
    mem["dropped"] += len(dropped)
    ch.call("release", ctx.dag_id, HELD_KIND, sorted(delivered), status="delivered")
    ch.call(
        "release",
        ctx.dag_id,
        HELD_KIND,
        sorted(dropped),
        status="dropped",
        reason="contact role deleted in Salesforce before its contact was linked",
    )


def record(rt: TaskRuntime) -> dict[str, Any]:
    """Apply the run to the state store and build the run report."""
    ctx = rt.run
    sections = Sections()

    def walk(t: RunTally, ch: StateChanges) -> None:
        nonlocal sections
        results = ResultLog(ctx.folder, "lg").latest()
        held = None if ctx.dry_run else held_keys(ctx, ch.store)
        plans = ctx.folder.read_jsonl("plans/validated.jsonl")
        try:
            sections = tally(ctx, t, plans, results, held)
        finally:
            results.close()
        hold_and_release(ctx, ch, sections, list(ctx.folder.read_jsonl("extract/held.jsonl")))

    def extra(t: RunTally) -> dict[str, Any]:
        stages = (ctx.folder.read_json("stages.json", {}) or {}).get("resolution", {})
        prepared = rt.summaries.get("prepare", {})
        return {
            "salesforce": {},  # one way: nothing is ever written to Salesforce
            "leadgen": {"writes": 0, "failed": 0, "unchanged": 0, **t.sides["leadgen"]},
            "opportunities": dict(sections.by_object["opportunities"]),
            "accounts": dict(sections.by_object["accounts"]),
            "memberships": dict(sections.by_object["memberships"]),
            "deal_stages": {
                "mapped": int(prepared.get("stages_mapped", 0)),
                "created": len(stages.get("created") or {}),
                "would_create": int(prepared.get("deal_stages_would_create", 0)),
            },
            "warnings": list(prepared.get("stage_warnings") or [])
            + list(prepared.get("owner_problems") or []),
            # a load stopped by the API budget: how far it got, how long the rest takes
            **(
                {"progress": rt.summaries["load_leadgen"]["progress"]}
                if (rt.summaries.get("load_leadgen") or {}).get("progress")
                else {}
            ),
        }

    extracted = rt.summaries.get("extract", {}).get("extracted", {})
    return rt.record(walk, extracted=extracted, extra=extra)
