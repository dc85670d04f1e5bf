"""Which systems a preflight checked, and the record of its last result.

A preflight (or a backup) is only valid for the systems it looked at. :func:`connection_identity`
names them without a secret: the Airflow connection ids and the non-secret parts of each
connection (Salesforce login and domain/instance, Lead Gen & CRM endpoint and account id).
:func:`record_key` turns that, plus a digest of the mapping specs (a changed spec may map a
field the last preflight never looked at), into a short key.

The last result per key is a JSON file under ``$CRM_SYNC_HOME/preflight/`` (the state store
has no table for it yet: ``docs/preflight.md``). It is replaced atomically, so a reader never
sees half a file, and a failed preflight replaces an earlier success: the next gate checks again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crm_sync.preflight.model import Report
from crm_sync.runtime import DEFAULT_CONN_IDS
from crm_sync.settings import mappings_dir, sync_home

log = logging.getLogger(__name__)

_SF_EXTRAS = ("domain", "instance", "instance_url")


def _connection(conn_id: str) -> Any | None:
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception:  # not defined (or no way to ask): building the client reports it
        log.debug("connection %s not found for the preflight identity", conn_id)
        return None


def connection_identity(conn_ids: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """What each connection points at, without secrets (no password, token or secret key)."""
    ids = {**DEFAULT_CONN_IDS, **(conn_ids or {})}
    sf, lg = _connection(ids["salesforce"]), _connection(ids["leadgen"])
    sf_extra = (sf.extra_dejson or {}) if sf is not None else {}
    return {
        "salesforce": {
            "conn_id": ids["salesforce"],
            "login": getattr(sf, "login", None),
            "host": getattr(sf, "host", None),
            **{k: sf_extra.get(k) for k in _SF_EXTRAS if sf_extra.get(k)},
        },
        "leadgen": {
            "conn_id": ids["leadgen"],
            "host": getattr(lg, "host", None),
            "account": getattr(lg, "login", None),
        },
    }


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def specs_digest(directory: Path | None = None) -> str:
    """sha256 over every YAML file of the mappings folder (name and content)."""
    folder = Path(directory or mappings_dir())
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.yaml")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def identity_key(identity: Mapping[str, Any]) -> str:
    """Short key of a connection identity (backups are matched on this)."""
    return _digest(identity)[:20]


def record_key(identity: Mapping[str, Any], specs: str | None = None) -> str:
    """Short key of a connection identity plus the specs digest (preflights are matched on it)."""
    return _digest({"identity": identity, "specs": specs or specs_digest()})[:20]


def records_dir() -> Path:
    return sync_home() / "preflight"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_record(key: str, identity: Mapping[str, Any], report: Report) -> Path:
    """Keep ``report`` as the last preflight of ``key``; returns the file."""
    path = records_dir() / f"{key}.json"
    write_json_atomic(
        path,
        {
            "key": key,
            "identity": dict(identity),
            "ok": report.ok,
            "recorded_at": datetime.now(UTC).isoformat(),
            "report": report.to_dict(),
        },
    )
    return path


def load_record(key: str) -> dict[str, Any] | None:
    """The last preflight recorded for ``key``, or None (none, or unreadable)."""
    path = records_dir() / f"{key}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log.warning("preflight record %s is unreadable; checking again", path)
        return None
    return data if isinstance(data, dict) and data.get("key") == key else None
