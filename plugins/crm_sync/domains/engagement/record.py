"""Record: what became of each event, per type; events to hold and to release.

The spine (:func:`crm_sync.pipeline.apply.record_run`) applies the quarantine, the threshold (rows
rejected for the first time only), the report and the watermark. This module says, per event plan:

* ``hold``: held (or still held, counting attempts) until its lead is linked;
* ``drop`` / ``superseded``: let go with the reason (a held one is released so);
* ``deliver``: rejected by the gate or refused by Salesforce -> quarantined with the event, so a
  later run rebuilds the Task; created, or found present -> delivered (a held one is released as
  delivered). Quarantined events that can no longer be delivered leave the retry loop.

The report has the common shape plus ``by_type``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crm_sync.definitions import LG_TO_SF
from crm_sync.domains.engagement.rules import (
    DELIVER,
    DOMAIN,
    DROP,
    EVENT_TYPES,
    HELD_KIND,
    HOLD,
    SUPERSEDED,
    TASK,
    TYPE_COUNTERS,
)
from crm_sync.domains.engagement.spec import run_spec
from crm_sync.pipeline.apply import StateChanges
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.quarantine import QuarantineEntry, Source
from crm_sync.pipeline.results import ResultLog, ResultRow
from crm_sync.pipeline.spill import DiskList
from crm_sync.pipeline.tally import RunTally

if TYPE_CHECKING:
    from crm_sync.tasks import TaskRuntime

Plan = dict[str, Any]


@dataclass
class Events:
    """The domain's part of the tally: counters by event type, holds and releases."""

    by_type: dict[str, Counter] = field(default_factory=dict)
    # plans of events to hold (their lead is not linked yet): on disk past a buffer
    to_hold: DiskList[Plan] = field(
        default_factory=lambda: DiskList(dict, dict, lambda p: str(p["event"]["id"]))
    )
    releases: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))

    def release(self, plan: Plan, status: str, reason: str) -> None:
        if "held" in plan["origins"]:
            self.releases[(status, reason)].append(plan["event"]["id"])


def _who(plan: Plan) -> str:
    return f"event {plan['event']['id']} ({plan['type']}, lead {plan.get('lead_id') or '-'})"


def _source(plan: Plan) -> Source:
    return Source(
        domain=DOMAIN,
        direction=LG_TO_SF,
        record_key=f"evt:{plan['key']}",
        target_object=TASK,
        lg_id=plan.get("lead_id"),
        sf_id=plan.get("who_id"),
        payload={"event": plan["event"], "task": plan["sf_payload"]},
    )


def _hold(ctx: RunContext, t: RunTally, e: Events, plan: Plan, tc: Counter) -> None:
    tc["held"] += 1
    t.event("held", f"{_who(plan)}: {plan['reason']}")
    e.to_hold.append(plan)
    t.row(writes=False, outcome="held")


def _drop(ctx: RunContext, t: RunTally, e: Events, plan: Plan, tc: Counter) -> None:
    tc["dropped"] += 1
    t.event("dropped", f"{_who(plan)}: {plan['reason']}")
    e.release(plan, "dropped", plan["reason"])
    if "retry" in plan["origins"]:
        # A quarantined event that can no longer be delivered leaves the retry loop.
        t.passed_key(LG_TO_SF, f"evt:{plan['key']}")
    t.row(writes=False, outcome="skipped")


def _superseded(ctx: RunContext, t: RunTally, e: Events, plan: Plan, tc: Counter) -> None:
    tc["not_first_click"] += 1
    t.event("not_first_click")
    e.release(plan, "superseded", plan["reason"])
    t.row(writes=False, outcome="skipped")


def _delivered(t: RunTally, e: Events, plan: Plan, tc: Counter, name: str, outcome: str) -> None:
    tc[name] += 1
    t.sides["salesforce"][name] += 1
    t.passed_key(LG_TO_SF, f"evt:{plan['key']}")
    if "held" in plan["origins"]:
        tc["delivered_from_hold"] += 1
        t.event("delivered_from_hold")
        e.release(plan, "delivered", "delivered once the lead was linked")
    t.row(writes=True, outcome=outcome if outcome != "loaded" else None)


def _deliver_written(
    ctx: RunContext, t: RunTally, e: Events, plan: Plan, tc: Counter, res: ResultRow
) -> None:
    sf = t.sides["salesforce"]
    if res["op"] == "present":
        if res.get("deleted"):  # type: ignore[typeddict-item]
            tc["deleted_in_salesforce"] += 1
            sf["deleted_in_salesforce"] += 1
        _delivered(t, e, plan, tc, "already_present", "unchanged")
    elif res["success"]:
        created = res.get("created") is not False
        _delivered(
            t,
            e,
            plan,
            tc,
            *(("created", "loaded") if created else ("already_present", "unchanged")),
        )
    else:
        tc["failed"] += 1
        sf["failed"] += 1
        who = (
            f"Salesforce Task {plan['key']} ({plan['type']}, lead {plan.get('lead_id')}, "
            f"{plan.get('sf_object')} {plan.get('who_id')})"
        )
        entry = QuarantineEntry.from_write(ctx, _source(plan), res, who=who, op="upsert")
        e.release(plan, "quarantined", "refused by Salesforce")
        t.row(writes=True, rejected=[entry])


def _deliver(
    ctx: RunContext, t: RunTally, e: Events, plan: Plan, tc: Counter, results: dict
) -> None:
    sf = t.sides["salesforce"]
    if plan.get("owner_fallback"):
        sf["owner_fallback"] += 1
        t.event(
            "owner_fallback",
            f"{_who(plan)}: owner {plan['owner_fallback']} of {plan.get('who_id')} is not an "
            "active user; the Task belongs to the integration user",
        )
    if plan.get("sf_rejected"):
        tc["rejected"] += 1
        sf["rejected_by_gate"] += 1
        entry = QuarantineEntry.from_gate(ctx, _source(plan), plan["sf_rejected"])
        e.release(plan, "quarantined", "rejected by the quality gate")
        t.row(writes=True, rejected=[entry])
        return
    res = results.get(plan["key"])
    if res is None:
        tc["not_attempted"] += 1
        sf["not_attempted"] += 1
        t.row(writes=True, attempted=False)
    elif res["op"] == "dry_run":
        tc["would_create"] += 1
        sf["would_create"] += 1
        t.row(writes=True)
    else:
        _deliver_written(ctx, t, e, plan, tc, res)


OUTCOMES: dict[str, Callable[[RunContext, RunTally, Events, Plan, Counter], None]] = {
    HOLD: _hold,
    DROP: _drop,
    SUPERSEDED: _superseded,
}


def count_plans(ctx: RunContext, t: RunTally, e: Events, plans: Any, results: dict) -> None:
    for plan in plans:
        tc = e.by_type.setdefault(plan["type"], Counter())
        if plan["outcome"] == DELIVER:
            _deliver(ctx, t, e, plan, tc, results)
        else:
            OUTCOMES[plan["outcome"]](ctx, t, e, plan, tc)


def apply_holds(ctx: RunContext, ch: StateChanges, e: Events) -> None:
    for plan in e.to_hold:
        ch.call(
            "hold",
            ctx.dag_id,
            HELD_KIND,
            plan["event"]["id"],
            payload={"event": plan["event"], "key": plan["key"]},
            reason=plan["reason"],
            waiting_for=f"person link of lead {plan.get('lead_id')}"[:120],
            run_id=ctx.run_id,
        )
    for (status, reason), ids in e.releases.items():
        ch.call("release", ctx.dag_id, HELD_KIND, ids, status=status, reason=reason)


def record(rt: TaskRuntime) -> dict[str, Any]:
    """Apply the run to the state store and build the run report."""
    ctx = rt.run
    spec = run_spec(ctx)
    extracted = dict((rt.summaries.get("extract") or {}).get("extracted") or {})
    events = Events(by_type={t: Counter() for t in spec.enabled_types()})
    for etype, n in extracted.items():
        events.by_type.setdefault(etype, Counter())["extracted"] = n

    def walk(t: RunTally, ch: StateChanges) -> None:
        results = ResultLog(ctx.folder, "sf").latest()
        count_plans(ctx, t, events, ctx.folder.read_jsonl("plans/validated.jsonl"), results)
        apply_holds(ctx, ch, events)

    def extra(t: RunTally) -> dict[str, Any]:
        return {
            "leadgen": {},
            "links": {},
            "by_type": {
                etype: {**dict.fromkeys(TYPE_COUNTERS, 0), **events.by_type[etype]}
                for etype in EVENT_TYPES
                if etype in events.by_type
            },
            "enabled_types": spec.enabled_types(),
        }

    return rt.record(walk, extracted=extracted, extra=extra)
