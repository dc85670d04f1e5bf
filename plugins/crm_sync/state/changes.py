"""The per-run change log (what each run wrote, for Sync health and undo) and undo holds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from crm_sync.state._common import _chunks, utcnow
from crm_sync.state.models import ChangeRecord, UndoHold

# The columns of one change-log entry (``at`` is added when it is stored).
ENTRY_FIELDS = (
    "dag_id",
    "run_id",
    "system",
    "object",
    "record_id",
    "field",
    "kind",
    "before",
    "after",
    "meta",
)


@dataclass(frozen=True)
class ChangeFilter:
    """Which changes of one run to list (None: any)."""

    dag_id: str
    run_id: str
    system: str | None = None
    object: str | None = None
    record_id: str | None = None

    def where(self) -> tuple[Any, ...]:
        cond = [ChangeRecord.dag_id == self.dag_id, ChangeRecord.run_id == self.run_id]
        if self.system:
            cond.append(ChangeRecord.system == self.system)
        if self.object:
            cond.append(ChangeRecord.object == self.object)
        if self.record_id:
            cond.append(ChangeRecord.record_id == self.record_id)
        return tuple(cond)


def _entry_key(e: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    return (e["dag_id"], e["run_id"], e["system"], str(e["record_id"]), e["field"])


class ChangeLogStore:
    """The change log (``change_log``) and undo holds (``undo_holds``)."""

    session: Callable[[], AbstractContextManager[Session]]

    # -- change log ------------------------------------------------------------------------
    def log_changes(self, entries: Sequence[Mapping[str, Any]]) -> int:
        """Store the entries not logged yet, in one insert (an entry is one per run, system,
        record and field: a retried load or undo logs nothing twice); returns how many were
        new."""
        fresh: dict[tuple[str, ...], Mapping[str, Any]] = {_entry_key(e): e for e in entries}
        if not fresh:
            return 0
        with self.session() as s:
            for (dag_id, run_id, system), keys in _by_run(fresh).items():
                for chunk in _chunks(sorted({k[3] for k in keys})):
                    for rid, fld in s.execute(
                        select(ChangeRecord.record_id, ChangeRecord.field).where(
                            ChangeRecord.dag_id == dag_id,
                            ChangeRecord.run_id == run_id,
                            ChangeRecord.system == system,
                            ChangeRecord.record_id.in_(chunk),
                        )
                    ):
                        fresh.pop((dag_id, run_id, system, rid, fld), None)
            if fresh:
                now = utcnow()
                s.execute(
                    insert(ChangeRecord),
                    [
                        {
                            **{k: e.get(k) for k in ENTRY_FIELDS},
                            "record_id": str(e["record_id"]),
                            "meta": dict(e.get("meta") or {}),
                            "at": now,
                        }
                        for e in fresh.values()
                    ],
                )
        return len(fresh)

    def drop_changes(self, entries: Iterable[Mapping[str, Any]]) -> int:
        """Remove logged entries (an undo logs before it writes, then drops what failed)."""
        n = 0
        with self.session() as s:
            for e in entries:
                dag_id, run_id, system, rid, fld = _entry_key(e)
                res = s.execute(
                    delete(ChangeRecord).where(
                        ChangeRecord.dag_id == dag_id,
                        ChangeRecord.run_id == run_id,
                        ChangeRecord.system == system,
                        ChangeRecord.record_id == rid,
                        ChangeRecord.field == fld,
                    )
                )
                n += res.rowcount or 0
        return n

    def iter_changes(self, flt: ChangeFilter, batch: int = 1000) -> Iterator[ChangeRecord]:
        """A run's changes in log order (the fields of a record are logged together), streamed
        ``batch`` rows at a time by id (no long-lived cursor: the reader writes meanwhile)."""
        last = 0
        while True:
            with self.session() as s:
                rows = list(
                    s.scalars(
                        select(ChangeRecord)
                        .where(*flt.where(), ChangeRecord.id > last)
                        .order_by(ChangeRecord.id)
                        .limit(batch)
                    )
                )
            if not rows:
                return
            last = rows[-1].id
            yield from rows

    def change_page(self, flt: ChangeFilter, *, limit: int, offset: int) -> list[ChangeRecord]:
        with self.session() as s:
            q = select(ChangeRecord).where(*flt.where()).order_by(ChangeRecord.id)
            return list(s.scalars(q.limit(limit).offset(offset)))

    def count_changes(self, flt: ChangeFilter) -> int:
        with self.session() as s:
            q = select(func.count()).select_from(ChangeRecord).where(*flt.where())
            return int(s.scalar(q) or 0)

    def change_summary(self, dag_id: str, run_id: str) -> list[tuple[str, str, str, int, int]]:
        """(system, object, kind, entries, records) of one run's changes."""
        flt = ChangeFilter(dag_id, run_id)
        with self.session() as s:
            q = (
                select(
                    ChangeRecord.system,
                    ChangeRecord.object,
                    ChangeRecord.kind,
                    func.count(),
                    func.count(ChangeRecord.record_id.distinct()),
                )
                .where(*flt.where())
                .group_by(ChangeRecord.system, ChangeRecord.object, ChangeRecord.kind)
                .order_by(ChangeRecord.system, ChangeRecord.object, ChangeRecord.kind)
            )
            return [(a, b, c, int(d), int(e)) for a, b, c, d, e in s.execute(q)]

    def purge_changes(self, older_than: timedelta) -> int:
        """Delete change-log entries older than ``older_than`` (``CRM_SYNC_RETENTION_DAYS``);
        returns how many went. Undo holds stay until the sync releases them (a side changes):
        dropping one by age would let a full resync write the undone value back."""
        cutoff = utcnow() - older_than
        with self.session() as s:
            return s.execute(delete(ChangeRecord).where(ChangeRecord.at < cutoff)).rowcount or 0

    # -- undo holds ------------------------------------------------------------------------
    def undo_holds(self, domain: str, lg_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """lg_id -> mapping key -> ``{"leadgen", "salesforce", "run_id"}`` (the held values)."""
        ids = sorted({str(i) for i in lg_ids})
        out: dict[str, dict[str, Any]] = {}
        with self.session() as s:
            for chunk in _chunks(ids):
                for h in s.scalars(
                    select(UndoHold).where(UndoHold.domain == domain, UndoHold.lg_id.in_(chunk))
                ):
                    out.setdefault(h.lg_id, {})[h.key] = {
                        "leadgen": h.leadgen,
                        "salesforce": h.salesforce,
                        "run_id": h.run_id,
                    }
        return out

    def has_undo_holds(self, domain: str) -> bool:
        """Whether any pair of ``domain`` has a held field (the sync skips the lookups if not)."""
        with self.session() as s:
            return (
                s.scalar(select(UndoHold.id).where(UndoHold.domain == domain).limit(1)) is not None
            )

    def hold_values(
        self, domain: str, lg_id: str, key: str, *, leadgen: Any, salesforce: Any, run_id: str
    ) -> None:
        """Hold ``key`` of a pair at these values; equal values need no hold (it is released)."""
        with self.session() as s:
            hold = s.scalar(
                select(UndoHold).where(
                    UndoHold.domain == domain, UndoHold.lg_id == str(lg_id), UndoHold.key == key
                )
            )
            if leadgen == salesforce:
                if hold is not None:
                    s.delete(hold)
                return
            if hold is None:
                hold = UndoHold(domain=domain, lg_id=str(lg_id), key=key)
                s.add(hold)
            hold.leadgen, hold.salesforce, hold.run_id, hold.at = (
                leadgen,
                salesforce,
                run_id,
                utcnow(),
            )

    def release_holds(self, domain: str, lg_id: str, keys: Sequence[str] | None = None) -> int:
        """Drop the holds of a pair (``keys``: only these): the sync writes them again."""
        with self.session() as s:
            q = delete(UndoHold).where(UndoHold.domain == domain, UndoHold.lg_id == str(lg_id))
            if keys is not None:
                q = q.where(UndoHold.key.in_(list(keys)))
            return s.execute(q).rowcount or 0


def _by_run(keys: Iterable[tuple[str, ...]]) -> dict[tuple[str, str, str], list[tuple[str, ...]]]:
    out: dict[tuple[str, str, str], list[tuple[str, ...]]] = {}
    for k in keys:
        out.setdefault((k[0], k[1], k[2]), []).append(k)
    return out
