"""The shared end of every record stage: apply the run's state changes, store the report, decide
the run's status (the reject-rate threshold, the API budget), move the watermark, alert.

Every DAG ends here, so these rules hold the same way for all of them:

* the domain walks its plans and results first, reading only; then the run's state changes (its
  link changes, the quarantine entries in bulk, the resolution of the keys that passed) are
  applied in short transactions, each change idempotent for the run (:class:`StateChanges`), so
  other DAGs are never locked out for long and a retried record task changes nothing twice; a
  dry run changes nothing;
* the threshold counts rows rejected for the first time (``rejected / planned``); a breach fails
  the run *after* the good rows were loaded, and its window is done (the rejected rows are
  retried from the quarantine);
* a run stopped by the API budget keeps its watermark, is not failed, and raises an alert;
* the watermark advances only after scheduled and "now" runs that succeeded or breached the
  threshold, and only over contiguous time; backfills never move it; a DAG that depends on
  another (``waits_for``) never moves it past what that one has synced.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import timedelta
from typing import Any

from crm_sync.errors import FatalError
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.files import dumps
from crm_sync.pipeline.tally import RunTally, build_report
from crm_sync.pipeline.window import moves_watermark
from crm_sync.state.store import SyncStore

log = logging.getLogger(__name__)


class ThresholdExceeded(FatalError):
    """The share of rejected rows is above the limit; the good rows were loaded."""


def prior_keys(ctx: RunContext, store: SyncStore, directions: tuple[str, ...]) -> frozenset:
    """(direction, record key) of every row in the quarantine before this run: failing again is
    not news (see :class:`~crm_sync.pipeline.tally.RunTally`)."""
    return frozenset(
        (direction, key)
        for direction in directions
        for key in store.retry_keys(ctx.dag_id, direction, include_parked=True)
    )


def new_tally(ctx: RunContext, store: SyncStore, directions: tuple[str, ...]) -> RunTally:
    return RunTally(dry_run=ctx.dry_run, prior=prior_keys(ctx, store, directions))


class StateChanges:
    """The record stage's changes to links and held items, collected while the domain walks its
    plans and applied afterwards by :meth:`apply` in short transactions (so the walk never holds
    the database's write lock: other DAGs write meanwhile). Every change is idempotent for the
    run, so a record task retried after a crash mid-apply applies each change once. In a dry run
    nothing is applied. Memory stays bounded: first pairings and synced values are grouped into
    bulk operations of :attr:`FLUSH` rows, and the operations spill to a scratch file as soon as
    they hold :attr:`SPILL` rows (a bulk operation is one row of the file, but thousands of
    rows of work)."""

    FLUSH = 2000  # rows per bulk operation
    SPILL = 2000  # rows of work kept in memory before the operations go to the scratch file
    TXN_ROWS = 2000  # rows of work per transaction

    def __init__(self, ctx: RunContext, store: SyncStore, tally: RunTally):
        self.ctx, self.store, self.tally = ctx, store, tally
        self.live = not ctx.dry_run
        self._new_links: dict[str, list[dict[str, Any]]] = {}
        self._values: dict[str, dict[str, dict[str, Any]]] = {}
        self._ops: list[dict[str, Any]] = []
        self._held = 0  # rows of work in self._ops
        self.spills = 0  # times the operations went to the scratch file
        self._spill = ctx.scratch("record/state_changes.jsonl")
        self._spill.unlink(missing_ok=True)

    def add_link(
        self,
        domain: str,
        lg_id: str,
        sf_object: str,
        sf_id: str,
        values: Mapping[str, Any],
        event: str,
    ) -> None:
        """A first pairing (never steals a lead already linked to another record: see
        :meth:`SyncStore.add_links`; refusals are counted as ``links.refused_duplicate``)."""
        rows = self._new_links.setdefault(domain, [])
        rows.append(
            {
                "lg_id": lg_id,
                "sf_object": sf_object,
                "sf_id": sf_id,
                "synced_values": dict(values),
                "event": event,
            }
        )
        if len(rows) >= self.FLUSH:
            self._flush_links(domain)

    def synced_values(self, domain: str, lg_id: str, values: Mapping[str, Any]) -> None:
        """Values both sides agree on now, merged into the link's last synced values."""
        bucket = self._values.setdefault(domain, {})
        bucket[lg_id] = {**bucket.get(lg_id, {}), **values}
        if len(bucket) >= self.FLUSH:
            self._flush_values(domain)

    def call(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Any other store change (``upsert_link``, ``set_link_status``, ``delete_link``,
        ``hold``, ``release``), applied with the others after the walk."""
        self._add({"op": method, "args": list(args), "kwargs": kwargs, "rows": 1})

    def _add(self, op: dict[str, Any]) -> None:
        if not self.live:
            return
        self._ops.append(op)
        self._held += op["rows"]
        if self._held >= self.SPILL:
            with self._spill.open("a", encoding="utf-8") as fh:
                fh.writelines(dumps(o) + "\n" for o in self._ops)
            self._ops, self._held = [], 0
            self.spills += 1

    def _flush_links(self, domain: str) -> None:
        rows = self._new_links.pop(domain, [])
        if rows:
            self._add({"op": "add_links", "args": [domain, rows], "kwargs": {}, "rows": len(rows)})

    def _flush_values(self, domain: str) -> None:
        values = self._values.pop(domain, {})
        if values:
            self._add(
                {
                    "op": "update_synced_values",
                    "args": [domain, values],
                    "kwargs": {},
                    "rows": len(values),
                }
            )

    def flush(self) -> None:
        for domain in list(self._new_links):
            self._flush_links(domain)
        for domain in list(self._values):
            self._flush_values(domain)

    def _pending(self) -> Iterator[dict[str, Any]]:
        if self._spill.exists():
            with self._spill.open(encoding="utf-8") as fh:
                for line in fh:
                    yield json.loads(line)
        yield from self._ops

    def apply(self) -> int:
        """Apply every collected change, :attr:`TXN_ROWS` rows of work per transaction; return
        how many operations were applied."""
        self.flush()
        if not self.live:
            return 0
        n = 0
        for group in _by_weight(self._pending(), self.TXN_ROWS):
            with self.store.batch():
                for op in group:
                    self._run(op)
            n += len(group)
        self._spill.unlink(missing_ok=True)
        self._ops, self._held = [], 0
        return n

    def _run(self, op: dict[str, Any]) -> None:
        method, args, kwargs = op["op"], op["args"], op["kwargs"]
        if method == "add_links":
            linked = self.store.add_links(*args, run_id=self.ctx.run_id)
            self.tally.links["refused_duplicate"] += len(args[1]) - linked
        elif method == "update_synced_values":
            self.store.update_synced_values(*args, run_id=self.ctx.run_id)
        else:
            getattr(self.store, method)(*args, **kwargs)


def _by_weight(ops: Iterable[dict[str, Any]], limit: int) -> Iterator[list[dict[str, Any]]]:
    """Consecutive groups of operations whose rows add up to about ``limit``."""
    group: list[dict[str, Any]] = []
    weight = 0
    for op in ops:
        if group and weight + op["rows"] > limit:
            yield group
            group, weight = [], 0
        group.append(op)
        weight += op["rows"]
    if group:
        yield group


QUARANTINE_CHUNK = 2000  # quarantine rows written per bulk call (flushed, then let go)


def _quarantine(ctx: RunContext, store: SyncStore, tally: RunTally) -> int:
    """Store the run's quarantine entries in bulk, :data:`QUARANTINE_CHUNK` rows at a time (one
    row per source record: the last entry wins), and resolve every key that passed and was not
    refused again in this run; return how many rows were resolved. The caller holds the
    transaction; memory follows the chunk, not the run."""
    passed = {direction: set(keys) for direction, keys in tally.passed.items()}
    for chunk in tally.quarantine.last_per_key(QUARANTINE_CHUNK):
        store.quarantine_many([e.to_dict() for e in chunk])
        for e in chunk:  # refused again: stays in the quarantine
            passed.get(e.direction, set()).discard(e.record_key)
    resolved = 0
    for direction, keys in sorted(passed.items()):
        resolved += store.resolve_quarantine(ctx.dag_id, direction, keys, ctx.run_id)
    return resolved


def _expire_held(ctx: RunContext, store: SyncStore, kind: str) -> int:
    """Held items waiting longer than ``CRM_SYNC_HELD_EXPIRY_HOURS`` are let go (status
    ``expired``, with the reason): an event of a lead that will never be linked must not be
    reloaded and looked up every run forever."""
    from crm_sync.settings import held_expiry

    limit = held_expiry()
    n = store.expire_held(
        ctx.dag_id,
        kind,
        limit,
        reason=f"still waiting after {limit.total_seconds() / 3600:g} h (CRM_SYNC_HELD_EXPIRY_HOURS)",
    )
    if n:
        log.warning("%s: %d held %s items expired after %s", ctx.dag_id, n, kind, limit)
    return n


def record_run(
    ctx: RunContext,
    store: SyncStore,
    *,
    stream: str,
    directions: tuple[str, ...],
    summaries: Mapping[str, Any],
    walk: Callable[[RunTally, StateChanges], None],
    extracted: Mapping[str, Any],
    extra: Callable[[RunTally], Mapping[str, Any]] | None = None,
    held_kind: str | None = None,
    upstream: str | None = None,
) -> dict[str, Any]:
    """The record stage of every DAG: ``walk`` (the domain's) tells the tally what became of each
    row and makes its state changes; the spine applies them (short transactions), then the
    quarantine (one transaction, written in bounded chunks), builds the report and finishes the run (threshold, watermark, alerts).
    ``upstream``: the DAG this one depends on (its watermark caps this one's)."""
    tally = new_tally(ctx, store, directions)
    changes = StateChanges(ctx, store, tally)
    walk(tally, changes)  # reads only: the database's write lock is not held meanwhile
    resolved = expired = 0
    if not ctx.dry_run:
        changes.apply()
        with store.batch():
            resolved = _quarantine(ctx, store, tally)
        if held_kind is not None:
            expired = _expire_held(ctx, store, held_kind)
    report = build_report(
        ctx,
        tally,
        extracted=extracted,
        summaries=summaries,
        resolved=resolved,
        extra={
            **(extra(tally) if extra else {}),
            **({"held_expired": expired} if held_kind else {}),
        },
    )
    return finish(ctx, store, report, stream=stream, summaries=summaries, upstream=upstream)


def _high_water(ctx: RunContext, store: SyncStore, upstream: str | None) -> Any:
    """How far this run's window counts as synced: its end, but not past what ``upstream`` has
    synced. A run that did not wait for it ("now" runs do not) may have met records whose
    people were not linked yet (a contact's account, say); the next run reads that time again,
    once they are."""
    covered = store.covered_until(upstream) if upstream else None
    return ctx.window_end if covered is None else min(ctx.window_end, covered)


def _status(ctx: RunContext, report: Mapping[str, Any], stopped: list[str]) -> str:
    if ctx.dry_run:
        return "dry_run"
    if report.get("reject_rate", 0.0) > ctx.max_reject_rate:
        return "threshold_exceeded"
    if stopped:
        return "budget_exhausted"
    return "success"


def _breach_message(ctx: RunContext, report: Mapping[str, Any]) -> str:
    top = report.get("validation", {}).get("top_failures", {}) or {}
    top_checks = ", ".join(f"{k} ({v})" for k, v in list(top.items())[:3]) or ", ".join(
        sorted({q["check"] for q in report.get("quarantine_examples", [])})[:3]
    )
    return (
        f"{report['rejected_rows']} of {report['planned_rows']} rows rejected "
        f"({report['reject_rate']:.1%} > limit {ctx.max_reject_rate:.1%}); good rows were loaded. "
        f"Top failing checks: {top_checks or 'see report'}. Full report: "
        f"{ctx.folder.local_path('report.json')} and the quarantine in the sync state store "
        f"(run {ctx.run_id})."
    )


def finish(
    ctx: RunContext,
    store: SyncStore,
    report: dict[str, Any],
    *,
    stream: str,
    summaries: Mapping[str, Any] | None = None,
    upstream: str | None = None,
) -> dict[str, Any]:
    """Store the report, advance the watermark when the run succeeded, enforce the threshold."""
    from crm_sync.budget import current_budget

    api = report.get("api_calls", {})
    stopped = [
        s["budget_exhausted"]
        for s in (summaries or {}).values()
        if isinstance(s, Mapping) and s.get("budget_exhausted")
    ]
    status = _status(ctx, report, stopped)
    breached = status == "threshold_exceeded"
    report["status"] = status
    report["budget"] = {
        **current_budget(store).to_dict(),
        "stopped": stopped[0] if stopped else None,
    }
    message = _breach_message(ctx, report) if breached else (stopped[0] if stopped else None)
    ctx.folder.write_json("report.json", report)
    store.finish_run(
        ctx.dag_id,
        ctx.run_id,
        status=status,
        report=report,
        sf_api_calls=int(api.get("salesforce", 0)),
        lg_api_calls=int(api.get("leadgen", 0)),
        message=message,
    )
    # A breach keeps its rejected rows in the quarantine (retried every run): the window is done.
    # Backfills and targeted runs never move the watermark; the others continue the synced time.
    if status in ("success", "threshold_exceeded") and moves_watermark(ctx.run_kind):
        store.advance_watermark(
            ctx.dag_id,
            stream,
            _high_water(ctx, store, upstream),
            ctx.run_id,
            covered_from=ctx.window_start,
        )
    if status == "success":
        from crm_sync.settings import retention_days

        # Resolved problems stay visible for a while (Sync health, lookups), then go.
        store.purge_old(timedelta(days=retention_days()))
        store.purge_changes(timedelta(days=retention_days()))  # the change log (undo) too
    log.info(
        "record: status=%s rows=%s salesforce=%s leadgen=%s links=%s quarantined=%d resolved=%d api_calls=%s",
        status,
        report.get("rows"),
        report.get("salesforce"),
        report.get("leadgen"),
        report.get("links"),
        report.get("quarantined", 0),
        report.get("quarantine_resolved", 0),
        api,
    )
    if stopped and not breached:
        # A breach fails the task, and the DAG's failure notifier sends that alert.
        from crm_sync.alerts import alert_text, send

        send(
            alert_text(
                dag_id=ctx.dag_id, run_id=ctx.run_id, status=status, reason=message, report=report
            ),
            {"dag_id": ctx.dag_id, "run_id": ctx.run_id, "status": status},
        )
    if breached:
        raise ThresholdExceeded(message)
    return report
