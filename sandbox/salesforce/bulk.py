"""Bulk API 2.0 ingest and query jobs, as simple-salesforce's ``sf.bulk2`` drives them.

Ingest: ``POST jobs/ingest`` (state ``Open``) -> ``PUT jobs/ingest/<id>/batches`` with CSV
(answers **201**; one upload per job) -> ``PATCH {"state": "UploadComplete"}``. The sandbox
processes the rows right there, synchronously, so the job is ``JobComplete`` (or ``Failed``) by
the time a client polls: no test ever waits on a bulk job. Results are CSV:
``successfulResults`` (``sf__Id, sf__Created`` + the uploaded columns), ``failedResults``
(``sf__Id, sf__Error`` + columns) and ``unprocessedrecords`` (the uploaded columns; routed
case-insensitively because the library asks for ``unprocessedRecords``).

CSV cells follow Bulk API 2.0: an empty cell leaves the field unchanged, ``#N/A`` sets it to
null. A header naming an unknown field fails the whole job (``InvalidBatch : Field name not
found``) and every row is then "unprocessed".

Query: ``POST jobs/query`` runs the query at once (state ``JobComplete``); ``GET
jobs/query/<id>/results?maxRecords=N&locator=L`` pages CSV with ``Sforce-NumberOfRecords`` and
``Sforce-Locator`` (``null`` on the last page). Job files live in ``<data dir>/bulk``.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import math
from array import array
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .dml import Ctx, TypeMismatch
from .errors import ApiError, RecordError, RecordFailure, fail
from .ids import make_id, normalize_id
from .storage import format_datetime

if TYPE_CHECKING:
    from .org import Org

log = logging.getLogger(__name__)

INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_OPERATIONS = ("query", "queryAll")
DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
TERMINAL = ("JobComplete", "Failed", "Aborted")
DEFAULT_MAX_RECORDS = 50_000


def _invalid_job(message: str) -> ApiError:
    return ApiError(400, "INVALIDJOB", message)


def _not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def _encode_locator(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def _decode_locator(locator: str) -> int:
    try:
        padded = locator + "=" * (-len(locator) % 4)
        return int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "INVALID_QUERY_LOCATOR", f"invalid locator: {locator}") from exc


class BulkJobs:
    """Bulk API 2.0 job store and processor."""

    def __init__(self, org: Org):
        self.org = org
        self.dir = Path(org.settings.data_dir) / "bulk"
        self.dir.mkdir(parents=True, exist_ok=True)

    # -- persistence
    def _save(self, info: dict[str, Any], kind: str, new: bool = False) -> None:
        with self.org.db.write() as c:
            if new:
                c.execute(
                    "INSERT INTO _bulk_jobs (pk, id, kind, info) VALUES (?, ?, ?, ?)",
                    (info["_pk"], info["id"], kind, json.dumps(info)),
                )
            else:
                c.execute(
                    "UPDATE _bulk_jobs SET info = ? WHERE id = ?", (json.dumps(info), info["id"])
                )

    def _load(self, job_id: str, kind: str) -> dict[str, Any]:
        norm = normalize_id(job_id)
        row = (
            self.org.db.conn()
            .execute("SELECT info FROM _bulk_jobs WHERE id = ? AND kind = ?", (norm or "", kind))
            .fetchone()
        )
        if row is None:
            raise _not_found()
        return json.loads(row[0])

    def _path(self, job_id: str, suffix: str) -> Path:
        return self.dir / f"{job_id}.{suffix}"

    @staticmethod
    def public(info: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in info.items() if not k.startswith("_")}

    def _new_info(
        self, kind: str, user: str, version: str, extra: dict[str, Any]
    ) -> dict[str, Any]:
        with self.org.db.write() as c:
            pk = (c.execute("SELECT COALESCE(MAX(pk), 0) FROM _bulk_jobs").fetchone()[0] or 0) + 1
            seq = c.execute("SELECT seq FROM sqlite_sequence WHERE name = '_bulk_jobs'").fetchone()
            pk = max(pk, (seq[0] + 1) if seq else 1)
        now = format_datetime(self.org.clock.now_ms())
        info = {
            "_pk": pk,
            "id": make_id("750", pk),
            **extra,
            "createdById": user,
            "createdDate": now,
            "systemModstamp": now,
            "state": "Open" if kind == "ingest" else "UploadComplete",
            "concurrencyMode": "Parallel",
            "apiVersion": float(version),
            "jobType": "V2Ingest" if kind == "ingest" else "V2Query",
            "numberRecordsProcessed": 0,
            "retries": 0,
            "totalProcessingTime": 0,
        }
        return info

    def list_jobs(self, kind: str) -> dict[str, Any]:
        rows = self.org.db.conn().execute(
            "SELECT info FROM _bulk_jobs WHERE kind = ? ORDER BY pk", (kind,)
        )
        records = [self.public(json.loads(r[0])) for r in rows]
        return {"done": True, "records": records, "nextRecordsUrl": None}

    def delete_job(self, kind: str, job_id: str) -> None:
        info = self._load(job_id, kind)
        if info["state"] not in TERMINAL:
            raise ApiError(400, "INVALIDJOBSTATE", f"Job {info['id']} is not in a terminal state")
        with self.org.db.write() as c:
            c.execute("DELETE FROM _bulk_jobs WHERE id = ?", (info["id"],))
        for path in self.dir.glob(f"{info['id']}.*"):
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------------------- ingest
    def create_ingest(self, body: dict[str, Any], user: str, version: str) -> dict[str, Any]:
        op = body.get("operation")
        if op not in INGEST_OPERATIONS:
            raise _invalid_job(f"InvalidJob : Invalid operation: {op}")
        obj = self.org.schema.get(str(body.get("object", "")))
        if obj is None:
            raise _invalid_job(f"InvalidJob : Unable to find object: {body.get('object')}")
        if body.get("contentType", "CSV") != "CSV":
            raise _invalid_job("InvalidJob : contentType must be CSV")
        delim = body.get("columnDelimiter", "COMMA")
        ending = body.get("lineEnding", "LF")
        if delim not in DELIMITERS or ending not in LINE_ENDINGS:
            raise _invalid_job("InvalidJob : unsupported columnDelimiter or lineEnding")
        ext = body.get("externalIdFieldName")
        if op == "upsert":
            f = obj.field(str(ext or ""))
            if f is None or not (f.external_id or f.name == "Id"):
                raise _invalid_job(
                    f"InvalidJob : Field name provided, {ext} does not match an External ID, "
                    f"Salesforce Id, or indexed field for {obj.name}"
                )
            ext = f.name
        extra = {"operation": op, "object": obj.name}
        if op == "upsert":
            extra["externalIdFieldName"] = ext
        info = self._new_info("ingest", user, version, extra)
        info.update(
            contentType="CSV",
            contentUrl=f"services/data/v{version}/jobs/ingest/{info['id']}/batches",
            lineEnding=ending,
            columnDelimiter=delim,
            numberRecordsFailed=0,
            apiActiveProcessingTime=0,
            apexProcessingTime=0,
        )
        self._save(info, "ingest", new=True)
        return self.public(info)

    def get_ingest(self, job_id: str) -> dict[str, Any]:
        return self.public(self._load(job_id, "ingest"))

    def upload(self, job_id: str, data: bytes) -> None:
        info = self._load(job_id, "ingest")
        if info["state"] != "Open":
            raise ApiError(409, "INVALIDJOBSTATE", f"Job {info['id']} is not open for uploads")
        path = self._path(info["id"], "csv")
        if info.get("_uploaded"):
            raise ApiError(400, "INVALIDJOBSTATE", "Only one upload of job data is allowed per job")
        path.write_bytes(data)
        info["_uploaded"] = True
        self._save(info, "ingest")

    def change_ingest_state(self, job_id: str, body: dict[str, Any], user: str) -> dict[str, Any]:
        info = self._load(job_id, "ingest")
        state = body.get("state")
        if state == "UploadComplete":
            if info["state"] != "Open":
                raise ApiError(
                    400, "INVALIDJOBSTATE", f"Job {info['id']} is {info['state']}, not Open"
                )
            reply = self.public({**info, "state": "UploadComplete"})
            self._process(info, user)
            return reply
        if state == "Aborted":
            if info["state"] in TERMINAL:
                raise ApiError(
                    400, "INVALIDJOBSTATE", f"Job {info['id']} is already {info['state']}"
                )
            info["state"] = "Aborted"
            info["systemModstamp"] = format_datetime(self.org.clock.now_ms())
            self._save(info, "ingest")
            return self.public(info)
        raise ApiError(400, "INVALIDJOBSTATE", f"Unsupported state change: {state}")

    def _process(self, info: dict[str, Any], user: str) -> None:
        org = self.org
        obj = org.schema.get(info["object"])
        assert obj is not None
        dl = DELIMITERS[info["columnDelimiter"]]
        path = self._path(info["id"], "csv")
        text = path.read_bytes().decode("utf-8-sig") if path.exists() else ""
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=dl))
        header, data = (rows[0], rows[1:]) if rows else ([], [])
        data = [r for r in data if r != [] and r != [""]]
        op = info["operation"]
        succeeded: list[list[str]] = []
        failed: list[list[str]] = []
        failure = self._check_header(obj, op, header, info.get("externalIdFieldName"))
        if not header:
            failure = "InvalidBatch : Empty CSV data"
        if failure:
            self._finish(info, header, [], [], data, "Failed", failure)
            return
        ctx = Ctx(actor=user, at_ms=org.clock.now_ms(), source="csv", channel="bulk2")
        engine = org.engine
        ext_field = obj.field(info.get("externalIdFieldName") or "") if op == "upsert" else None
        seen_ext: dict[str, int] = {}
        if ext_field is not None:
            pos = [i for i, h in enumerate(header) if h.strip().lower() == ext_field.name.lower()][
                0
            ]
            for r in data:
                if pos < len(r) and r[pos]:
                    key = r[pos].lower()
                    seen_ext[key] = seen_ext.get(key, 0) + 1
        with org.db.write():
            for row in data:
                rid = ""
                try:
                    if len(row) != len(header):
                        raise fail(
                            "INVALID_FIELD", f"Row has {len(row)} columns, header has {len(header)}"
                        )
                    payload = dict(zip((h.strip() for h in header), row, strict=True))
                    if op in ("delete", "hardDelete"):
                        rid = normalize_id(payload.get("Id", "")) or ""
                        if not rid:
                            raise fail(
                                "MALFORMED_ID", f"malformed id {payload.get('Id', '')}", ["Id"]
                            )
                        done = (
                            engine.delete(rid, ctx)
                            if op == "delete"
                            else engine.hard_delete(rid, ctx)
                        )
                        succeeded.append([done, "false", *row])
                        continue
                    values = engine.decode(obj, payload, "csv")
                    if op == "insert":
                        new_id = engine.insert(obj, values, ctx)
                        succeeded.append([new_id, "true", *row])
                    elif op == "update":
                        raw_id = payload.get("Id") or next(
                            (v for k, v in payload.items() if k.lower() == "id"), ""
                        )
                        rid = normalize_id(raw_id) or ""
                        if not rid or org.schema.by_prefix(rid[:3]) is not obj:
                            raise fail("MALFORMED_ID", f"Id: malformed id {raw_id}", ["Id"])
                        values.pop("Id", None)
                        engine.update(obj, rid, values, ctx)
                        succeeded.append([rid, "false", *row])
                    else:  # upsert
                        assert ext_field is not None
                        key = str(values.get(ext_field.name) or "").lower()
                        if key and seen_ext.get(key, 0) > 1:
                            raise fail(
                                "DUPLICATE_EXTERNAL_ID",
                                f"Duplicate external id specified: {values.get(ext_field.name)}",
                                [ext_field.name],
                            )
                        if ext_field.name == "Id" and "Id" in values:
                            values["Id"] = normalize_id(values["Id"]) or values["Id"]
                        new_id, created = engine.upsert(obj, ext_field, values, ctx)
                        succeeded.append([new_id, "true" if created else "false", *row])
                except TypeMismatch as exc:
                    f = exc.field
                    error = RecordError(
                        "INVALID_TYPE_ON_FIELD_IN_RECORD",
                        f"{f.label}: value not of required type: {exc.raw}",
                        [f.name],
                    )
                    failed.append([rid, error.to_bulk(), *row])
                except RecordFailure as exc:
                    failed.append([rid, exc.error.to_bulk(), *row])
        self._finish(info, header, succeeded, failed, [], "JobComplete", None)

    @staticmethod
    def _check_header(obj: Any, op: str, header: list[str], ext: str | None) -> str | None:
        names = [h.strip() for h in header]
        if op in ("delete", "hardDelete"):
            if [n.lower() for n in names] != ["id"]:
                return f"InvalidBatch : The '{op}' batch must contain only ids"
            return None
        for n in names:
            if obj.field(n) is None:
                return f"InvalidBatch : Field name not found : {n}"
        lower = [n.lower() for n in names]
        if op == "update" and "id" not in lower:
            return "InvalidBatch : Field name not found : Id"
        if op == "upsert" and (ext or "").lower() not in lower:
            return f"InvalidBatch : Field name not found : {ext}"
        return None

    def _finish(
        self,
        info: dict[str, Any],
        header: list[str],
        succeeded: list[list[str]],
        failed: list[list[str]],
        unprocessed: list[list[str]],
        state: str,
        error: str | None,
    ) -> None:
        def write(suffix: str, head: list[str], rows: list[list[str]]) -> None:
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
            w.writerow(head)
            w.writerows(rows)
            self._path(info["id"], suffix).write_text(buf.getvalue(), encoding="utf-8")

        write("success.csv", ["sf__Id", "sf__Created", *header], succeeded)
        write("failed.csv", ["sf__Id", "sf__Error", *header], failed)
        write("unprocessed.csv", header, unprocessed)
        processed = len(succeeded) + len(failed)
        info.update(
            state=state,
            numberRecordsProcessed=processed,
            numberRecordsFailed=len(failed),
            systemModstamp=format_datetime(self.org.clock.now_ms()),
        )
        if error:
            info["errorMessage"] = error
        self.org.usage.note_bulk_batches(max(1, math.ceil(processed / 10_000)))
        self._save(info, "ingest")

    def ingest_results(self, job_id: str, which: str) -> str:
        info = self._load(job_id, "ingest")
        suffix = {
            "successfulresults": "success.csv",
            "failedresults": "failed.csv",
            "unprocessedrecords": "unprocessed.csv",
        }[which]
        path = self._path(info["id"], suffix)
        if info["state"] not in TERMINAL or not path.exists():
            if info["state"] == "Aborted" and suffix == "unprocessed.csv":
                raw = self._path(info["id"], "csv")
                return raw.read_text(encoding="utf-8") if raw.exists() else ""
            raise ApiError(
                400,
                "INVALIDJOBSTATE",
                f"Job {info['id']} has no results yet (state {info['state']})",
            )
        return path.read_text(encoding="utf-8")

    # -------------------------------------------------------------------------- query
    def create_query(self, body: dict[str, Any], user: str, version: str) -> dict[str, Any]:
        op = body.get("operation", "query")
        if op not in QUERY_OPERATIONS:
            raise _invalid_job(f"InvalidJob : Invalid operation: {op}")
        text = body.get("query")
        if not isinstance(text, str) or not text.strip():
            raise _invalid_job("InvalidJob : query is required")
        delim = body.get("columnDelimiter", "COMMA")
        ending = body.get("lineEnding", "LF")
        if delim not in DELIMITERS or ending not in LINE_ENDINGS:
            raise _invalid_job("InvalidJob : unsupported columnDelimiter or lineEnding")
        compiled = self.org.query.compile(
            text, include_deleted=op == "queryAll", hidden=self.org.access.hidden_fields(user)
        )
        if compiled.count_only:
            raise _invalid_job("InvalidJob : Aggregate queries are not supported by Bulk API 2.0")
        keys = self.org.query.row_keys(compiled)
        self.org.usage.note_bulk_query_job()
        info = self._new_info(
            "query", user, version, {"operation": op, "object": compiled.obj.name}
        )
        info.update(
            contentType="CSV",
            lineEnding=ending,
            columnDelimiter=delim,
            query=text,
        )
        reply = self.public(info)
        info.update(state="JobComplete", numberRecordsProcessed=len(keys))
        self._save(info, "query", new=True)
        self._path(info["id"], "keys").write_bytes(keys.tobytes())
        return reply

    def get_query(self, job_id: str) -> dict[str, Any]:
        return self.public(self._load(job_id, "query"))

    def abort_query(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        info = self._load(job_id, "query")
        if body.get("state") != "Aborted":
            raise ApiError(400, "INVALIDJOBSTATE", "Only Aborted can be set on a query job")
        if info["state"] in TERMINAL:
            raise ApiError(400, "INVALIDJOBSTATE", f"Job {info['id']} is already {info['state']}")
        info["state"] = "Aborted"
        self._save(info, "query")
        return self.public(info)

    def query_results(
        self, job_id: str, locator: str | None, max_records: int | None
    ) -> tuple[str, int, str]:
        """One page of CSV: (text, number of records, next locator or ``"null"``)."""
        info = self._load(job_id, "query")
        if info["state"] != "JobComplete":
            raise ApiError(412, "JOB_NOT_COMPLETE", f"Job {info['id']} is {info['state']}")
        keys = array("q")
        keys.frombytes(self._path(info["id"], "keys").read_bytes())
        offset = _decode_locator(locator) if locator else 0
        limit = max_records if max_records and max_records > 0 else DEFAULT_MAX_RECORDS
        page = keys[offset : offset + limit]
        compiled = self.org.query.compile(
            info["query"], include_deleted=info["operation"] == "queryAll"
        )
        rows = self.org.query.fetch(compiled, page)
        buf = io.StringIO()
        w = csv.writer(
            buf,
            delimiter=DELIMITERS[info["columnDelimiter"]],
            lineterminator=LINE_ENDINGS[info["lineEnding"]],
            quoting=csv.QUOTE_ALL,
        )
        w.writerow(self.org.query.csv_header(compiled))
        w.writerows(self.org.query.to_csv_rows(compiled, rows))
        nxt = offset + len(page)
        return buf.getvalue(), len(rows), (_encode_locator(nxt) if nxt < len(keys) else "null")
