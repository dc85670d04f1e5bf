"""The preflight as a gate in front of the sync, and as a recorded check.

:func:`gate` is what a sync DAG's ``prepare`` calls: the first run against a pair of systems (or
after the mapping specs changed) runs the whole preflight and records its result; later runs
find the recorded success and return at once, without an API call. A failed preflight stops
the run before anything is read or written: :class:`~crm_sync.errors.ConfigError` with the
failed checks and their fixes (a task fails without retries), or
:class:`~crm_sync.errors.RetriableError` when a check could not finish because a system was
briefly unavailable (Airflow retries the task).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from crm_sync.errors import ConfigError, RetriableError
from crm_sync.preflight.facts import loadable_spec_set
from crm_sync.preflight.model import Report, Status
from crm_sync.preflight.record import (
    connection_identity,
    load_record,
    record_key,
    save_record,
)
from crm_sync.preflight.runner import run_preflight

log = logging.getLogger(__name__)


class RuntimeLike(Protocol):
    """What :func:`gate` needs of a task runtime (``crm_sync.tasks.TaskRuntime`` has it)."""

    conn_ids: Mapping[str, str]

    @property
    def salesforce(self) -> Any: ...

    @property
    def leadgen(self) -> Any: ...


def check_and_record(
    sf: Any,
    lg: Any,
    *,
    conn_ids: Mapping[str, str] | None = None,
    errors: dict[str, BaseException] | None = None,
    identity: Mapping[str, Any] | None = None,
) -> Report:
    """Run the preflight against these clients and record the result for their connections.

    ``identity`` defaults to :func:`connection_identity` of ``conn_ids``; its Salesforce login
    is the integration user the checks look at.
    """
    identity = identity if identity is not None else connection_identity(conn_ids)
    report = run_preflight(
        sf,
        lg,
        username=identity.get("salesforce", {}).get("login"),
        errors=errors,
        conn_ids=conn_ids,
    )
    path = save_record(record_key(identity), identity, report)
    log.info("preflight result recorded in %s", path)
    return report


def log_report(report: Report) -> None:
    """The checklist in the task log, as one record: ERROR when a check failed, WARNING when one
    warned, INFO otherwise."""
    if not report.ok:
        level = logging.ERROR
    elif report.with_status(Status.WARN):
        level = logging.WARNING
    else:
        level = logging.INFO
    log.log(level, "%s", report.text())


def gate(rt: RuntimeLike, *, identity: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run the preflight unless it already passed for these connections and specs.

    Returns a small summary for the prepare task's XCom. Raises ``ConfigError`` listing every
    failed check with its fix, or ``RetriableError`` when a check could not finish for a passing
    reason. ``identity`` overrides :func:`connection_identity` (tests).
    """
    loadable_spec_set("the sync cannot run")  # a broken spec needs no API call to refuse
    identity = identity if identity is not None else connection_identity(rt.conn_ids)
    key = record_key(identity)
    previous = load_record(key)
    if previous and previous.get("ok"):
        log.info("preflight passed at %s for these connections and specs", previous["recorded_at"])
        return {"preflight": "passed earlier", "checked_at": previous["recorded_at"]}
    report = check_and_record(rt.salesforce, rt.leadgen, conn_ids=rt.conn_ids, identity=identity)
    log_report(report)
    enforce(report)
    return {"preflight": "passed", "checked_at": report.finished_at, **report.counts()}


def enforce(report: Report) -> None:
    """Nothing when the preflight passed; else ``RetriableError`` when a check could not finish
    for a passing reason (an outage, a rate limit), ``ConfigError`` with the fixes otherwise."""
    if report.ok:
        return
    if report.transient:
        raise RetriableError(
            "preflight could not finish (" + "; ".join(report.transient) + "); retrying later",
            code="PREFLIGHT_UNFINISHED",
        )
    raise ConfigError(report.failure_text())
