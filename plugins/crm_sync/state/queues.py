"""The quarantine (rejected rows, retried each run) and held items (work waiting for a dependency)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_sync.state._common import _chunks, utcnow
from crm_sync.state.models import HeldItem, QuarantineItem


class QueueStore:
    """The quarantine (rejected rows, retried each run) and held items (work waiting for a dependency)."""

    session: Callable[[], AbstractContextManager[Session]]

    def _update_keys(
        self, model: Any, key: Any, keys: Sequence[str], where: tuple[Any, ...], values: dict
    ) -> int:
        """``UPDATE model SET values WHERE where AND key IN keys`` in chunks; rows changed."""
        n = 0
        with self.session() as s:
            for chunk in _chunks(keys):
                res = s.execute(update(model).where(*where, key.in_(chunk)).values(**values))
                n += res.rowcount or 0
        return n

    # -- quarantine ------------------------------------------------------------------------
    def quarantine(
        self,
        *,
        dag_id: str,
        domain: str,
        direction: str,
        record_key: str,
        target_object: str,
        lg_id: str | None,
        sf_id: str | None,
        category: str,
        check: str,
        field: str | None,
        error_code: str | None,
        message: str,
        payload: dict[str, Any],
        run_id: str | None,
        max_attempts: int,
    ) -> QuarantineItem:
        """Insert or refresh the quarantine row of one source record; count the attempt."""
        entry = {k: v for k, v in locals().items() if k != "self"}
        self.quarantine_many([entry])
        with self.session() as s:
            item = s.scalar(
                select(QuarantineItem).where(
                    QuarantineItem.dag_id == dag_id,
                    QuarantineItem.direction == direction,
                    QuarantineItem.record_key == record_key,
                )
            )
            s.expunge(item)
            return item

    def quarantine_many(self, entries: Sequence[dict[str, Any]]) -> int:
        """:meth:`quarantine` for many rows at once (the record stage's bulk write): existing
        rows are read in chunks and refreshed, new ones inserted together. The rows are flushed
        and let go before it returns, so a caller writing a run's entries call by call inside
        one transaction (:meth:`batch`) holds one call's rows in memory, not the run's."""
        if not entries:
            return 0
        now = utcnow()
        by_key = {(e["dag_id"], e["direction"], e["record_key"]): e for e in entries}
        touched: list[QuarantineItem] = []
        with self.session() as s:
            for (dag_id, direction), group in _group(by_key).items():
                for chunk in _chunks(sorted(group)):
                    found = s.scalars(
                        select(QuarantineItem).where(
                            QuarantineItem.dag_id == dag_id,
                            QuarantineItem.direction == direction,
                            QuarantineItem.record_key.in_(chunk),
                        )
                    )
                    for item in found:
                        _refresh(item, by_key.pop((dag_id, direction, item.record_key)), now)
                        touched.append(item)
            for e in by_key.values():
                item = QuarantineItem(
                    dag_id=e["dag_id"],
                    domain=e["domain"],
                    direction=e["direction"],
                    record_key=e["record_key"],
                    attempts=0,
                    first_run_id=e["run_id"],
                    first_seen=now,
                )
                _refresh(item, e, now)
                s.add(item)
                touched.append(item)
            s.flush()
            for item in touched:
                s.expunge(item)
        return len(entries)

    def resolve_quarantine(
        self, dag_id: str, direction: str, record_keys: Iterable[str], run_id: str | None
    ) -> int:
        keys = sorted(set(record_keys))
        if not keys:
            return 0
        return self._update_keys(
            QuarantineItem,
            QuarantineItem.record_key,
            keys,
            (
                QuarantineItem.dag_id == dag_id,
                QuarantineItem.direction == direction,
                QuarantineItem.status != "resolved",
            ),
            {"status": "resolved", "resolved_at": utcnow(), "last_run_id": run_id},
        )

    def quarantined(
        self,
        dag_id: str | None = None,
        *,
        statuses: Sequence[str] = ("open", "retry", "parked"),
        direction: str | None = None,
        category: str | None = None,
        limit: int | None = None,
    ) -> list[QuarantineItem]:
        with self.session() as s:
            q = select(QuarantineItem).where(QuarantineItem.status.in_(list(statuses)))
            if dag_id:
                q = q.where(QuarantineItem.dag_id == dag_id)
            if direction:
                q = q.where(QuarantineItem.direction == direction)
            if category:
                q = q.where(QuarantineItem.category == category)
            q = q.order_by(QuarantineItem.last_seen.desc(), QuarantineItem.id.desc())
            if limit:
                q = q.limit(limit)
            return list(s.scalars(q))

    def iter_quarantine(self, batch: int = 2000) -> Iterator[Any]:
        """Every quarantine row (id, DAG, key, ids, status, reason columns), streamed."""
        cols = (
            QuarantineItem.id,
            QuarantineItem.dag_id,
            QuarantineItem.record_key,
            QuarantineItem.lg_id,
            QuarantineItem.sf_id,
            QuarantineItem.status,
            QuarantineItem.category,
            QuarantineItem.check,
            QuarantineItem.message,
        )
        with self.session() as s:
            q = select(*cols).order_by(QuarantineItem.id).execution_options(yield_per=batch)
            yield from s.execute(q)

    def retry_keys(self, dag_id: str, direction: str, *, include_parked: bool = False) -> list[str]:
        """Source record keys that the next run must re-read and retry."""
        statuses = ["open", "retry"] + (["parked"] if include_parked else [])
        with self.session() as s:
            return list(
                s.scalars(
                    select(QuarantineItem.record_key).where(
                        QuarantineItem.dag_id == dag_id,
                        QuarantineItem.direction == direction,
                        QuarantineItem.status.in_(statuses),
                    )
                )
            )

    def mark_for_retry(self, ids: Iterable[int]) -> int:
        id_list = sorted(set(int(i) for i in ids))
        if not id_list:
            return 0
        with self.session() as s:
            res = s.execute(
                update(QuarantineItem)
                .where(
                    QuarantineItem.id.in_(id_list), QuarantineItem.status.in_(("open", "parked"))
                )
                .values(status="retry", attempts=0)
            )
            return res.rowcount or 0

    # -- held items ------------------------------------------------------------------------
    def hold(
        self,
        dag_id: str,
        kind: str,
        item_key: str,
        *,
        payload: dict[str, Any],
        reason: str,
        waiting_for: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """Hold one item (or keep holding it). An attempt counts once per run, so a record
        task retried within the run does not count it again; a finished item is left alone."""
        now = utcnow()
        with self.session() as s:
            item = s.scalar(
                select(HeldItem).where(
                    HeldItem.dag_id == dag_id, HeldItem.kind == kind, HeldItem.item_key == item_key
                )
            )
            if item is None:
                item = HeldItem(
                    dag_id=dag_id, kind=kind, item_key=item_key, first_seen=now, attempts=1
                )
                s.add(item)
            elif item.status != "held":
                return
            elif run_id is None or item.last_run_id != run_id:
                item.attempts += 1
            item.payload = payload
            item.reason = reason
            item.waiting_for = waiting_for
            item.last_seen = now
            item.last_run_id = run_id

    def expire_held(self, dag_id: str, kind: str, older_than: timedelta, reason: str) -> int:
        """Release the items held since before ``now - older_than`` as ``expired`` (kept for
        the retention period with ``reason``, no longer reloaded every run); how many."""
        cutoff = utcnow() - older_than
        with self.session() as s:
            res = s.execute(
                update(HeldItem)
                .where(
                    HeldItem.dag_id == dag_id,
                    HeldItem.kind == kind,
                    HeldItem.status == "held",
                    HeldItem.first_seen < cutoff,
                )
                .values(status="expired", reason=reason, last_seen=utcnow())
            )
            return res.rowcount or 0

    def held(
        self, dag_id: str | None, kind: str | None = None, status: str = "held"
    ) -> list[HeldItem]:
        with self.session() as s:
            q = select(HeldItem).where(HeldItem.status == status)
            if dag_id:
                q = q.where(HeldItem.dag_id == dag_id)
            if kind:
                q = q.where(HeldItem.kind == kind)
            return list(s.scalars(q.order_by(HeldItem.id)))

    def release(
        self,
        dag_id: str,
        kind: str,
        item_keys: Iterable[str],
        *,
        status: str,
        reason: str | None = None,
    ) -> int:
        keys = sorted(set(item_keys))
        values: dict[str, Any] = {"status": status, "last_seen": utcnow()}
        if reason:
            values["reason"] = reason
        return self._update_keys(
            HeldItem,
            HeldItem.item_key,
            keys,
            (HeldItem.dag_id == dag_id, HeldItem.kind == kind),
            values,
        )

    def purge_old(self, older_than: timedelta) -> None:
        """Delete resolved quarantine rows and finished held items older than ``older_than``."""
        cutoff = utcnow() - older_than
        with self.session() as s:
            s.query(QuarantineItem).filter(
                QuarantineItem.status == "resolved", QuarantineItem.resolved_at < cutoff
            ).delete(synchronize_session=False)
            s.query(HeldItem).filter(HeldItem.status != "held", HeldItem.last_seen < cutoff).delete(
                synchronize_session=False
            )


# What a quarantine row says about the record and why it was refused (CSV export: the same).
REASON_FIELDS = (
    "target_object",
    "lg_id",
    "sf_id",
    "category",
    "check",
    "field",
    "error_code",
    "message",
)
_ENTRY_FIELDS = (*REASON_FIELDS, "payload")


def _group(keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for dag_id, direction, key in keys:
        out.setdefault((dag_id, direction), []).append(key)
    return out


def _refresh(item: QuarantineItem, e: dict[str, Any], now: datetime) -> None:
    """Apply one rejection to its quarantine row: an attempt counts once per run (a task retry
    within one run is not a new attempt); enough attempts park the row."""
    if item.last_run_id != e["run_id"] or not item.attempts:
        item.attempts = (item.attempts or 0) + 1
    for name in _ENTRY_FIELDS:
        setattr(item, name, e[name])
    item.domain = e["domain"]
    item.last_run_id = e["run_id"]
    item.last_seen = now
    item.resolved_at = None
    item.status = "parked" if item.attempts >= e["max_attempts"] else "open"
