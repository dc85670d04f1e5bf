"""Plumbing shared by every flow: the run context from Airflow's task context, client
construction, error sorting for Airflow, and the end-of-run bookkeeping."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from crm_sync.errors import FatalError
from crm_sync.pipeline.context import RunContext
from crm_sync.runtime import DEFAULT_CONN_IDS

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class ThresholdExceeded(FatalError):
    """The share of rejected rows is above the limit; the good rows were loaded."""


def guarded(fn: F) -> F:
    """Run a task body; turn :class:`FatalError` into ``AirflowFailException`` (no retries).

    Retriable errors propagate unchanged so Airflow's task retries (with backoff) apply.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FatalError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            log.error("%s failed without retry: %s", fn.__name__, exc)
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from None

    return wrapper  # type: ignore[return-value]


def _run_type(dag_run: Any) -> str:
    rt = getattr(dag_run, "run_type", None) or "manual"
    return str(getattr(rt, "value", rt))


def build_run_context(context: Any, *, store: Any, domain: str, stream: str) -> RunContext:
    """Window and options of this run from the Airflow context (a mapping)."""
    from crm_sync.pipeline.prepare import build_context

    params = dict(context.get("params") or {})
    dag_run = context.get("dag_run")
    start = context.get("data_interval_start")
    end = context.get("data_interval_end")
    if start is None or end is None:
        # Airflow 3 runs without a logical date carry no data interval: use the hour that ended
        # before the run was requested.
        after = getattr(dag_run, "run_after", None) or datetime.now(UTC)
        end = after.replace(minute=0, second=0, microsecond=0)
        start = end - timedelta(hours=1)
    conn_ids = {
        "salesforce": params.get("salesforce_conn_id") or DEFAULT_CONN_IDS["salesforce"],
        "leadgen": params.get("leadgen_conn_id") or DEFAULT_CONN_IDS["leadgen"],
        "state": params.get("state_conn_id") or DEFAULT_CONN_IDS["state"],
    }
    dag = context.get("dag")
    return build_context(
        dag_id=getattr(dag, "dag_id", None) or context["dag_id"],
        run_id=str(context.get("run_id") or getattr(dag_run, "run_id", "manual")),
        domain=domain,
        interval_start=_aware(start),
        interval_end=_aware(end),
        run_type=_run_type(dag_run),
        params=params,
        store=store,
        stream=stream,
        conn_ids=conn_ids,
    )


def _aware(dt: Any) -> datetime:
    if isinstance(dt, str):
        dt = datetime.fromisoformat(dt)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    # pendulum DateTime -> plain datetime, so it serializes the same everywhere
    return datetime.fromtimestamp(dt.timestamp(), tz=UTC)


def load_ctx(prepared: dict[str, Any]) -> RunContext:
    return RunContext.from_dict(prepared["ctx"])


_STORES: dict[str, Any] = {}


class open_clients:
    """Factories for the clients a task needs (each task builds its own: tasks may run in
    different processes or machines)."""

    @staticmethod
    def store(context: Any) -> Any:
        params = dict(context.get("params") or {})
        return open_clients._store(params.get("state_conn_id") or DEFAULT_CONN_IDS["state"])

    @staticmethod
    def store_for(ctx: RunContext) -> Any:
        return open_clients._store(ctx.conn_ids.get("state", DEFAULT_CONN_IDS["state"]))

    @staticmethod
    def _store(conn_id: str) -> Any:
        from crm_sync.runtime import open_store, state_url

        url = state_url(conn_id)
        if url not in _STORES:
            _STORES[url] = open_store(conn_id)
        return _STORES[url]

    @staticmethod
    def salesforce(ctx: RunContext) -> Any:
        from crm_sync.runtime import salesforce_client

        return salesforce_client(ctx.conn_ids["salesforce"])

    @staticmethod
    def leadgen(ctx: RunContext) -> Any:
        from crm_sync.runtime import leadgen_client

        return leadgen_client(ctx.conn_ids["leadgen"])


def finish(ctx: RunContext, store: Any, report: dict[str, Any], *, stream: str) -> dict[str, Any]:
    """Store the report, advance the watermark when the run succeeded, enforce the threshold."""
    api = report.get("api_calls", {})
    breached = (not ctx.dry_run) and report.get("reject_rate", 0.0) > ctx.max_reject_rate
    status = "dry_run" if ctx.dry_run else ("threshold_exceeded" if breached else "success")
    report["status"] = status
    message = None
    if breached:
        top = report.get("validation", {}).get("top_failures", {}) or {}
        top_checks = ", ".join(f"{k} ({v})" for k, v in list(top.items())[:3]) or ", ".join(
            sorted({q["check"] for q in report.get("quarantine_examples", [])})[:3]
        )
        message = (
            f"{report['rejected_rows']} of {report['planned_rows']} rows rejected "
            f"({report['reject_rate']:.1%} > limit {ctx.max_reject_rate:.1%}); good rows were loaded. "
            f"Top failing checks: {top_checks or 'see report'}. Full report: {ctx.run_dir / 'report.json'} "
            f"and the quarantine in the sync state store (run {ctx.run_id})."
        )
    store.finish_run(
        ctx.dag_id,
        ctx.run_id,
        status=status,
        report=report,
        sf_api_calls=int(api.get("salesforce", 0)),
        lg_api_calls=int(api.get("leadgen", 0)),
        message=message,
    )
    if status == "success":
        store.advance_watermark(ctx.dag_id, stream, ctx.window_end, ctx.run_id)
    log.info(
        "record: status=%s salesforce=%s leadgen=%s links=%s quarantined=%d resolved=%d events=%s api_calls=%s",
        status,
        report.get("salesforce"),
        report.get("leadgen"),
        report.get("links"),
        report.get("quarantined", 0),
        report.get("quarantine_resolved", 0),
        report.get("events"),
        api,
    )
    if breached:
        raise ThresholdExceeded(message)
    return report


PEOPLE_DAG_ID = "sync_leads_contacts"


def people_window_synced(context: Any) -> bool:
    """Sensor condition for the DAGs that depend on person links (opportunities, engagement):
    true once ``sync_leads_contacts`` has loaded a window covering this run's data interval, so
    every contact or lead this run refers to that could be linked is linked."""
    params = dict(context.get("params") or {})
    store = open_clients._store(params.get("state_conn_id") or DEFAULT_CONN_IDS["state"])
    start = context.get("data_interval_start")
    end = context.get("data_interval_end")
    if start is None or end is None:
        return True  # runs without an interval (asset-triggered, manual without date) do not wait
    start, end = _aware(start), _aware(end)
    if end <= start:
        start = end - timedelta(hours=1)
    done = store.window_done(PEOPLE_DAG_ID, start, end)
    log.info(
        "waiting for %s to cover [%s, %s): %s (covered until %s)",
        PEOPLE_DAG_ID,
        start.isoformat(),
        end.isoformat(),
        "done" if done else "not yet",
        store.covered_until(PEOPLE_DAG_ID),
    )
    return done
