"""Command line: ``python -m crm_sync.undo --run-id RUN [--dag-id DAG] [--apply] [--delete-created]``.

A dry run by default (what would be restored, the conflicts, the created records); ``--apply``
writes. Uses the configured Airflow connections and the sync state store, like ``make verify``.
The undo is recorded as a run of ``crm_sync_undo`` (id ``cli__<time>``). Exit codes: 0 done, 1
some writes failed (listed; run it again to retry them), 2 the command failed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from crm_sync.preflight.cli import add_connection_args, connect, report_error, start
from crm_sync.undo.runner import UndoJob

EXIT_OK, EXIT_INCOMPLETE = 0, 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m crm_sync.undo",
        description="Undo a sync run: restore the fields it overwrote where nobody changed them "
        "since (conflicts are reported, never overwritten), report or remove the records it "
        "created. A dry run unless --apply.",
    )
    add_connection_args(p)
    p.add_argument("--run-id", required=True, help="the run to undo")
    p.add_argument("--dag-id", default="sync_leads_contacts", help="its DAG")
    p.add_argument("--apply", action="store_true", help="write (default: dry run)")
    p.add_argument(
        "--delete-created",
        action="store_true",
        help="delete the Salesforce records and deactivate the leads the run created",
    )
    p.add_argument("--json", action="store_true", help="the report as one JSON object")
    return p


def _text(report: dict[str, Any], out: TextIO) -> None:
    target = report["target"]
    mode = "dry run" if report["dry_run"] else "applied"
    out.write(f"undo of {target['dag_id']} {target['run_id']} ({mode}): {report['status']}\n")
    for outcome, n in report["undo"].items():
        out.write(f"  {outcome}: {n}\n")
    for outcome in ("conflict", "created_changed", "failed"):
        for e in report["entries"].get(outcome, []):
            out.write(f"  {outcome}: {json.dumps(e, default=str, sort_keys=True)}\n")


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Undo one run; return the exit code."""
    from crm_sync.backup import require_backup
    from crm_sync.runtime import shared_store
    from crm_sync.undo.service import UndoIncomplete, execute, open_systems

    args, out, err = start(build_parser(), argv, stdout, stderr)
    job = UndoJob(
        target_dag=args.dag_id,
        target_run=args.run_id,
        run_id=f"cli__{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}",
        dry_run=not args.apply,
        delete_created=args.delete_created,
    )
    try:
        conn_ids, sf, lg, errors = connect(args, err)
        if errors:  # an undo reads both systems
            raise next(iter(errors.values()))
        store = shared_store(conn_ids["state"])
        systems = open_systems(conn_ids, sf, lg)
        report = execute(job, store, systems, before_write=lambda: require_backup(conn_ids))
        code = EXIT_OK
    except UndoIncomplete:
        run = store.get_run(job.dag_id, job.run_id)
        report, code = dict(run.report or {}), EXIT_INCOMPLETE
    except Exception as exc:  # the command failed
        return report_error(err, "crm_sync.undo", exc)
    if args.json:
        out.write(json.dumps(report, default=str, sort_keys=True) + "\n")
    else:
        _text(report, out)
    return code
