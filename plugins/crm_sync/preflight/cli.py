"""Command line: ``python -m crm_sync.preflight`` (``make preflight``).

Uses the configured Airflow connections, as ``make verify`` does (connections kept in the Airflow
metadata database are found too), starts nothing, writes nothing but its result record.
Exit codes: 0 every check passed (warnings allowed), 1 a check failed or was skipped, 2 the
command itself failed.

:func:`open_clients` and :func:`log_to` are shared with ``python -m crm_sync.backup``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from crm_sync.errors import ConfigError, SyncError
from crm_sync.preflight.facts import LEADGEN, SALESFORCE, error_text
from crm_sync.redact import redact_text
from crm_sync.runtime import DEFAULT_CONN_IDS

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def add_connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--salesforce-conn", default=DEFAULT_CONN_IDS["salesforce"], metavar="CONN_ID")
    p.add_argument("--leadgen-conn", default=DEFAULT_CONN_IDS["leadgen"], metavar="CONN_ID")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")


def conn_ids_of(args: argparse.Namespace) -> dict[str, str]:
    return {
        **DEFAULT_CONN_IDS,
        "salesforce": args.salesforce_conn,
        "leadgen": args.leadgen_conn,
    }


def log_to(stream: TextIO, verbose: bool) -> None:
    """Logs to ``stream`` through a filter that removes secret shapes, as the checker's command
    line does (called again after Airflow is imported: it sends logging to stdout)."""
    from crm_sync.verify.cli import _log_to

    _log_to(stream, verbose)


def expose(conn_ids: Mapping[str, str]) -> None:
    """Let this process see connections kept in the Airflow metadata database (the checker's
    way: ``crm_sync.verify._lib.expose_connections``)."""
    from crm_sync.verify._lib import expose_connections

    exposed = expose_connections(conn_ids.values())
    if exposed:
        log.info("connections read from the Airflow metadata database: %s", ", ".join(exposed))


def open_clients(conn_ids: Mapping[str, str]) -> tuple[Any, Any, dict[str, BaseException]]:
    """(Salesforce client, Lead Gen & CRM client, why a client could not be built by system).

    A client that cannot be built is None; the error is kept, never raised, so the caller can
    report both connections at once."""
    from crm_sync.runtime import leadgen_client, salesforce_client

    errors: dict[str, BaseException] = {}
    clients: list[Any] = []
    for system, build, conn_id in (
        (SALESFORCE, salesforce_client, conn_ids["salesforce"]),
        (LEADGEN, leadgen_client, conn_ids["leadgen"]),
    ):
        try:
            clients.append(build(conn_id))
        except SyncError as exc:
            clients.append(None)
            errors[system] = exc
        except Exception as exc:  # the hook's own "not defined" errors
            clients.append(None)
            errors[system] = ConfigError(
                f"connection {conn_id!r} is not defined or incomplete ({type(exc).__name__})"
            )
    return clients[0], clients[1], errors


def start(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    stdout: TextIO | None,
    stderr: TextIO | None,
) -> tuple[argparse.Namespace, TextIO, TextIO]:
    """(options, stdout, stderr) of a command, logging set up on stderr."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = parser.parse_args(argv)
    log_to(err, args.verbose)
    return args, out, err


def connect(args: argparse.Namespace, err: TextIO) -> tuple[dict[str, str], Any, Any, dict]:
    """(connection ids, Salesforce client, Lead Gen & CRM client, errors) for the options."""
    conn_ids = conn_ids_of(args)
    expose(conn_ids)
    sf, lg, errors = open_clients(conn_ids)
    log_to(err, args.verbose)  # Airflow, now imported, sent logging to stdout
    return conn_ids, sf, lg, errors


def report_error(err: TextIO, prog: str, exc: BaseException) -> int:
    """A command that failed: one redacted line on stderr (the traceback at DEBUG, redacted)."""
    log.debug("%s failed:\n%s", prog, redact_text("".join(traceback.format_exception(exc))))
    err.write(f"{prog}: error: {error_text(exc)}\n")
    return EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m crm_sync.preflight",
        description=(
            "Check the Salesforce org, the integration user, the Lead Gen & CRM account and the "
            "mapping specs against what the sync needs (read only). Exit 0: passed; 1: a check "
            "failed; 2: the preflight itself failed."
        ),
    )
    add_connection_args(p)
    p.add_argument("--json", action="store_true", help="the report as one JSON object")
    return p


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the preflight and print the checklist; return the exit code."""
    from crm_sync.preflight.gating import check_and_record

    args, out, err = start(build_parser(), argv, stdout, stderr)
    try:
        conn_ids, sf, lg, errors = connect(args, err)
        report = check_and_record(sf, lg, conn_ids=conn_ids, errors=errors)
    except Exception as exc:  # the preflight itself failed
        return report_error(err, "crm_sync.preflight", exc)
    if args.json:
        out.write(json.dumps(report.to_dict(), sort_keys=True) + "\n")
    else:
        out.write(report.text() + "\n")
    out.flush()
    return EXIT_OK if report.ok else EXIT_FAILED
