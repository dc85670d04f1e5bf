"""Command line: ``python -m crm_sync.verify [options]`` (``make verify``).

Exit codes: 0 no violation, 1 at least one violation, 2 the checker itself failed (a connection
missing or refused, a spec that does not load, a store that does not exist, bad options).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import crm_sync.verify._lib as _lib
from crm_sync.verify.runner import CHECKS, DAGS, Options, checked, needs_clients

log = logging.getLogger(__name__)

EXIT_OK, EXIT_VIOLATIONS, EXIT_ERROR = 0, 1, 2
_RELATIVE = re.compile(r"^(\d+)\s*([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str) -> datetime:
    """ISO 8601 date or datetime; naive values are UTC."""
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {text!r}") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_since(text: str) -> datetime | timedelta:
    """``--since``: an ISO time, or a span before ``--until`` such as ``90m``, ``24h``, ``7d``."""
    m = _RELATIVE.match(text.strip())
    if m:
        return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    return parse_time(text)


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def build_parser() -> argparse.ArgumentParser:
    conns = _lib.DEFAULT_CONN_IDS
    p = argparse.ArgumentParser(
        prog="python -m crm_sync.verify",
        description=(
            "Read Salesforce, Lead Gen & CRM and the sync state store (read only) and report every "
            "broken sync invariant. Exit 0: none; 1: violations; 2: the checker failed."
        ),
    )
    p.add_argument("--salesforce-conn", default=conns["salesforce"], metavar="CONN_ID")
    p.add_argument("--leadgen-conn", default=conns["leadgen"], metavar="CONN_ID")
    p.add_argument("--state-conn", default=conns["state"], metavar="CONN_ID")
    p.add_argument(
        "--dag",
        action="append",
        default=[],
        choices=DAGS,
        help="only the invariants of this DAG (repeatable)",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        type=_names,
        metavar="CHECK[,CHECK]",
        help=f"only these checks: {', '.join(CHECKS)}",
    )
    p.add_argument(
        "--since",
        type=parse_since,
        help="engagement events from this time (ISO) or span before --until (24h, 7d); default 24h",
    )
    p.add_argument(
        "--until",
        type=parse_time,
        help="engagement events before this time (ISO); default: the engagement watermark",
    )
    p.add_argument("--json", action="store_true", help="JSON Lines: one violation per line")
    p.add_argument("--workdir", help="folder for the temporary work file (default: the system's)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return p


def _log_to(stream: TextIO, verbose: bool) -> None:
    """Logs to ``stream`` (stderr), through a filter that removes secret shapes (the Lead Gen &
    CRM secret key travels in URLs)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=stream,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_lib.SecretsFilter())


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the checker; return the exit code."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = build_parser().parse_args(argv)
    _log_to(err, args.verbose)

    options = Options(
        checks=[n for group in args.only for n in group],
        dags=list(args.dag),
        since=args.since,
        until=args.until,
        workdir=Path(args.workdir) if args.workdir else None,
    )
    store = None
    try:
        conn_ids = (args.state_conn, args.salesforce_conn, args.leadgen_conn)
        exposed = _lib.expose_connections(conn_ids)
        _log_to(err, args.verbose)  # Airflow, now imported, sent logging to stdout
        if exposed:
            log.info("connections read from the Airflow metadata database: %s", ", ".join(exposed))
        store = _lib.open_store_read_only(args.state_conn)
        sf = lg = None
        if needs_clients(options):
            sf = _lib.salesforce_client(args.salesforce_conn)
            lg = _lib.leadgen_client(args.leadgen_conn)
        _log_to(err, args.verbose)  # in case the hooks configured logging again
        with checked(sf, lg, store, options) as report:
            lines = report.json_lines() if args.json else report.text()
            for line in lines:
                out.write(line + "\n")
            out.flush()
            return EXIT_VIOLATIONS if report.total else EXIT_OK
    except Exception as exc:  # every failure of the checker itself is exit code 2, said once
        # The traceback repeats the message: it is redacted as text, never logged raw.
        trace = "".join(traceback.format_exception(exc))
        log.debug("checker failed:\n%s", _lib.redact_text(trace))
        err.write(f"crm_sync.verify: error: {_lib.redact_text(f'{type(exc).__name__}: {exc}')}\n")
        return EXIT_ERROR
    finally:
        if store is not None:
            store.dispose()
