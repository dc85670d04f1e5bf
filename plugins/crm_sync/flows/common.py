"""Plumbing shared by every flow: the run context from Airflow's task context, client
construction, error sorting for Airflow, and the end-of-run bookkeeping."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from crm_sync.errors import BudgetExhaustedError, FatalError
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
        _TASK["ctx"], _TASK["clients"] = None, []
        try:
            return fn(*args, **kwargs)
        except BudgetExhaustedError as exc:
            _stop_for_budget(fn.__name__, exc)
        except FatalError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            log.error("%s failed without retry: %s", fn.__name__, exc)
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from None
        finally:
            _account_task_calls()

    return wrapper  # type: ignore[return-value]


def _stop_for_budget(task: str, exc: BudgetExhaustedError) -> None:
    """The budget ran out before the load (while reading): end the run cleanly. The run is
    recorded as ``budget_exhausted``, an alert goes out, and the remaining tasks are skipped; the
    watermark stays, so the next run covers this window too."""
    from airflow.sdk.exceptions import AirflowSkipException

    from crm_sync.alerts import alert_text, send

    ctx = _TASK["ctx"]
    log.warning("%s: %s", task, exc)
    if ctx is not None:
        report = {
            "dag_id": ctx.dag_id,
            "run_id": ctx.run_id,
            "status": "budget_exhausted",
            "stopped_in": task,
        }
        try:
            open_clients.store_for(ctx).finish_run(
                ctx.dag_id, ctx.run_id, status="budget_exhausted", report=report, message=str(exc)
            )
        except Exception:  # the alert below still says what happened
            log.warning("could not record the budget stop", exc_info=True)
        send(
            alert_text(
                dag_id=ctx.dag_id,
                run_id=ctx.run_id,
                status="budget_exhausted",
                reason=str(exc),
                task_id=task,
            )
        )
    raise AirflowSkipException(f"Salesforce API budget reached in {task}: {exc}") from None


# The run and the API clients of the task running in this process (one task per process).
_TASK: dict[str, Any] = {"ctx": None, "clients": []}


def _account_task_calls() -> None:
    """Add the task's Salesforce and Lead Gen & CRM calls to its run row, success or failure,
    so the 24-hour API budget counts every call, including those of failed tasks."""
    ctx, clients = _TASK["ctx"], _TASK["clients"]
    _TASK["ctx"], _TASK["clients"] = None, []
    if ctx is None or not clients:
        return
    sf = sum(c.api_calls for kind, c in clients if kind == "salesforce")
    lg = sum(c.api_calls for kind, c in clients if kind == "leadgen")
    try:
        open_clients.store_for(ctx).add_run_calls(ctx.dag_id, ctx.run_id, sf=sf, lg=lg)
    except Exception:  # accounting must never hide the task's own outcome
        log.warning("could not record this task's API calls in the state store", exc_info=True)


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
    ctx = build_context(
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
    _TASK["ctx"] = ctx
    return ctx


def _aware(dt: Any) -> datetime:
    if isinstance(dt, str):
        dt = datetime.fromisoformat(dt)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    # pendulum DateTime -> plain datetime, so it serializes the same everywhere
    return datetime.fromtimestamp(dt.timestamp(), tz=UTC)


def load_ctx(prepared: dict[str, Any]) -> RunContext:
    ctx = RunContext.from_dict(prepared["ctx"])
    _TASK["ctx"] = ctx
    return ctx


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
        """A Salesforce client held to this product's 24-hour API budget (see budget.py)."""
        from crm_sync.budget import current_budget, guard
        from crm_sync.runtime import salesforce_client

        client = guard(
            salesforce_client(ctx.conn_ids["salesforce"]),
            current_budget(open_clients.store_for(ctx)),
        )
        _TASK["clients"].append(("salesforce", client))
        return client

    @staticmethod
    def leadgen(ctx: RunContext) -> Any:
        from crm_sync.runtime import leadgen_client

        client = leadgen_client(ctx.conn_ids["leadgen"])
        _TASK["clients"].append(("leadgen", client))
        return client


def finish(
    ctx: RunContext,
    store: Any,
    report: dict[str, Any],
    *,
    stream: str,
    summaries: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Store the report, advance the watermark when the run succeeded, enforce the threshold.

    A run stopped by the API budget keeps its watermark (the next run picks up the rest), is not
    failed (nothing is wrong with the data), and raises an alert."""
    from crm_sync.budget import current_budget

    api = report.get("api_calls", {})
    stopped = [
        s["budget_exhausted"]
        for s in (summaries or {}).values()
        if isinstance(s, dict) and s.get("budget_exhausted")
    ]
    breached = (not ctx.dry_run) and report.get("reject_rate", 0.0) > ctx.max_reject_rate
    if ctx.dry_run:
        status = "dry_run"
    elif breached:
        status = "threshold_exceeded"
    elif stopped:
        status = "budget_exhausted"
    else:
        status = "success"
    report["status"] = status
    report["budget"] = {
        **current_budget(store).to_dict(),
        "stopped": stopped[0] if stopped else None,
    }
    message = stopped[0] if stopped and not breached else None
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
        from crm_sync.settings import retention_days

        # Resolved problems stay visible for a while (Sync health, lookups), then go.
        store.purge_old(timedelta(days=retention_days()))
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
