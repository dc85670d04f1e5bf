"""Command line: ``python -m crm_sync.backup`` (``make backup``).

Takes a backup with the configured Airflow connections (as ``make verify`` finds them), or lists
or verifies the backups already taken. Exit codes: 0 done (or intact), 1 ``--verify`` found a
problem, 2 the command failed (a connection missing or refused, a spec that does not load...).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from crm_sync.backup.catalog import backup_dir, backup_now, list_backups, verify_backup
from crm_sync.preflight.cli import add_connection_args, connect, report_error, start

EXIT_OK, EXIT_DAMAGED = 0, 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m crm_sync.backup",
        description=(
            "Back up every Salesforce field the mapping specs map and the Lead Gen & CRM leads, "
            "opportunities and accounts (read only on both systems)."
        ),
    )
    add_connection_args(p)
    p.add_argument("--location", type=Path, help="backup folder (default: CRM_SYNC_BACKUP_DIR)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--list", action="store_true", help="list the backups taken")
    what.add_argument(
        "--verify", metavar="NAME", help="check a backup's files against its manifest ('latest')"
    )
    return p


def _list(root: Path, out: TextIO) -> int:
    for info in list_backups(root):
        m = info.manifest
        out.write(
            f"{info.path}  {m.get('records', 0)} records  org={m['salesforce'].get('org_id')} "
            f"account={m['leadgen'].get('account_id')}\n"
        )
    return EXIT_OK


def _verify(root: Path, name: str, out: TextIO) -> int:
    backups = list_backups(root)
    if name == "latest":
        path = backups[-1].path if backups else root / "<none>"
    else:
        path = root / name
    problems = verify_backup(path)
    for problem in problems:
        out.write(f"{path}: {problem}\n")
    if not problems:
        out.write(f"{path}: intact\n")
    return EXIT_DAMAGED if problems else EXIT_OK


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Take (default), list or verify backups; return the exit code."""
    args, out, err = start(build_parser(), argv, stdout, stderr)
    root = args.location or backup_dir()
    try:
        if args.list:
            return _list(root, out)
        if args.verify:
            return _verify(root, args.verify, out)
        conn_ids, sf, lg, errors = connect(args, err)
        if errors:  # a backup needs both systems
            raise next(iter(errors.values()))
        info = backup_now(sf, lg, conn_ids, location=root)
    except Exception as exc:  # the command failed
        return report_error(err, "crm_sync.backup", exc)
    out.write(f"backup {info.path}\n")
    for file, count in info.records().items():
        out.write(f"  {file}: {count} records\n")
    return EXIT_OK
