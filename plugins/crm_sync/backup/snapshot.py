"""Take one backup: every mapped Salesforce field and the Lead Gen & CRM records, streamed to disk.

Layout of one backup (``<backup dir>/<UTC time>/``)::

    salesforce-Lead.jsonl.gz         one JSON object per record: Id, LastModifiedDate, every
    salesforce-Contact.jsonl.gz      field the specs map (and the record-link fields)
    salesforce-Account.jsonl.gz      (Bulk API 2.0 query: values as Bulk CSV text, blank = null)
    salesforce-Opportunity.jsonl.gz
    leadgen-lead.jsonl.gz            every field the API returns (getLeads, active leads)
    leadgen-opportunity.jsonl.gz     (getOpportunities)
    leadgen-account.jsonl.gz         (getAccounts)
    manifest.json                    counts, field lists, sha256 and size of each file, the org
                                     and account ids, the connections' identity, start/end times

Memory stays bounded: records go from the client's streaming readers (a Bulk 2.0 result page,
an API page) straight into the gzip stream. The backup is written into a hidden
``.partial-<name>`` folder and renamed when the manifest is in place, so a folder with a
manifest is always complete; a failed backup leaves nothing behind.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crm_sync.preflight.facts import SpecSet

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
STAMP = "%Y%m%dT%H%M%SZ"
# Salesforce fields kept with every record besides the mapped ones: the key to restore by, and
# the time to compare with (a record changed after the backup was taken).
SF_BASE_FIELDS = ("Id", "LastModifiedDate")


@dataclass(frozen=True)
class BackupInfo:
    """One complete backup on disk."""

    path: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    def records(self) -> dict[str, int]:
        """Records per file."""
        return {f["file"]: f["records"] for f in self.manifest.get("files", [])}


def salesforce_fields(specs: SpecSet) -> dict[str, list[str]]:
    """Salesforce object -> the fields to export: the base fields, every field a spec maps (any
    direction), the record-link fields."""
    out: dict[str, list[str]] = {}
    for spec in specs.objects.values():
        fields = out.setdefault(spec.salesforce_object, list(SF_BASE_FIELDS))
        names = [row.salesforce for row in spec.fields]
        if spec.record_link is not None:
            names += [n for n in (spec.record_link.id_field, spec.record_link.url_field) if n]
        fields.extend(n for n in names if n not in fields)
    return out


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_file(
    folder: Path, name: str, rows: Iterable[Mapping[str, Any]], *, collect_keys: bool
) -> dict[str, Any]:
    """Stream ``rows`` into ``folder/name`` as gzip JSON lines; the file's manifest entry."""
    path = folder / name
    count, keys = 0, {}
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            count += 1
            if collect_keys:
                keys.update(dict.fromkeys(row))
    entry = {
        "file": name,
        "records": count,
        "bytes": path.stat().st_size,
        "sha256": sha256_of(path),
    }
    if collect_keys:
        entry["fields"] = list(keys)
    log.info("backup: %s: %d record(s), %d bytes", name, count, entry["bytes"])
    return entry


def _export_salesforce(sf: Any, folder: Path, wanted: dict[str, list[str]]) -> list[dict]:
    entries = []
    for sobject, fields in wanted.items():
        visible = {f["name"] for f in sf.describe(sobject)["fields"]}
        present = [f for f in fields if f in visible]
        entry = _write_file(
            folder,
            f"salesforce-{sobject}.jsonl.gz",
            sf.bulk_export(sobject, present),
            collect_keys=False,
        )
        entry.update(
            system="salesforce",
            object=sobject,
            fields=present,
            not_exported=[f for f in fields if f not in visible],
        )
        entries.append(entry)
    return entries


def _export_leadgen(lg: Any, folder: Path) -> list[dict]:
    readers = {
        "lead": lg.get_leads,
        "opportunity": lg.get_opportunities,
        "account": lg.get_accounts,
    }
    entries = []
    for lg_object, read in readers.items():
        entry = _write_file(folder, f"leadgen-{lg_object}.jsonl.gz", read(), collect_keys=True)
        entry.update(system="leadgen", object=lg_object)
        entries.append(entry)
    return entries


def _new_folder(root: Path, started: datetime) -> tuple[str, Path]:
    """A name nobody else uses (two backups in one second get ``-2``, ``-3``...)."""
    root.mkdir(parents=True, exist_ok=True)
    base = started.strftime(STAMP)
    for n in range(1, 1000):
        name = base if n == 1 else f"{base}-{n}"
        partial = root / f".partial-{name}"
        if (root / name).exists():
            continue
        try:
            partial.mkdir()
        except FileExistsError:
            continue
        return name, partial
    raise RuntimeError(f"no free backup folder name for {base} in {root}")


def take_backup(
    sf: Any,
    lg: Any,
    *,
    specs: SpecSet,
    location: Path,
    identity: Mapping[str, Any],
    identity_key: str,
) -> BackupInfo:
    """Export both systems into a new backup folder under ``location`` (see the module
    docstring). Read-only against both systems. Raises what the clients raise; nothing is left
    on disk then."""
    started = datetime.now(UTC)
    name, partial = _new_folder(Path(location), started)
    try:
        org = next(iter(sf.query("SELECT Id, Name, OrganizationType FROM Organization")), {})
        files = _export_salesforce(sf, partial, salesforce_fields(specs))
        files += _export_leadgen(lg, partial)
        manifest = {
            "format": FORMAT,
            "name": name,
            "started_at": started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "identity_key": identity_key,
            "identity": dict(identity),
            "salesforce": {
                "org_id": org.get("Id"),
                "org_name": org.get("Name"),
                "edition": org.get("OrganizationType"),
            },
            "leadgen": {"account_id": getattr(lg, "account_id", None)},
            "files": files,
            "records": sum(f["records"] for f in files),
        }
        with open(partial / MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2, default=str)
        final = partial.parent / name
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    log.info("backup %s: %d record(s) in %d file(s)", final, manifest["records"], len(files))
    return BackupInfo(final, manifest)
