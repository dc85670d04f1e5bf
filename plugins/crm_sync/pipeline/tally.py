"""The run tally and the run report: one shape for every DAG.

A record stage walks its plans and their write results and tells the tally what became of each
row; the tally keeps the counts, the events, the quarantine entries and the source keys that
passed. Every row has exactly one outcome, so a report always adds up::

    pairs = loaded + unchanged + rejected + still_quarantined + deferred + would_write + held + skipped

``rejected`` counts rows rejected for the first time; a row that was already in the quarantine
before this run and fails again is ``still_quarantined``: it is not news, and must not turn every
later run red. The reject-rate threshold uses ``rejected / planned`` (see :mod:`.apply`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.quarantine import QuarantineEntry, entry_list
from crm_sync.pipeline.spill import DiskList

OUTCOMES = (
    "loaded",  # every planned write succeeded
    "unchanged",  # nothing to write: both sides agree
    "rejected",  # rejected (gate or target system) for the first time
    "still_quarantined",  # rejected again, already in the quarantine before this run
    "deferred",  # planned but not attempted (API budget stop, waiting for another write)
    "would_write",  # dry run
    "held",  # waiting for a dependency (a link, a contact), kept for a later run
    "skipped",  # nothing to do by rule (dropped, superseded, reported duplicate)
)
MAX_EXAMPLES = 5


@dataclass
class RunTally:
    """What became of every row of one run (see the module docstring)."""

    dry_run: bool = False
    prior: frozenset[tuple[str, str]] = frozenset()  # (direction, record key) quarantined before
    rows: Counter = field(default_factory=Counter)
    planned: int = 0
    sides: dict[str, Counter] = field(
        default_factory=lambda: {"salesforce": Counter(), "leadgen": Counter()}
    )
    links: Counter = field(default_factory=Counter)
    events: Counter = field(default_factory=Counter)
    event_examples: dict[str, list[str]] = field(default_factory=dict)
    # every entry of the run, in order; past a bounded buffer on the task's disk
    quarantine: DiskList[QuarantineEntry] = field(default_factory=entry_list)
    passed: dict[str, set[str]] = field(default_factory=dict)  # direction -> prior keys that passed

    # -- what happened to a row ------------------------------------------------------------------
    def row(
        self,
        *,
        writes: bool,
        rejected: Sequence[QuarantineEntry] = (),
        attempted: bool = True,
        outcome: str | None = None,
    ) -> str:
        """Count one row and return its outcome.

        ``writes``: the row planned at least one write. ``rejected``: the quarantine entries of its
        refused writes (gate or system). ``attempted``: False when a planned write was not tried.
        ``outcome`` forces ``held`` or ``skipped`` for rows a domain set aside by rule, or
        ``unchanged`` for a planned write the load found already done.
        """
        if writes:
            self.planned += 1
        if outcome is not None:
            if outcome not in ("held", "skipped", "unchanged"):
                raise ValueError(f"a row cannot be forced to {outcome!r}")
        elif not writes:
            outcome = "unchanged"
        elif rejected:
            self.quarantine.extend(rejected)
            new = any((e.direction, e.record_key) not in self.prior for e in rejected)
            outcome = "rejected" if new else "still_quarantined"
        elif self.dry_run:
            outcome = "would_write"
        elif not attempted:
            outcome = "deferred"
        else:
            outcome = "loaded"
        self.rows[outcome] += 1
        return outcome

    def passed_key(self, direction: str, key: str) -> None:
        """``key`` wrote (or needed nothing) in ``direction``: its quarantine row, if any, resolves.
        Only keys quarantined before the run have a row to resolve, so only they are kept: the
        set follows the quarantine's size, not the run's (a full resync passes millions)."""
        if (direction, key) in self.prior:
            self.passed.setdefault(direction, set()).add(key)

    def event(self, name: str, detail: str = "", n: int = 1) -> None:
        self.events[name] += n
        if detail:
            examples = self.event_examples.setdefault(name, [])
            if len(examples) < MAX_EXAMPLES:
                examples.append(detail)

    def add_events(self, events: Iterable[Mapping[str, Any]]) -> None:
        for e in events:
            self.event(e["event"], e.get("detail", ""))

    # -- derived -------------------------------------------------------------------------------
    @property
    def pairs(self) -> int:
        return sum(self.rows.values())

    @property
    def rejected_new(self) -> int:
        return self.rows["rejected"]

    @property
    def reject_rate(self) -> float:
        return (self.rejected_new / self.planned) if self.planned else 0.0

    def rows_block(self) -> dict[str, int]:
        return {name: self.rows[name] for name in OUTCOMES}


def run_header(ctx: RunContext) -> dict[str, Any]:
    """The part of every DAG's run report that says which run and which window it was."""
    return {
        "dag_id": ctx.dag_id,
        "run_id": ctx.run_id,
        "run_type": ctx.run_type,
        "run_kind": ctx.run_kind,
        "window": {
            "start": ctx.window_start.isoformat(),
            "end": ctx.window_end.isoformat(),
            "caught_up_from": ctx.caught_up_from.isoformat() if ctx.caught_up_from else None,
        },
        "dry_run": ctx.dry_run,
        "full_resync": ctx.full_resync,
    }


def sum_api_calls(
    summaries: Mapping[str, Any],
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Each task builds its own clients, so the run's calls are the sum over its tasks: in all,
    and by kind (query, upsert, createLeads, ...)."""
    total = {"salesforce": 0, "leadgen": 0}
    kinds: dict[str, Counter] = {"salesforce": Counter(), "leadgen": Counter()}
    for s in summaries.values():
        if not isinstance(s, Mapping):
            continue
        total["salesforce"] += int(s.get("sf_api_calls", 0))
        total["leadgen"] += int(s.get("lg_api_calls", 0))
        kinds["salesforce"].update(s.get("sf_calls_by_kind") or {})
        kinds["leadgen"].update(s.get("lg_calls_by_kind") or {})
    return total, {k: dict(v) for k, v in kinds.items()}


def build_report(
    ctx: RunContext,
    tally: RunTally,
    *,
    extracted: Mapping[str, Any],
    summaries: Mapping[str, Any],
    resolved: int,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run report every DAG stores and returns; ``extra`` adds the domain's own sections."""
    validation = ctx.folder.read_json("validation.json", {}) or {}
    api_calls, api_by_kind = sum_api_calls(summaries)
    report: dict[str, Any] = {
        **run_header(ctx),
        "extracted": dict(extracted),
        "pairs": tally.pairs,
        "rows": tally.rows_block(),
        "salesforce": dict(tally.sides["salesforce"]),
        "leadgen": dict(tally.sides["leadgen"]),
        "links": {k: v for k, v in tally.links.items() if v},
        "unchanged": tally.rows["unchanged"],
        "quarantined": len(tally.quarantine),
        "quarantine_resolved": resolved,
        "events": dict(tally.events),
        "event_examples": tally.event_examples,
        "loaded_rows": tally.rows["loaded"],
        "rejected_rows": tally.rejected_new,
        "still_quarantined_rows": tally.rows["still_quarantined"],
        "planned_rows": tally.planned,
        "reject_rate": round(tally.reject_rate, 4),
        "max_reject_rate": ctx.max_reject_rate,
        "validation": {
            "checks": validation.get("checks", {}),
            "top_failures": validation.get("top_failures", {}),
        },
        "quarantine_examples": [e.example() for e in tally.quarantine[:20]],
        "api_calls": api_calls,
        "api_calls_by_kind": api_by_kind,
    }
    report.update(extra or {})
    return report
