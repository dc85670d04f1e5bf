"""SOQL execution: type-check a parsed query against the schema, compile it to SQL, page it.

Semantics worth knowing (they follow Salesforce, not SQL):

* Two-valued logic: ``Email != 'a'``, ``Email NOT IN (...)`` and ``NOT Email = 'a'`` include rows
  whose Email is null. ``NOT`` is pushed down with De Morgan so range predicates keep using the
  indexes (``SystemModstamp >= x AND SystemModstamp < y`` is an index range scan).
* String comparisons, ``LIKE`` and ``ORDER BY`` on text are case-insensitive.
* Datetime literals compare exactly even with fractional seconds (stored values are whole
  milliseconds). Date literals (``TODAY``, ``LAST_N_DAYS:n`` ...) are ranges in UTC, resolved on
  the org clock.
* Results are snapshots: the first call records the ordered row keys of the whole result and
  pages read from that list (``nextRecordsUrl`` = ``/services/data/vXX.X/query/<locator>-<offset>``).
  A user keeps at most ``max_cursors`` open cursors (10, like a real org); older ones are
  released and answer ``INVALID_QUERY_LOCATOR``.
* Ties in ``ORDER BY`` (and queries without one) are broken by creation order, so results are
  deterministic.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import soql
from .errors import ApiError
from .ids import make_id, normalize_id
from .schema import ID_TYPES, NUMBER_TYPES, FieldDef, ObjectDef, Schema
from .storage import Database, dt_to_ms, q, table_name, to_csv_value, to_json_value

MAX_OFFSET = 2000
DEFAULT_BATCH = 2000
MIN_BATCH = 200
# Fields a polymorphic relationship (Task.Who / Task.What) can return, as in a real org's
# "Name" pseudo-object.
POLY_FIELDS = ("Id", "Type", "Name", "FirstName", "LastName", "Email", "Title", "Phone")


def soql_error(query: str, pos: int, code: str, message: str) -> ApiError:
    return ApiError(400, code, soql.render_error(query, pos, message))


@dataclass
class Column:
    """One selected item: a field of the root object, of a parent, or of a polymorphic parent."""

    path: tuple[str, ...]  # canonical names, e.g. ("Owner", "Email")
    field: FieldDef | None  # None for Who.Type
    kind: str  # direct | parent | poly
    sql: str = ""
    chain: tuple[tuple[str, ObjectDef, str], ...] = ()  # (relationship name, target object, alias)
    ref: FieldDef | None = None  # poly: the reference field on the root (WhoId)
    poly_field: str = ""  # poly: the requested field name (canonical from POLY_FIELDS)


@dataclass
class Compiled:
    query: soql.Query
    obj: ObjectDef
    columns: list[Column]
    count_only: bool
    select_joins: list[str]
    select_aliases: list[str]
    filter_joins: list[str]
    where_sql: str
    params: list[Any]
    order_sql: str
    limit: int | None
    offset: int | None


class _Joins:
    """Allocates one LEFT JOIN per relationship path and remembers which ones a clause used."""

    def __init__(self) -> None:
        self.by_path: dict[tuple[str, ...], tuple[str, str]] = {}
        self._n = itertools.count(1)

    def get(self, path: tuple[str, ...], from_alias: str, ref: FieldDef, target: ObjectDef) -> str:
        key = tuple(p.lower() for p in path)
        if key not in self.by_path:
            alias = f"j{next(self._n)}"
            clause = (
                f"LEFT JOIN {q(table_name(target.name))} {alias} "
                f'ON {alias}."Id" = {from_alias}.{q(ref.name)}'
            )
            self.by_path[key] = (alias, clause)
        return self.by_path[key][0]

    def clauses_for(self, aliases: set[str]) -> list[str]:
        # Parents before children: allocation order already guarantees it.
        return [clause for alias, clause in self.by_path.values() if alias in aliases]


class Compiler:
    """Type-checks one parsed query against the schema and produces SQL fragments."""

    def __init__(
        self, schema: Schema, now_ms: int, hidden: frozenset[tuple[str, str]] = frozenset()
    ):
        self.schema = schema
        self.now_ms = now_ms
        # (object, field), lower-cased, that field-level security hides from the query's user.
        self.hidden = hidden

    def compile(self, query: soql.Query, *, include_deleted: bool) -> Compiled:
        text = query.text
        obj = self.schema.get(query.sobject)
        if obj is None:
            raise soql_error(
                text,
                query.sobject_pos,
                "INVALID_TYPE",
                f"sObject type '{query.sobject}' is not supported. If you are attempting to use a "
                "custom object, be sure to append the '__c' after the entity name. Please reference "
                "your WSDL or the describe call for the appropriate names.",
            )
        self.text = text
        self.obj = obj
        self.joins = _Joins()
        used_select: set[str] = set()
        used_filter: set[str] = set()

        columns: list[Column] = []
        seen: set[str] = set()
        for fp in query.fields:
            key = fp.dotted.lower()
            if key in seen:
                raise soql_error(
                    text, fp.pos, "MALFORMED_QUERY", f"duplicate field selected: {fp.dotted}"
                )
            seen.add(key)
            col = self._resolve(fp, "select")
            columns.append(col)
            used_select.update(alias for _, _, alias in col.chain)

        where_sql, params = "", []
        if query.where is not None:
            where_sql, params, aliases = self._cond(query.where, negate=False)
            used_filter |= aliases
        if obj.soft_deletes and not include_deleted:
            where_sql = '(t."IsDeleted" = 0)' + (f" AND ({where_sql})" if where_sql else "")

        order_parts = []
        for item in query.order_by:
            col = self._resolve(item.field, "order")
            if col.field is not None and not col.field.sortable:
                raise soql_error(
                    text, item.field.pos, "INVALID_FIELD",
                    f"field '{col.field.name}' can not be sorted in a query call",
                )  # fmt: skip
            used_filter.update(alias for _, _, alias in col.chain)
            nulls_last = item.nulls_last if item.nulls_last is not None else item.descending
            order_parts.append(
                f"{col.sql} {'DESC' if item.descending else 'ASC'} NULLS {'LAST' if nulls_last else 'FIRST'}"
            )
        # Deterministic tie-break; with an index on (SystemModstamp, Id) this costs nothing.
        order_parts.append("t.pk ASC")

        if query.offset is not None and query.offset > MAX_OFFSET:
            raise ApiError(
                400,
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"Maximum SOQL offset allowed is {MAX_OFFSET}",
            )
        return Compiled(
            query=query,
            obj=obj,
            columns=columns,
            count_only=query.count_only,
            select_joins=self.joins.clauses_for(used_select),
            select_aliases=sorted(used_select),
            filter_joins=self.joins.clauses_for(used_filter),
            where_sql=where_sql,
            params=params,
            order_sql=", ".join(order_parts),
            limit=query.limit,
            offset=query.offset,
        )

    # -- field paths
    def _no_column(self, fp: soql.FieldPath, name: str, obj: ObjectDef) -> ApiError:
        return soql_error(
            self.text,
            fp.pos,
            "INVALID_FIELD",
            f"No such column '{name}' on entity '{obj.name}'. If you are attempting to use a "
            "custom field, be sure to append the '__c' after the custom field name. Please "
            "reference your WSDL or the describe call for the appropriate names.",
        )

    def _resolve(self, fp: soql.FieldPath, purpose: str) -> Column:
        parts = fp.parts
        obj = self.obj
        alias = "t"
        chain: list[tuple[str, ObjectDef, str]] = []
        for i, rel_name in enumerate(parts[:-1]):
            ref = obj.relationship(rel_name)
            if ref is None:
                raise soql_error(
                    self.text, fp.pos, "INVALID_FIELD",
                    f"Didn't understand relationship '{rel_name}' in field path. If you are "
                    "attempting to use a custom relationship, be sure to append the '__r' after "
                    "the custom relationship name. Please reference your WSDL or the describe call "
                    "for the appropriate names.",
                )  # fmt: skip
            if ref.polymorphic:
                return self._resolve_poly(fp, ref, i, purpose)
            target = self.schema.get(ref.reference_to[0])
            assert target is not None
            path = tuple(p for p, _, _ in chain) + (ref.relationship_name or rel_name,)
            alias = self.joins.get(path, alias, ref, target)
            chain.append((ref.relationship_name or rel_name, target, alias))
            obj = target
        f = obj.field(parts[-1])
        if f is None or (obj.name.lower(), f.name.lower()) in self.hidden:
            raise self._no_column(fp, parts[-1], obj)
        return Column(
            path=tuple(name for name, _, _ in chain) + (f.name,),
            field=f,
            kind="parent" if chain else "direct",
            sql=f"{alias}.{q(f.name)}",
            chain=tuple(chain),
        )

    def _resolve_poly(self, fp: soql.FieldPath, ref: FieldDef, depth: int, purpose: str) -> Column:
        parts = fp.parts
        if depth != 0 or len(parts) != 2:
            raise soql_error(
                self.text, fp.pos, "INVALID_FIELD",
                f"the sandbox supports only one level through the polymorphic relationship '{parts[depth]}'",
            )  # fmt: skip
        wanted = next((p for p in POLY_FIELDS if p.lower() == parts[1].lower()), None)
        if wanted is None:
            raise soql_error(
                self.text, fp.pos, "INVALID_FIELD",
                f"No such column '{parts[1]}' on entity 'Name'. The sandbox supports "
                f"{', '.join(POLY_FIELDS)} through '{ref.relationship_name}'.",
            )  # fmt: skip
        if purpose != "select" and wanted != "Type":
            raise soql_error(
                self.text, fp.pos, "INVALID_FIELD",
                f"the sandbox can filter on {ref.relationship_name}.Type only, not {fp.dotted}",
            )  # fmt: skip
        if purpose == "order":
            raise soql_error(self.text, fp.pos, "INVALID_FIELD", f"cannot order by {fp.dotted}")
        return Column(
            path=(ref.relationship_name or "", wanted),
            field=None,
            kind="poly",
            sql=f"substr(t.{q(ref.name)}, 1, 3)",
            ref=ref,
            poly_field=wanted,
        )

    # -- conditions
    def _cond(self, node: Any, negate: bool) -> tuple[str, list[Any], set[str]]:
        if isinstance(node, soql.Not):
            return self._cond(node.item, not negate)
        if isinstance(node, (soql.And, soql.Or)):
            parts = [self._cond(item, negate) for item in node.items]
            is_and = isinstance(node, soql.And) != negate  # De Morgan
            joiner = " AND " if is_and else " OR "
            sql = joiner.join(f"({p[0]})" for p in parts)
            params = [v for p in parts for v in p[1]]
            aliases = set().union(*(p[2] for p in parts))
            return sql, params, aliases
        if isinstance(node, soql.Comparison):
            return self._comparison(node, negate)
        if isinstance(node, soql.InList):
            return self._in_list(node, negate)
        raise AssertionError(f"unexpected node {node!r}")  # pragma: no cover

    def _filter_column(self, fp: soql.FieldPath) -> Column:
        col = self._resolve(fp, "filter")
        if col.field is not None and not col.field.filterable:
            raise soql_error(
                self.text, fp.pos, "INVALID_FIELD",
                f"field '{col.field.name}' can not be filtered in a query call",
            )  # fmt: skip
        return col

    def _comparison(self, node: soql.Comparison, negate: bool) -> tuple[str, list[Any], set[str]]:
        col = self._filter_column(node.field)
        aliases = {alias for _, _, alias in col.chain}
        e = col.sql
        op = node.op
        lit = node.value
        if op == "LIKE":
            if col.field is None or not col.field.is_text:
                raise soql_error(
                    self.text, node.field.pos, "INVALID_QUERY_FILTER_OPERATOR",
                    f"invalid operator on field: {node.field.dotted}",
                )  # fmt: skip
            pattern = like_pattern(lit.raw or "")
            if negate:
                return f"({e} IS NULL OR {e} NOT LIKE ? ESCAPE '\\')", [pattern], aliases
            return f"{e} LIKE ? ESCAPE '\\'", [pattern], aliases
        if lit.kind == "null":
            if op not in ("=", "!="):
                raise soql_error(
                    self.text, lit.pos, "MALFORMED_QUERY", f"invalid operator {op} for null"
                )
            is_null = (op == "=") != negate
            return f"{e} IS NULL" if is_null else f"{e} IS NOT NULL", [], aliases
        value = self._coerce(col, lit)
        if isinstance(value, _Range):
            return self._range(e, op, value, negate), [], aliases
        positive = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}[op]
        inverse = {"=": "!=", "!=": "=", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}[op]
        use = inverse if negate else positive
        if use == "!=":
            return f"({e} IS NULL OR {e} != ?)", [value], aliases
        if negate and op not in ("=", "!="):
            return f"({e} IS NULL OR {e} {use} ?)", [value], aliases
        return f"{e} {use} ?", [value], aliases

    def _in_list(self, node: soql.InList, negate: bool) -> tuple[str, list[Any], set[str]]:
        col = self._filter_column(node.field)
        aliases = {alias for _, _, alias in col.chain}
        e = col.sql
        values: list[Any] = []
        has_null = False
        for lit in node.values:
            if lit.kind == "null":
                has_null = True
                continue
            v = self._coerce(col, lit)
            if isinstance(v, _Range):
                raise soql_error(
                    self.text, lit.pos, "INVALID_FIELD", "date literals are not allowed in IN lists"
                )
            values.append(v)
        inside = (not node.negated) != negate  # true: rows whose value is in the list
        marks = ", ".join("?" for _ in values)
        if inside:
            parts = [f"{e} IN ({marks})"] if values else []
            if has_null:
                parts.append(f"{e} IS NULL")
            return (" OR ".join(parts) or "0"), values, aliases
        parts = [f"{e} NOT IN ({marks})"] if values else ["1"]
        if has_null:
            return f"({e} IS NOT NULL AND {parts[0]})", values, aliases
        return f"({e} IS NULL OR {parts[0]})", values, aliases

    @staticmethod
    def _range(e: str, op: str, r: _Range, negate: bool) -> str:
        lo, hi = _sql_literal(r.lo), _sql_literal(r.hi)
        inside = f"({e} >= {lo} AND {e} < {hi})"
        outside = f"({e} IS NULL OR {e} < {lo} OR {e} >= {hi})"
        forms = {
            "=": (inside, outside),
            "!=": (outside, inside),
            "<": (f"{e} < {lo}", f"({e} IS NULL OR {e} >= {lo})"),
            "<=": (f"{e} < {hi}", f"({e} IS NULL OR {e} >= {hi})"),
            ">": (f"{e} >= {hi}", f"({e} IS NULL OR {e} < {hi})"),
            ">=": (f"{e} >= {lo}", f"({e} IS NULL OR {e} < {lo})"),
        }
        pos, neg = forms[op]
        return neg if negate else pos

    def _type_error(self, lit: soql.Literal, f: FieldDef, type_word: str, quoted: bool) -> ApiError:
        how = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
        return soql_error(
            self.text, lit.pos, "INVALID_FIELD",
            f"value of filter criterion for field '{f.name}' must be of type {type_word} and {how}",
        )  # fmt: skip

    def _coerce(self, col: Column, lit: soql.Literal) -> Any:
        if col.kind == "poly":  # Who.Type = 'Lead' -> compare key prefixes
            if lit.kind != "string":
                raise soql_error(self.text, lit.pos, "INVALID_FIELD", "Type values are strings")
            target = self.schema.get(lit.value)
            return target.key_prefix if target else "~~~"
        f = col.field
        assert f is not None
        t = f.type
        if t in ID_TYPES:
            if lit.kind != "string":
                raise self._type_error(lit, f, "id", quoted=True)
            norm = normalize_id(lit.value)
            if norm is None:
                raise soql_error(
                    self.text,
                    lit.pos,
                    "INVALID_QUERY_FILTER_OPERATOR",
                    f"invalid ID field: {lit.value}",
                )
            return norm
        if f.is_text:
            if lit.kind != "string":
                raise self._type_error(lit, f, "string", quoted=True)
            return lit.value
        if t == "boolean":
            if lit.kind != "boolean":
                raise self._type_error(lit, f, "boolean", quoted=False)
            return 1 if lit.value else 0
        if t in NUMBER_TYPES:
            if lit.kind != "number":
                raise self._type_error(lit, f, "int" if t == "int" else "double", quoted=False)
            return lit.value
        if t == "date":
            if lit.kind == "date":
                return lit.value.isoformat()
            if lit.kind == "date_literal":
                lo, hi = self._date_range(lit.value)
                return _Range(lo.isoformat(), hi.isoformat())
            raise self._type_error(lit, f, "date", quoted=False)
        if t == "datetime":
            if lit.kind == "datetime":
                return _exact_ms(lit.value)
            if lit.kind == "date_literal":
                lo, hi = self._date_range(lit.value)
                return _Range(_day_ms(lo), _day_ms(hi))
            raise self._type_error(lit, f, "dateTime", quoted=False)
        raise soql_error(self.text, lit.pos, "INVALID_FIELD", f"cannot filter on field '{f.name}'")

    def _date_range(self, d: soql.DateLiteral) -> tuple[dt.date, dt.date]:
        today = dt.datetime.fromtimestamp(self.now_ms / 1000, tz=dt.UTC).date()
        one = dt.timedelta(days=1)
        if d.name == "TODAY":
            return today, today + one
        if d.name == "YESTERDAY":
            return today - one, today
        if d.name == "TOMORROW":
            return today + one, today + 2 * one
        if d.name == "LAST_N_DAYS":
            return today - dt.timedelta(days=d.n or 0), today + one
        if d.name == "NEXT_N_DAYS":
            return today + one, today + one + dt.timedelta(days=d.n or 0)
        if d.name == "LAST_90_DAYS":
            return today - dt.timedelta(days=90), today + one
        first = today.replace(day=1)
        if d.name == "THIS_MONTH":
            return first, _add_month(first)
        if d.name == "LAST_MONTH":
            prev = (first - one).replace(day=1)
            return prev, first
        if d.name == "THIS_YEAR":
            return today.replace(month=1, day=1), today.replace(year=today.year + 1, month=1, day=1)
        raise AssertionError(d.name)  # pragma: no cover


@dataclass(frozen=True)
class _Range:
    lo: Any
    hi: Any


def _sql_literal(v: Any) -> str:
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return str(v)


def _add_month(d: dt.date) -> dt.date:
    return d.replace(year=d.year + 1, month=1) if d.month == 12 else d.replace(month=d.month + 1)


def _day_ms(d: dt.date) -> int:
    return dt_to_ms(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC))


def _exact_ms(value: dt.datetime) -> int | float:
    """Milliseconds, keeping a sub-millisecond fraction so comparisons stay exact."""
    whole = dt_to_ms(value)
    frac = value.microsecond % 1000
    return whole + frac / 1000 if frac else whole


def like_pattern(raw: str) -> str:
    """SOQL LIKE pattern (raw text between the quotes) -> SQLite LIKE pattern with ESCAPE '\\'."""
    out: list[str] = []
    i = 0
    escapes = {"'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            if nxt in "%_":
                out.append("\\" + nxt)
            elif nxt == "\\":
                out.append("\\\\")
            elif nxt == "u":
                out.append(chr(int(raw[i + 2 : i + 6], 16)))
                i += 4
            else:
                out.append(escapes.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


# ---------------------------------------------------------------------------- execution


@dataclass
class Cursor:
    locator: str
    compiled: Compiled
    pks: array
    batch: int
    user: str
    endpoint: str
    last_used: float = field(default_factory=time.monotonic)


class CursorStore:
    """Open query cursors, at most ``max_per_user`` per user, released after ``ttl`` idle seconds."""

    def __init__(self, max_per_user: int = 10, ttl: float = 900.0):
        self.max_per_user = max_per_user
        self.ttl = ttl
        self._cursors: OrderedDict[str, Cursor] = OrderedDict()
        self._lock = threading.Lock()
        self._seq = itertools.count(1)

    def new_locator(self) -> str:
        return make_id("01g", next(self._seq))

    def add(self, cursor: Cursor) -> None:
        with self._lock:
            self._expire()
            self._cursors[cursor.locator] = cursor
            mine = [c for c in self._cursors.values() if c.user == cursor.user]
            for old in mine[: max(0, len(mine) - self.max_per_user)]:
                self._cursors.pop(old.locator, None)

    def get(self, locator: str, user: str) -> Cursor:
        with self._lock:
            self._expire()
            cur = self._cursors.get(locator)
            if cur is None or cur.user != user:
                raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            cur.last_used = time.monotonic()
            self._cursors.move_to_end(locator)
            return cur

    def drop(self, locator: str) -> None:
        with self._lock:
            self._cursors.pop(locator, None)

    def clear(self) -> None:
        with self._lock:
            self._cursors.clear()

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.ttl
        for loc in [k for k, c in self._cursors.items() if c.last_used < cutoff]:
            self._cursors.pop(loc, None)


class QueryEngine:
    """Runs compiled queries against the database and shapes the results."""

    def __init__(
        self, schema: Schema, db: Database, now_ms: Callable[[], int], cursors: CursorStore
    ):
        self.schema = schema
        self.db = db
        self.now_ms = now_ms
        self.cursors = cursors

    def compile(
        self,
        text: str,
        *,
        include_deleted: bool,
        hidden: frozenset[tuple[str, str]] = frozenset(),
    ) -> Compiled:
        try:
            parsed = soql.parse(text)
        except soql.SoqlSyntaxError as exc:
            raise ApiError(400, "MALFORMED_QUERY", exc.render(text)) from exc
        compiler = Compiler(self.schema, self.now_ms(), hidden)
        return compiler.compile(parsed, include_deleted=include_deleted)

    def count(self, c: Compiled) -> int:
        sql = f"SELECT COUNT(*) FROM {q(table_name(c.obj.name))} t {' '.join(c.filter_joins)}"
        if c.where_sql:
            sql += f" WHERE {c.where_sql}"
        n = self.db.conn().execute(sql, c.params).fetchone()[0]
        if c.offset:
            n = max(0, n - c.offset)
        if c.limit is not None:
            n = min(n, c.limit)
        return n

    def row_keys(self, c: Compiled) -> array:
        """The ordered row keys of the whole result (the cursor snapshot)."""
        sql = f"SELECT t.pk FROM {q(table_name(c.obj.name))} t {' '.join(c.filter_joins)}"
        if c.where_sql:
            sql += f" WHERE {c.where_sql}"
        sql += f" ORDER BY {c.order_sql} LIMIT ? OFFSET ?"
        params = [*c.params, c.limit if c.limit is not None else -1, c.offset or 0]
        keys = array("q")
        cur = self.db.conn().execute(sql, params)
        while True:
            chunk = cur.fetchmany(10_000)
            if not chunk:
                break
            keys.extend(r[0] for r in chunk)
        return keys

    # -- REST query / queryMore
    def start(
        self,
        text: str,
        *,
        include_deleted: bool,
        batch: int,
        version: str,
        user: str,
        hidden: frozenset[tuple[str, str]] = frozenset(),
    ) -> dict[str, Any]:
        c = self.compile(text, include_deleted=include_deleted, hidden=hidden)
        if c.count_only:
            return {"totalSize": self.count(c), "done": True, "records": []}
        keys = self.row_keys(c)
        endpoint = "queryAll" if include_deleted else "query"
        cursor = Cursor(self.cursors.new_locator(), c, keys, batch, user, endpoint)
        page = self._page(cursor, 0, version)
        if not page["done"]:
            self.cursors.add(cursor)
        return page

    def more(
        self, locator_and_offset: str, *, version: str, user: str, batch: int | None
    ) -> dict[str, Any]:
        locator, sep, offset_text = locator_and_offset.rpartition("-")
        if not sep or not offset_text.isdigit():
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        cursor = self.cursors.get(locator, user)
        if batch:
            cursor.batch = batch
        page = self._page(cursor, int(offset_text), version)
        if page["done"]:
            self.cursors.drop(locator)
        return page

    def _page(self, cursor: Cursor, offset: int, version: str) -> dict[str, Any]:
        keys = cursor.pks
        if offset > len(keys):
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        end = min(len(keys), offset + cursor.batch)
        rows = self.fetch(cursor.compiled, keys[offset:end])
        records = self.to_records(cursor.compiled, rows, version)
        out: dict[str, Any] = {"totalSize": len(keys), "done": end >= len(keys)}
        if end < len(keys):
            out["nextRecordsUrl"] = (
                f"/services/data/v{version}/{cursor.endpoint}/{cursor.locator}-{end}"
            )
        out["records"] = records
        return out

    # -- fetching rows
    def fetch(self, c: Compiled, keys: Sequence[int]) -> list[tuple[Any, ...]]:
        """Rows for ``keys`` in that order: (Id, parent ids per select alias..., column values...)."""
        if not keys:
            return []
        exprs = ['t."Id"'] + [f'{a}."Id"' for a in c.select_aliases]
        for col in c.columns:
            exprs.append(f"t.{q(col.ref.name)}" if col.kind == "poly" and col.ref else col.sql)
        base = (
            f"SELECT t.pk, {', '.join(exprs)} FROM {q(table_name(c.obj.name))} t "
            f"{' '.join(c.select_joins)} WHERE t.pk IN "
        )
        by_pk: dict[int, tuple[Any, ...]] = {}
        conn = self.db.conn()
        key_list = list(keys)
        for i in range(0, len(key_list), 5000):
            chunk = key_list[i : i + 5000]
            sql = base + "(" + ",".join("?" * len(chunk)) + ")"
            for row in conn.execute(sql, chunk):
                by_pk[row[0]] = row[1:]
        rows = [by_pk[k] for k in key_list if k in by_pk]
        return rows

    def _poly_lookup(
        self, c: Compiled, rows: list[tuple[Any, ...]]
    ) -> dict[str, tuple[ObjectDef, dict[str, Any]]]:
        """Resolve polymorphic parents (Who/What) for the selected rows: id -> (object, fields)."""
        base = 1 + len(c.select_aliases)
        ids: set[str] = set()
        for idx, col in enumerate(c.columns):
            if col.kind == "poly":
                ids.update(r[base + idx] for r in rows if r[base + idx])
        found: dict[str, tuple[ObjectDef, dict[str, Any]]] = {}
        by_prefix: dict[str, list[str]] = {}
        for rid in ids:
            by_prefix.setdefault(rid[:3], []).append(rid)
        conn = self.db.conn()
        for prefix, group in by_prefix.items():
            target = self.schema.by_prefix(prefix)
            if target is None:
                continue
            names = [n for n in POLY_FIELDS if n != "Type" and target.field(n) is not None]
            cols = ", ".join(q(target.field(n).name) for n in names)  # type: ignore[union-attr]
            for i in range(0, len(group), 5000):
                chunk = group[i : i + 5000]
                sql = f'SELECT {cols} FROM {q(table_name(target.name))} WHERE "Id" IN ({",".join("?" * len(chunk))})'
                for row in conn.execute(sql, chunk):
                    values = {
                        n: to_json_value(target.field(n), v)
                        for n, v in zip(names, row, strict=True)
                    }  # type: ignore[arg-type]
                    found[values["Id"]] = (target, values)
        return found

    def to_records(
        self, c: Compiled, rows: list[tuple[Any, ...]], version: str
    ) -> list[dict[str, Any]]:
        """REST JSON records with ``attributes`` and nested parent relationships."""
        obj = c.obj
        prefix = f"/services/data/v{version}/sobjects/"
        alias_pos = {a: 1 + i for i, a in enumerate(c.select_aliases)}
        base = 1 + len(c.select_aliases)
        poly = self._poly_lookup(c, rows) if any(col.kind == "poly" for col in c.columns) else {}
        out = []
        for row in rows:
            rec: dict[str, Any] = {
                "attributes": {"type": obj.name, "url": f"{prefix}{obj.name}/{row[0]}"}
            }
            for idx, col in enumerate(c.columns):
                value = row[base + idx]
                if col.kind == "direct":
                    rec[col.field.name] = to_json_value(col.field, value)  # type: ignore[union-attr]
                elif col.kind == "parent":
                    holder: dict[str, Any] | None = rec
                    for rel, target, alias in col.chain:
                        parent_id = row[alias_pos[alias]]
                        if parent_id is None:
                            holder[rel] = None  # type: ignore[index]
                            holder = None
                            break
                        nxt = holder.get(rel)  # type: ignore[union-attr]
                        if nxt is None:
                            nxt = {
                                "attributes": {
                                    "type": target.name,
                                    "url": f"{prefix}{target.name}/{parent_id}",
                                }
                            }
                            holder[rel] = nxt  # type: ignore[index]
                        holder = nxt
                    if holder is not None:
                        holder[col.field.name] = to_json_value(col.field, value)  # type: ignore[union-attr]
                else:  # poly
                    rel = col.path[0]
                    hit = poly.get(value) if value else None
                    if hit is None:
                        rec[rel] = None
                        continue
                    target, values = hit
                    nested = rec.get(rel)
                    if nested is None:
                        nested = {
                            "attributes": {
                                "type": target.name,
                                "url": f"{prefix}{target.name}/{value}",
                            }
                        }
                        rec[rel] = nested
                    nested[col.poly_field] = (
                        target.name if col.poly_field == "Type" else values.get(col.poly_field)
                    )
            out.append(rec)
        return out

    def csv_header(self, c: Compiled) -> list[str]:
        return [".".join(col.path) for col in c.columns]

    def to_csv_rows(self, c: Compiled, rows: list[tuple[Any, ...]]) -> list[list[str]]:
        """Bulk API 2.0 CSV rows (relationship columns flattened to ``Account.Name``)."""
        alias_pos = {a: 1 + i for i, a in enumerate(c.select_aliases)}
        base = 1 + len(c.select_aliases)
        poly = self._poly_lookup(c, rows) if any(col.kind == "poly" for col in c.columns) else {}
        out = []
        for row in rows:
            line = []
            for idx, col in enumerate(c.columns):
                value = row[base + idx]
                if col.kind == "poly":
                    hit = poly.get(value) if value else None
                    if hit is None:
                        line.append("")
                    else:
                        target, values = hit
                        v = target.name if col.poly_field == "Type" else values.get(col.poly_field)
                        line.append("" if v is None else str(v))
                    continue
                if col.kind == "parent" and any(row[alias_pos[a]] is None for _, _, a in col.chain):
                    line.append("")
                    continue
                line.append(to_csv_value(col.field, value))  # type: ignore[arg-type]
            out.append(line)
        return out
