"""REST API handlers under ``/services/data/vNN.N/``: describe, query, sObjects, collections,
getUpdated/getDeleted, limits and Bulk API 2.0 routes.

Handlers are plain synchronous functions (run in uvicorn's thread pool) that take a
:class:`Call` and return a :class:`Reply`; whole-call failures are raised as
:class:`~.errors.ApiError`. Authentication, API limits, latency and faults are handled before a
call gets here (:mod:`.app`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .describe import describe_for
from .dml import (
    Ctx,
    TypeMismatch,
    UnknownField,
    invalid_field_error,
    json_parser_error,
    parse_datetime_text,
    run_batch,
)
from .errors import ApiError, RecordFailure, fail
from .ids import normalize_id
from .query import DEFAULT_BATCH, MIN_BATCH
from .schema import ObjectDef
from .storage import format_datetime, q, table_name, to_json_value

if TYPE_CHECKING:
    from .org import Org

MAX_COLLECTION = 200
GET_UPDATED_DAYS = 30
GET_DELETED_DAYS = 15
MAX_REPLICATION_IDS = 600_000
API_VERSIONS = ("55.0", "56.0", "57.0", "58.0", "59.0", "60.0", "61.0", "62.0")
# What the version root lists (``identity`` is added as an absolute URL). Resources the sandbox
# does not implement beyond their root (search: SOSL, tooling) are listed as a real org does.
VERSION_RESOURCES = (
    "composite", "jobs", "limits", "query", "queryAll", "recent", "search", "sobjects", "tooling",
)  # fmt: skip
TOOLING_RESOURCES = (
    "completions", "executeAnonymous", "query", "runTestsAsynchronous", "runTestsSynchronous",
    "search", "sobjects",
)  # fmt: skip


@dataclass
class Call:
    method: str
    version: str
    segments: list[str]
    params: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    user: str
    host: str = ""  # host:port the client used (for absolute URLs such as the identity URL)


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-able, or str/bytes for CSV
    content_type: str = "application/json;charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


def classify(method: str, segments: list[str]) -> str:
    """The call kind used for call counts (the client classifies URLs the same way)."""
    if not segments:
        return "other"
    head = segments[0].lower()
    if head in ("query", "queryall"):
        return "query" if len(segments) == 1 else "query_more"
    if head == "sobjects":
        if len(segments) == 1:
            return "describe"
        if len(segments) == 2:
            return "describe" if method == "GET" else "sobject"
        tail = segments[2].lower()
        if len(segments) == 3 and tail == "describe":
            return "describe"
        if len(segments) == 3 and tail == "updated":
            return "get_updated"
        if len(segments) == 3 and tail == "deleted":
            return "get_deleted"
        return "sobject"
    if head == "composite":
        if len(segments) == 3 and segments[1].lower() == "sobjects" and method in ("GET", "POST"):
            return "retrieve"  # collections retrieve: a read, not a write
        return "collections"
    if head == "jobs":
        return "bulk2"
    if head == "limits":
        return "limits"
    return "other"


def _json_body(call: Call) -> Any:
    text = call.body.decode("utf-8", errors="replace")
    if not text.strip():
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body is empty.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "JSON_PARSER_ERROR",
            f"Unexpected character ('{text[exc.pos : exc.pos + 1]}'): was expecting a JSON value at [line:{exc.lineno}, column:{exc.colno}]",
        ) from exc


def _not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def _method_not_allowed(method: str, allowed: str) -> ApiError:
    return ApiError(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}"
    )


def _parse_replication_time(raw: str | None, name: str) -> int:
    """Parse getUpdated/getDeleted start/end.

    simple-salesforce sends naive datetimes as ``2024-01-02T03:04:05:`` (a trailing colon and no
    zone); the sandbox tolerates that and reads such values as UTC. Seconds are then dropped:
    both resources work at minute granularity.
    """
    if not raw:
        raise ApiError(400, "MISSING_ARGUMENT", f"Missing required parameter: {name}")
    text = raw.strip()
    if text.endswith(":") and re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}:$", text):
        text = text[:-1]
    text = text.replace(" ", "+")  # an unencoded '+' arrives as a space
    ms = parse_datetime_text(text)
    if ms is None or "T" not in text:
        raise ApiError(400, "INVALID_REPLICATION_DATE", f"{name} is not a valid dateTime: {raw}")
    return ms - ms % 60_000


class RestApi:
    def __init__(self, org: Org):
        self.org = org

    # ------------------------------------------------------------------------- dispatch
    def handle(self, call: Call) -> Reply:
        segs = call.segments
        m = call.method
        if not segs:
            if m != "GET":
                raise _method_not_allowed(m, "GET")
            return Reply(body=self._version_root(call))
        head = segs[0].lower()
        if head == "sobjects":
            return self._sobjects(call)
        if head in ("query", "queryall"):
            if m != "GET":
                raise _method_not_allowed(m, "GET")
            return self._query(call, include_deleted=head == "queryall")
        if head == "composite" and len(segs) >= 2 and segs[1].lower() == "sobjects":
            return self._collections(call)
        if head == "limits" and len(segs) == 1:
            if m != "GET":
                raise _method_not_allowed(m, "GET")
            return Reply(body=self.org.usage.limits(self.org.storage_mb()))
        if head == "jobs" and len(segs) >= 2:
            return self._jobs(call)
        if head == "search":
            raise ApiError(
                400, "INVALID_SEARCH", "SOSL search is not supported by the Salesforce sandbox"
            )
        if head == "recent" and len(segs) == 1:
            return self._recent(call)
        if head == "tooling" and len(segs) == 1 and m == "GET":
            base = f"/services/data/v{call.version}/tooling"
            return Reply(body={k: f"{base}/{k}" for k in TOOLING_RESOURCES})
        raise _not_found()

    def _version_root(self, call: Call) -> dict[str, str]:
        """The resources of one API version, as ``GET /services/data/vNN.N`` lists them."""
        base = f"/services/data/v{call.version}"
        out = {k: f"{base}/{k}" for k in VERSION_RESOURCES}
        host = call.host or f"127.0.0.1:{self.org.settings.port}"
        out["identity"] = f"https://{host}/id/{self.org.org_id}/{call.user}"
        return dict(sorted(out.items()))

    def _recent(self, call: Call) -> Reply:
        """Recently viewed records: a record read through the API is not "viewed" (only the
        UI and ``FOR VIEW`` queries mark views), so an integration user's list is empty [I]."""
        if call.method != "GET":
            raise _method_not_allowed(call.method, "GET")
        limit = call.params.get("limit", "200")
        if not limit.isdigit() or not 1 <= int(limit) <= 200:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "limit must be between 1 and 200")
        return Reply(body=[])

    def _object(self, name: str) -> ObjectDef:
        obj = self.org.schema.get(name)
        if obj is None:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"The requested resource does not exist: sObject type '{name}' is not supported.",
            )
        return obj

    def _ctx(self, call: Call) -> Ctx:
        channel = "collections" if call.segments[0].lower() == "composite" else "rest"
        return Ctx(actor=call.user, at_ms=self.org.clock.now_ms(), source="json", channel=channel)

    # ------------------------------------------------------------------------ sobjects
    def _sobjects(self, call: Call) -> Reply:
        segs, m = call.segments, call.method
        if len(segs) == 1:
            if m != "GET":
                raise _method_not_allowed(m, "GET")
            return Reply(
                body={
                    "encoding": "UTF-8",
                    "maxBatchSize": MAX_COLLECTION,
                    "sobjects": [
                        o.describe(call.version, all_fields=False)
                        for o in self.org.schema.objects.values()
                    ],
                }
            )
        obj = self._object(segs[1])
        if len(segs) == 2:
            if m == "GET":
                return Reply(
                    body={
                        "objectDescribe": obj.describe(call.version, all_fields=False),
                        "recentItems": [],
                    }
                )
            if m == "POST":
                return self._create_one(call, obj)
            raise _method_not_allowed(m, "GET,POST")
        tail = segs[2]
        if len(segs) == 3 and tail.lower() == "describe":
            if m != "GET":
                raise _method_not_allowed(m, "GET")
            return Reply(body=describe_for(self.org, obj, call.version, call.user))
        if len(segs) == 3 and tail.lower() in ("updated", "deleted"):
            if m != "GET":
                raise _method_not_allowed(m, "GET")
            return self._replication(call, obj, tail.lower())
        if len(segs) == 3:
            return self._record(call, obj, tail)
        if len(segs) == 4:
            return self._by_external_id(call, obj, segs[2], segs[3])
        raise _not_found()

    def _decode_one(self, call: Call, obj: ObjectDef) -> dict[str, Any]:
        payload = _json_body(call)
        if not isinstance(payload, dict):
            raise ApiError(
                400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from START_ARRAY"
            )
        try:
            return self.org.engine.decode(obj, payload, "json")
        except UnknownField as exc:
            raise invalid_field_error(exc) from exc
        except TypeMismatch as exc:
            raise json_parser_error(exc, call.body.decode("utf-8", "replace")) from exc

    @staticmethod
    def _record_error(exc: RecordFailure) -> ApiError:
        e = exc.error
        status = 404 if e.code == "ENTITY_IS_DELETED" else 400
        return ApiError(status, e.code, e.message, e.fields)

    def _create_one(self, call: Call, obj: ObjectDef) -> Reply:
        values = self._decode_one(call, obj)
        try:
            with self.org.db.write():
                rid = self.org.engine.insert(obj, values, self._ctx(call))
        except RecordFailure as exc:
            raise self._record_error(exc) from exc
        return Reply(201, {"id": rid, "success": True, "errors": []})

    def _serialize(
        self, obj: ObjectDef, row: dict[str, Any], version: str, fields: list[str] | None = None
    ) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "attributes": {
                "type": obj.name,
                "url": f"/services/data/v{version}/sobjects/{obj.name}/{row['Id']}",
            }
        }
        wanted = [obj.field(n) for n in fields] if fields else obj.field_list
        for f in wanted:
            if f is None:
                continue
            rec[f.name] = to_json_value(f, row.get(f.name))
        return rec

    def _fields_param(self, call: Call, obj: ObjectDef) -> list[str] | None:
        raw = call.params.get("fields")
        if not raw:
            return None
        names = [n.strip() for n in raw.split(",") if n.strip()]
        for n in names:
            if obj.field(n) is None:
                raise ApiError(
                    400, "INVALID_FIELD", f"No such column '{n}' on sobject of type {obj.name}"
                )
        return names

    def _record(self, call: Call, obj: ObjectDef, raw_id: str) -> Reply:
        m = call.method
        rid = normalize_id(raw_id)
        if rid is None or rid[:3] != obj.key_prefix:
            if obj.field(raw_id) is not None and m == "POST":
                return self._create_one(
                    call, obj
                )  # POST sobjects/X/<ExtField> with no value creates
            raise _not_found()
        engine = self.org.engine
        if m == "GET":
            row = engine.find(obj, rid)
            if row is None:
                raise _not_found()
            if row.get("IsDeleted"):
                raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
            return Reply(
                body=self._serialize(obj, row, call.version, self._fields_param(call, obj))
            )
        if m == "PATCH":
            values = self._decode_one(call, obj)
            row = engine.find(obj, rid)
            if row is None:
                raise _not_found()
            try:
                with self.org.db.write():
                    engine.update(obj, rid, values, self._ctx(call))
            except RecordFailure as exc:
                raise self._record_error(exc) from exc
            return Reply(204)
        if m == "DELETE":
            row = engine.find(obj, rid)
            if row is None:
                raise _not_found()
            try:
                with self.org.db.write():
                    engine.delete(rid, self._ctx(call))
            except RecordFailure as exc:
                raise self._record_error(exc) from exc
            return Reply(204)
        raise _method_not_allowed(m, "GET,PATCH,DELETE")

    def _ext_field(self, obj: ObjectDef, name: str):
        f = obj.field(name)
        if f is None or not (f.external_id or f.name == "Id"):
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {name}",
            )
        return f

    def _by_external_id(self, call: Call, obj: ObjectDef, field_name: str, raw_value: str) -> Reply:
        f = self._ext_field(obj, field_name)
        engine = self.org.engine
        try:
            value = engine.decode(obj, {f.name: raw_value}, "json")[f.name]
        except TypeMismatch as exc:
            raise ApiError(400, "MALFORMED_ID", f"invalid value for {f.name}: {raw_value}") from exc
        prefix = f"/services/data/v{call.version}/sobjects/{obj.name}/"
        if call.method == "GET":
            matches = engine.match_external(obj, f, value)
            if not matches:
                raise _not_found()
            if len(matches) > 1:
                return Reply(300, [prefix + rid for rid in matches])
            row = engine.find(obj, matches[0])
            return Reply(
                body=self._serialize(obj, row or {}, call.version, self._fields_param(call, obj))
            )
        if call.method == "PATCH":
            values = self._decode_one(call, obj)
            if f.name in values and str(values[f.name]).lower() != str(value).lower():
                raise ApiError(
                    400,
                    "INVALID_FIELD",
                    f"The value of {f.name} in the body does not match the URL",
                )
            values[f.name] = value
            matches = engine.match_external(obj, f, value)
            if len(matches) > 1:
                return Reply(300, [prefix + rid for rid in matches])
            try:
                with self.org.db.write():
                    rid, created = engine.upsert(obj, f, values, self._ctx(call))
            except RecordFailure as exc:
                raise self._record_error(exc) from exc
            return Reply(
                201 if created else 200,
                {"id": rid, "success": True, "errors": [], "created": created},
            )
        if call.method == "DELETE":
            matches = engine.match_external(obj, f, value)
            if not matches:
                raise _not_found()
            if len(matches) > 1:
                return Reply(300, [prefix + rid for rid in matches])
            try:
                with self.org.db.write():
                    engine.delete(matches[0], self._ctx(call))
            except RecordFailure as exc:
                raise self._record_error(exc) from exc
            return Reply(204)
        raise _method_not_allowed(call.method, "GET,PATCH,DELETE")

    # ----------------------------------------------------------------- getUpdated/Deleted
    def _replication(self, call: Call, obj: ObjectDef, which: str) -> Reply:
        start = _parse_replication_time(call.params.get("start"), "start")
        end = _parse_replication_time(call.params.get("end"), "end")
        now = self.org.clock.now_ms()
        now_min = now - now % 60_000
        if start > end:
            raise ApiError(
                400, "INVALID_REPLICATION_DATE", "start date must be before the end date"
            )
        days = GET_UPDATED_DAYS if which == "updated" else GET_DELETED_DAYS
        if start < now_min - days * 86_400_000:
            raise ApiError(
                400,
                "INVALID_REPLICATION_DATE",
                f"startDate must be within the last {days} days of the current date",
            )
        end = min(end, now_min)
        c = self.org.db.conn()
        t = q(table_name(obj.name))
        if which == "updated":
            live = ' AND "IsDeleted" = 0' if obj.soft_deletes else ""
            rows = c.execute(
                f'SELECT "Id" FROM {t} WHERE "SystemModstamp" >= ? AND "SystemModstamp" < ?{live} '
                'ORDER BY "SystemModstamp", pk LIMIT ?',
                (start, end, MAX_REPLICATION_IDS + 1),
            ).fetchall()
            if len(rows) > MAX_REPLICATION_IDS:
                raise ApiError(
                    400,
                    "EXCEEDED_ID_LIMIT",
                    "record limit reached. cannot submit more than 600000 records into this call",
                )
            return Reply(
                body={"ids": [r[0] for r in rows], "latestDateCovered": format_datetime(end)}
            )
        if not obj.soft_deletes:
            return Reply(
                body={
                    "deletedRecords": [],
                    "earliestDateAvailable": format_datetime(start),
                    "latestDateCovered": format_datetime(end),
                }
            )
        rows = c.execute(
            f'SELECT "Id", _deleted_at FROM {t} WHERE "IsDeleted" = 1 AND _deleted_at >= ? AND _deleted_at < ? '
            "ORDER BY _deleted_at, pk LIMIT ?",
            (start, end, MAX_REPLICATION_IDS + 1),
        ).fetchall()
        if len(rows) > MAX_REPLICATION_IDS:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 600000 records into this call",
            )
        # What the org still knows about: the last 15 days, unless the recycle bin was purged
        # more recently (then a caller whose start is earlier must resync).
        purged = self.org.db.get_meta("recycle_bin_purged_before") or 0
        earliest = max(purged, now_min - GET_DELETED_DAYS * 86_400_000)
        earliest -= earliest % 60_000
        return Reply(
            body={
                "deletedRecords": [
                    {"id": r[0], "deletedDate": format_datetime(r[1])} for r in rows
                ],
                "earliestDateAvailable": format_datetime(earliest),
                "latestDateCovered": format_datetime(end),
            }
        )

    # --------------------------------------------------------------------------- query
    def _batch_size(self, call: Call) -> int | None:
        raw = call.headers.get("sforce-query-options", "")
        m = re.search(r"batchSize\s*=\s*(\d+)", raw, re.IGNORECASE)
        if not m:
            return None
        return max(MIN_BATCH, min(DEFAULT_BATCH, int(m.group(1))))

    def _query(self, call: Call, *, include_deleted: bool) -> Reply:
        engine = self.org.query
        if len(call.segments) == 1:
            text = call.params.get("q")
            if text is None:
                raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
            page = engine.start(
                text,
                hidden=self.org.access.hidden_fields(call.user),
                include_deleted=include_deleted,
                batch=self._batch_size(call) or DEFAULT_BATCH,
                version=call.version,
                user=call.user,
            )
            return Reply(body=page)
        if len(call.segments) == 2:
            return Reply(
                body=engine.more(
                    call.segments[1],
                    version=call.version,
                    user=call.user,
                    batch=self._batch_size(call),
                )
            )
        raise _not_found()

    # --------------------------------------------------------------------- collections
    def _collections(self, call: Call) -> Reply:
        segs, m = call.segments, call.method
        if len(segs) == 2:
            if m == "POST":
                return self._coll_save(call, "insert")
            if m == "PATCH":
                return self._coll_save(call, "update")
            if m == "DELETE":
                return self._coll_delete(call)
            raise _method_not_allowed(m, "POST,PATCH,DELETE")
        if len(segs) == 3 and m in ("GET", "POST"):
            return self._coll_retrieve(call, self._object(segs[2]))
        if len(segs) == 4:
            if m != "PATCH":
                raise _method_not_allowed(m, "PATCH")
            obj = self._object(segs[2])
            f = obj.field(segs[3])
            if f is None or not f.external_id:
                raise ApiError(
                    400,
                    "INVALID_FIELD",
                    f"Field {segs[3]} is not an external id field of {obj.name}",
                )
            return self._coll_save(call, "upsert", obj=obj, ext=f)
        raise _not_found()

    def _coll_body(self, call: Call) -> tuple[list[dict[str, Any]], bool]:
        body = _json_body(call)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise ApiError(
                400,
                "JSON_PARSER_ERROR",
                "The request body must be an object with a 'records' array",
            )
        records = body["records"]
        if len(records) > MAX_COLLECTION:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        if not records:
            raise ApiError(400, "INVALID_FIELD", "The request must contain at least one record")
        return records, bool(body.get("allOrNone", False))

    def _coll_save(
        self, call: Call, op: str, obj: ObjectDef | None = None, ext: Any = None
    ) -> Reply:
        records, all_or_none = self._coll_body(call)
        engine = self.org.engine
        body_text = call.body.decode("utf-8", "replace")
        decoded: list[tuple[ObjectDef, dict[str, Any], Any]] = []
        # Phase 1: deserialise everything; type errors fail the whole request, as in a real org.
        for rec in records:
            if not isinstance(rec, dict):
                raise ApiError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
            attrs = rec.get("attributes") if isinstance(rec.get("attributes"), dict) else {}
            type_name = attrs.get("type")
            if not type_name:
                raise ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
            rec_obj = self.org.schema.get(str(type_name))
            if rec_obj is None:
                raise ApiError(400, "INVALID_TYPE", f"sObject type '{type_name}' is not supported.")
            if obj is not None and rec_obj is not obj:
                raise ApiError(
                    400, "INVALID_TYPE", f"All records must be of type {obj.name} for this upsert"
                )
            raw_id = next((v for k, v in rec.items() if k.lower() == "id"), None)
            payload = {
                k: v
                for k, v in rec.items()
                if k != "attributes" and not (op == "update" and k.lower() == "id")
            }
            try:
                values = engine.decode(rec_obj, payload, "json")
            except UnknownField as exc:
                raise invalid_field_error(exc) from exc
            except TypeMismatch as exc:
                raise json_parser_error(exc, body_text) from exc
            decoded.append((rec_obj, values, raw_id))

        ctx = self._ctx(call)
        dup_keys: dict[str, int] = {}
        if op == "upsert":
            for _, values, _ in decoded:
                key = str(values.get(ext.name) or "").lower()
                if key:
                    dup_keys[key] = dup_keys.get(key, 0) + 1

        def make(rec_obj: ObjectDef, values: dict[str, Any], raw_id: Any):
            def run() -> tuple[str | None, bool | None]:
                if op == "insert":
                    return engine.insert(rec_obj, values, ctx), None
                if op == "update":
                    if raw_id in (None, ""):
                        raise fail("MISSING_ARGUMENT", "Id not specified in an update call")
                    rid = normalize_id(raw_id)
                    if rid is None or rid[:3] != rec_obj.key_prefix:
                        raise fail("MALFORMED_ID", f"Id: malformed id {raw_id}", ["Id"])
                    return engine.update(rec_obj, rid, values, ctx), None
                key = str(values.get(ext.name) or "").lower()
                if key and dup_keys.get(key, 0) > 1:
                    raise fail(
                        "DUPLICATE_EXTERNAL_ID",
                        f"Duplicate external id specified: {values.get(ext.name)}",
                        [ext.name],
                    )
                rid, created = engine.upsert(rec_obj, ext, values, ctx)
                return rid, created

            return run

        ids: list[str | None] = []
        for _, _, raw_id in decoded:
            ids.append(normalize_id(raw_id) if op == "update" and raw_id else None)
        results = run_batch(
            engine,
            [make(o, v, r) for o, v, r in decoded],
            all_or_none=all_or_none,
            ids_for_rollback=ids,
        )
        return Reply(body=results)

    def _coll_delete(self, call: Call) -> Reply:
        raw = call.params.get("ids", "")
        ids = [i.strip() for i in raw.split(",") if i.strip()]
        if not ids:
            raise ApiError(400, "MISSING_ARGUMENT", "ids parameter is required")
        if len(ids) > MAX_COLLECTION:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        all_or_none = call.params.get("allOrNone", "false").lower() == "true"
        engine = self.org.engine
        ctx = self._ctx(call)

        def make(raw_id: str):
            def run() -> tuple[str | None, bool | None]:
                rid = normalize_id(raw_id)
                if rid is None or self.org.schema.by_prefix(rid[:3]) is None:
                    raise fail("MALFORMED_ID", f"malformed id {raw_id}")
                return engine.delete(rid, ctx), None

            return run

        norm = [normalize_id(i) or i for i in ids]
        return Reply(
            body=run_batch(
                engine, [make(i) for i in ids], all_or_none=all_or_none, ids_for_rollback=norm
            )
        )

    def _coll_retrieve(self, call: Call, obj: ObjectDef) -> Reply:
        if call.method == "POST":
            body = _json_body(call)
            ids, fields = body.get("ids", []), body.get("fields", [])
        else:
            ids = [i for i in call.params.get("ids", "").split(",") if i]
            fields = [f for f in call.params.get("fields", "").split(",") if f]
        if len(ids) > 2000:
            raise ApiError(400, "EXCEEDED_ID_LIMIT", "cannot retrieve more than 2000 records")
        for n in fields:
            if obj.field(n) is None:
                raise ApiError(
                    400, "INVALID_FIELD", f"No such column '{n}' on sobject of type {obj.name}"
                )
        out = []
        for raw in ids:
            rid = normalize_id(raw)
            row = self.org.engine.find(obj, rid) if rid else None
            out.append(
                None
                if row is None or row.get("IsDeleted")
                else self._serialize(obj, row, call.version, fields or None)
            )
        return Reply(body=out)

    # ---------------------------------------------------------------------- Bulk API 2.0
    def _jobs(self, call: Call) -> Reply:
        segs, m = call.segments, call.method
        kind = segs[1].lower()
        bulk = self.org.bulk
        if kind not in ("ingest", "query"):
            raise _not_found()
        if len(segs) == 2:
            if m == "POST":
                body = _json_body(call)
                if not isinstance(body, dict):
                    raise ApiError(
                        400, "INVALIDJOB", "InvalidJob : the request body must be a JSON object"
                    )
                if kind == "ingest":
                    return Reply(body=bulk.create_ingest(body, call.user, call.version))
                return Reply(body=bulk.create_query(body, call.user, call.version))
            if m == "GET":
                return Reply(body=bulk.list_jobs(kind))
            raise _method_not_allowed(m, "GET,POST")
        job_id = segs[2]
        if len(segs) == 3:
            if m == "GET":
                return Reply(
                    body=bulk.get_ingest(job_id) if kind == "ingest" else bulk.get_query(job_id)
                )
            if m == "PATCH":
                body = _json_body(call)
                if kind == "ingest":
                    return Reply(body=bulk.change_ingest_state(job_id, body, call.user))
                return Reply(body=bulk.abort_query(job_id, body))
            if m == "DELETE":
                bulk.delete_job(kind, job_id)
                return Reply(204)
            raise _method_not_allowed(m, "GET,PATCH,DELETE")
        if len(segs) == 4:
            tail = segs[3].lower()
            if kind == "ingest" and tail == "batches":
                if m != "PUT":
                    raise _method_not_allowed(m, "PUT")
                bulk.upload(job_id, call.body)
                return Reply(201, None)
            if kind == "ingest" and tail in (
                "successfulresults",
                "failedresults",
                "unprocessedrecords",
            ):
                if m != "GET":
                    raise _method_not_allowed(m, "GET")
                return Reply(body=bulk.ingest_results(job_id, tail), content_type="text/csv")
            if kind == "query" and tail == "results":
                if m != "GET":
                    raise _method_not_allowed(m, "GET")
                max_records = call.params.get("maxRecords")
                text, n, locator = bulk.query_results(
                    job_id,
                    call.params.get("locator"),
                    int(max_records) if max_records and max_records.isdigit() else None,
                )
                return Reply(
                    body=text,
                    content_type="text/csv",
                    headers={"Sforce-NumberOfRecords": str(n), "Sforce-Locator": locator},
                )
        raise _not_found()
