"""Where backups live, which one counts, and the rule "no write before a backup".

A backup counts for a run when it is complete (its folder has a manifest), was taken of the
same systems (the connections' identity key, ``crm_sync.preflight.record``) and holds every
Salesforce field the current specs map (a spec that maps a new field needs a new backup before
the sync writes that field).

* :func:`ensure_backup` -- a sync DAG's ``prepare``: a run that will write and finds no backup
  takes one itself (the first run);
* :func:`require_backup` -- right before a write: refuses (``ConfigError``) when there is none;
* ``CRM_SYNC_REQUIRE_BACKUP=false`` waives both, with a WARNING in every run's log.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crm_sync.backup.snapshot import MANIFEST, BackupInfo, salesforce_fields, sha256_of, take_backup
from crm_sync.errors import ConfigError
from crm_sync.preflight.facts import SpecSet, loadable_spec_set
from crm_sync.preflight.gating import RuntimeLike
from crm_sync.preflight.record import connection_identity, identity_key
from crm_sync.settings import sync_home

log = logging.getLogger(__name__)

NO_BACKUP = "no backup yet: run crm_sync_backup or set CRM_SYNC_REQUIRE_BACKUP=false"
WAIVED = (
    "CRM_SYNC_REQUIRE_BACKUP=false: writing to Salesforce and Lead Gen & CRM WITHOUT A BACKUP; "
    "what this run changes cannot be restored from a snapshot"
)


def backup_dir() -> Path:
    """Where backups go (``CRM_SYNC_BACKUP_DIR``; default ``$CRM_SYNC_HOME/backups``)."""
    return Path(os.environ.get("CRM_SYNC_BACKUP_DIR") or sync_home() / "backups")


def backup_required() -> bool:
    """False only when ``CRM_SYNC_REQUIRE_BACKUP`` is false/0/no/off."""
    value = os.environ.get("CRM_SYNC_REQUIRE_BACKUP", "true").strip().lower()
    return value not in ("false", "0", "no", "off")


def list_backups(location: Path | None = None) -> list[BackupInfo]:
    """Every complete backup under ``location``, oldest first (names sort by time)."""
    root = Path(location or backup_dir())
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not a backup (or a damaged one): never counts
        out.append(BackupInfo(folder, manifest))
    return out


def load_specs() -> SpecSet:
    """The mapping specs, all of them: a backup taken while one does not load would miss its
    fields, so that is a ``ConfigError``."""
    return loadable_spec_set("the fields to back up are unknown")


def covers(info: BackupInfo, wanted: Mapping[str, list[str]]) -> bool:
    """Does the backup hold every field of ``wanted`` (object -> fields)? A field that did not
    exist when the backup was taken (``not_exported``) counts as held: it had no values."""
    held: dict[str, set[str]] = {}
    for f in info.manifest.get("files", []):
        if f.get("system") == "salesforce":
            held[f["object"]] = set(f.get("fields", [])) | set(f.get("not_exported", []))
    return all(set(fields) <= held.get(obj, set()) for obj, fields in wanted.items())


def latest_backup(
    key: str | None, *, specs: SpecSet | None = None, location: Path | None = None
) -> BackupInfo | None:
    """The newest backup of the systems with identity ``key`` that holds every field the specs
    map (``specs`` default to the mappings folder), or None."""
    wanted = salesforce_fields(specs if specs is not None else load_specs())
    for info in reversed(list_backups(location)):
        if info.manifest.get("identity_key") == key and covers(info, wanted):
            return info
    return None


def verify_backup(path: Path) -> list[str]:
    """What is wrong with the backup at ``path``: a file missing, a checksum or a record count
    that differs from the manifest (empty list: intact). Reads every file (streaming)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{path}: no readable {MANIFEST} ({type(exc).__name__})"]
    problems = []
    for entry in manifest.get("files", []):
        file = path / entry["file"]
        if not file.is_file():
            problems.append(f"{entry['file']}: missing")
            continue
        if sha256_of(file) != entry["sha256"]:
            problems.append(f"{entry['file']}: sha256 differs from the manifest")
        with gzip.open(file, "rt", encoding="utf-8") as fh:
            count = sum(1 for _ in fh)
        if count != entry["records"]:
            problems.append(f"{entry['file']}: {count} records, manifest says {entry['records']}")
    return problems


def require_backup(
    conn_ids: Mapping[str, str] | None = None,
    *,
    identity: Mapping[str, Any] | None = None,
    specs: SpecSet | None = None,
    location: Path | None = None,
) -> BackupInfo | None:
    """Call right before writing: the backup that covers this write, or ``ConfigError``
    (:data:`NO_BACKUP`). Waived by ``CRM_SYNC_REQUIRE_BACKUP=false`` (returns None, logs a
    WARNING). ``identity`` overrides the identity of ``conn_ids`` (tests)."""
    if not backup_required():
        log.warning("%s", WAIVED)
        return None
    identity = identity if identity is not None else connection_identity(conn_ids)
    found = latest_backup(identity_key(identity), specs=specs, location=location)
    if found is None:
        raise ConfigError(NO_BACKUP)
    return found


def ensure_backup(
    rt: RuntimeLike,
    *,
    writes: bool,
    identity: Mapping[str, Any] | None = None,
    location: Path | None = None,
) -> dict[str, Any]:
    """Call from ``prepare``: when this run will write (``writes``: not a dry run) and no
    backup covers it, take one now (Bulk API 2.0 on Salesforce, paged reads on Lead Gen & CRM).
    Returns a summary for XCom."""
    if not writes:
        return {"backup": "not needed (no write)"}
    if not backup_required():
        log.warning("%s", WAIVED)
        return {"backup": "waived (CRM_SYNC_REQUIRE_BACKUP=false)"}
    identity = identity if identity is not None else connection_identity(rt.conn_ids)
    key, specs = identity_key(identity), load_specs()
    root = Path(location or backup_dir())
    found = latest_backup(key, specs=specs, location=root)
    if found is not None:
        return {"backup": str(found.path), "taken": False}
    log.warning("no backup of these systems yet: taking one before the first write")
    info = take_backup(
        rt.salesforce, rt.leadgen, specs=specs, location=root, identity=identity, identity_key=key
    )
    return {"backup": str(info.path), "taken": True, "records": info.manifest["records"]}


def backup_now(
    sf: Any,
    lg: Any,
    conn_ids: Mapping[str, str] | None = None,
    *,
    identity: Mapping[str, Any] | None = None,
    location: Path | None = None,
) -> BackupInfo:
    """Take a backup on demand (the DAG, the command line, the demo) and read it back: every
    file's checksum and record count must match its manifest."""
    identity = identity if identity is not None else connection_identity(conn_ids)
    info = take_backup(
        sf,
        lg,
        specs=load_specs(),
        location=Path(location or backup_dir()),
        identity=identity,
        identity_key=identity_key(identity),
    )
    problems = verify_backup(info.path)
    if problems:  # the disk lost or changed what was just written: nothing to rely on
        raise OSError(f"backup {info.path} does not read back: {'; '.join(problems)}")
    return info
