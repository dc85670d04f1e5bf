"""JSON-RPC plumbing shared by every method family: the registry, parameter checks, batches.

A method is a plain function ``fn(ctx, params) -> result`` registered with :func:`method`.
Read methods return their result object; write methods use :func:`run_batch`, which applies one
handler per object inside its own SAVEPOINT so a failing object leaves no trace and never stops
the rest of the batch (reference 3.2).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .clock import AccountClock, to_zone
from .config import RuntimeConfig
from .errors import ApiError, ObjectError
from .storage import Database


@dataclass
class Context:
    """What a method needs: the database, the account clock and the live limits."""

    db: Database
    clock: AccountClock
    config: RuntimeConfig


Handler = Callable[[Context, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Method:
    name: str
    fn: Handler
    write: bool


METHODS: dict[str, Method] = {}


def method(name: str, *, write: bool = False) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the implementation of API method ``name``."""

    def register(fn: Handler) -> Handler:
        if name in METHODS:
            raise RuntimeError(f"method {name} registered twice")
        METHODS[name] = Method(name, fn, write)
        return fn

    return register


# -- parameter helpers ----------------------------------------------------------------------


def require_where(
    params: dict[str, Any], allowed: tuple[str, ...], *, optional: bool = False
) -> dict[str, Any]:
    """Return ``params["where"]`` as a dict, checking its keys.

    ``where`` is required even when empty on most list methods (206 otherwise). PHP clients
    encode an empty array as ``[]``, so an empty list counts as ``{}``. Unknown keys are refused
    with 205 naming the key and the keys this method filters on: silently ignoring a filter would
    turn a typo into "read everything".
    """
    if "where" not in params or params["where"] is None:
        if optional:
            return {}
        raise ApiError(206, "Missing parameters: where", {"param": "where"})
    where = params["where"]
    if isinstance(where, list) and not where:
        return {}
    if not isinstance(where, dict):
        raise ApiError(205, "Invalid parameters: where must be an object", {"param": "where"})
    unknown = [k for k in where if k not in allowed]
    if unknown:
        raise ApiError(
            205,
            f"Invalid parameters: cannot filter on {', '.join(unknown)}",
            {"param": "where", "invalid": unknown, "allowed": list(allowed)},
        )
    return where


def int_param(value: Any, name: str) -> int:
    if isinstance(value, (list, dict)):
        raise ApiError(210, f"Array given where a scalar was expected: {name}", {"param": name})
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise ApiError(
            205, f"Invalid parameters: {name} must be an integer", {"param": name}
        ) from None


def limit_offset(params: dict[str, Any], *, cap: int, default: int = 500) -> tuple[int, int]:
    """``limit`` (capped silently, as getLeads does at 500) and zero-based record ``offset``."""
    limit = default if params.get("limit") in (None, "") else int_param(params["limit"], "limit")
    offset = 0 if params.get("offset") in (None, "") else int_param(params["offset"], "offset")
    if limit < 1:
        raise ApiError(205, "Invalid parameters: limit must be at least 1", {"param": "limit"})
    if offset < 0:
        raise ApiError(205, "Invalid parameters: offset must not be negative", {"param": "offset"})
    return min(limit, cap), offset


def id_list(value: Any, name: str, max_items: int) -> list[int]:
    """A where value that may be a scalar or a list (lists of up to ``max_items``, else 209)."""
    values = value if isinstance(value, list) else [value]
    if len(values) > max_items:
        raise ApiError(
            209,
            f"Too many queries in one request: at most {max_items} values in {name}",
            {"param": name},
        )
    out = []
    for v in values:
        if isinstance(v, (list, dict)):
            raise ApiError(210, f"Array given where a scalar was expected: {name}", {"param": name})
        out.append(int_param(v, name))
    return out


def require_param(params: dict[str, Any], name: str) -> Any:
    if name not in params or params[name] in (None, ""):
        raise ApiError(206, f"Missing parameters: {name}", {"param": name})
    return params[name]


def get_objects(params: dict[str, Any], max_objects: int) -> list[Any]:
    """The ``objects`` array of a batch write: 207 if absent, 208 if not an array, 209 if too long."""
    if "objects" not in params or params["objects"] is None:
        raise ApiError(207, data={"param": "objects"})
    objects = params["objects"]
    if isinstance(objects, dict):
        # PHP sends a list with non-sequential keys as an object; the values are the objects.
        objects = list(objects.values())
    if not isinstance(objects, list):
        raise ApiError(208, data={"param": "objects"})
    if len(objects) > max_objects:
        raise ApiError(
            209,
            f"Too many queries in one request: {len(objects)} objects, the limit is {max_objects}",
            {"param": "objects", "count": len(objects), "limit": max_objects},
        )
    return objects


ObjectHandler = Callable[[sqlite3.Connection, dict[str, Any]], dict[str, Any]]


def run_batch(
    ctx: Context, params: dict[str, Any], result_key: str, handler: ObjectHandler
) -> dict[str, Any]:
    """Apply ``handler`` to each object in order; one result entry per object.

    Each handler returns its success entry (``{"success": True, "error": None, ...}``) or raises
    :class:`ObjectError`; the whole batch is one transaction with a savepoint per object.
    """
    objects = get_objects(params, ctx.config.max_objects)
    entries: list[dict[str, Any]] = []
    with ctx.db.tx() as conn:
        for obj in objects:
            if not isinstance(obj, dict):
                entries.append(failure(ObjectError(208, data={"object": obj})))
                continue
            conn.execute("SAVEPOINT obj")
            try:
                entry = handler(conn, obj)
            except ObjectError as exc:
                conn.execute("ROLLBACK TO obj")
                entries.append(failure(exc))
            else:
                entries.append(entry)
            conn.execute("RELEASE obj")
    return {result_key: entries}


def failure(exc: ObjectError) -> dict[str, Any]:
    return {"success": False, "error": exc.to_json()}


TIMESTAMP_COLUMNS = frozenset({"createTimestamp", "updateTimestamp"})


def rows_api(
    rows: list[sqlite3.Row], columns: tuple[str, ...] | list[str], zone_name: str = "UTC"
) -> list[dict[str, str | None]]:
    """Rows -> API objects with every value as a string (or null); timestamps in the account
    zone ``zone_name``."""
    out = []
    for row in rows:
        obj = {c: (None if row[c] is None else str(row[c])) for c in columns}
        if zone_name != "UTC":
            for c in TIMESTAMP_COLUMNS.intersection(columns):
                obj[c] = to_zone(obj[c], zone_name)
        out.append(obj)
    return out


def _where_value(key: str, value: Any) -> Any:
    """A scalar filter value; id columns (``id``, ``...ID``) are compared as integers."""
    if isinstance(value, (list, dict)):
        raise ApiError(210, f"Array given where a scalar was expected: {key}", {"param": key})
    if isinstance(value, bool):
        return int(value)
    if key == "id" or key.endswith("ID"):
        number = int_param(value, key)
        # Ids are MySQL BIGINTs: a larger number matches no row (MySQL compares it as a decimal
        # and finds nothing) rather than failing the call [I]. NULL matches nothing here too.
        return number if -(2**63) <= number < 2**63 else None
    return value


def where_sql(
    where: dict[str, Any], keys: tuple[str, ...], max_items: int, *, nocase: tuple[str, ...] = ()
) -> tuple[str, list[Any], str, list[Any]]:
    """``(condition, args, order prefix, order args)`` for an already-checked ``where``.

    Scalars are equality filters combined with AND. A list value (at most ``max_items``, else
    209) takes precedence: as soon as one key has a list, scalar keys are ignored and the rows
    matching any of the lists are returned, those matched by the first list key in ``keys``
    order (ids first) before the others -- the vendor's text for getLeads ("if a list is used
    in the parameters then non-list parameters will be ignored ... list<id> being selected
    first", DLL docblock), applied to every generic ``where`` [I].
    """

    def column(key: str) -> str:
        return f'"{key}"' + (" COLLATE NOCASE" if key in nocase else "")

    lists = [k for k in keys if isinstance(where.get(k), list)]
    if not lists:
        args = [_where_value(k, v) for k, v in where.items()]
        return " AND ".join(f"{column(k)}=?" for k in where) or "1", args, "", []
    parts: list[str] = []
    args: list[Any] = []
    for key in lists:
        values = where[key]
        if len(values) > max_items:
            raise ApiError(
                209,
                f"Too many queries in one request: at most {max_items} values in {key}",
                {"param": key},
            )
        converted = [_where_value(key, v) for v in values]
        if converted:
            parts.append(f"{column(key)} IN ({','.join('?' * len(converted))})")
            args.extend(converted)
    if not parts:
        return "0", [], "", []
    if len(parts) == 1:
        return parts[0], args, "", []
    order = "CASE " + " ".join(f"WHEN {p} THEN {i}" for i, p in enumerate(parts)) + " END, "
    return " OR ".join(parts), args, order, list(args)


def filtered_select(
    conn: sqlite3.Connection,
    table: str,
    where: dict[str, Any],
    limit: int,
    offset: int,
    max_items: int = 500,
) -> list[sqlite3.Row]:
    """``SELECT *`` filtered by ``where`` (see :func:`where_sql`; ``id`` lists first), by id."""
    keys = tuple(sorted(where, key=lambda k: k != "id"))
    cond, args, order, order_args = where_sql(where, keys, max_items)
    sql = f"SELECT * FROM {table} WHERE {cond} ORDER BY {order}id LIMIT ? OFFSET ?"
    return conn.execute(sql, (*args, *order_args, limit, offset)).fetchall()
