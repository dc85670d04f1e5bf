"""Writes with the org's rules: create, update, upsert, delete, undelete, merge, convert.

Every write path (REST sObject, sObject Collections, Bulk API 2.0, admin "salesperson" actions)
goes through :class:`WriteEngine`, so the same payload gets the same verdict everywhere.

Two phases, as in a real org:

1. **Decoding** (:meth:`WriteEngine.decode`): map payload keys to fields and convert values to
   their types. For JSON requests an unknown field is a whole-request ``INVALID_FIELD`` and an
   unparseable value (``"abc"`` for a number, ``"2024-13-45"`` for a date) a whole-request
   ``JSON_PARSER_ERROR``, because a real org fails while deserialising the body, before any
   record is looked at. For Bulk CSV both are per-record (``INVALID_TYPE_ON_FIELD_IN_RECORD``).
2. **Saving** (``insert`` / ``update`` / ``upsert`` / ``delete``): per-record checks in this
   order -- injected lock faults, object and field writability (``INVALID_FIELD_FOR_INSERT_UPDATE``),
   converted leads (``CANNOT_UPDATE_CONVERTED_LEAD``), value checks (``STRING_TOO_LONG``,
   ``INVALID_EMAIL_ADDRESS``, ``INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST``, ``MALFORMED_ID``,
   ``NUMBER_OUTSIDE_VALID_RANGE``), required fields (``REQUIRED_FIELD_MISSING``), references
   (``INVALID_CROSS_REFERENCE_KEY``, ``FIELD_INTEGRITY_EXCEPTION``, ``INACTIVE_OWNER_OR_USER``),
   validation rules (``FIELD_CUSTOM_VALIDATION_EXCEPTION``) and unique fields
   (``DUPLICATE_VALUE``). The first failing check is reported.

Every successful write stamps ``LastModifiedDate``, ``LastModifiedById`` and ``SystemModstamp``
with the org clock (or an admin ``_at``), even when no value changed -- as Salesforce does.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ApiError, RecordError, RecordFailure, fail
from .ids import make_id, normalize_id
from .schema import (
    CASCADE,
    CONVERTED_LEAD_STATUS,
    ID_TYPES,
    NUMBER_TYPES,
    OPPORTUNITY_STAGES,
    TASK_CLOSED_STATUSES,
    FieldDef,
    ObjectDef,
)
from .storage import dt_to_ms, q, table_name

if TYPE_CHECKING:
    from .org import Org

SKIP = object()  # a CSV cell that leaves the field unchanged (empty cell)

EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATETIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)
_INT_RE = re.compile(r"^[+-]?\d+$")
_NUM_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")

# Children re-pointed to the survivor when records are merged.
MERGE_CHILDREN: dict[str, list[tuple[str, str]]] = {
    "Account": [("Contact", "AccountId"), ("Opportunity", "AccountId"), ("Task", "WhatId")],
    "Contact": [("OpportunityContactRole", "ContactId"), ("Task", "WhoId")],
    "Lead": [("Task", "WhoId")],
}


class TypeMismatch(Exception):
    """A value cannot be converted to its field's type."""

    def __init__(self, f: FieldDef, raw: Any):
        super().__init__(f"{f.name}: {raw!r}")
        self.field = f
        self.raw = raw


class UnknownField(Exception):
    def __init__(self, obj: ObjectDef, name: str):
        super().__init__(name)
        self.obj = obj
        self.name = name


@dataclass
class Ctx:
    """Who writes and when: the session's user for API calls, a salesperson for admin actions."""

    actor: str
    at_ms: int
    source: str = "json"  # json | csv | admin
    check_faults: bool = True
    channel: str = ""  # rest | collections | bulk2 (API writes, for the write log)


# ------------------------------------------------------------------------ value decoding


def parse_datetime_text(text: str) -> int | None:
    m = _DATETIME_RE.match(text.strip())
    if not m:
        return None
    y, mo, d, hh, mm, ss, frac, tz = m.groups()
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    if tz in (None, "Z"):
        tzinfo = dt.UTC  # a real org reads zone-less values as UTC
    else:
        digits = tz[1:].replace(":", "")
        offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        tzinfo = dt.timezone(offset if tz[0] == "+" else -offset)
    try:
        value = dt.datetime(
            int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0), micro, tzinfo
        )
    except ValueError:
        return None
    return dt_to_ms(value)


def _parse_date_text(text: str) -> str | None:
    m = _DATE_RE.match(text.strip())
    if not m:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
    except ValueError:
        return None


def decode_value(f: FieldDef, raw: Any, source: str) -> Any:
    """Convert one payload value to its storage form, or raise :class:`TypeMismatch`.

    CSV cells are text: an empty cell returns :data:`SKIP` (no change) and ``#N/A`` means null,
    as in Bulk API 2.0.
    """
    if source == "csv":
        if raw == "":
            return SKIP
        if raw == "#N/A":
            raw = None
    if raw is None:
        return 0 if f.type == "boolean" else None
    t = f.type
    if f.is_text or t in ID_TYPES:
        if isinstance(raw, bool):
            return "true" if raw else "false"
        if isinstance(raw, (str, int, float)):
            return str(raw)
        raise TypeMismatch(f, raw)
    if t == "boolean":
        if isinstance(raw, bool):
            return int(raw)
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false", "1", "0"):
            return int(raw.strip().lower() in ("true", "1"))
        raise TypeMismatch(f, raw)
    if t == "int":
        if isinstance(raw, bool):
            raise TypeMismatch(f, raw)
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str) and _INT_RE.match(raw.strip()):
            return int(raw.strip())
        raise TypeMismatch(f, raw)
    if t in NUMBER_TYPES:
        if isinstance(raw, bool):
            raise TypeMismatch(f, raw)
        if isinstance(raw, (int, float)):
            return float(raw)
        if isinstance(raw, str) and _NUM_RE.match(raw.strip()):
            return float(raw.strip())
        raise TypeMismatch(f, raw)
    if t == "date":
        value = _parse_date_text(raw) if isinstance(raw, str) else None
        if value is None:
            raise TypeMismatch(f, raw)
        return value
    if t == "datetime":
        ms = parse_datetime_text(raw) if isinstance(raw, str) else None
        if ms is None:
            raise TypeMismatch(f, raw)
        return ms
    raise TypeMismatch(f, raw)  # pragma: no cover


def _json_token(raw: Any) -> str:
    if isinstance(raw, bool):
        return "VALUE_TRUE" if raw else "VALUE_FALSE"
    if isinstance(raw, int):
        return "VALUE_NUMBER_INT"
    if isinstance(raw, float):
        return "VALUE_NUMBER_FLOAT"
    if isinstance(raw, dict):
        return "START_OBJECT"
    if isinstance(raw, list):
        return "START_ARRAY"
    return "VALUE_STRING"


def json_parser_error(exc: TypeMismatch, body_text: str = "") -> ApiError:
    """The whole-request error a real org returns when a JSON value has the wrong type."""
    names = {"int": "int", "boolean": "boolean", "date": "date", "datetime": "datetime"}
    java_type = names.get(exc.field.type, "double")
    col = 1
    try:
        needle = json.dumps(exc.raw)
        found = body_text.find(needle)
        col = found + 1 if found >= 0 else 1
    except (TypeError, ValueError):
        pass
    shown = exc.raw if not isinstance(exc.raw, (dict, list)) else json.dumps(exc.raw)
    return ApiError(
        400,
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {java_type} from {_json_token(exc.raw)} value {shown} "
        f"or request may be missing a required field at [line:1, column:{col}]",
    )


def invalid_field_error(exc: UnknownField) -> ApiError:
    return ApiError(
        400,
        "INVALID_FIELD",
        f"No such column '{exc.name}' on sobject of type {exc.obj.name}",
    )


# --------------------------------------------------------------------------- the engine


class WriteEngine:
    """Applies the org's rules and writes rows. Callers hold ``db.write()`` around batches."""

    def __init__(self, org: Org):
        self.org = org

    # -- helpers
    @property
    def db(self):
        return self.org.db

    def decode(self, obj: ObjectDef, payload: Mapping[str, Any], source: str) -> dict[str, Any]:
        """Payload -> {field name: storage value}. Raises UnknownField / TypeMismatch.

        CSV cells that leave a field unchanged are dropped. ``attributes`` is ignored.
        """
        out: dict[str, Any] = {}
        for key, raw in payload.items():
            if key == "attributes":
                continue
            f = obj.field(key)
            if f is None:
                raise UnknownField(obj, key)
            value = decode_value(f, raw, source)
            if value is not SKIP:
                out[f.name] = value
        return out

    def find(self, obj: ObjectDef, record_id: str) -> dict[str, Any] | None:
        """The stored row for ``record_id`` (deleted rows included), or None."""
        cur = self.db.conn().execute(
            f'SELECT * FROM {q(table_name(obj.name))} WHERE "Id" = ?', (record_id,)
        )
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def object_for_id(self, record_id: str) -> ObjectDef | None:
        return self.org.schema.by_prefix(record_id[:3])

    def _journal(self, ctx: Ctx, obj: ObjectDef, op: str, record_id: str) -> None:
        """Note an API write for the write log (counted when its transaction commits)."""
        if ctx.source != "admin":
            self.db.journal((obj.name, op, record_id, ctx.channel or ctx.source))

    def _record_fault(self, obj: ObjectDef, op: str, record_id: str | None) -> None:
        code = self.org.faults.record_fault(obj.name, op)
        if code == "UNABLE_TO_LOCK_ROW":
            raise fail(
                "UNABLE_TO_LOCK_ROW",
                f"unable to obtain exclusive access to this record or 1 records: {record_id or ''}".rstrip(
                    ": "
                ),
            )
        if code:
            raise fail(code, "The API is temporarily unavailable. Try again later.")

    # -- checks
    def _check_writable(
        self, obj: ObjectDef, values: Mapping[str, Any], creating: bool, ctx: Ctx
    ) -> None:
        if ctx.source != "admin" and not (obj.createable if creating else obj.updateable):
            raise fail(
                "INSUFFICIENT_ACCESS_OR_READONLY", f"insufficient access rights on {obj.name}"
            )
        if creating and "Id" in values:
            raise fail(
                "INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ["Id"]
            )
        locked = (
            frozenset() if ctx.source == "admin" else self.org.access.not_editable(ctx.actor, obj)
        )
        bad = [
            name
            for name in values
            if name != "Id"
            and (
                not (obj.field(name).createable if creating else obj.field(name).updateable)  # type: ignore[union-attr]
                or name.lower() in locked  # field-level security of the writing user
            )
        ]
        if bad:
            raise fail(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(bad)}. Please check the security "
                "settings of this field and verify that it is read/write for your profile or "
                "permission set.",
                bad,
            )

    def _check_values(self, obj: ObjectDef, values: dict[str, Any]) -> None:
        for name, value in values.items():
            f = obj.field(name)
            assert f is not None
            if value is None:
                continue
            if f.is_text and f.length and len(value) > f.length:
                shown = value if len(value) <= 80 else value[:80] + "..."
                raise fail(
                    "STRING_TOO_LONG",
                    f"{f.label}: data value too large: {shown} (max length={f.length})",
                    [f.name],
                )
            if f.type == "email" and not EMAIL_RE.match(value):
                raise fail(
                    "INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {value}", [f.name]
                )
            if f.type == "picklist" and f.restricted and value not in f.picklist:
                raise fail(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{f.label}: bad value for restricted picklist field: {value}",
                    [f.name],
                )
            if f.type in ("double", "currency", "percent", "int") and f.precision:
                limit = 10 ** (f.precision - f.scale) if f.type != "int" else 10**f.precision
                if abs(value) >= limit:
                    raise fail(
                        "NUMBER_OUTSIDE_VALID_RANGE",
                        f"{f.label}: value outside of valid range on numeric field: {value}",
                        [f.name],
                    )
                if f.type != "int" and f.scale == 0 and f.custom:
                    values[name] = float(round(value))
            if f.type == "reference":
                norm = normalize_id(value)
                if norm is None:
                    raise fail(
                        "MALFORMED_ID", f"{f.label}: id value of incorrect type: {value}", [f.name]
                    )
                values[name] = norm

    def _check_required(self, obj: ObjectDef, row: Mapping[str, Any]) -> None:
        missing = [
            f.name
            for f in obj.field_list
            if f.required
            and (
                row.get(f.name) is None
                or (isinstance(row.get(f.name), str) and not row[f.name].strip())
            )
        ]
        if missing:
            raise fail(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )

    def _check_references(self, obj: ObjectDef, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            f = obj.field(name)
            if f is None or f.type != "reference" or value is None:
                continue
            target = self.org.schema.by_prefix(value[:3])
            if target is None or target.name not in f.reference_to:
                raise fail(
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"{f.label}: id value of incorrect type: {value}",
                    [f.name],
                )
            if target.name == "User":
                user = self.org.user(value)
                if user is None:
                    raise fail(
                        "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name]
                    )
                if not user["IsActive"] and f.name == "OwnerId":
                    raise fail(
                        "INACTIVE_OWNER_OR_USER",
                        f"operation performed with inactive user [{value}] as owner of {obj.label.lower()}",
                    )
                continue
            deleted = '"IsDeleted"' if target.soft_deletes else "0"
            hit = (
                self.db.conn()
                .execute(
                    f'SELECT {deleted} FROM {q(table_name(target.name))} WHERE "Id" = ?', (value,)
                )
                .fetchone()
            )
            if hit is None or hit[0]:
                raise fail("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name])

    def _check_rules(self, obj: ObjectDef, row: Mapping[str, Any]) -> None:
        for rule in self.org.schema.rules_for(obj.name):
            if rule.violated_by(row.get(rule.field)):
                raise fail("FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.message, [rule.field])

    def _check_unique(self, obj: ObjectDef, row: Mapping[str, Any], own_id: str | None) -> None:
        t = q(table_name(obj.name))
        live = ' AND "IsDeleted" = 0' if obj.soft_deletes else ""
        for f in obj.field_list:
            value = row.get(f.name)
            if not f.unique or value is None:
                continue
            hit = (
                self.db.conn()
                .execute(
                    f'SELECT "Id" FROM {t} WHERE {q(f.name)} = ?{live} AND "Id" != ? LIMIT 1',
                    (value, own_id or ""),
                )
                .fetchone()
            )
            if hit:
                raise fail(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {f.name} duplicates value on record with id: {hit[0]}",
                    [f.name],
                )

    def _derive(
        self,
        obj: ObjectDef,
        row: dict[str, Any],
        values: Mapping[str, Any],
        old: Mapping[str, Any] | None,
        at: int,
    ) -> None:
        if obj.field("Name") is not None and obj.field("Name").calculated:  # type: ignore[union-attr]
            row["Name"] = (
                " ".join(p for p in (row.get("FirstName"), row.get("LastName")) if p) or None
            )
        if obj.name == "Opportunity":
            stage = row.get("StageName")
            prob, closed, won = OPPORTUNITY_STAGES.get(stage, (None, False, False))  # type: ignore[arg-type]
            row["IsClosed"], row["IsWon"] = int(closed), int(won)
            stage_changed = old is None or old.get("StageName") != stage
            if "Probability" not in values and stage_changed and prob is not None:
                row["Probability"] = float(prob)
        if obj.name == "Task":
            closed = row.get("Status") in TASK_CLOSED_STATUSES
            was_closed = bool(old and old.get("IsClosed"))
            row["IsClosed"] = int(closed)
            if closed and not was_closed:
                row["CompletedDateTime"] = at
            elif not closed:
                row["CompletedDateTime"] = None

    # -- single-record operations (caller holds db.write())
    def insert(self, obj: ObjectDef, values: dict[str, Any], ctx: Ctx) -> str:
        if ctx.check_faults:
            self._record_fault(obj, "insert", None)
        self._check_writable(obj, values, True, ctx)
        values = dict(values)
        self._check_values(obj, values)
        row: dict[str, Any] = {}
        for f in obj.field_list:
            if f.default is not None and not f.system:
                row[f.name] = int(f.default) if isinstance(f.default, bool) else f.default
        if obj.has_owner:
            row["OwnerId"] = ctx.actor
        row.update(values)
        self._derive(obj, row, values, None, ctx.at_ms)
        self._check_required(obj, row)
        refs = dict(values)
        if obj.has_owner:
            refs.setdefault("OwnerId", row["OwnerId"])
        self._check_references(obj, refs)
        self._check_rules(obj, row)
        self._check_unique(obj, row, None)
        pk = self.db.allocate_pk(obj.name)
        rid = make_id(obj.key_prefix, pk)
        row.update(
            Id=rid,
            CreatedDate=ctx.at_ms,
            CreatedById=ctx.actor,
            LastModifiedDate=ctx.at_ms,
            LastModifiedById=ctx.actor,
            SystemModstamp=ctx.at_ms,
        )
        if obj.soft_deletes:
            row["IsDeleted"] = 0
        cols = [k for k in row if obj.field(k) is not None]
        self.db.conn().execute(
            f"INSERT INTO {q(table_name(obj.name))} (pk, {', '.join(q(c) for c in cols)}) "
            f"VALUES (?, {', '.join('?' for _ in cols)})",
            [pk, *(row[c] for c in cols)],
        )
        self._journal(ctx, obj, "created", rid)
        return rid

    def update(
        self,
        obj: ObjectDef,
        record_id: str,
        values: dict[str, Any],
        ctx: Ctx,
        *,
        existing: dict[str, Any] | None = None,
    ) -> str:
        """Update one record. ``record_id`` must be canonical; missing/deleted rows fail."""
        if ctx.check_faults:
            self._record_fault(obj, "update", record_id)
        old = existing or self.find(obj, record_id)
        if old is None or old.get("IsDeleted"):
            # A real org cannot tell a never-existing id from a purged one: both are "deleted".
            raise fail("ENTITY_IS_DELETED", "entity is deleted")
        values = {k: v for k, v in values.items() if k != "Id"}
        self._check_writable(obj, values, False, ctx)
        if obj.name == "Lead" and old.get("IsConverted"):
            raise fail("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        values = dict(values)
        self._check_values(obj, values)
        row = dict(old)
        row.update(values)
        self._derive(obj, row, values, old, ctx.at_ms)
        self._check_required(obj, row)
        changed_refs = {k: v for k, v in values.items() if v != old.get(k)}
        self._check_references(obj, changed_refs)
        self._check_rules(obj, row)
        self._check_unique(obj, row, record_id)
        row.update(LastModifiedDate=ctx.at_ms, LastModifiedById=ctx.actor, SystemModstamp=ctx.at_ms)
        stamps = ("LastModifiedDate", "LastModifiedById", "SystemModstamp")
        cols = [
            k
            for k in row
            if k in stamps or (k != "Id" and obj.field(k) is not None and row[k] != old.get(k))
        ]
        self.db.conn().execute(
            f'UPDATE {q(table_name(obj.name))} SET {", ".join(f"{q(c)} = ?" for c in cols)} WHERE "Id" = ?',
            [*(row[c] for c in cols), record_id],
        )
        self._journal(ctx, obj, "updated", record_id)
        return record_id

    def match_external(self, obj: ObjectDef, ext: FieldDef, value: Any) -> list[str]:
        """Live records whose external id ``ext`` equals ``value`` (case-insensitive for text)."""
        if ext.name == "Id":
            norm = normalize_id(value)
            if norm is None:
                return []
            row = self.find(obj, norm)
            return [norm] if row and not row.get("IsDeleted") else []
        live = ' AND "IsDeleted" = 0' if obj.soft_deletes else ""
        rows = (
            self.db.conn()
            .execute(
                f'SELECT "Id" FROM {q(table_name(obj.name))} WHERE {q(ext.name)} = ?{live} ORDER BY pk LIMIT 10',
                (value,),
            )
            .fetchall()
        )
        return [r[0] for r in rows]

    def upsert(
        self, obj: ObjectDef, ext: FieldDef, values: dict[str, Any], ctx: Ctx
    ) -> tuple[str, bool]:
        """Create or update by external id; ``values`` carries the external id value."""
        value = values.get(ext.name)
        if ext.name != "Id" and (value is None or value == ""):
            raise fail("MISSING_ARGUMENT", f"{ext.name} not specified", [ext.name])
        matches = self.match_external(obj, ext, value) if value not in (None, "") else []
        if len(matches) > 1:
            raise fail(
                "DUPLICATE_EXTERNAL_ID",
                f"The external ID {ext.name} matches multiple records: {value}",
                [ext.name],
            )
        if matches:
            rest = {k: v for k, v in values.items() if k not in (ext.name, "Id")}
            return self.update(obj, matches[0], rest, ctx), False
        if ext.name == "Id":
            if value not in (None, ""):
                raise fail("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["Id"])
            values = {k: v for k, v in values.items() if k != "Id"}
        return self.insert(obj, values, ctx), True

    def delete(self, record_id: str, ctx: Ctx) -> str:
        """Soft-delete (recycle bin), cascading to children. ``record_id`` must be canonical."""
        obj = self.object_for_id(record_id)
        if obj is None:
            raise fail("MALFORMED_ID", f"malformed id {record_id}")
        if ctx.check_faults:
            self._record_fault(obj, "delete", record_id)
        if not obj.deletable:
            raise fail(
                "INSUFFICIENT_ACCESS_OR_READONLY", f"insufficient access rights on {obj.name}"
            )
        old = self.find(obj, record_id)
        if old is None or old.get("IsDeleted"):
            raise fail("ENTITY_IS_DELETED", "entity is deleted")
        self._soft_delete(obj, record_id, record_id, ctx)
        self._journal(ctx, obj, "deleted", record_id)
        return record_id

    def _soft_delete(
        self, obj: ObjectDef, record_id: str, root: str, ctx: Ctx, master: str | None = None
    ) -> None:
        c = self.db.conn()
        extra = ', "MasterRecordId" = ?' if master else ""
        params: list[Any] = [
            ctx.at_ms,
            ctx.at_ms,
            ctx.actor,
            ctx.at_ms,
            root if root != record_id else None,
        ]
        if master:
            params.append(master)
        c.execute(
            f'UPDATE {q(table_name(obj.name))} SET "IsDeleted" = 1, _deleted_at = ?, "SystemModstamp" = ?, '
            f'"LastModifiedById" = ?, "LastModifiedDate" = ?, _delete_root = ?{extra} WHERE "Id" = ?',
            [*params, record_id],
        )
        for child_obj, ref in CASCADE.get(obj.name, []):
            child = self.org.schema.get(child_obj)
            assert child is not None
            live = c.execute(
                f'SELECT "Id" FROM {q(table_name(child_obj))} WHERE {q(ref)} = ? AND "IsDeleted" = 0',
                (record_id,),
            ).fetchall()
            for (cid,) in live:
                self._soft_delete(child, cid, root, ctx)

    def hard_delete(self, record_id: str, ctx: Ctx) -> str:
        """Remove a record for good (Bulk ``hardDelete``): it skips the recycle bin."""
        obj = self.object_for_id(record_id)
        if obj is None or not obj.deletable:
            raise fail("MALFORMED_ID", f"malformed id {record_id}")
        if ctx.check_faults:
            self._record_fault(obj, "delete", record_id)
        old = self.find(obj, record_id)
        if old is None:
            raise fail("ENTITY_IS_DELETED", "entity is deleted")
        self.db.conn().execute(
            f'DELETE FROM {q(table_name(obj.name))} WHERE "Id" = ?', (record_id,)
        )
        self._journal(ctx, obj, "deleted", record_id)
        return record_id

    def undelete(self, record_id: str, ctx: Ctx) -> str:
        obj = self.object_for_id(record_id)
        if obj is None or not obj.soft_deletes:
            raise fail("MALFORMED_ID", f"malformed id {record_id}")
        old = self.find(obj, record_id)
        if old is None:
            raise fail("ENTITY_IS_DELETED", "entity is not in recycle bin")
        if not old.get("IsDeleted"):
            raise fail("UNDELETE_FAILED", "Entity is not in the recycle bin")
        if old.get("_delete_root"):
            raise fail("UNDELETE_FAILED", f"Undelete the parent record {old['_delete_root']} first")
        self._check_unique(obj, old, record_id)
        c = self.db.conn()
        stamp = (ctx.at_ms, ctx.actor, ctx.at_ms)
        c.execute(
            f'UPDATE {q(table_name(obj.name))} SET "IsDeleted" = 0, _deleted_at = NULL, _delete_root = NULL, '
            f'"SystemModstamp" = ?, "LastModifiedById" = ?, "LastModifiedDate" = ? WHERE "Id" = ?',
            (*stamp, record_id),
        )
        for name in CASCADE_OBJECTS:
            c.execute(
                f'UPDATE {q(table_name(name))} SET "IsDeleted" = 0, _deleted_at = NULL, _delete_root = NULL, '
                f'"SystemModstamp" = ?, "LastModifiedById" = ?, "LastModifiedDate" = ? WHERE _delete_root = ?',
                (*stamp, record_id),
            )
        return record_id

    # -- salesperson actions (admin API)
    def merge(
        self, obj: ObjectDef, master_id: str, loser_ids: list[str], fields: dict[str, Any], ctx: Ctx
    ) -> dict[str, Any]:
        """Merge up to two records into ``master_id`` as the Salesforce UI does.

        Children of the losers (contacts, opportunities, tasks, contact roles) are re-pointed to
        the master; the losers go to the recycle bin with ``MasterRecordId`` set.
        """
        if obj.name not in MERGE_CHILDREN:
            raise ApiError(400, "INVALID_TYPE", f"{obj.name} records cannot be merged")
        if not 1 <= len(loser_ids) <= 2:
            raise ApiError(
                400, "INVALID_OPERATION", "merge takes one master and one or two other records"
            )
        master = self.find(obj, master_id)
        if master is None or master.get("IsDeleted"):
            raise ApiError(
                400, "ENTITY_IS_DELETED", f"master record {master_id} is missing or deleted"
            )
        c = self.db.conn()
        moved: dict[str, int] = {}
        for loser_id in loser_ids:
            loser = self.find(obj, loser_id)
            if loser is None or loser.get("IsDeleted") or loser_id == master_id:
                raise ApiError(400, "INVALID_ID_FIELD", f"cannot merge record {loser_id}")
            for child_obj, ref in MERGE_CHILDREN[obj.name]:
                cur = c.execute(
                    f'UPDATE {q(table_name(child_obj))} SET {q(ref)} = ?, "SystemModstamp" = ?, '
                    f'"LastModifiedDate" = ?, "LastModifiedById" = ? WHERE {q(ref)} = ?',
                    (master_id, ctx.at_ms, ctx.at_ms, ctx.actor, loser_id),
                )
                moved[child_obj] = moved.get(child_obj, 0) + cur.rowcount
            # Losers keep their own values (external ids included); only the bin flags change.
            self._soft_delete_one(obj, loser_id, ctx, master=master_id)
        self.update(obj, master_id, fields, Ctx(ctx.actor, ctx.at_ms, "admin", check_faults=False))
        return {"id": master_id, "mergedRecordIds": loser_ids, "updatedRelatedIds": moved}

    def _soft_delete_one(
        self, obj: ObjectDef, record_id: str, ctx: Ctx, master: str | None
    ) -> None:
        self.db.conn().execute(
            f'UPDATE {q(table_name(obj.name))} SET "IsDeleted" = 1, _deleted_at = ?, "SystemModstamp" = ?, '
            f'"LastModifiedDate" = ?, "LastModifiedById" = ?, "MasterRecordId" = ? WHERE "Id" = ?',
            (ctx.at_ms, ctx.at_ms, ctx.at_ms, ctx.actor, master, record_id),
        )

    def convert_lead(self, lead_id: str, spec: Mapping[str, Any], ctx: Ctx) -> dict[str, Any]:
        """Convert a lead as a salesperson would (there is no REST convertLead).

        Creates an Account (Name = Company) unless ``accountId`` is given, a Contact unless
        ``contactId`` is given (an existing contact only gets its blank fields filled), and an
        Opportunity unless ``doNotCreateOpportunity`` is true (with a primary contact role).
        Lead fields map to the same-named Contact fields (custom fields included); the lead gets
        ``IsConverted``, ``ConvertedDate``, ``Converted*Id`` and the converted status.
        """
        lead_obj = self.org.schema.get("Lead")
        acc_obj = self.org.schema.get("Account")
        con_obj = self.org.schema.get("Contact")
        opp_obj = self.org.schema.get("Opportunity")
        assert lead_obj and acc_obj and con_obj and opp_obj
        lead = self.find(lead_obj, lead_id)
        if lead is None or lead.get("IsDeleted"):
            raise ApiError(400, "ENTITY_IS_DELETED", f"lead {lead_id} is missing or deleted")
        if lead.get("IsConverted"):
            raise ApiError(400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        owner = spec.get("ownerId") or lead.get("OwnerId") or ctx.actor
        inner = Ctx(ctx.actor, ctx.at_ms, "admin", check_faults=False)
        try:
            account_id = self._norm_or_fail(spec.get("accountId"))
            if account_id is None:
                account_id = self.insert(
                    acc_obj,
                    {"Name": lead.get("Company") or lead.get("Name"), "OwnerId": owner,
                     "Industry": lead.get("Industry"), "Phone": lead.get("Phone"), "Website": lead.get("Website"),
                     "BillingStreet": lead.get("Street"), "BillingCity": lead.get("City"),
                     "BillingState": lead.get("State"), "BillingPostalCode": lead.get("PostalCode"),
                     "BillingCountry": lead.get("Country"), "AnnualRevenue": lead.get("AnnualRevenue"),
                     "NumberOfEmployees": lead.get("NumberOfEmployees")},
                    inner,
                )  # fmt: skip
            mapped = {"AccountId": account_id, "OwnerId": owner, "MailingStreet": lead.get("Street"),
                      "MailingCity": lead.get("City"), "MailingState": lead.get("State"),
                      "MailingPostalCode": lead.get("PostalCode"), "MailingCountry": lead.get("Country")}  # fmt: skip
            for f in con_obj.field_list:
                lf = lead_obj.field(f.name)
                if (
                    lf is not None
                    and f.createable
                    and f.updateable
                    and f.name not in mapped
                    and f.name != "OwnerId"
                ):
                    mapped[f.name] = lead.get(lf.name)
            contact_id = self._norm_or_fail(spec.get("contactId"))
            if contact_id is None:
                contact_id = self.insert(
                    con_obj, {k: v for k, v in mapped.items() if v is not None}, inner
                )
            else:
                existing = self.find(con_obj, contact_id)
                if existing is None or existing.get("IsDeleted"):
                    raise ApiError(
                        400, "INVALID_CROSS_REFERENCE_KEY", f"contact {contact_id} not found"
                    )
                fill = {
                    k: v
                    for k, v in mapped.items()
                    if v is not None and existing.get(k) in (None, "") and k != "OwnerId"
                }
                self.update(con_obj, contact_id, fill, inner)
            opportunity_id = None
            if not spec.get("doNotCreateOpportunity", False):
                close = dt.datetime.fromtimestamp(
                    ctx.at_ms / 1000, tz=dt.UTC
                ).date() + dt.timedelta(days=30)
                opportunity_id = self.insert(
                    opp_obj,
                    {"Name": spec.get("opportunityName") or f"{lead.get('Company') or lead.get('Name')}-",
                     "AccountId": account_id, "StageName": spec.get("stageName", "Prospecting"),
                     "CloseDate": close.isoformat(), "OwnerId": owner, "LeadSource": lead.get("LeadSource")},
                    inner,
                )  # fmt: skip
                ocr = self.org.schema.get("OpportunityContactRole")
                assert ocr is not None
                self.insert(
                    ocr,
                    {"OpportunityId": opportunity_id, "ContactId": contact_id, "IsPrimary": 1},
                    inner,
                )
            today = dt.datetime.fromtimestamp(ctx.at_ms / 1000, tz=dt.UTC).date().isoformat()
            status = spec.get("convertedStatus", CONVERTED_LEAD_STATUS)
            c = self.db.conn()
            c.execute(
                'UPDATE "sf_Lead" SET "IsConverted" = 1, "ConvertedDate" = ?, "ConvertedAccountId" = ?, '
                '"ConvertedContactId" = ?, "ConvertedOpportunityId" = ?, "Status" = ?, "SystemModstamp" = ?, '
                '"LastModifiedDate" = ?, "LastModifiedById" = ? WHERE "Id" = ?',
                (
                    today,
                    account_id,
                    contact_id,
                    opportunity_id,
                    status,
                    ctx.at_ms,
                    ctx.at_ms,
                    ctx.actor,
                    lead_id,
                ),
            )
        except RecordFailure as exc:
            raise ApiError(400, exc.error.code, exc.error.message, exc.error.fields) from exc
        return {
            "leadId": lead_id,
            "accountId": account_id,
            "contactId": contact_id,
            "opportunityId": opportunity_id,
            "success": True,
        }

    @staticmethod
    def _norm_or_fail(value: Any) -> str | None:
        if value in (None, ""):
            return None
        norm = normalize_id(value)
        if norm is None:
            raise ApiError(400, "MALFORMED_ID", f"malformed id {value}")
        return norm


CASCADE_OBJECTS = ("Contact", "Opportunity", "OpportunityContactRole", "Task")


def run_batch(
    engine: WriteEngine,
    items: list[Callable[[], tuple[str | None, bool | None]]],
    *,
    all_or_none: bool,
    ids_for_rollback: list[str | None] | None = None,
) -> list[dict[str, Any]]:
    """Run per-record operations in one transaction and return collection-style results.

    Each item returns ``(id, created)`` or raises :class:`RecordFailure`. With ``all_or_none``
    a single failure rolls everything back and the records that had succeeded report
    ``ALL_OR_NONE_OPERATION_ROLLED_BACK``.
    """
    results: list[dict[str, Any]] = []
    failed = False

    class _Rollback(Exception):
        pass

    with engine.db.write():
        try:
            with engine.db.write():
                for item in items:
                    try:
                        rid, created = item()
                        res: dict[str, Any] = {"id": rid, "success": True, "errors": []}
                        if created is not None:
                            res["created"] = created
                        results.append(res)
                    except RecordFailure as exc:
                        failed = True
                        results.append({"success": False, "errors": [exc.error.to_json()]})
                if all_or_none and failed:
                    raise _Rollback
        except _Rollback:
            rolled = RecordError(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was using AllOrNone header",
            )
            for i, res in enumerate(results):
                if res["success"]:
                    keep_id = ids_for_rollback[i] if ids_for_rollback else None
                    results[i] = {"id": keep_id, "success": False, "errors": [rolled.to_json()]}
    for i, res in enumerate(results):
        if "id" not in res:
            res["id"] = ids_for_rollback[i] if ids_for_rollback else None
        # Salesforce puts "id" first.
        results[i] = {"id": res.pop("id"), **res}
    return results
