"""Load mapping specs from YAML with errors that name the file and the exact path.

Example message: ``include/mappings/leads.yaml: fields[3].direction: Input should be 'push',
'pull', 'two-way' or 'none' (got 'both')``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from crm_sync.errors import ConfigError
from crm_sync.mapping.models import (
    Direction,
    EngagementSpec,
    ObjectSpec,
    OwnerSpec,
    StageSpec,
)
from crm_sync.mapping.scope import scope_problems
from crm_sync.settings import REPO_ROOT, mappings_dir

M = TypeVar("M", bound=BaseModel)

# Lead Gen & CRM fields the API never lets us write (server-maintained or derived).
LEADGEN_READ_ONLY = frozenset(
    {
        "id",
        "accountID",
        "updateTimestamp",
        "createTimestamp",
        "isQualified",
        "isContact",
        "isCustomer",
        "leadScoreWeighted",
        "trackingID",
        "status",
    }
)
# Scores are computed in Lead Gen & CRM; the seed promises they are pushed, never pulled.
PUSH_ONLY_LEADGEN_FIELDS = frozenset({"leadScore", "leadScoreWeighted"})


class SpecError(ConfigError):
    """A mapping spec is invalid. ``problems`` lists ``(path, message)`` pairs."""

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]):
        self.source = source
        self.problems = list(problems)
        lines = [
            f"{source}: {path}: {msg}" if path else f"{source}: {msg}"
            for path, msg in self.problems
        ]
        super().__init__("\n".join(lines))


def format_loc(loc: Sequence[Any]) -> str:
    """``('fields', 3, 'direction')`` -> ``fields[3].direction``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _read_yaml(path: Path) -> Any:
    src = display_path(path)
    if not path.exists():
        raise SpecError(src, [("", "file not found")])
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(src, [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None


def parse_model(model: type[M], data: Any, source: str) -> M:
    """Validate ``data`` against ``model``; raise :class:`SpecError` naming every failing path."""
    if not isinstance(data, dict):
        raise SpecError(
            source, [("", f"expected a mapping at the top level, got {type(data).__name__}")]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"]
            if err["type"] in ("literal_error", "enum") and "input" in err:
                msg += f" (got {err['input']!r})"
            elif err["type"] == "extra_forbidden":
                msg = "unknown key (not allowed here)"
            elif err["type"] == "value_error":
                msg = msg.removeprefix("Value error, ")
            problems.append((format_loc(err["loc"]), msg))
        raise SpecError(source, problems) from None


ONE_WAY_KINDS = {"opportunities", "accounts"}


def _direction_problems(spec: ObjectSpec, p: str, row: Any) -> list[tuple[str, str]]:
    """Directions the object kind or the field cannot take."""
    out: list[tuple[str, str]] = []
    if spec.kind in ONE_WAY_KINDS and row.direction not in (Direction.PULL, Direction.NONE):
        out.append(
            (
                f"{p}.direction",
                f"{spec.kind} are synced one way, from Salesforce: only 'pull' or 'none' is allowed "
                f"(got {row.direction.value!r})",
            )
        )
    if row.leadgen in PUSH_ONLY_LEADGEN_FIELDS and row.direction not in (
        Direction.PUSH,
        Direction.NONE,
    ):
        out.append(
            (
                f"{p}.direction",
                f"{row.leadgen} is computed by Lead Gen & CRM and can only be pushed to Salesforce "
                f"(got {row.direction.value!r})",
            )
        )
    if row.leadgen in LEADGEN_READ_ONLY and row.direction.writes_leadgen:
        allowed = "'none'" if spec.kind in ONE_WAY_KINDS else "'push' or 'none'"
        out.append(
            (f"{p}.direction", f"{row.leadgen} is read-only in Lead Gen & CRM; use {allowed}")
        )
    return out


def _value_problems(p: str, row: Any) -> list[tuple[str, str]]:
    """Transforms, value maps and rules that cannot work."""
    out: list[tuple[str, str]] = []
    if "owner" in row.transform and (row.transform != ["owner"] or row.value_map):
        out.append(
            (f"{p}.transform", "'owner' cannot be combined with other transforms or a value_map")
        )
    if row.value_map is not None:
        targets = list(row.value_map.values())
        dupes = sorted({v for v in targets if targets.count(v) > 1})
        if dupes and row.direction.writes_leadgen:
            out.append(
                (
                    f"{p}.value_map",
                    f"Salesforce values {dupes} come from several Lead Gen & CRM values, so the map "
                    "cannot be inverted for a direction that writes Lead Gen & CRM",
                )
            )
    for j, rule in enumerate(row.rules):
        set_keys = [
            k
            for k in ("regex", "max_length", "required", "allowed")
            if getattr(rule, k) is not None
        ]
        if len(set_keys) != 1:
            out.append(
                (
                    f"{p}.rules[{j}]",
                    "exactly one of regex, max_length, required, allowed must be set",
                )
            )
        if rule.regex is not None:
            try:
                re.compile(rule.regex)
            except re.error as exc:
                out.append((f"{p}.rules[{j}].regex", f"invalid regular expression: {exc}"))
    return out


def check_object_spec(spec: ObjectSpec) -> list[tuple[str, str]]:
    """Rules that span rows or depend on the object kind."""
    problems: list[tuple[str, str]] = []
    seen: dict[str, dict[str, int]] = {"leadgen": {}, "salesforce": {}}
    link_fields = set()
    if spec.record_link:
        link_fields = {spec.record_link.id_field, spec.record_link.url_field} - {None}
    for i, row in enumerate(spec.fields):
        p = f"fields[{i}]"
        for side, first in seen.items():
            name = getattr(row, side)
            if name in first:
                problems.append(
                    (f"{p}.{side}", f"{name!r} is already mapped in fields[{first[name]}]")
                )
            first.setdefault(name, i)
        problems.extend(_direction_problems(spec, p, row))
        if row.salesforce in link_fields:
            problems.append(
                (
                    f"{p}.salesforce",
                    f"{row.salesforce} is maintained by record_link and cannot be mapped",
                )
            )
        problems.extend(_value_problems(p, row))
    if spec.kind in ("leads", "contacts") and spec.leadgen_object != "lead":
        problems.append(("leadgen_object", f"{spec.kind} pair with Lead Gen & CRM 'lead' records"))
    problems.extend(scope_problems(spec))
    return problems


def load_object_spec(path: str | Path) -> ObjectSpec:
    path = Path(path)
    source = display_path(path)
    spec = parse_model(ObjectSpec, _read_yaml(path), source)
    problems = check_object_spec(spec)
    if problems:
        raise SpecError(source, problems)
    return spec


def load_owner_spec(path: str | Path) -> OwnerSpec:
    path = Path(path)
    source = display_path(path)
    spec = parse_model(OwnerSpec, _read_yaml(path), source)
    problems = []
    for i, u in enumerate(spec.users):
        if not (u.leadgen_id or u.leadgen_email):
            problems.append((f"users[{i}]", "set leadgen_id or leadgen_email"))
        if not (u.salesforce_id or u.salesforce_username or u.salesforce_email):
            problems.append(
                (f"users[{i}]", "set salesforce_id, salesforce_username or salesforce_email")
            )
    if problems:
        raise SpecError(source, problems)
    return spec


def load_stage_spec(path: str | Path) -> StageSpec:
    path = Path(path)
    return parse_model(StageSpec, _read_yaml(path), display_path(path))


def load_engagement_spec(path: str | Path) -> EngagementSpec:
    path = Path(path)
    return parse_model(EngagementSpec, _read_yaml(path), display_path(path))


def spec_path(name: str, directory: str | Path | None = None) -> Path:
    """Path of ``<name>.yaml`` in the mappings folder."""
    return Path(directory or mappings_dir()) / f"{name}.yaml"
