"""Backups of both systems before the sync writes: one dated, compressed snapshot per backup.

* :func:`take_backup` (:mod:`.snapshot`) -- every Salesforce field the specs map (Bulk API 2.0
  query) and the Lead Gen & CRM leads, opportunities and accounts, as gzip JSON lines with a
  manifest (counts, fields, sha256, org and account ids, times);
* :func:`ensure_backup`, :func:`require_backup` (:mod:`.catalog`) -- the first run that would
  write takes a backup; no write happens before one exists unless
  ``CRM_SYNC_REQUIRE_BACKUP=false`` (logged at WARNING every run);
* ``python -m crm_sync.backup`` / ``make backup`` (:mod:`.cli`) and the ``crm_sync_backup`` DAG
  (:func:`crm_sync.backup.dag_task.run`).

See ``docs/backup.md`` (layout, settings, how to restore, what cannot be restored).
"""

from crm_sync.backup.catalog import (
    NO_BACKUP,
    backup_dir,
    backup_now,
    backup_required,
    ensure_backup,
    latest_backup,
    list_backups,
    require_backup,
    verify_backup,
)
from crm_sync.backup.snapshot import BackupInfo, take_backup

__all__ = [
    "NO_BACKUP",
    "BackupInfo",
    "backup_dir",
    "backup_now",
    "backup_required",
    "ensure_backup",
    "latest_backup",
    "list_backups",
    "require_backup",
    "take_backup",
    "verify_backup",
]
