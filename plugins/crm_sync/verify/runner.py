"""Which checks run, on what, and the report they fill.

Checks are named (``--only``) and belong to a DAG (``--dag``); a run reads only what its checks
need. Nothing here writes to either system or to the state store: the clients are only asked to
read, the store is opened without migrations and only queried, and every intermediate result
lives in a temporary SQLite file that is deleted at the end.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import crm_sync.verify._lib as _lib
from crm_sync.verify import engagement, fields, opportunities, people, state_checks
from crm_sync.verify.model import Report, Violation
from crm_sync.verify.snapshot import Snapshot
from crm_sync.verify.sources import Sources

log = logging.getLogger(__name__)

DAGS = (_lib.DAG_PEOPLE, _lib.DAG_OPPORTUNITIES, _lib.DAG_ENGAGEMENT)
# check name -> the DAG whose invariants it checks ("" = every DAG's, filtered by --dag)
CHECKS: dict[str, str] = {
    "people": _lib.DAG_PEOPLE,
    "duplicates": _lib.DAG_PEOPLE,
    "fields": _lib.DAG_PEOPLE,
    "links": "",
    "engagement": _lib.DAG_ENGAGEMENT,
    "opportunities": _lib.DAG_OPPORTUNITIES,
    "quarantine": "",
}
# Checks that read only the state store (no Salesforce or Lead Gen & CRM connection needed).
STORE_ONLY = frozenset({"links", "quarantine"})
LINK_DOMAINS = {
    _lib.DAG_PEOPLE: (_lib.DOMAIN_PERSON,),
    _lib.DAG_OPPORTUNITIES: (
        _lib.DOMAIN_OPPORTUNITY,
        _lib.DOMAIN_ACCOUNT,
        _lib.DOMAIN_MEMBERSHIP,
    ),
    _lib.DAG_ENGAGEMENT: (),
}


@dataclass
class Options:
    """What to check: check names and DAGs (empty = all), the engagement event range."""

    checks: list[str] = field(default_factory=list)
    dags: list[str] = field(default_factory=list)
    since: datetime | timedelta | None = None
    until: datetime | None = None
    workdir: Path | None = None

    def selected(self) -> list[str]:
        """Check names to run, in :data:`CHECKS` order."""
        unknown = sorted(set(self.checks) - set(CHECKS)) + sorted(set(self.dags) - set(DAGS))
        if unknown:
            raise _lib.ConfigError(
                f"unknown check or DAG: {', '.join(unknown)} "
                f"(checks: {', '.join(CHECKS)}; DAGs: {', '.join(DAGS)})"
            )
        names = [c for c in CHECKS if not self.checks or c in self.checks]
        if self.dags:
            names = [c for c in names if CHECKS[c] in ("", *self.dags)]
            if not any(LINK_DOMAINS[d] for d in self.dags):
                names = [c for c in names if c != "links"]  # engagement keeps no links
        return names


def needs_clients(options: Options) -> bool:
    return any(c not in STORE_ONLY for c in options.selected())


def _check_fns(options: Options) -> dict[str, Callable[[Sources], Iterable[Violation]]]:
    dags = options.dags or list(DAGS)
    domains = [d for dag in dags for d in LINK_DOMAINS[dag]]

    def people_both(src: Sources) -> Iterator[Violation]:
        yield from people.missing_in_salesforce(src)
        yield from people.missing_in_leadgen(src)

    return {
        "people": people_both,
        "duplicates": people.duplicates,
        "fields": fields.field_mismatches,
        "links": lambda src: state_checks.double_links(src, domains),
        "engagement": lambda src: engagement.task_checks(src, options.since, options.until),
        "opportunities": opportunities.opportunity_checks,
        "quarantine": lambda src: state_checks.quarantine_reasons(src, options.dags or None),
    }


@contextmanager
def checked(sf: Any, lg: Any, store: Any, options: Options) -> Iterator[Report]:
    """Run the selected checks against the clients and store; yield the filled report.

    The report's violations live in the temporary work file, which is removed when the block
    ends: render the report inside it. ``sf``/``lg`` may be None when only store checks are
    selected. Exceptions propagate (the CLI turns them into exit code 2).
    """
    names = options.selected()
    fns = _check_fns(options)
    with tempfile.TemporaryDirectory(prefix="crm_sync_verify_", dir=options.workdir) as tmp:
        snap = Snapshot(str(Path(tmp) / "verify.db"))
        try:
            src = Sources(sf, lg, store, snap)
            report = Report(snap.db, checks=names)
            for name in names:
                before = report.total
                for violation in fns[name](src):
                    report.add(violation)
                log.info("check %s: %d violation(s)", name, report.total - before)
            report.read.update(src.read)
            report.notes.extend(src.notes)
            report.api_calls = {
                side: int(client.api_calls)
                for side, client in (("salesforce", sf), ("leadgen", lg))
                if client is not None
            }
            yield report
        finally:
            snap.close()
