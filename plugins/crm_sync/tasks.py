"""The generic task runner: every task of every sync DAG runs through here.

A DAG file's task calls :func:`run_prepare`, :func:`run_stage` or :func:`upstream_synced` with its
DAG id; the runner finds the DAG's :class:`~crm_sync.definitions.SyncDefinition`, opens a
:class:`TaskRuntime` and calls the stage function. The runtime holds the run context and the
clients and store, opened lazily (a task opens only what it uses: tasks may run in different
processes or machines), adds the task's API calls to its run row on the way out, and sorts
exceptions for Airflow:

* :class:`~crm_sync.errors.FatalError` -> ``AirflowFailException``: fail at once, no retries;
* :class:`~crm_sync.errors.BudgetExhaustedError` while reading -> the run is recorded as
  ``budget_exhausted``, an alert goes out, the rest of the run is skipped (watermark kept);
* anything else (retriable errors included) propagates, so Airflow's task retries apply.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

from crm_sync.definitions import SyncDefinition, get_definition
from crm_sync.errors import BudgetExhaustedError, FatalError, RetriableError
from crm_sync.pipeline.context import RunContext
from crm_sync.runtime import conn_ids_from

if TYPE_CHECKING:
    from crm_sync.clients.leadgen import LeadGenClient
    from crm_sync.clients.salesforce import SalesforceClient
    from crm_sync.mapping.models import ObjectSpec
    from crm_sync.mapping.owners import OwnerMap
    from crm_sync.mapping.schema import LiveSchema
    from crm_sync.pipeline.apply import StateChanges
    from crm_sync.pipeline.tally import RunTally
    from crm_sync.state.store import SyncStore

log = logging.getLogger(__name__)

# A run's lease lives this long after its last stage took it (a killed worker cannot release it).
LEASE_TTL = timedelta(hours=2)


class TaskRuntime:
    """One task of one run (see the module docstring). Use as a context manager."""

    def __init__(
        self,
        definition: SyncDefinition,
        task: str,
        *,
        ctx: RunContext | None = None,
        conn_ids: Mapping[str, str] | None = None,
        summaries: Mapping[str, Any] | None = None,
    ):
        self.definition = definition
        self.task = task
        self.ctx = ctx
        # defaults, then what the run's params chose
        self.conn_ids = {**conn_ids_from({}), **(ctx.conn_ids if ctx else {}), **(conn_ids or {})}
        self.summaries: dict[str, Any] = dict(summaries or {})
        self._store: SyncStore | None = None
        self._sf: SalesforceClient | None = None
        self._lg: LeadGenClient | None = None
        self._specs: dict[str, ObjectSpec] | None = None
        self._run_facts: tuple[LiveSchema, OwnerMap] | None = None

    # -- resources, opened on first use ------------------------------------------------------
    @property
    def store(self) -> SyncStore:
        """The state store (the process's shared one), looked up once per task: finding it
        reads the Airflow connection, which a worker asks the API server for."""
        if self._store is None:
            from crm_sync.runtime import shared_store

            self._store = shared_store(self.conn_ids["state"])
        return self._store

    @property
    def salesforce(self) -> SalesforceClient:
        """A Salesforce client held to this product's 24-hour API budget (see budget.py)."""
        if self._sf is None:
            from crm_sync.budget import current_budget, guard
            from crm_sync.runtime import salesforce_client

            self._sf = guard(
                salesforce_client(self.conn_ids["salesforce"]), current_budget(self.store)
            )
        return self._sf

    @property
    def leadgen(self) -> LeadGenClient:
        """A Lead Gen & CRM client held to this product's 24-hour API budget (see budget.py)."""
        if self._lg is None:
            from crm_sync.budget import current_lg_budget, guard
            from crm_sync.runtime import leadgen_client

            self._lg = guard(
                leadgen_client(self.conn_ids["leadgen"]), current_lg_budget(self.store)
            )
        return self._lg

    @property
    def run(self) -> RunContext:
        if self.ctx is None:
            raise RuntimeError(f"{self.task}: no run context yet (prepare builds it)")
        return self.ctx

    @property
    def specs(self) -> dict[str, ObjectSpec]:
        """The DAG's mapping specs by Salesforce object (loaded once per task)."""
        if self._specs is None:
            from crm_sync.pipeline.prepare import load_specs

            self._specs = load_specs(self.definition.spec_names)
        return self._specs

    @property
    def schema(self) -> LiveSchema:
        """The live schemas ``prepare`` read for this run (from the run folder)."""
        return self._facts()[0]

    @property
    def owners(self) -> OwnerMap:
        """The owner map ``prepare`` resolved for this run (from the run folder)."""
        return self._facts()[1]

    def _facts(self) -> tuple[LiveSchema, OwnerMap]:
        if self._run_facts is None:
            from crm_sync.pipeline.prepare import load_run_facts

            self._run_facts = load_run_facts(self.run)
        return self._run_facts

    def record(
        self,
        walk: Callable[[RunTally, StateChanges], None],
        *,
        extracted: Mapping[str, Any],
        extra: Callable[[RunTally], Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The record stage of this DAG: ``walk`` (the domain's) tallies the rows and makes the
        state changes; the spine applies them and finishes the run (see
        :func:`crm_sync.pipeline.apply.record_run`)."""
        from crm_sync.pipeline.apply import record_run

        return record_run(
            self.run,
            self.store,
            stream=self.definition.stream,
            directions=self.definition.directions,
            summaries=self.summaries,
            walk=walk,
            extracted=extracted,
            extra=extra,
            held_kind=self.definition.held_kind,
            upstream=self.definition.waits_for,
        )

    def calls(self) -> dict[str, Any]:
        """API calls this task made so far, by system and by kind (for its summary)."""
        out: dict[str, Any] = {}
        if self._sf is not None:
            out["sf_api_calls"] = self._sf.api_calls
            out["sf_calls_by_kind"] = {k: v for k, v in self._sf.calls.items() if k != "login"}
        if self._lg is not None:
            out["lg_api_calls"] = self._lg.api_calls
            out["lg_calls_by_kind"] = dict(self._lg.calls)
        return out

    # -- the task's life -----------------------------------------------------------------------
    def __enter__(self) -> TaskRuntime:
        if self.ctx is not None and self.task in self.definition.exclusive:
            self._take_lease()
        return self

    def _take_lease(self) -> None:
        """Wait for the DAG's lease (another run of this DAG is reading or writing its sync
        state), then hold it for this task; a run that never releases it frees it on expiry."""
        from crm_sync.settings import lease_wait

        ctx, waited, (limit, step) = self.run, 0.0, lease_wait()
        while holder := self.store.acquire_lease(ctx.dag_id, ctx.run_id, LEASE_TTL):
            if waited >= limit:
                raise RetriableError(
                    f"run {holder} of {ctx.dag_id} is syncing; this run waited {waited:.0f} s "
                    "and will try again (runs of one DAG take turns)"
                )
            log.info("%s: waiting for run %s of %s to finish", self.task, holder, ctx.dag_id)
            time.sleep(step)
            waited += step

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            self._account_calls()
        finally:
            if self.ctx is not None:
                shutil.rmtree(self.ctx.scratch_root, ignore_errors=True)
                from crm_sync.pipeline.results import index_dir

                shutil.rmtree(index_dir(), ignore_errors=True)  # result indexes left open
                if self.task == "record":  # the run is over, whatever its outcome
                    self.store.release_lease(self.ctx.dag_id, self.ctx.run_id)
        if isinstance(exc, BudgetExhaustedError):
            self._stop_for_budget(exc)
        if isinstance(exc, FatalError):
            from airflow.sdk.exceptions import AirflowFailException

            log.error("%s failed without retry: %s", self.task, exc)
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from None
        return False

    def _account_calls(self) -> None:
        """Add the task's calls to its run row, success or failure, so the 24-hour API budget
        counts every call, including those of failed tasks."""
        calls = self.calls()
        if self.ctx is None or not any(calls.values()):
            return
        try:
            self.store.add_run_calls(
                self.ctx.dag_id,
                self.ctx.run_id,
                sf=calls.get("sf_api_calls", 0),
                lg=calls.get("lg_api_calls", 0),
            )
        except Exception:  # accounting must never hide the task's own outcome
            log.warning("could not record this task's API calls in the state store", exc_info=True)

    def _stop_for_budget(self, exc: BudgetExhaustedError) -> None:
        """The budget ran out before the load (while reading): end the run cleanly. The run is
        recorded as ``budget_exhausted``, an alert goes out, and the remaining tasks are
        skipped; the watermark stays, so the next run covers this window too."""
        from airflow.sdk.exceptions import AirflowSkipException

        from crm_sync.alerts import alert_text, send

        log.warning("%s: %s", self.task, exc)
        ctx = self.ctx
        if ctx is not None:
            report = {
                "dag_id": ctx.dag_id,
                "run_id": ctx.run_id,
                "status": "budget_exhausted",
                "stopped_in": self.task,
            }
            try:
                self.store.finish_run(
                    ctx.dag_id,
                    ctx.run_id,
                    status="budget_exhausted",
                    report=report,
                    message=str(exc),
                )
            except Exception:  # the alert below still says what happened
                log.warning("could not record the budget stop", exc_info=True)
            send(
                alert_text(
                    dag_id=ctx.dag_id,
                    run_id=ctx.run_id,
                    status="budget_exhausted",
                    reason=str(exc),
                    task_id=self.task,
                )
            )
        raise AirflowSkipException(f"API budget reached in {self.task}: {exc}") from None


# -- entry points for DAG files ------------------------------------------------------------------


def _aware(dt: Any) -> datetime:
    if isinstance(dt, str):
        dt = datetime.fromisoformat(dt)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    # pendulum DateTime -> plain datetime, so it serializes the same everywhere
    return datetime.fromtimestamp(dt.timestamp(), tz=UTC)


def _run_type(dag_run: Any) -> str:
    rt = getattr(dag_run, "run_type", None) or "manual"
    return str(getattr(rt, "value", rt))


def run_context(
    definition: SyncDefinition, context: Mapping[str, Any], store: SyncStore
) -> RunContext:
    """The run's kind, window and options from Airflow's task context (a mapping)."""
    from crm_sync.pipeline.prepare import build_context

    params = dict(context.get("params") or {})
    dag_run = context.get("dag_run")
    start = context.get("data_interval_start")
    end = context.get("data_interval_end")
    logical_date = getattr(dag_run, "logical_date", None) or context.get("logical_date")
    run_after = getattr(dag_run, "run_after", None) or datetime.now(UTC)
    return build_context(
        dag_id=definition.dag_id,
        run_id=str(context.get("run_id") or getattr(dag_run, "run_id", "manual")),
        domain=definition.domain,
        interval_start=_aware(start) if start is not None else None,
        interval_end=_aware(end) if end is not None else None,
        run_after=_aware(run_after),
        run_type=_run_type(dag_run),
        has_logical_date=logical_date is not None,
        params=params,
        store=store,
        stream=definition.stream,
        conn_ids=conn_ids_from(params),
    )


def run_prepare(dag_id: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """The ``prepare`` task: build the run context, then run the DAG's prepare stage."""
    definition = get_definition(dag_id)
    conn_ids = conn_ids_from(context.get("params") or {})
    with TaskRuntime(definition, "prepare", conn_ids=conn_ids) as rt:
        rt.ctx = run_context(definition, context, rt.store)
        # Nothing is read or written before the org passed its preflight and, when this run
        # may write, a backup of both systems exists (docs/preflight.md, docs/backup.md).
        from crm_sync.backup import ensure_backup
        from crm_sync.preflight import gate

        ready = {**gate(rt), **ensure_backup(rt, writes=not rt.ctx.dry_run)}
        summary = definition.stage("prepare")(rt)
        return {"ctx": rt.ctx.to_dict(), "summary": {**ready, **summary, **rt.calls()}}


def run_stage(
    dag_id: str,
    task: str,
    prepared: Mapping[str, Any],
    summaries: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Any task after ``prepare``: ``prepared`` is prepare's return value; ``summaries`` are the
    upstream tasks' summaries (the record stage reads them for the report)."""
    definition = get_definition(dag_id)
    ctx = RunContext.from_dict(prepared["ctx"])
    upstream = {"prepare": prepared.get("summary", {}), **(summaries or {})}
    with TaskRuntime(definition, task, ctx=ctx, summaries=upstream) as rt:
        if definition.writes(task) and not ctx.dry_run:
            from crm_sync.backup import require_backup

            require_backup(rt.conn_ids)  # a backup deleted since prepare stops the write
        out = definition.stage(task)(rt)
        return {**out, **rt.calls()} if task != "record" else out


def upstream_synced(dag_id: str, context: Mapping[str, Any]) -> bool:
    """Sensor condition of a DAG that waits for another (``definition.waits_for``): true once that
    DAG has loaded a window covering this run's data interval, so every record this run refers
    to that could be linked is linked."""
    definition = get_definition(dag_id)
    other = definition.waits_for
    if other is None:
        return True
    start = context.get("data_interval_start")
    end = context.get("data_interval_end")
    if start is None or end is None:
        return True  # runs without an interval (asset-triggered, manual without date) do not wait
    start, end = _aware(start), _aware(end)
    if end <= start:
        start = end - timedelta(hours=1)
    from crm_sync.runtime import shared_store

    store = shared_store(conn_ids_from(context.get("params") or {})["state"])
    done = store.window_done(other, start, end)
    log.info(
        "waiting for %s to cover [%s, %s): %s (covered until %s)",
        other,
        start.isoformat(),
        end.isoformat(),
        "done" if done else "not yet",
        store.covered_until(other),
    )
    return done
