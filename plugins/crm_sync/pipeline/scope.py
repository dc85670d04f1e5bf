"""Scope at run time: is a record inside its spec's scope? (The rules: ``mapping/scope.py``.)

The stages that need it call, in this order:

1. ``prepare``: :func:`check_scopes` (the listed Lead Gen & CRM lists exist; picklist warnings
   logged). The fields and operators were checked by ``check_spec_against_schema`` already.
2. Salesforce reads: ``compile_soql(spec.scope, sobject, schema)`` (``crm_sync.mapping.scope``)
   as the ``where`` of the query, so out-of-scope records are never read. Records read by id
   (links, matches by email) are checked with :func:`in_scope` instead.
3. Lead Gen & CRM reads: the API cannot filter (``getLeads`` takes ids and emails only), so
   every lead read goes through :func:`in_scope` (or :func:`scope_mask` on a frame); a scope
   with ``lists`` needs :func:`read_list_members` first.

:func:`bind_scope` turns one side of a spec's scope into a :class:`ScopeFilter`: each condition
with its field's family from the live schema and its operands normalised the way record values
are read, so :func:`in_scope` is a pure function of the filter and the record, with the same
semantics as the SOQL :func:`~crm_sync.mapping.scope.compile_soql` writes (text compared without
case; ``ne``/``not_in`` match blanks; an unreadable number or date matches only ``ne``,
``not_in`` and ``not_blank``).
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from crm_sync.errors import ConfigError
from crm_sync.mapping.loader import display_path, spec_path
from crm_sync.mapping.models import ObjectSpec
from crm_sync.mapping.scope import (
    BOOLEAN,
    DATE,
    DATETIME,
    ID,
    NUMBER,
    PICKLIST,
    TEXT,
    live_family,
    operand_datetime,
    operands,
    scope_warnings_live,
    sides,
)
from crm_sync.pipeline.transform import (
    is_blank,
    parse_date,
    parse_lg_timestamp,
    parse_number,
    parse_sf_datetime,
    truthy,
)

if TYPE_CHECKING:
    from crm_sync.clients.leadgen import LeadGenClient
    from crm_sync.mapping.schema import LiveSchema

log = logging.getLogger(__name__)

SALESFORCE, LEADGEN = "salesforce", "leadgen"
_UNREADABLE = object()  # a value that is there but is not a number / date of the field's type
_RANGE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


@dataclass(frozen=True)
class BoundCondition:
    """One scope condition with its field's family and its operands normalised (casefolded
    text, 15-character ids, Decimals, dates, aware UTC datetimes, booleans)."""

    field: str
    op: str
    family: str
    operands: tuple[Any, ...] = ()


@dataclass(frozen=True)
class ScopeFilter:
    """One system's side of a spec's scope, ready to test records of that system.

    ``members``: the ids (as text) of the leads in any of ``lists``; ``None`` when the scope
    names no lists. ``id_field``: the record key those ids are compared with.
    """

    system: str
    conditions: tuple[BoundCondition, ...] = ()
    lists: tuple[int, ...] = ()
    members: frozenset[str] | None = None
    id_field: str = "id"

    @property
    def fields(self) -> list[str]:
        """The record fields the filter reads (an extract must read them)."""
        names = [c.field for c in self.conditions]
        if self.members is not None:
            names.append(self.id_field)
        return list(dict.fromkeys(names))


def _operand(family: str, v: Any) -> Any:
    if family in (TEXT, PICKLIST):
        return str(v).casefold()
    if family == ID:
        return str(v)[:15]  # an 18-character id is its 15-character id plus a checksum
    if family == NUMBER:
        return Decimal(str(v))
    if family == DATETIME:
        return operand_datetime(v)
    return v  # dates and booleans as YAML gave them


def bind_scope(
    spec: ObjectSpec,
    system: str,
    schema: LiveSchema,
    *,
    members: Iterable[str | int] | None = None,
) -> ScopeFilter | None:
    """``system``'s side of ``spec.scope`` bound to the live schema; None when that side has no
    scope (every record syncs). A Lead Gen & CRM scope with ``lists`` needs ``members``
    (:func:`read_list_members`). Raises ConfigError for a field the live check would refuse."""
    side = dict(sides(spec.scope)) if spec.scope is not None else {}
    if system not in side:
        return None
    conditions = []
    for i, cond in enumerate(side[system]):
        family = live_family(spec, system, cond.field, schema)
        if family is None:
            raise ConfigError(f"scope.{system}.where[{i}]: {cond.field} cannot be filtered on")
        values = tuple(_operand(family, v) for v in operands(cond))
        conditions.append(BoundCondition(cond.field, cond.op, family, values))
    lists: tuple[int, ...] = ()
    if system == LEADGEN and spec.scope is not None and spec.scope.leadgen is not None:
        lists = tuple(spec.scope.leadgen.lists)
    if lists and members is None:
        raise ValueError("the scope names lists: read their members first (read_list_members)")
    return ScopeFilter(
        system=system,
        conditions=tuple(conditions),
        lists=lists,
        members=frozenset(str(m) for m in members) if lists and members is not None else None,
        id_field="id" if system == LEADGEN else "Id",
    )


def _read(system: str, family: str, v: Any) -> Any:
    """A record value as conditions compare it: None when blank (a checkbox is never blank: a
    blank bit is false), :data:`_UNREADABLE` when it cannot be read as the field's type."""
    if family == BOOLEAN:
        return truthy(v)
    if is_blank(v):
        return None
    if family in (TEXT, PICKLIST):
        return str(v).casefold()
    if family == ID:
        return str(v).strip()[:15]
    if family == NUMBER:
        out: Any = parse_number(v)
    elif family == DATE:
        out = parse_date(v)
    elif family == DATETIME:
        out = parse_sf_datetime(v) if system == SALESFORCE else parse_lg_timestamp(v)
    else:  # multi-select picklists only know blank / not blank
        out = v
    return _UNREADABLE if out is None else out


def condition_holds(cond: BoundCondition, system: str, raw: Any) -> bool:
    """``cond`` on one raw record value of ``system``."""
    v = _read(system, cond.family, raw)
    op = cond.op
    if op == "blank":
        return v is None
    if op == "not_blank":
        return v is not None
    if v is None or v is _UNREADABLE:
        return op in ("ne", "not_in")  # SOQL: != and NOT IN keep nulls
    first = cond.operands[0] if cond.operands else None
    if op == "eq":
        return bool(v == first)
    if op == "ne":
        return bool(v != first)
    if op == "in":
        return v in cond.operands
    if op == "not_in":
        return v not in cond.operands
    if op == "contains":
        return str(first) in v
    return bool(_RANGE[op](v, first))


def _value(scope: ScopeFilter, record: Mapping[str, Any], name: str) -> Any:
    if name not in record:
        raise ValueError(
            f"the {scope.system} record has no field {name!r}: read ScopeFilter.fields with it"
        )
    return record[name]


def in_scope(scope: ScopeFilter | None, record: Mapping[str, Any]) -> bool:
    """True when ``record`` (of ``scope.system``, as its API returns it) is inside the scope:
    every condition holds and, with lists, the lead is a member of one of them. No scope: True.
    A record without a field the filter reads raises ValueError (a silent blank would decide
    the wrong way)."""
    if scope is None:
        return True
    for cond in scope.conditions:
        if not condition_holds(cond, scope.system, _value(scope, record, cond.field)):
            return False
    if scope.members is not None:
        return str(_value(scope, record, scope.id_field)) in scope.members
    return True


def scope_mask(scope: ScopeFilter | None, frame: pd.DataFrame) -> pd.Series:
    """:func:`in_scope` for every row of ``frame`` (columns named like the record fields), one
    column at a time, each condition only on the rows the earlier ones kept: a boolean Series
    aligned with ``frame``'s index."""
    keep = np.ones(len(frame), dtype=bool)
    if scope is not None:
        missing = [f for f in scope.fields if f not in frame.columns]
        if missing:
            raise ValueError(f"the {scope.system} frame has no column {missing[0]!r}")
        members = scope.members
        if members is not None:
            keep &= np.array([str(v) in members for v in frame[scope.id_field]], dtype=bool)
        for cond in scope.conditions:
            rows = np.flatnonzero(keep)
            values = frame[cond.field].to_numpy(dtype=object)[rows]
            keep[rows] = [condition_holds(cond, scope.system, v) for v in values]
    return pd.Series(keep, index=frame.index, dtype=bool)


def read_list_members(lg: LeadGenClient, list_ids: Iterable[int]) -> frozenset[str]:
    """The ids of the leads that are members of any of ``list_ids`` (``getListMembers``, one
    call per 500 members of each list; removed members are not members). The v1.2 API has no
    call that answers "which lists is this lead in" for many leads at once."""
    members: set[str] = set()
    for list_id in list_ids:
        members.update(str(m["leadID"]) for m in lg.get_list_members(list_id) if m.get("leadID"))
    return frozenset(members)


def check_scopes(
    specs: Mapping[str, ObjectSpec], schema: LiveSchema, lg: LeadGenClient
) -> list[str]:
    """The prepare stage's scope checks beyond the field checks: every listed Lead Gen & CRM
    list exists (one ``getActiveLists`` scan, only when a spec names lists), else ConfigError;
    picklist values a field does not offer are logged as warnings and returned."""
    warnings: list[str] = []
    wanted: dict[str, list[int]] = {}
    for spec in specs.values():
        source = display_path(spec_path(spec.kind))
        for path, msg in scope_warnings_live(spec, schema):
            log.warning("scope: %s: %s: %s", source, path, msg)
            warnings.append(f"{source}: {path}: {msg}")
        if spec.scope is not None and spec.scope.leadgen is not None:
            wanted[source] = list(spec.scope.leadgen.lists)
    if not any(wanted.values()):
        return warnings
    existing = {str(row.get("id")) for row in lg.get_active_lists()}
    problems = [
        f"{source}: scope.leadgen.lists[{i}]: Lead Gen & CRM list {list_id} does not exist"
        for source, ids in sorted(wanted.items())
        for i, list_id in enumerate(ids)
        if str(list_id) not in existing
    ]
    if problems:
        raise ConfigError(
            "mapping spec does not match the live schemas (nothing was written):\n"
            + "\n".join(problems)
        )
    return warnings
