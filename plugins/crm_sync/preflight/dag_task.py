"""The task of the ``crm_sync_preflight`` DAG (the DAG file only wires it).

Runs every check with the run's connections (params ``salesforce_conn_id``, ``leadgen_conn_id``,
``state_conn_id`` may point elsewhere), logs the checklist, records the result (so the sync
DAGs' gate does not check again) and fails the task -- without retries -- when a check failed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NoReturn

from crm_sync.errors import FatalError

log = logging.getLogger(__name__)


def guarded(sf: Any, conn_ids: Mapping[str, str]) -> Any:
    """``sf`` held to this product's 24-hour Salesforce API budget (``crm_sync.budget``)."""
    from crm_sync.budget import current_budget, guard
    from crm_sync.runtime import shared_store

    return guard(sf, current_budget(shared_store(conn_ids["state"])))


def fail_fast(exc: FatalError) -> NoReturn:
    """A fatal error fails the Airflow task at once (retrying cannot fix configuration)."""
    from airflow.sdk.exceptions import AirflowFailException

    log.error("%s", exc)
    raise AirflowFailException(f"{type(exc).__name__}: {exc}") from None


def run(context: Mapping[str, Any]) -> dict[str, Any]:
    """The preflight as a task; returns the report (XCom: no secrets in it)."""
    from crm_sync.preflight.cli import open_clients
    from crm_sync.preflight.gating import check_and_record, enforce, log_report
    from crm_sync.runtime import conn_ids_from

    conn_ids = conn_ids_from(context.get("params") or {})
    sf, lg, errors = open_clients(conn_ids)
    report = check_and_record(
        guarded(sf, conn_ids) if sf is not None else None, lg, conn_ids=conn_ids, errors=errors
    )
    log_report(report)
    try:
        enforce(report)
    except FatalError as exc:
        fail_fast(exc)
    return report.to_dict()
