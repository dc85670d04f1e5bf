"""Load (Lead Gen & CRM only): accounts, then opportunities (their accounts resolved), then
memberships (their opportunities resolved), in the order of :data:`STEPS`.

The API has no external id for opportunities, accounts or opportunity leads, so a create is
marked in flight before it is sent and recorded as a link right after its batch: a retried load
skips what is done, looks up what was in flight, and never creates a record twice. A membership
create refused with 301 already exists (an earlier attempt wrote it and could not record it): it
is adopted, not failed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crm_sync.domains.opportunities.ambiguous import AMBIGUOUS, find_created
from crm_sync.domains.opportunities.bookkeeping import Bookkeeper, link_counts
from crm_sync.domains.opportunities.rules import (
    DOMAIN_ACCOUNT,
    DOMAIN_OPPORTUNITY,
    KIND_ACCOUNT,
    KIND_MEMBERSHIP,
    KIND_OPPORTUNITY,
    LG_BATCH,
    LG_TARGET,
    LINK_DOMAIN,
    REF_ACCOUNT,
    active_links,
    lg_id,
)
from crm_sync.errors import AmbiguousWriteError, BudgetExhaustedError, RetriableError
from crm_sync.pipeline.changelog import LEADGEN, ChangeLog
from crm_sync.pipeline.files import chunked
from crm_sync.pipeline.readback import NOT_APPLIED, not_applied
from crm_sync.pipeline.results import ResultLog, ResultRow, outcome_row, result_row

if TYPE_CHECKING:
    from crm_sync.clients.leadgen import LeadGenClient
    from crm_sync.pipeline.context import RunContext
    from crm_sync.state.store import SyncStore
    from crm_sync.tasks import TaskRuntime

log = logging.getLogger(__name__)

Plan = dict[str, Any]


@dataclass
class Loader:
    ctx: RunContext
    lg: LeadGenClient
    store: SyncStore
    results: ResultLog
    done: Collection[str]
    counts: Counter = field(default_factory=Counter)
    notes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # every create is looked up first (an earlier run never finished: see load())
    creates_suspect: bool = False

    def __post_init__(self) -> None:
        self.books = Bookkeeper(self.ctx, self.store)
        # what this run overwrote and created, for Sync health and undo (pipeline/changelog.py)
        self.changes = ChangeLog(self.store, self.ctx, LEADGEN, prefix="lg")
        # plans whose create an earlier attempt lost the answer to
        self.suspect = {
            r["pair"] for r in self.results.latest().values() if r["error_code"] == AMBIGUOUS
        }
        # ... and the creates an attempt was sending when it was killed (see _in_flight)
        self.suspect |= set(self.ctx.folder.read_json(INFLIGHT, default=None) or ())
        self._inflight_written = bool(self.suspect)

    def write(self, plans: Iterable[Plan], method: str) -> None:
        """Write ``plans`` (streamed) in batches with the client's ``method``. Each batch's
        results are appended first, then its state changes recorded: a retried task never writes
        a record twice (see :mod:`.bookkeeping`); creates whose answer was lost are looked up
        before they are made again (see :mod:`.ambiguous`)."""
        todo = (p for p in plans if p["pair"] not in self.done)
        for batch in chunked(todo, LG_BATCH):
            found = self._adopt([p for p in batch if self._suspect(p)])
            fresh = [p for p in batch if p["pair"] not in found]
            self._in_flight(fresh)
            self.changes.sending(fresh)
            try:
                rows = [*found.values(), *self._send(method, fresh)]
            except BudgetExhaustedError:
                self._in_flight([])  # refused before anything was sent: nothing in flight
                raise
            by_pair = {r["pair"]: r for r in rows}
            ordered = [by_pair[p["pair"]] for p in batch]
            self.changes.log(batch, ordered, obj=lambda p: LG_TARGET[p["kind"]])
            for plan, row in zip(batch, ordered, strict=True):
                if row["success"]:
                    row["links"] = link_counts(plan)  # type: ignore[typeddict-unknown-key]
                outcome = "ok" if row["success"] else "failed"
                self.counts[f"{plan['kind']}_{plan['lg_op']}_{outcome}"] += 1
            self.results.append(ordered)
            self._in_flight([])  # answered: what was in flight is in the results now
            self.books.record(batch, ordered)

    def _suspect(self, plan: Plan) -> bool:
        """Whether ``plan``'s record may exist already although no link knows it."""
        return plan["pair"] in self.suspect or (self.creates_suspect and plan["lg_op"] == "create")

    def _in_flight(self, batch: list[Plan]) -> None:
        """The creates of ``batch`` are written down (``INFLIGHT``) before they go out and
        cleared once their answers are in the results: a task killed while a create is in flight
        (the server may have applied it) leaves them there, and its retry looks the records up
        before creating them again (see :mod:`.ambiguous`). A call the API budget refused is
        cleared at once: it was never sent."""
        creates = [p["pair"] for p in batch if p["lg_op"] == "create"]
        if creates or self._inflight_written:
            self.ctx.folder.write_json(INFLIGHT, creates)
            self._inflight_written = bool(creates)

    def _send(self, method: str, batch: list[Plan], again: bool = False) -> list[ResultRow]:
        if not batch:
            return []
        args = [p["lg_id"] if p["lg_op"] == "delete" else p["lg_payload"] for p in batch]
        try:
            answers = getattr(self.lg, method)(args)
        except AmbiguousWriteError as exc:
            log.warning(
                "load leadgen: %s (%d records): looking them up before creating again",
                exc,
                len(batch),
            )
            self.results.append([_ambiguous_row(p, str(exc)) for p in batch])
            if again:
                raise RetriableError(
                    f"{method}: the answer was lost twice; the next attempt looks the records up first"
                ) from exc
            found = self._adopt(batch)
            return [
                *found.values(),
                *self._send(method, [p for p in batch if p["pair"] not in found], True),
            ]
        rows = []
        for plan, res in zip(batch, answers, strict=True):
            row = result_row(
                plan["pair"],
                "leadgen",
                plan["lg_op"],
                res,
                kind=plan["kind"],
                events=self.notes.get(plan["pair"], []),
            )
            if not res.success and res.error_code == "404" and plan["lg_op"] == "delete":
                row.update(success=True, error_code=None, error_message="")
                row["already_gone"] = True  # type: ignore[typeddict-unknown-key]
            rows.append(row)
        if batch[0]["lg_op"] == "update" and batch[0]["kind"] in READ_BACK:
            self._check_updates(batch, rows)
        return rows

    def _check_updates(self, batch: list[Plan], rows: list[ResultRow]) -> None:
        """Read the updated records back (500 per call): an update answered with success that
        did not change a field is a failure, never a synced value (see pipeline/readback.py)."""
        done = [(p, r) for p, r in zip(batch, rows, strict=True) if r["success"]]
        if not done:
            return
        read = getattr(self.lg, READ_BACK[batch[0]["kind"]])
        current = {lg_id(r.get("id")): r for r in read([p["lg_id"] for p, _ in done])}
        for plan, row in done:
            missing = not_applied(plan["lg_payload"], current.get(lg_id(plan["lg_id"])))
            if missing:
                row.update(
                    success=False,
                    error_code=NOT_APPLIED,
                    error_message="Lead Gen & CRM answered success but did not change "
                    + ", ".join(missing),
                    error_fields=missing,
                )

    def _adopt(self, plans: list[Plan], why: str = "lost_answer") -> dict[str, ResultRow]:
        """Rows for the plans whose create did make the record (found by natural key)."""
        found = find_created(self.lg, self.store, self.ctx, plans)
        self.counts[f"adopted_after_{why}"] += len(found)
        self.suspect -= {p["pair"] for p in plans}
        return {
            p["pair"]: outcome_row(
                p["pair"], "leadgen", "create", id=found[p["pair"]], kind=p["kind"], adopted=True
            )
            for p in plans
            if p["pair"] in found
        }

    def adopt_duplicates(self, creates: Iterable[Plan]) -> None:
        """A membership create refused with 301 already exists (an earlier attempt wrote it and
        could not record it): find its id and link it instead of failing."""
        latest = self.results.latest()
        refused = (
            p
            for p in creates
            if p["pair"] in latest
            and latest[p["pair"]].get("error_code") == "301"
            and not latest[p["pair"]]["success"]
        )
        for dup in chunked(_ready_memberships(self, refused), LG_BATCH):
            found = self._adopt(dup, why="301")
            rows = list(found.values())
            for row in rows:
                row["links"] = {"membership_created": 1}  # type: ignore[typeddict-unknown-key]
            self.results.append(rows)  # later rows win when the record stage reads the results
            self.books.record([p for p in dup if p["pair"] in found], rows)


def _ambiguous_row(plan: Plan, message: str) -> ResultRow:
    return outcome_row(
        plan["pair"],
        "leadgen",
        plan["lg_op"],
        id=None,
        success=False,
        kind=plan["kind"],
        error_code=AMBIGUOUS,
        error_message=f"the answer to this create was lost: {message}",
    )


def _resolving_accounts(ld: Loader, plans: Iterable[Plan]) -> Iterator[Plan]:
    """Opportunities whose account was created by this load get its id now (per chunk). An
    account that could not be written (it is in the quarantine) is left off: its reference is
    not recorded as synced, so it is set on the opportunity's next change; an update that had
    nothing else to write is answered as unchanged here."""
    for chunk in chunked(plans, LG_BATCH):
        deferred = [p for p in chunk if p.get("account_deferred")]
        accounts = active_links(ld.store, DOMAIN_ACCOUNT, {p["account_deferred"] for p in deferred})
        skipped = []
        for p in deferred:
            acc = accounts.get(p["account_deferred"])
            if acc is not None:
                p["lg_payload"][REF_ACCOUNT] = acc.lg_id
                p.setdefault("agreed_if_lg", {})[REF_ACCOUNT] = acc.lg_id
                continue
            ld.counts["account_unresolved"] += 1
            ld.notes[p["pair"]] = [
                {
                    "event": "account_unresolved",
                    "detail": f"account {p['account_deferred']} of opportunity {p['sf_id']} is "
                    "not in Lead Gen & CRM yet (see the quarantine)",
                }
            ]
            if p["lg_op"] == "update" and set(p["lg_payload"]) == {"id"}:
                skipped.append(p)
        ld.results.append(
            [
                outcome_row(
                    p["pair"],
                    "leadgen",
                    "update",
                    id=p["lg_id"],
                    kind=p["kind"],
                    unchanged=True,
                    events=ld.notes[p["pair"]],
                )
                for p in skipped
            ]
        )
        gone = {p["pair"] for p in skipped}
        yield from (p for p in chunk if p["pair"] not in gone)


def _ready_memberships(ld: Loader, creates: Iterable[Plan]) -> Iterator[Plan]:
    """Membership creates whose opportunity exists now (per chunk); one whose opportunity
    could not be written waits for it (recomputed when the opportunity is retried)."""
    for chunk in chunked(creates, LG_BATCH):
        unresolved = {
            p["opportunity_sf"] for p in chunk if not p["lg_payload"].get("opportunityID")
        }
        opps = active_links(ld.store, DOMAIN_OPPORTUNITY, unresolved) if unresolved else {}
        for p in chunk:
            if not p["lg_payload"].get("opportunityID"):
                link = opps.get(p["opportunity_sf"])
                if link is None:
                    ld.counts["membership_waiting_for_opportunity"] += 1
                    continue
                p["lg_payload"]["opportunityID"] = link.lg_id
            yield p


# How many earlier runs of the DAG are looked at for one that never finished.
UNFINISHED_LOOKBACK = 20


def _unfinished_run_before(store: SyncStore, ctx: RunContext) -> bool:
    """Whether one of the DAG's last runs (not this one, not a dry run) never finished: a run
    whose load died for good after Lead Gen & CRM applied a create, before its link was
    recorded, left a record no link knows. (A killed or failed run keeps its ``running`` row.)"""
    return any(
        r.finished_at is None and not r.dry_run and r.run_id != ctx.run_id
        for r in store.recent_runs(ctx.dag_id, limit=UNFINISHED_LOOKBACK)
    )


# The creates a load is sending (see Loader._in_flight).
INFLIGHT = "load/inflight_lg_creates.json"

# Client readers of the records an update wrote, to read them back.
READ_BACK = {KIND_OPPORTUNITY: "get_opportunities_by_ids", KIND_ACCOUNT: "get_accounts_by_ids"}

# The write order: (kind, op, client method).
STEPS: tuple[tuple[str, str, str], ...] = (
    (KIND_ACCOUNT, "create", "create_accounts"),
    (KIND_ACCOUNT, "update", "update_accounts"),
    (KIND_ACCOUNT, "delete", "delete_accounts"),
    (KIND_OPPORTUNITY, "create", "create_opportunities"),
    (KIND_OPPORTUNITY, "update", "update_opportunities"),
    (KIND_OPPORTUNITY, "delete", "delete_opportunities"),
)


def _plans(ctx: RunContext, kind: str | None = None, op: str | None = None) -> Iterator[Plan]:
    """The validated plans to write (of ``kind`` and ``op``), streamed from the run folder."""
    for p in ctx.folder.read_jsonl("plans/validated.jsonl"):
        if p.get("lg_op") and not p.get("lg_rejected"):
            if (kind is None or p["kind"] == kind) and (op is None or p["lg_op"] == op):
                yield p


def load(rt: TaskRuntime) -> dict[str, Any]:
    """Write the validated plans (see the module docstring); results go to ``results/lg``.
    Plans are streamed from the run folder, one pass per step, so memory holds one batch."""
    ctx, lg, store = rt.run, rt.leadgen, rt.store
    results = ResultLog(ctx.folder, "lg")
    if ctx.dry_run:
        counts = Counter(f"would_{p['lg_op']}_{p['kind']}" for p in _plans(ctx))
        log.info("load leadgen (dry run): nothing written; would %s", dict(counts))
        return {"counts": dict(counts)}
    done = results.done(success_only=True)
    ld = Loader(ctx, lg, store, results, done)
    ld.counts["skipped_already_done"] = len(done)
    # an earlier attempt of this task may have died between its results and its links
    ld.books.replay_stream(_plans(ctx), results.latest())
    # ... and so may an earlier run, whose results are in its own folder: what it created
    # without a link is found (and linked) before anything is created again
    ld.creates_suspect = _unfinished_run_before(store, ctx)
    try:
        _write_steps(ld)
    except BudgetExhaustedError as exc:
        # Stop cleanly between batches: what was written is linked; the rest waits for the
        # next run (a stopped full resync is continued by the next runs: pipeline/prepare.py).
        return _stopped(rt, ld, exc)
    _agreements(ctx, store)
    log.info(
        "load leadgen: %s api_calls=%d",
        " ".join(f"{k}={v}" for k, v in sorted(ld.counts.items())),
        lg.api_calls,
    )
    return {"counts": dict(ld.counts)}


def _write_steps(ld: Loader) -> None:
    """Every write of the run, in the order of :data:`STEPS`, then the memberships."""
    ctx = ld.ctx
    for kind, op, method in STEPS:
        plans = _plans(ctx, kind, op)
        if kind == KIND_OPPORTUNITY:  # accounts created above are linked now
            plans = _resolving_accounts(ld, plans)
        ld.write(plans, method)
    ld.write(_plans(ctx, KIND_MEMBERSHIP, "delete"), "delete_opportunity_leads")
    ld.write(
        _ready_memberships(ld, _plans(ctx, KIND_MEMBERSHIP, "create")), "create_opportunity_leads"
    )
    ld.adopt_duplicates(_plans(ctx, KIND_MEMBERSHIP, "create"))


def _stopped(rt: TaskRuntime, ld: Loader, exc: BudgetExhaustedError) -> dict[str, Any]:
    """The load stopped on the API budget: progress and the time the rest needs (at this run's
    calls per record written) in the log and the summary (the run report shows it)."""
    from crm_sync.budget import current_lg_budget, eta

    written = sum(n for k, n in ld.counts.items() if k.endswith(("_ok", "_failed")))
    # a create marked in flight (see Loader._in_flight) whose batch the budget stopped is not done
    latest = ld.results.latest()
    remaining = sum(
        1
        for p in _plans(ld.ctx)
        if (row := latest.get(p["pair"])) is None or row["error_code"] == AMBIGUOUS
    )
    per_record = rt.leadgen.api_calls / written if written else 1 / LG_BATCH
    progress = {"written": written, **eta(remaining, per_record, current_lg_budget(ld.store))}
    log.warning(
        "load leadgen: %s; %d written, %d to go: about %s calls, %.1f h at %d calls a day",
        exc,
        written,
        remaining,
        progress["calls_needed"],
        progress["eta_hours"],
        progress["calls_per_day"],
    )
    ld.counts["deferred_by_budget"] = remaining
    return {"counts": dict(ld.counts), "budget_exhausted": str(exc), "progress": progress}


def _agreements(ctx: RunContext, store: SyncStore) -> None:
    """Agreements without a write (values that already matched) refresh the synced values."""
    plans = (
        p
        for p in ctx.folder.read_jsonl("plans/validated.jsonl")
        if p["kind"] in (KIND_ACCOUNT, KIND_OPPORTUNITY)
        and not p.get("lg_op")
        and p.get("agreed_now")
        and p.get("lg_id")
    )
    for chunk in chunked(plans, LG_BATCH):
        for kind in (KIND_ACCOUNT, KIND_OPPORTUNITY):
            agreed = {p["lg_id"]: p["agreed_now"] for p in chunk if p["kind"] == kind}
            store.update_synced_values(LINK_DOMAIN[kind], agreed, ctx.run_id)
