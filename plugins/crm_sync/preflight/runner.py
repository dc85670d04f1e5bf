"""Run every check, in order, against two clients and the specs: :func:`run_preflight`.

Independent of Airflow: the clients may be real (``crm_sync.runtime``), guarded by the API
budget, or in-process fakes. Nothing is written anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from crm_sync.errors import SyncError
from crm_sync.preflight.facts import (
    OBJECT_SPEC_NAMES,
    Facts,
    SpecSet,
    Unavailable,
    error_text,
    load_spec_set,
)
from crm_sync.preflight.fields import (
    check_specs_load,
    check_sync_field,
    check_write_access,
    sync_field_requirements,
)
from crm_sync.preflight.model import Check, Report, Status, failed
from crm_sync.preflight.org import (
    check_api_allowance,
    check_api_only_user,
    check_edition,
    check_integration_user,
    check_leadgen_connection,
    check_modify_all_data,
    check_password_never_expires,
    check_salesforce_connection,
    check_session_level,
)
from crm_sync.preflight.owners import check_owners

if TYPE_CHECKING:
    from crm_sync.clients.leadgen import LeadGenClient
    from crm_sync.clients.salesforce import SalesforceClient

log = logging.getLogger(__name__)

CheckFn = Callable[[Facts], Check]


def plan(specs: SpecSet) -> list[tuple[str, CheckFn]]:
    """The checks to run, in order, by name: the connections first (a system that does not
    answer makes the checks that need it skip), then the org, the user, the specs' fields."""
    steps: list[tuple[str, CheckFn]] = [
        ("Salesforce connection", check_salesforce_connection),
        ("Lead Gen & CRM connection", check_leadgen_connection),
        ("Salesforce edition", check_edition),
        ("integration user", check_integration_user),
        ("API Only User", check_api_only_user),
        ("Modify All Data", check_modify_all_data),
        ("password never expires", check_password_never_expires),
        ("session security level", check_session_level),
        ("daily API allowance", check_api_allowance),
        ("mapping specs", check_specs_load),
    ]
    for req in sync_field_requirements(specs):
        steps.append((f"field {req.sobject}.{req.field}", partial(check_sync_field, req=req)))
    for name in (*OBJECT_SPEC_NAMES, "engagement"):
        steps.append((f"write access {name}.yaml", partial(check_write_access, spec_name=name)))
    steps.append(("owners.yaml", check_owners))
    return steps


def _run_one(name: str, fn: CheckFn, facts: Facts) -> Check:
    try:
        return fn(facts)
    except Unavailable as exc:
        return Check(name, Status.SKIP, str(exc))
    except SyncError as exc:  # a read the check needs failed (not a connection: those ran first)
        return failed(
            name,
            f"could not be checked: {error_text(exc)}",
            "see the error; check the integration user's access to what it names",
        )


def run_preflight(
    sf: SalesforceClient | None,
    lg: LeadGenClient | None,
    *,
    username: str | None,
    specs: SpecSet | None = None,
    errors: dict[str, BaseException] | None = None,
    conn_ids: Mapping[str, str] | None = None,
) -> Report:
    """Check every requirement (see ``docs/preflight.md``) and return the checklist.

    ``username`` is the integration user (the Salesforce connection's login). ``specs`` default
    to the mappings folder. ``errors`` holds why a client could not be built, by system name
    (``facts.SALESFORCE`` / ``facts.LEADGEN``); that client is then None. Read-only.
    """
    specs = specs if specs is not None else load_spec_set()
    facts = Facts(sf, lg, username=username, specs=specs, errors=errors, conn_ids=conn_ids)
    report = Report(started_at=datetime.now(UTC).isoformat())
    for name, fn in plan(specs):
        check = _run_one(name, fn, facts)
        report.checks.append(check)
        log.debug("preflight %s: %s %s", check.name, check.status.value, check.detail)
    report.finished_at = datetime.now(UTC).isoformat()
    report.target = facts.target()
    report.transient = list(dict.fromkeys(facts.transient))
    log.info("%s", report.summary())
    return report
