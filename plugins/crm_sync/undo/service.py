"""An undo as a run: clients, the backup rule, the sync DAG's lease, the run row and its report.

Used by the ``crm_sync_undo`` DAG (:mod:`.dag_task`) and ``python -m crm_sync.undo`` (:mod:`.cli`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from crm_sync.errors import ConfigError, FatalError, RetriableError
from crm_sync.undo import UNDO_DAG
from crm_sync.undo.runner import Undo, UndoJob, UndoReport
from crm_sync.undo.systems import LeadGenSystem, SalesforceSystem, System

if TYPE_CHECKING:
    from crm_sync.state.store import SyncStore

log = logging.getLogger(__name__)


class UndoIncomplete(FatalError):
    """Some restores or removals failed (each is in the report with why). Nothing was lost:
    running the undo again retries them and skips what is done."""


def sync_dag_of(store: SyncStore, job: UndoJob) -> str:
    """The sync DAG whose state the undo changes: the undone run's DAG, or for an undo of an
    undo, the DAG that undo was for."""
    if job.target_dag != UNDO_DAG:
        return job.target_dag
    run = store.get_run(job.target_dag, job.target_run)
    target = ((run.report if run else None) or {}).get("target") or {}
    return str(target.get("dag_id") or job.target_dag)


def hold_lease(store: SyncStore, dag_id: str, run_id: str) -> None:
    """Take ``dag_id``'s lease for the undo (no run of it plans from the links meanwhile),
    waiting for the run that holds it like a sync task does (``CRM_SYNC_LEASE_WAIT_SECONDS``)."""
    from crm_sync.settings import lease_wait
    from crm_sync.tasks import LEASE_TTL

    limit, step = lease_wait()
    started = time.monotonic()
    holder = store.acquire_lease(dag_id, run_id, LEASE_TTL)
    while holder is not None:
        if time.monotonic() - started >= limit:
            raise RetriableError(f"run {holder} of {dag_id} is syncing; the undo will try again")
        log.info("undo: waiting for run %s of %s to finish", holder, dag_id)
        time.sleep(step)
        holder = store.acquire_lease(dag_id, run_id, LEASE_TTL)


def check_target(store: SyncStore, job: UndoJob) -> None:
    """The run to undo must exist in the store and have finished writing."""
    run = store.get_run(job.target_dag, job.target_run)
    if run is None:
        raise ConfigError(f"no run {job.target_run!r} of DAG {job.target_dag!r} in the state store")
    if run.status == "running":
        raise ConfigError(f"run {job.target_run} of {job.target_dag} is still running")
    if (job.target_dag, job.target_run) == (job.dag_id, job.run_id):
        raise ConfigError("an undo cannot undo itself")


def execute(
    job: UndoJob,
    store: SyncStore,
    systems: Mapping[str, System],
    *,
    before_write: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Run ``job`` and record it as a run of :data:`UNDO_DAG`; returns its report.
    ``before_write`` is called once before anything is written (the backup rule). A failure
    is recorded on the run row before it propagates."""
    check_target(store, job)
    store.start_run(
        job.dag_id,
        job.run_id,
        window_start=None,
        window_end=None,
        dry_run=job.dry_run,
        full_resync=False,
    )
    try:
        report = _undo(job, store, systems, before_write)
    except Exception as exc:
        store.finish_run(
            job.dag_id,
            job.run_id,
            status="failed",
            report={},
            message=f"{type(exc).__name__}: {exc}",
        )
        raise
    out = report.to_dict()
    status = "dry_run" if job.dry_run else ("failed" if report.failed else "success")
    message = f"{report.failed} writes failed (see the report)" if report.failed else None
    out["status"] = status
    store.finish_run(
        job.dag_id,
        job.run_id,
        status=status,
        report=out,
        sf_api_calls=_calls(systems, "salesforce", "sf"),
        lg_api_calls=_calls(systems, "leadgen", "lg"),
        message=message,
    )
    log.info("undo of %s %s: %s %s", job.target_dag, job.target_run, status, out["undo"])
    if report.failed:
        raise UndoIncomplete(f"undo of run {job.target_run}: {message}")
    return out


def _undo(
    job: UndoJob,
    store: SyncStore,
    systems: Mapping[str, System],
    before_write: Callable[[], Any] | None,
) -> UndoReport:
    """The undo itself; a real one under the sync DAG's lease, after ``before_write``."""
    if job.dry_run:
        return Undo(store, systems, job).run()
    if before_write is not None:
        before_write()
    lease = sync_dag_of(store, job)
    hold_lease(store, lease, job.run_id)
    try:
        return Undo(store, systems, job).run()
    finally:
        store.release_lease(lease, job.run_id)


def _calls(systems: Mapping[str, System], name: str, attr: str) -> int:
    client = getattr(systems.get(name), attr, None)
    return int(getattr(client, "api_calls", 0) or 0)


def open_systems(conn_ids: Mapping[str, str], sf: Any = None, lg: Any = None) -> dict[str, System]:
    """Both systems through the run's connections (or the clients given); Salesforce held to
    the API budget."""
    from crm_sync.preflight.dag_task import guarded
    from crm_sync.runtime import leadgen_client, salesforce_client

    sf = sf if sf is not None else salesforce_client(conn_ids["salesforce"])
    lg = lg if lg is not None else leadgen_client(conn_ids["leadgen"])
    return {"salesforce": SalesforceSystem(guarded(sf, conn_ids)), "leadgen": LeadGenSystem(lg)}
