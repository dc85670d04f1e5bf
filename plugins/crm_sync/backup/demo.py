"""What ``make demo`` shows before the first sync run: the preflight checklist and the backup.

``scripts/demo.py`` calls :func:`preflight_and_backup` once both sandboxes are seeded and the
connections are set, and prints :meth:`Readiness.lines`. The preflight result is recorded and
the backup covers the specs, so the sync DAGs' gate and backup check pass at once afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from crm_sync.backup.catalog import backup_now
from crm_sync.backup.snapshot import BackupInfo
from crm_sync.preflight.cli import open_clients
from crm_sync.preflight.gating import check_and_record
from crm_sync.preflight.model import Report
from crm_sync.runtime import DEFAULT_CONN_IDS


@dataclass(frozen=True)
class Readiness:
    report: Report
    backup: BackupInfo | None  # None when the preflight failed (nothing is backed up then)

    @property
    def ok(self) -> bool:
        return self.report.ok and self.backup is not None

    def lines(self) -> Iterator[str]:
        yield from self.report.lines()
        if self.backup is None:
            yield "backup: not taken (the preflight failed)"
            return
        m = self.backup.manifest
        yield f"backup: {self.backup.path} ({m['records']:,} records, manifest.json with sha256)"
        for f in m["files"]:
            yield f"  {f['file']:<34} {f['records']:>7,} records  {f['bytes']:>10,} bytes"


def preflight_and_backup(
    conn_ids: Mapping[str, str] | None = None, *, location: Path | None = None
) -> Readiness:
    """Run the preflight with the configured connections; when it passes, take a backup
    (``location`` defaults to ``CRM_SYNC_BACKUP_DIR``)."""
    ids = {**DEFAULT_CONN_IDS, **(conn_ids or {})}
    sf, lg, errors = open_clients(ids)
    report = check_and_record(sf, lg, conn_ids=ids, errors=errors)
    if not report.ok:
        return Readiness(report, None)
    return Readiness(report, backup_now(sf, lg, ids, location=location))
