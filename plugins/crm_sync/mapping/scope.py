"""Scope filters in the specs: which records sync, checked twice and compiled safely to SOQL.

A spec's ``scope`` (:class:`~crm_sync.mapping.models.Scope`) names, per system, the records that
sync: Salesforce records whose fields meet every condition, leads whose fields meet every
condition (and that belong to one of the listed Lead Gen & CRM lists). What a condition means is
decided by the **family** of its field's type, the same on both systems:

=========  =====================================================  ==========================
family     operators                                              operands
=========  =====================================================  ==========================
text       eq ne in not_in blank not_blank contains               text
picklist   eq ne in not_in blank not_blank                        text (values are warned
                                                                  about when the field lacks
                                                                  them)
number     eq ne in not_in blank not_blank gt gte lt lte          numbers
date       eq ne in not_in blank not_blank gt gte lt lte          dates (``2026-01-31``)
datetime   blank not_blank gt gte lt lte                          datetimes (UTC unless an
                                                                  offset is given; whole
                                                                  seconds) or dates (midnight
                                                                  UTC)
checkbox   eq ne                                                  true / false
id         eq ne in not_in blank not_blank                        15- or 18-character ids
multi      blank not_blank                                        (multi-select picklists)
=========  =====================================================  ==========================

Semantics are SOQL's, so that :func:`compile_soql` (Salesforce filters server-side) and
:func:`crm_sync.pipeline.scope.in_scope` (records already read, and every lead) agree: text and
picklist comparisons ignore case; ``ne`` and ``not_in`` also match a blank value; ``eq``, ``in``,
``gt``… never match a blank; an empty text is blank.

Checks: :func:`scope_problems` when the spec is loaded (shape, operands, and the field and its
type where they are known without an API call: :mod:`crm_sync.mapping.catalog`);
:func:`scope_problems_live` / :func:`scope_warnings_live` against describe and getFields at the
start of every run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

from simple_salesforce.format import format_soql, quote_soql_value

from crm_sync.errors import ConfigError
from crm_sync.mapping.catalog import (
    LEADGEN_CUSTOM_FIELD,
    LEADGEN_STANDARD_LEAD_FIELDS,
    SALESFORCE_STANDARD_FIELDS,
    is_salesforce_custom,
)
from crm_sync.mapping.models import ObjectSpec, SalesforceScope, Scope, ScopeCondition

Problems = list[tuple[str, str]]


class LiveSchema(Protocol):
    """What the live checks read of :class:`crm_sync.mapping.schema.LiveSchema` (named by its
    shape: ``schema`` imports this module to run the scope checks with the field checks)."""

    def sf(self, sobject: str, name: str) -> Any: ...

    def lg(self, lg_object: str, name: str) -> Any: ...


TEXT, PICKLIST, MULTI, NUMBER, DATE, DATETIME, BOOLEAN, ID = (
    "text", "picklist", "multi-select picklist", "number", "date", "datetime", "checkbox", "id"
)  # fmt: skip
LIST_OPS = frozenset({"in", "not_in"})
NO_OPERAND_OPS = frozenset({"blank", "not_blank"})
RANGE_OPS = frozenset({"gt", "gte", "lt", "lte"})
_EQUALITY = frozenset({"eq", "ne", "in", "not_in", "blank", "not_blank"})
OPS: dict[str, frozenset[str]] = {
    TEXT: _EQUALITY | {"contains"},
    PICKLIST: _EQUALITY,
    MULTI: NO_OPERAND_OPS,
    NUMBER: _EQUALITY | RANGE_OPS,
    DATE: _EQUALITY | RANGE_OPS,
    DATETIME: NO_OPERAND_OPS | RANGE_OPS,
    BOOLEAN: frozenset({"eq", "ne"}),
    ID: _EQUALITY,
}
# Operand kinds (see operand_kind) each family takes.
OPERANDS: dict[str, frozenset[str]] = {
    TEXT: frozenset({"text"}),
    PICKLIST: frozenset({"text"}),
    MULTI: frozenset(),
    NUMBER: frozenset({"number"}),
    DATE: frozenset({"date"}),
    DATETIME: frozenset({"date", "datetime"}),
    BOOLEAN: frozenset({"boolean"}),
    ID: frozenset({"text"}),
}
# What an operator needs whatever the field (checked even when the field's type is unknown).
_OP_OPERANDS = {
    **{op: frozenset({"number", "date", "datetime"}) for op in RANGE_OPS},
    "contains": frozenset({"text"}),
}
_SF_FAMILY = {
    **dict.fromkeys(("string", "textarea", "email", "phone", "url", "combobox"), TEXT),
    "encryptedstring": TEXT,
    "picklist": PICKLIST,
    "multipicklist": MULTI,
    **dict.fromkeys(("int", "long", "double", "currency", "percent"), NUMBER),
    "date": DATE,
    "datetime": DATETIME,
    "boolean": BOOLEAN,
    "id": ID,
    "reference": ID,
}
_LG_FAMILY = {
    **dict.fromkeys(("string", "text", "textarea", "hidden", "country", "state"), TEXT),
    **dict.fromkeys(("phone", "url", "email"), TEXT),
    **dict.fromkeys(("picklist", "select", "radio"), PICKLIST),
    **dict.fromkeys(("int", "integer", "number", "float", "decimal"), NUMBER),
    **dict.fromkeys(("smallint", "bigint", "tinyint"), NUMBER),
    **dict.fromkeys(("bit", "boolean", "checkbox"), BOOLEAN),
    "date": DATE,
    "datetime": DATETIME,
}
_SF_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # models.FieldName; checked again before SOQL
_NUMBER_LITERAL = re.compile(r"^-?\d+(?:\.\d+)?$")
SCOPED_KINDS = ("leads", "contacts")


def sf_family(sf_type: str) -> str | None:
    """The family of a Salesforce describe type; None when scopes cannot filter on it."""
    return _SF_FAMILY.get(sf_type)


def lg_family(data_type: str) -> str | None:
    """The family of a Lead Gen & CRM getFields ``dataType``; None for uploads and attachments."""
    return _LG_FAMILY.get(data_type.lower())


def operand_kind(v: Any) -> str:
    """text, number, boolean, date or datetime (YAML's types: ``2026-01-31`` is a date)."""
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, datetime):
        return "datetime"
    if isinstance(v, date):
        return "date"
    return "text"


_KIND = {"text": "text", "number": "a number", "boolean": "true/false", "date": "a date"}
_KIND["datetime"] = "a datetime"
_KINDS = {"text": "text", "number": "numbers", "boolean": "true/false", "date": "dates"}
_KINDS["datetime"] = "datetimes"


def _plural(kinds: frozenset[str]) -> str:
    """``{"number", "date"}`` -> ``"dates or numbers"``."""
    return " or ".join(sorted(_KINDS[k] for k in kinds))


def operands(cond: ScopeCondition) -> list[Any]:
    """The condition's operands: ``values``, or ``value`` alone, or none."""
    if cond.values is not None:
        return list(cond.values)
    return [] if cond.value is None else [cond.value]


def operand_datetime(v: date) -> datetime:
    """A datetime operand as both sides compare it: aware UTC, whole seconds (a date is its
    midnight UTC, a datetime without an offset is UTC)."""
    if not isinstance(v, datetime):
        return datetime(v.year, v.month, v.day, tzinfo=UTC)
    aware = v if v.tzinfo is not None else v.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(microsecond=0)


def sides(scope: Scope) -> Iterator[tuple[str, list[ScopeCondition]]]:
    """``("salesforce", where)`` and ``("leadgen", where)`` for the sides the scope has."""
    if scope.salesforce is not None:
        yield "salesforce", scope.salesforce.where
    if scope.leadgen is not None:
        yield "leadgen", scope.leadgen.where


# -- conditions, whatever the field -------------------------------------------------------------
def _shape_problems(p: str, cond: ScopeCondition) -> Problems:
    """Operands present or absent as the operator needs, of one kind, fit for the operator."""
    op = cond.op
    if op in LIST_OPS:
        if cond.value is not None:
            return [(f"{p}.value", f"'{op}' takes a list in values, not value")]
        if not cond.values:
            return [(f"{p}.values", f"'{op}' needs a non-empty list of values")]
    elif op in NO_OPERAND_OPS:
        if cond.value is not None or cond.values is not None:
            return [(p, f"'{op}' takes no value")]
    elif cond.values is not None:
        return [(f"{p}.values", f"'{op}' takes one value, not values")]
    elif cond.value is None:
        return [(f"{p}.value", f"'{op}' needs a value")]
    where = f"{p}.values" if cond.values is not None else f"{p}.value"
    kinds = sorted({operand_kind(v) for v in operands(cond)})
    if len(kinds) > 1:
        return [(where, f"values must all be of one type (got {' and '.join(kinds)})")]
    need = _OP_OPERANDS.get(op)
    if kinds and need is not None and kinds[0] not in need:
        return [(where, f"'{op}' compares {_plural(need)}, not {_KIND[kinds[0]]}")]
    if op == "contains" and not str(cond.value):
        return [(where, "'contains' needs a non-empty text")]
    return []


OPS_ORDER = ("eq", "ne", "in", "not_in", "blank", "not_blank", "gt", "gte", "lt", "lte", "contains")


def _typed_problems(
    p: str, cond: ScopeCondition, family: str | None, type_name: str | None = None
) -> Problems:
    """The operator and the operands against the family of the field (``type_name``: the
    system's own name of its type, shown when scopes cannot filter on it)."""
    name = cond.field
    if family is None:
        return [
            (
                f"{p}.field",
                f"{name} ({type_name}) cannot be filtered on: scopes filter text, picklist, "
                "number, date, datetime, checkbox and id fields",
            )
        ]
    if cond.op not in OPS[family]:
        allowed = ", ".join(op for op in OPS_ORDER if op in OPS[family])
        return [
            (f"{p}.op", f"'{cond.op}' does not apply to {name}, a {family} field; use {allowed}")
        ]
    where = f"{p}.values" if cond.values is not None else f"{p}.value"
    for v in operands(cond):
        kind = operand_kind(v)
        if kind not in OPERANDS[family]:
            hint = " (quote it to compare text)" if family in (TEXT, PICKLIST, ID) else ""
            need = _plural(OPERANDS[family])
            return [
                (where, f"{name} is a {family} field: {v!r} is {_KIND[kind]}, not {need}{hint}")
            ]
        if kind == "text" and not v.strip():
            return [(where, "an empty text matches nothing; use op: blank")]
        if family == ID and not _SF_ID.match(v):
            return [(where, f"{v!r} is not a 15- or 18-character Salesforce id")]
    return []


# -- load time ----------------------------------------------------------------------------------
def _static_sf(spec: ObjectSpec, name: str) -> tuple[bool, str | None]:
    """(known, family) of a Salesforce field without describe: custom fields and objects
    outside the catalog are known only live (``(True, None)`` skips the typed check)."""
    standard = SALESFORCE_STANDARD_FIELDS.get(spec.salesforce_object)
    if standard is None or is_salesforce_custom(name):
        return True, None
    if name not in standard:
        return False, None
    return True, sf_family(standard[name])


def _static_lg(spec: ObjectSpec, name: str) -> tuple[bool, str | None]:
    if name in LEADGEN_STANDARD_LEAD_FIELDS:
        return True, lg_family(LEADGEN_STANDARD_LEAD_FIELDS[name])
    custom = LEADGEN_CUSTOM_FIELD.match(name) or any(r.leadgen == name for r in spec.fields)
    return bool(custom), None


def _unknown_field(spec: ObjectSpec, system: str, name: str) -> str:
    if system == "salesforce":
        return (
            f"{spec.salesforce_object} has no standard field {name!r} "
            "(custom fields end in __c; names are case-sensitive)"
        )
    return (
        f"{name!r} is not a standard Lead Gen & CRM lead field nor a custom field's systemName "
        "(<label>_<13 hex digits>, see getFields)"
    )


def _side_problems(spec: ObjectSpec, system: str, where: list[ScopeCondition]) -> Problems:
    out: Problems = []
    static = _static_sf if system == "salesforce" else _static_lg
    for i, cond in enumerate(where):
        p = f"scope.{system}.where[{i}]"
        shape = _shape_problems(p, cond)
        out.extend(shape)
        known, family = static(spec, cond.field)
        if not known:
            out.append((f"{p}.field", _unknown_field(spec, system, cond.field)))
        elif family is not None and not shape:
            out.extend(_typed_problems(p, cond, family))
    return out


def scope_problems(spec: ObjectSpec) -> Problems:
    """Everything wrong with ``spec.scope`` that shows without an API call, as ``(path, msg)``."""
    scope = spec.scope
    if scope is None:
        return []
    if spec.kind not in SCOPED_KINDS:
        return [("scope", f"only leads and contacts specs have a scope, not {spec.kind}")]
    if scope.salesforce is None and scope.leadgen is None:
        return [("scope", "set salesforce, leadgen or both (or remove scope to sync every record)")]
    out: Problems = []
    lg = scope.leadgen
    if lg is not None:
        if not lg.where and not lg.lists:
            out.append(("scope.leadgen", "set where, lists or both"))
        dupes = sorted({x for x in lg.lists if lg.lists.count(x) > 1})
        if dupes:
            out.append(("scope.leadgen.lists", f"lists {dupes} appear more than once"))
    for system, where in sides(scope):
        out.extend(_side_problems(spec, system, where))
    return out


# -- live: describe and getFields ---------------------------------------------------------------
def _live_field(spec: ObjectSpec, system: str, name: str, schema: LiveSchema) -> Any:
    if system == "salesforce":
        return schema.sf(spec.salesforce_object, name)
    return schema.lg(spec.leadgen_object, name)


def live_family(spec: ObjectSpec, system: str, name: str, schema: LiveSchema) -> str | None:
    """The family of a scope field by the live schema (None when missing or not filterable)."""
    f = _live_field(spec, system, name, schema)
    if f is None:
        return None
    if system == "salesforce":
        return sf_family(f.type) if f.filterable else None
    return lg_family(f.data_type)


def scope_problems_live(spec: ObjectSpec, schema: LiveSchema) -> Problems:
    """What stops the scope against the live schemas: a field that does not exist or cannot be
    filtered on, an operator or an operand its live type does not take."""
    if spec.scope is None:
        return []
    out: Problems = []
    for system, where in sides(spec.scope):
        for i, cond in enumerate(where):
            p = f"scope.{system}.where[{i}]"
            f = _live_field(spec, system, cond.field, schema)
            if f is None and system == "salesforce":
                msg = f"{spec.salesforce_object}.{cond.field} does not exist or is not visible to the integration user"
                out.append((f"{p}.field", msg))
            elif f is None:
                msg = f"Lead Gen & CRM {spec.leadgen_object} field {cond.field!r} does not exist"
                out.append((f"{p}.field", msg))
            elif system == "salesforce" and not f.filterable:
                msg = f"{spec.salesforce_object}.{cond.field} cannot be filtered in SOQL ({f.type} of {f.length} characters)"
                out.append((f"{p}.field", msg))
            else:
                kind = f.type if system == "salesforce" else f.data_type
                family = sf_family(kind) if system == "salesforce" else lg_family(kind)
                out.extend(_typed_problems(p, cond, family, kind))
    return out


def scope_warnings_live(spec: ObjectSpec, schema: LiveSchema) -> Problems:
    """Picklist values the field does not offer (compared without case, as SOQL does): the
    condition still works, but it can never match those values. Worth a look, not a stop."""
    if spec.scope is None:
        return []
    out: Problems = []
    for system, where in sides(spec.scope):
        for i, cond in enumerate(where):
            f = _live_field(spec, system, cond.field, schema)
            if f is None or live_family(spec, system, cond.field, schema) != PICKLIST:
                continue
            offered = f.picklist_values if system == "salesforce" else f.options
            known = {str(v).casefold() for v in offered}
            missing = [v for v in operands(cond) if str(v).casefold() not in known]
            if offered and missing:
                out.append(
                    (
                        f"scope.{system}.where[{i}]",
                        f"{cond.field} has no value {', '.join(map(repr, missing))} "
                        f"(it offers {', '.join(map(repr, offered[:20]))})",
                    )
                )
    return out


# -- SOQL ---------------------------------------------------------------------------------------
def soql_literal(family: str, v: Any) -> str:
    """One operand as a SOQL literal of the field's family. Strings, booleans, dates and
    datetimes go through simple-salesforce's ``quote_soql_value`` (the transport's quoting:
    backslash escapes for quotes, backslashes and control characters); numbers are written in
    plain decimal notation (``quote_soql_value`` would write ``1e-07``, which SOQL refuses)."""
    if family == NUMBER:
        text = format(Decimal(str(v)), "f")
        if not _NUMBER_LITERAL.match(text):  # defence in depth: only digits reach the query
            raise ConfigError(f"not a SOQL number: {v!r}")
        return text
    if family == DATETIME:
        return str(quote_soql_value(operand_datetime(v)))
    return str(quote_soql_value(v))


_SOQL_OPS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _predicate(cond: ScopeCondition, family: str) -> str:
    name = cond.field
    if not _NAME.match(name):
        raise ConfigError(f"not a Salesforce field name: {name!r}")
    if cond.op == "blank":
        return f"{name} = null"
    if cond.op == "not_blank":
        return f"{name} != null"
    if cond.op == "contains":
        return str(format_soql("{:literal} LIKE '%{:like}%'", name, cond.value))
    if cond.op in LIST_OPS:
        items = ", ".join(soql_literal(family, v) for v in operands(cond))
        return f"{name} {'IN' if cond.op == 'in' else 'NOT IN'} ({items})"
    return f"{name} {_SOQL_OPS[cond.op]} {soql_literal(family, cond.value)}"


def compile_soql(scope: Scope | SalesforceScope | None, sobject: str, schema: LiveSchema) -> str:
    """The Salesforce scope as one SOQL condition (conditions ANDed, each in parentheses), for
    the ``where`` of :meth:`SalesforceClient.query_window` / ``query_by_values``; ``""`` when
    the scope has no Salesforce side. Each condition is checked against ``schema`` again first
    (:class:`~crm_sync.errors.ConfigError` otherwise): no unchecked text reaches a query."""
    side = scope.salesforce if isinstance(scope, Scope) else scope
    if side is None:
        return ""
    parts = []
    for i, cond in enumerate(side.where):
        p = f"scope.salesforce.where[{i}]"
        f = schema.sf(sobject, cond.field)
        if f is None or not f.filterable:
            raise ConfigError(f"{p}: {sobject}.{cond.field} cannot be filtered on")
        family = sf_family(f.type)
        problems = _shape_problems(p, cond) or _typed_problems(p, cond, family, f.type)
        if problems or family is None:
            raise ConfigError("; ".join(f"{path}: {msg}" for path, msg in problems))
        parts.append(f"({_predicate(cond, family)})")
    return " AND ".join(parts)
