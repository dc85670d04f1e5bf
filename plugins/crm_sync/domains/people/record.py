"""Record: what became of every planned pair, on each side, and the link changes it implies.

The spine (:func:`crm_sync.pipeline.apply.record_run`) owns the loop's end: the transaction, the
quarantine, the threshold, the report and the watermark. This module says, per pair:

* per side (:data:`SIDES`): rejected by the gate, refused by the system, not attempted, written
  (created / adopted / updated / unchanged) — counted under ``salesforce`` / ``leadgen``;
* the synced values: only fields whose write succeeded (or that already agreed), so a failed
  write is retried and a successful one is never seen as a change again (echo suppression);
* the link change (:data:`LINK_CHANGES`): created for new pairs, re-pointed on conversion, merge
  or relink, marked deleted when the lead was deactivated, restored on undelete, parked on a
  merge collision; every change lands in the link history;
* undo holds a field's change released (reconcile's ``undo_hold_released`` events): dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crm_sync.definitions import LG_TO_SF, SF_TO_LG
from crm_sync.domains.people.rules import DOMAIN, LG_OBJECT
from crm_sync.pipeline.apply import StateChanges
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.files import chunked
from crm_sync.pipeline.quarantine import QuarantineEntry, Source
from crm_sync.pipeline.results import ResultLog, ResultRow
from crm_sync.pipeline.tally import RunTally

if TYPE_CHECKING:
    from crm_sync.tasks import TaskRuntime

Plan = dict[str, Any]


@dataclass(frozen=True)
class Side:
    """One direction of the people sync, as the record stage reads a plan."""

    prefix: str  # "sf" | "lg": plan keys (sf_op, sf_payload, sf_rejected, sf_id) and results
    direction: str
    system: str  # report section
    source_prefix: str  # quarantine key of the *source* record ("lg:<id>" for writes to Salesforce)

    def source(self, ctx: RunContext, plan: Plan) -> Source:
        src_id = plan.get("lg_id") if self.prefix == "sf" else plan.get("sf_id")
        return Source(
            domain=ctx.domain,
            direction=self.direction,
            record_key=f"{self.source_prefix}:{src_id}" if src_id else plan["pair"],
            target_object=plan["sf_object"] if self.prefix == "sf" else LG_OBJECT,
            lg_id=plan.get("lg_id"),
            sf_id=plan.get("sf_id"),
            payload=plan.get(f"{self.prefix}_payload") or {},
        )

    def who(self, plan: Plan) -> str:
        if self.prefix == "sf":
            return (
                f"Salesforce {plan['sf_object']} {plan.get('sf_id') or '(new)'} "
                f"(lead {plan.get('lg_id')})"
            )
        return (
            f"Lead Gen & CRM lead {plan.get('lg_id') or '(new)'} "
            f"(Salesforce {plan['sf_object']} {plan.get('sf_id')})"
        )


CHUNK = 500  # plans whose results are read from the on-disk indexes at once
SIDES = (
    Side("sf", LG_TO_SF, "salesforce", "lg"),
    Side("lg", SF_TO_LG, "leadgen", "sf"),
)


@dataclass
class SideOutcome:
    ok: bool = True  # nothing to write, or written
    attempted: bool = True
    rejected: QuarantineEntry | None = None
    new_id: str | None = None  # the id a create gave


def _written(side: Side, plan: Plan, res: ResultRow) -> tuple[str, SideOutcome]:
    """The counter name and outcome of a successful write."""
    op = plan[f"{side.prefix}_op"]
    if op == "create":
        # Lead Gen & CRM answers 301 for a lead that exists (adopted by email); a Salesforce
        # upsert says whether it created the record.
        adopted = res.get("already_existed") if side.prefix == "lg" else res.get("created") is False
        return ("adopted" if adopted else "created"), SideOutcome(new_id=res["id"])
    if side.prefix == "lg" and res.get("unchanged"):
        return "unchanged", SideOutcome()
    return "updated", SideOutcome()


def side_outcome(
    ctx: RunContext, tally: RunTally, plan: Plan, side: Side, results: dict[str, ResultRow]
) -> SideOutcome:
    """What happened on one side of one plan; counted under the side's report section."""
    op = plan.get(f"{side.prefix}_op")
    counts = tally.sides[side.system]
    if not op:
        return SideOutcome()
    if plan.get(f"{side.prefix}_rejected"):
        counts["rejected_by_gate"] += 1
        entry = QuarantineEntry.from_gate(
            ctx, side.source(ctx, plan), plan[f"{side.prefix}_rejected"]
        )
        return SideOutcome(ok=False, rejected=entry)
    if ctx.dry_run:
        counts[f"would_{op}"] += 1
        return SideOutcome()
    res = results.get(plan["pair"])
    if res is None:
        counts["not_attempted"] += 1
        return SideOutcome(ok=False, attempted=False)
    if not res["success"]:
        counts["failed"] += 1
        entry = QuarantineEntry.from_write(
            ctx, side.source(ctx, plan), res, who=side.who(plan), op=op
        )
        return SideOutcome(ok=False, rejected=entry)
    name, out = _written(side, plan, res)
    counts[name] += 1
    active = (plan.get(f"{side.prefix}_payload") or {}).get("active")
    if side.prefix == "lg" and active in ("0", "1"):
        counts["deactivated" if active == "0" else "reactivated"] += 1
    return out


# -- link changes --------------------------------------------------------------------------------


@dataclass
class PairState:
    """A plan after its writes: the ids both sides have now and the values they agree on."""

    plan: Plan
    lg_id: str
    sf_id: str
    agreed: dict[str, Any]
    sf_ok: bool
    lg_ok: bool

    def detail(self, kind: str) -> str | None:
        return next(
            (e.get("detail") for e in self.plan.get("events") or [] if e["event"] == kind), None
        )


def _upsert(ch: StateChanges, s: PairState, run_id: str, event: str, **kw: Any) -> str:
    """Point the lead's link at the pair's Salesforce record, with ``event`` in its history."""
    ch.call(
        "upsert_link",
        DOMAIN,
        s.lg_id,
        s.plan["sf_object"],
        s.sf_id,
        run_id=run_id,
        event=event,
        **kw,
    )
    return event


def _collision(ch: StateChanges, s: PairState, run_id: str) -> str | None:
    _upsert(
        ch, s, run_id, "merge_collision", status="collision", detail=s.detail("merge_collision")
    )
    return "collision"


def _deleted(ch: StateChanges, s: PairState, run_id: str) -> str | None:
    if not s.lg_ok:
        return None  # the lead is still active: try again next run
    ch.call(
        "set_link_status",
        DOMAIN,
        s.lg_id,
        "deleted",
        event="deactivated",
        run_id=run_id,
        detail=f"{s.sf_id} deleted in Salesforce",
    )
    return "deactivated"


def _repointed(kind: str) -> Callable[[StateChanges, PairState, str], str | None]:
    def apply(ch: StateChanges, s: PairState, run_id: str) -> str | None:
        return _upsert(ch, s, run_id, kind, synced_values=s.agreed, detail=s.detail(kind))

    return apply


def _relinked(ch: StateChanges, s: PairState, run_id: str) -> str | None:
    if not s.sf_ok:
        return None
    return _upsert(
        ch,
        s,
        run_id,
        "relinked",
        synced_values=s.agreed,
        detail="lead reactivated",
        merge_values=False,
    )


LINK_CHANGES: dict[str, Callable[[StateChanges, PairState, str], str | None]] = {
    "merge_collision": _collision,
    "deleted": _deleted,
    "converted": _repointed("converted"),
    "merged": _repointed("merged"),
    "undeleted": _repointed("undeleted"),
    "relinked": _relinked,
}
FIRST_PAIRING = {
    "new": "created",
    "email": "paired_by_email",
    "external_id": "paired_by_external_id",
}


def link_change(ch: StateChanges, tally: RunTally, s: PairState, run_id: str) -> None:
    """The state change a pair asks for (see :data:`LINK_CHANGES`), else a first pairing, else
    the new synced values of an existing link."""
    plan = s.plan
    kind = (plan.get("link_change") or {}).get("kind")
    if kind is not None:
        name = LINK_CHANGES[kind](ch, s, run_id)
        if name:
            tally.links[name] += 1
    elif plan.get("match") in FIRST_PAIRING:
        created_ok = (plan.get("sf_op") != "create" or s.sf_ok) and (
            plan.get("lg_op") != "create" or s.lg_ok
        )
        if created_ok:
            event = FIRST_PAIRING[plan["match"]]
            ch.add_link(DOMAIN, s.lg_id, plan["sf_object"], s.sf_id, s.agreed, event)
            tally.links[event] += 1
    elif s.agreed:
        ch.synced_values(DOMAIN, s.lg_id, s.agreed)


# -- the walk ------------------------------------------------------------------------------------


def _agreed(plan: Plan, sf: SideOutcome, lg: SideOutcome, sf_res: ResultRow | None) -> dict:
    agreed = dict(plan.get("agreed_now") or {})
    if plan.get("sf_op") and sf.ok:
        agreed.update(plan.get("agreed_if_sf") or {})
    if plan.get("lg_op") and lg.ok:
        agreed.update(plan.get("agreed_if_lg") or {})
    if sf_res and sf_res["success"] and sf_res.get("agreed_extra"):
        agreed.update(sf_res["agreed_extra"])  # type: ignore[typeddict-item]
    return agreed


def walk(ctx: RunContext) -> Callable[[RunTally, StateChanges], None]:
    def run(tally: RunTally, changes: StateChanges) -> None:
        # Each side's results indexed on disk and read a chunk of plans at a time: a full
        # resync has one result per record, too many to hold in memory.
        indexes = {s.prefix: ResultLog(ctx.folder, s.prefix).latest() for s in SIDES}
        try:
            for plans in chunked(ctx.folder.read_jsonl("plans/validated.jsonl"), CHUNK):
                keys = [p["pair"] for p in plans]
                results = {prefix: ix.get_many(keys) for prefix, ix in indexes.items()}
                for plan in plans:
                    _walk_plan(ctx, tally, changes, plan, results)
        finally:
            for ix in indexes.values():
                ix.close()

    return run


def _walk_plan(
    ctx: RunContext,
    tally: RunTally,
    changes: StateChanges,
    plan: Plan,
    results: dict[str, dict[str, ResultRow]],
) -> None:
    tally.add_events(plan.get("events") or [])
    if plan.get("conflicts"):
        tally.event("conflict", n=len(plan["conflicts"]))
    sf, lg = (side_outcome(ctx, tally, plan, s, results[s.prefix]) for s in SIDES)
    tally.row(
        writes=bool(plan.get("sf_op") or plan.get("lg_op")),
        rejected=[o.rejected for o in (sf, lg) if o.rejected],
        attempted=sf.attempted and lg.attempted,
    )
    if ctx.dry_run:
        return
    if sf.ok and plan.get("lg_id"):
        tally.passed_key(LG_TO_SF, f"lg:{plan['lg_id']}")
    if lg.ok and plan.get("sf_id"):
        tally.passed_key(SF_TO_LG, f"sf:{plan['sf_id']}")
    released = [e["key"] for e in plan.get("events") or [] if e["event"] == "undo_hold_released"]
    if released and plan.get("lg_id"):
        changes.call("release_holds", DOMAIN, str(plan["lg_id"]), released)
    lg_id = lg.new_id or plan.get("lg_id")
    sf_id = sf.new_id or plan.get("sf_id")
    if not lg_id or not sf_id:
        return
    agreed = _agreed(plan, sf, lg, results["sf"].get(plan["pair"]))
    state = PairState(plan, str(lg_id), str(sf_id), agreed, sf.ok, lg.ok)
    link_change(changes, tally, state, ctx.run_id)


def record(rt: TaskRuntime) -> dict[str, Any]:
    """Apply the run to the state store and build the run report."""
    ctx = rt.run
    extracted = {
        **(rt.summaries.get("extract_leadgen", {}).get("extracted", {})),
        **(rt.summaries.get("extract_salesforce", {}).get("extracted", {})),
    }
    return rt.record(walk(ctx), extracted=extracted)
