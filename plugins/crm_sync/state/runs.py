"""Run rows (window, status, report, API calls) and per-stream watermarks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_sync.state._common import from_db, to_db, utcnow
from crm_sync.state.models import Lease, Run, Watermark

log = logging.getLogger(__name__)


class RunStore:
    """Run rows (window, status, report, API calls) and per-stream watermarks."""

    session: Callable[[], AbstractContextManager[Session]]

    # -- runs and watermarks ---------------------------------------------------------------
    def start_run(
        self,
        dag_id: str,
        run_id: str,
        *,
        window_start: datetime | None,
        window_end: datetime | None,
        dry_run: bool,
        full_resync: bool,
    ) -> None:
        """Record that a run started (idempotent: a task retry keeps the same row)."""
        with self.session() as s:
            run = s.scalar(select(Run).where(Run.dag_id == dag_id, Run.run_id == run_id))
            if run is None:
                s.add(
                    Run(
                        dag_id=dag_id,
                        run_id=run_id,
                        window_start=to_db(window_start),
                        window_end=to_db(window_end),
                        dry_run=dry_run,
                        full_resync=full_resync,
                        started_at=utcnow(),
                        status="running",
                        report={},
                    )
                )
            else:
                run.window_start = to_db(window_start)
                run.window_end = to_db(window_end)
                run.status = "running"
                run.dry_run = dry_run
                run.full_resync = full_resync

    def finish_run(
        self,
        dag_id: str,
        run_id: str,
        *,
        status: str,
        report: dict[str, Any],
        sf_api_calls: int = 0,
        lg_api_calls: int = 0,
        message: str | None = None,
    ) -> None:
        """Record the run's outcome. The API calls each task added as it ended
        (:meth:`add_run_calls`, failed attempts included) are kept; the report's totals only
        raise them (a run recorded without its tasks' accounting)."""
        with self.session() as s:
            run = s.scalar(select(Run).where(Run.dag_id == dag_id, Run.run_id == run_id))
            if run is None:
                run = Run(dag_id=dag_id, run_id=run_id, started_at=utcnow())
                s.add(run)
            run.status = status
            run.report = report
            run.sf_api_calls = max(run.sf_api_calls or 0, sf_api_calls)
            run.lg_api_calls = max(run.lg_api_calls or 0, lg_api_calls)
            run.finished_at = utcnow()
            run.message = message

    def add_run_calls(self, dag_id: str, run_id: str, *, sf: int = 0, lg: int = 0) -> None:
        """Add one task's API calls to its run as the task finishes, so the 24-hour budget sees
        the run in progress (``finish_run`` later writes the run's exact totals)."""
        if not (sf or lg):
            return
        with self.session() as s:
            run = s.scalar(select(Run).where(Run.dag_id == dag_id, Run.run_id == run_id))
            if run is None:
                return
            run.sf_api_calls = (run.sf_api_calls or 0) + int(sf)
            run.lg_api_calls = (run.lg_api_calls or 0) + int(lg)

    def get_run(self, dag_id: str, run_id: str) -> Run | None:
        with self.session() as s:
            return s.scalar(select(Run).where(Run.dag_id == dag_id, Run.run_id == run_id))

    def recent_runs(self, dag_id: str | None = None, limit: int = 50) -> list[Run]:
        with self.session() as s:
            q = select(Run)
            if dag_id:
                q = q.where(Run.dag_id == dag_id)
            return list(s.scalars(q.order_by(Run.started_at.desc(), Run.id.desc()).limit(limit)))

    def sf_calls_since(self, since: datetime) -> int:
        """Salesforce API calls recorded by finished runs of any DAG since ``since``."""
        with self.session() as s:
            return int(
                s.scalar(
                    select(func.coalesce(func.sum(Run.sf_api_calls), 0)).where(
                        Run.started_at >= to_db(since)
                    )
                )
                or 0
            )

    def lg_calls_since(self, since: datetime) -> int:
        """Lead Gen & CRM API calls recorded by runs of any DAG since ``since``."""
        with self.session() as s:
            return int(
                s.scalar(
                    select(func.coalesce(func.sum(Run.lg_api_calls), 0)).where(
                        Run.started_at >= to_db(since)
                    )
                )
                or 0
            )

    def resync_unfinished(self, dag_id: str) -> bool:
        """Did the latest full resync of ``dag_id`` (not a dry run) stop on an API budget? Then
        the DAG's next runs continue it until one finishes (an initial load spread over days)."""
        with self.session() as s:
            status = s.scalar(
                select(Run.status)
                .where(Run.dag_id == dag_id, Run.full_resync.is_(True), Run.dry_run.is_(False))
                .order_by(Run.started_at.desc(), Run.id.desc())
                .limit(1)
            )
            return status == "budget_exhausted"

    def get_watermark(self, dag_id: str, stream: str) -> datetime | None:
        with self.session() as s:
            wm = s.scalar(
                select(Watermark).where(Watermark.dag_id == dag_id, Watermark.stream == stream)
            )
            return from_db(wm.high_water) if wm else None

    def advance_watermark(
        self,
        dag_id: str,
        stream: str,
        high_water: datetime,
        run_id: str | None,
        *,
        covered_from: datetime | None = None,
    ) -> datetime | None:
        """Move the watermark to ``high_water`` when the run covered contiguous time: its window
        started at or before the current watermark (``covered_from``; None = from the start of
        time). Never backwards, never over a gap: a window that starts after the watermark leaves
        it where it is (the time between was not synced) and is logged."""
        hw = to_db(high_water)
        with self.session() as s:
            wm = s.scalar(
                select(Watermark).where(Watermark.dag_id == dag_id, Watermark.stream == stream)
            )
            if wm is None:
                s.add(
                    Watermark(
                        dag_id=dag_id,
                        stream=stream,
                        high_water=hw,
                        run_id=run_id,
                        updated_at=utcnow(),
                    )
                )
                return from_db(hw)
            if covered_from is not None and to_db(covered_from) > wm.high_water:
                log.warning(
                    "%s/%s: run %s covered from %s, after the watermark %s: not moved over the gap",
                    dag_id,
                    stream,
                    run_id,
                    covered_from.isoformat(),
                    from_db(wm.high_water),
                )
            elif hw > wm.high_water:
                wm.high_water = hw
                wm.run_id = run_id
                wm.updated_at = utcnow()
            return from_db(wm.high_water)

    def acquire_lease(
        self, dag_id: str, run_id: str, ttl: timedelta, now: datetime | None = None
    ) -> str | None:
        """Take (or renew) the lease of ``dag_id`` for ``run_id``. Returns None when this run
        holds it now, else the run id holding it. An expired lease is taken over."""
        now_db = to_db(now) if now else utcnow()
        with self.session() as s:
            lease = s.get(Lease, dag_id, with_for_update=True)
            if lease is not None and lease.run_id != run_id and lease.expires_at > now_db:
                return lease.run_id
            if lease is None:
                lease = Lease(dag_id=dag_id, run_id=run_id, acquired_at=now_db, expires_at=now_db)
                s.add(lease)
            elif lease.run_id != run_id:
                lease.run_id, lease.acquired_at = run_id, now_db
            lease.expires_at = now_db + ttl
            return None

    def release_lease(self, dag_id: str, run_id: str) -> None:
        """Give the lease back (only the run holding it can)."""
        with self.session() as s:
            lease = s.get(Lease, dag_id)
            if lease is not None and lease.run_id == run_id:
                s.delete(lease)

    def covered_until(self, dag_id: str) -> datetime | None:
        """End of the newest successfully synced window of ``dag_id`` (any stream)."""
        with self.session() as s:
            v = s.scalar(select(func.max(Watermark.high_water)).where(Watermark.dag_id == dag_id))
            return from_db(v)

    def synced_until(self, dag_id: str, stream: str) -> datetime | None:
        """How far ``dag_id`` has synced ``stream``: its watermark, or, when only backfills ran
        (they never move the watermark), the latest window end of a successful non-dry run."""
        wm = self.get_watermark(dag_id, stream)
        if wm is not None:
            return wm
        with self.session() as s:
            v = s.scalar(
                select(func.max(Run.window_end)).where(
                    Run.dag_id == dag_id,
                    Run.status.in_(("success", "threshold_exceeded")),
                    Run.dry_run.is_(False),
                )
            )
            return from_db(v)

    def window_done(self, dag_id: str, window_start: datetime, window_end: datetime) -> bool:
        """True when a successful, non-dry run of ``dag_id`` covered [window_start, window_end)."""
        with self.session() as s:
            run = s.scalar(
                select(Run.id)
                .where(
                    Run.dag_id == dag_id,
                    Run.status.in_(("success", "threshold_exceeded")),
                    Run.dry_run.is_(False),
                    Run.window_start <= to_db(window_start),
                    Run.window_end >= to_db(window_end),
                )
                .limit(1)
            )
            if run is not None:
                return True
            wm = s.scalar(select(func.max(Watermark.high_water)).where(Watermark.dag_id == dag_id))
            return wm is not None and wm >= to_db(window_end)
