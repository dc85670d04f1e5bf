"""The undo of one run: read its change log, decide per entry, write, read back, fix the sync state.

The run's changes are read in log order and handled a batch of records at a time per system and
object (:class:`~crm_sync.undo.systems.System`: 200 Salesforce / 500 Lead Gen & CRM records per
call). For each batch the records are read now, every entry gets a decision
(:mod:`crm_sync.undo.decide`), and -- unless this is a dry run -- the restores and removals are
written and read back.

An undo is a run itself (DAG ``crm_sync_undo``): it has a run row with its report, and its own
change log, written *before* each write (an entry whose write then fails is dropped again), so a
task that dies after writing leaves every write it made logged, and an undo can be undone. A
second undo of the same run finds every field restored and writes nothing.

The sync state follows: a restored field's link gets the restored value as its last synced
value, and an *undo hold* on the field (the two sides now disagree on purpose: the sync writes
neither until one of them changes, see ``pipeline/reconcile.py``); a removed record's link is
marked ``undone`` (the people sync leaves it until the lead changes again).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crm_sync.pipeline.changelog import CREATE, REMOVED, UPDATE
from crm_sync.state.changes import ChangeFilter
from crm_sync.undo import UNDO_DAG
from crm_sync.undo.decide import (
    REMOVE,
    RESTORE,
    Decision,
    Entry,
    decide,
)
from crm_sync.undo.systems import System, UnsupportedObject, removal_landed

if TYPE_CHECKING:
    from crm_sync.state.store import SyncStore

log = logging.getLogger(__name__)

EXAMPLES = 200  # entries per outcome listed in the report (all are counted and logged)
UNDONE = "undone"  # link status of a pair whose created record an undo removed


@dataclass(frozen=True)
class UndoJob:
    """Which run to undo, and how. ``run_id`` is the undo's own run (its change log)."""

    target_dag: str
    target_run: str
    run_id: str
    dry_run: bool = True
    delete_created: bool = False
    dag_id: str = UNDO_DAG


class UndoReport:
    """Counts per outcome and the first :data:`EXAMPLES` entries of each."""

    def __init__(self, job: UndoJob):
        self.job = job
        self.counts: Counter = Counter()
        self.examples: dict[str, list[dict[str, Any]]] = {}

    def add(self, outcome: str, item: dict[str, Any]) -> None:
        self.counts[outcome] += 1
        shown = self.examples.setdefault(outcome, [])
        if len(shown) < EXAMPLES:
            shown.append(item)

    @property
    def failed(self) -> int:
        return self.counts["failed"]

    def to_dict(self) -> dict[str, Any]:
        job = self.job
        return {
            "dag_id": job.dag_id,
            "run_id": job.run_id,
            "target": {"dag_id": job.target_dag, "run_id": job.target_run},
            "dry_run": job.dry_run,
            "delete_created": job.delete_created,
            "undo": dict(sorted(self.counts.items())),
            "entries": {k: v for k, v in sorted(self.examples.items())},
        }


def _shown(d: Decision) -> dict[str, Any]:
    """What the report says about one decision."""
    e = d.entry
    if e.kind == UPDATE:
        return e.show(before=e.before, after=e.after, now=d.now, why=d.why)
    return e.show(kind=e.kind, why=d.why, **({"edited": d.now} if d.now else {}))


class Undo:
    """One undo (see the module docstring): ``run()`` returns its report."""

    def __init__(self, store: SyncStore, systems: Mapping[str, System], job: UndoJob):
        self.store, self.systems, self.job = store, systems, job
        self.report = UndoReport(job)

    def run(self) -> UndoReport:
        for system, obj, entries in self._groups():
            self._batch(self.systems[system], obj, entries)
        return self.report

    def _groups(self) -> Iterator[tuple[str, str, list[Entry]]]:
        """The run's entries, a batch of records at a time per system and object."""
        pending: dict[tuple[str, str], dict[str, list[Entry]]] = {}
        job = self.job
        for row in self.store.iter_changes(ChangeFilter(job.target_dag, job.target_run)):
            e = Entry.of(row)
            group = pending.setdefault((e.system, e.object), {})
            if e.record_id not in group and len(group) >= self.systems[e.system].batch:
                yield e.system, e.object, [x for xs in group.values() for x in xs]
                group.clear()
            group.setdefault(e.record_id, []).append(e)
        for (system, obj), group in pending.items():
            if group:
                yield system, obj, [x for xs in group.values() for x in xs]

    def _batch(self, system: System, obj: str, entries: list[Entry]) -> None:
        fields = {e.field for e in entries if e.field}
        for e in entries:
            if e.kind == CREATE and isinstance(e.after, Mapping):
                fields.update(e.after)
        try:
            now = system.read(
                obj, list(dict.fromkeys(e.record_id for e in entries)), sorted(fields)
            )
        except UnsupportedObject as exc:
            for e in entries:
                self.report.add("not_undoable", e.show(kind=e.kind, why=f"no undo for {exc}"))
            return
        decisions = [
            decide(e, now.get(e.record_id), delete_created=self.job.delete_created) for e in entries
        ]
        for d in decisions:
            if d.action not in (RESTORE, REMOVE):
                self.report.add(d.action, _shown(d))
            elif self.job.dry_run:
                self.report.add(f"would_{d.action}", _shown(d))
        if self.job.dry_run:
            return
        self._restore(system, obj, [d for d in decisions if d.action == RESTORE])
        self._remove(system, obj, [d for d in decisions if d.action == REMOVE])

    # -- writes --------------------------------------------------------------------------------
    def _logged(self, d: Decision, kind: str, before: Any, after: Any, meta: dict) -> dict:
        e = d.entry
        return {
            "dag_id": self.job.dag_id,
            "run_id": self.job.run_id,
            "system": e.system,
            "object": e.object,
            "record_id": e.record_id,
            "field": e.field,
            "kind": kind,
            "before": before,
            "after": after,
            "meta": meta,
        }

    def _write(
        self,
        decisions: list[Decision],
        logged: list[dict[str, Any]],
        send: Callable[[Sequence[str]], Mapping[str, str | None]],
    ) -> set[str]:
        """Log ``logged`` (the undo's own changes), write with ``send`` (record ids -> record id
        -> None or why it failed), drop the log entries of what failed; returns the record ids
        written."""
        if not decisions:
            return set()
        self.store.log_changes(logged)
        ids = list(dict.fromkeys(d.entry.record_id for d in decisions))
        failed = {rid: why for rid, why in send(ids).items() if why}
        self.store.drop_changes([x for x in logged if x["record_id"] in failed])
        for d in decisions:
            if d.entry.record_id in failed:
                why = failed[d.entry.record_id]
                log.warning(
                    "undo: %s %s %s not undone: %s",
                    d.entry.system,
                    d.entry.object,
                    d.entry.record_id,
                    why,
                )
                self.report.add("failed", {**_shown(d), "why": why})
        return set(ids) - set(failed)

    def _restore(self, system: System, obj: str, decisions: list[Decision]) -> None:
        """Write the before values back (one payload per record), read them back."""
        by_record: dict[str, dict[str, Any]] = {}
        for d in decisions:
            by_record.setdefault(d.entry.record_id, {system.id_key: d.entry.record_id})[
                d.entry.field
            ] = d.entry.before

        def send(ids: Sequence[str]) -> dict[str, str | None]:
            out: dict[str, str | None] = {}
            for i in range(0, len(ids), system.batch):
                chunk = [by_record[r] for r in ids[i : i + system.batch]]
                out.update(system.written(obj, chunk, system.restore(obj, chunk)))
            return out

        logged = [
            self._logged(d, UPDATE, d.now, d.entry.before, inverse_meta(d.entry.meta))
            for d in decisions
        ]
        done = self._write(decisions, logged, send)
        restored = [d for d in decisions if d.entry.record_id in done]
        for d in restored:
            self.report.add("restored", _shown(d))
        self._resync(system.name, restored)

    def _remove(self, system: System, obj: str, decisions: list[Decision]) -> None:
        """Delete (or deactivate) the records the run created; mark their links undone."""

        def send(ids: Sequence[str]) -> dict[str, str | None]:
            out: dict[str, str | None] = {}
            for i in range(0, len(ids), system.batch):
                chunk = list(ids[i : i + system.batch])
                out.update(removal_landed(system, obj, chunk, system.remove(obj, chunk)))
            return out

        logged = [
            self._logged(d, REMOVED, d.entry.after, None, dict(d.entry.meta)) for d in decisions
        ]
        done = self._write(decisions, logged, send)
        for d in decisions:
            if d.entry.record_id not in done:
                continue
            self.report.add("removed", _shown(d))
            meta = d.entry.meta
            if meta.get("domain") and meta.get("lg_id"):
                self.store.set_link_status(
                    meta["domain"],
                    meta["lg_id"],
                    UNDONE,
                    event=UNDONE,
                    run_id=self.job.run_id,
                    detail=f"{system.name} {obj} {d.entry.record_id} created by run "
                    f"{self.job.target_run} removed by undo",
                )

    def _resync(self, system: str, restored: list[Decision]) -> None:
        """The links of restored fields: the restored value is the last synced one, and the field
        is held (the other side keeps its value; see the module docstring)."""
        synced: dict[str, dict[str, dict[str, Any]]] = {}
        with self.store.batch():
            for d in restored:
                m = d.entry.meta
                if not (m.get("domain") and m.get("lg_id") and m.get("key")):
                    continue
                synced.setdefault(m["domain"], {}).setdefault(m["lg_id"], {})[m["key"]] = m[
                    "before"
                ]
                sides = {
                    "leadgen": m.get("other"),
                    "salesforce": m.get("other"),
                    system: m["before"],
                }
                self.store.hold_values(
                    m["domain"], m["lg_id"], m["key"], run_id=self.job.run_id, **sides
                )
            for domain, values in synced.items():
                self.store.update_synced_values(domain, values, self.job.run_id)


def inverse_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The sync-state facts of the undo's own entry: before and after swapped, the other side's
    value unchanged (an undo of the undo puts the pair back in agreement)."""
    if not meta.get("key"):
        return dict(meta)
    return {**meta, "before": meta.get("after"), "after": meta.get("before")}
