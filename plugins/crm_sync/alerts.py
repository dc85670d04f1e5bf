"""Alerts: a short summary of a failed, threshold-breaching or budget-stopped sync run, sent
through Airflow's notifier mechanism.

``SyncAlertNotifier`` is a ``BaseNotifier``: DAGs attach it as ``on_failure_callback`` (every
task, after its retries), and the record stage calls it for runs that end without failing but
need attention (API budget reached). Where the summary goes is configuration:

* default: a WARNING log line on the ``crm_sync.alerts`` logger (visible in the task log);
* ``CRM_SYNC_ALERT_WEBHOOK``: also POST ``{"text": summary, ...}`` as JSON to that URL (Slack,
  Teams and most chat tools accept it) — or an Airflow connection ``crm_sync_alerts`` whose host
  is the URL.

Cheap to import: DAG files import it at parse time.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from typing import Any

from airflow.sdk import BaseNotifier

from crm_sync.redact import redact_text, redact_url

log = logging.getLogger(__name__)

WEBHOOK_ENV = "CRM_SYNC_ALERT_WEBHOOK"
WEBHOOK_CONN_ID = "crm_sync_alerts"


def alert_text(
    *,
    dag_id: str,
    run_id: str,
    status: str,
    reason: str | None = None,
    report: dict[str, Any] | None = None,
    task_id: str | None = None,
) -> str:
    """The summary: what failed, why, and the run's counts when there is a report."""
    head = f"[crm-sync] {dag_id} run {run_id}: {status}"
    if task_id:
        head += f" in task {task_id}"
    lines = [head]
    if reason:
        lines.append(f"  reason: {redact_text(str(reason))[:600]}")
    if report:
        from crm_sync.report import summarize

        lines.extend("  " + line for line in summarize(report)[1:8])
    lines.append("  details: Airflow UI -> Browse -> Sync health, and the task logs")
    return "\n".join(lines)


def _webhook_url() -> str | None:
    url = os.environ.get(WEBHOOK_ENV)
    if url:
        return url
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(WEBHOOK_CONN_ID)
    except Exception:  # no such connection: logs only
        return None
    host = conn.host or ""
    return host if "://" in host else None


def send(text: str, payload: dict[str, Any] | None = None) -> bool:
    """Log the alert and, when configured, post it to the webhook. Returns True if posted."""
    log.warning("%s", text)
    url = _webhook_url()
    if not url:
        return False
    body = json.dumps({"text": text, **(payload or {})}).encode()
    req = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            ok = 200 <= resp.status < 300
    except OSError as exc:
        # An alert channel that is down must not fail the task that reports the problem.
        log.error("could not post the alert to %s: %s", redact_url(url), redact_text(str(exc)))
        return False
    if not ok:
        log.error("alert webhook %s answered HTTP %s", redact_url(url), resp.status)
    return ok


class SyncAlertNotifier(BaseNotifier):
    """``on_failure_callback`` for the sync DAGs: one summary per failed task."""

    def notify(self, context: Any) -> None:
        ti = context.get("ti") or context.get("task_instance")
        dag = context.get("dag")
        dag_id = getattr(dag, "dag_id", None) or getattr(ti, "dag_id", "?")
        run_id = str(context.get("run_id") or getattr(ti, "run_id", "?"))
        exc = context.get("exception")
        _release_lease(context, dag_id, run_id)
        report = _stored_report(context, dag_id, run_id)
        status = (report or {}).get("status") or "failed"
        text = alert_text(
            dag_id=dag_id,
            run_id=run_id,
            status=status,
            reason=f"{type(exc).__name__}: {exc}" if exc else None,
            report=report,
            task_id=getattr(ti, "task_id", None),
        )
        send(text, {"dag_id": dag_id, "run_id": run_id, "status": status})


def _release_lease(context: Any, dag_id: str, run_id: str) -> None:
    """A failed task ends its run: the next run of the DAG must not wait for its lease."""
    try:
        from crm_sync.runtime import conn_ids_from, shared_store

        shared_store(conn_ids_from(context.get("params") or {})["state"]).release_lease(
            dag_id, run_id
        )
    except Exception:  # the state store itself may be what failed; the lease expires then
        log.debug("lease not released", exc_info=True)


def _stored_report(context: Any, dag_id: str, run_id: str) -> dict[str, Any] | None:
    """The run report from the state store, when the run got that far."""
    try:
        from crm_sync.runtime import conn_ids_from, shared_store

        store = shared_store(conn_ids_from(context.get("params") or {})["state"])
        run = store.get_run(dag_id, run_id)
    except Exception:  # the state store itself may be what failed
        log.debug("no run report for the alert", exc_info=True)
        return None
    return dict(run.report) if run is not None and run.report else None
