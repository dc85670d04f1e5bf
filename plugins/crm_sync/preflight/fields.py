"""Checks of what the mapping specs need from both systems' fields.

* the specs load at all;
* the sync's own fields (record link id and URL, lead score, Task event id) exist with the right
  type, External ID and Unique (:func:`sync_field_requirements` derives them from the specs);
* the integration user can read every mapped field on the side the spec reads it from and
  create/update it on the side the spec writes it to (Salesforce describe is per user: it
  reflects field-level security; Lead Gen & CRM getFields says which fields are editable).

The type compatibility of ordinary rows is checked by every run's ``prepare`` (not repeated here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crm_sync.mapping.models import Direction, EngagementSpec, ObjectSpec
from crm_sync.preflight.facts import Facts, SpecSet, Unavailable
from crm_sync.preflight.model import Check, failed, passed, warned

TEXT, URL, NUMBER = ("string",), ("url",), ("double", "int", "currency", "percent")
# Task fields the engagement DAG writes on every Task it creates, besides the event id and the
# picklists the spec names (Type, TaskSubtype) -- see domains/engagement/events.py: build_task.
TASK_FIELDS = ("WhoId", "Subject", "ActivityDate", "Status", "Priority", "Description", "OwnerId")
MIN_EVENT_KEY_LENGTH = 80  # docs/setup-salesforce.md: Text(80)
MIN_LINK_ID_LENGTH = 32  # docs/setup-salesforce.md: Text(32)


@dataclass(frozen=True)
class FieldRequirement:
    """One field the sync itself relies on, and what its definition must be."""

    sobject: str
    field: str
    role: str  # what the sync uses it for
    types: tuple[str, ...]  # describe types accepted
    setup: str  # the definition to create, as Setup words it
    external_id: bool = False
    unique: bool = False
    min_length: int = 0


def sync_field_requirements(specs: SpecSet) -> list[FieldRequirement]:
    """The record link, score and Task event-id fields the loaded specs name (each once)."""
    out: dict[tuple[str, str], FieldRequirement] = {}

    def add(req: FieldRequirement) -> None:
        out.setdefault((req.sobject, req.field), req)

    for spec in specs.objects.values():
        obj, link = spec.salesforce_object, spec.record_link
        if link is not None:
            add(
                FieldRequirement(
                    obj,
                    link.id_field,
                    "record link id",
                    TEXT,
                    "Text(32), External ID, Unique",
                    external_id=True,
                    unique=True,
                    min_length=MIN_LINK_ID_LENGTH,
                )
            )
            if link.url_field:
                add(FieldRequirement(obj, link.url_field, "record link URL", URL, "URL(255)"))
        for row in spec.fields:
            if row.leadgen == "leadScore" and row.direction.writes_salesforce:
                add(FieldRequirement(obj, row.salesforce, "lead score", NUMBER, "Number(18, 0)"))
    if specs.engagement is not None:
        add(
            FieldRequirement(
                "Task",
                specs.engagement.external_id_field,
                "Task event id",
                TEXT,
                "Text(80), External ID, Unique",
                external_id=True,
                unique=True,
                min_length=MIN_EVENT_KEY_LENGTH,
            )
        )
    return list(out.values())


def _fields_path(sobject: str) -> str:
    return f"Setup > Object Manager > {sobject} > Fields & Relationships"


def check_specs_load(f: Facts) -> Check:
    name = "mapping specs"
    if f.specs.errors:
        return failed(
            name,
            "; ".join(f"{file}: {why}" for file, why in sorted(f.specs.errors.items())),
            "correct the file(s) in include/mappings/ (docs/mapping-specs.md)",
        )
    count = len(f.specs.objects) + (f.specs.engagement is not None) + (f.specs.owners is not None)
    return passed(name, f"{count} spec files load")


def check_sync_field(f: Facts, req: FieldRequirement) -> Check:
    name = f"field {req.sobject}.{req.field}"
    fields = f.describe(req.sobject)
    if fields is None:
        return failed(
            name,
            f"{req.sobject} is not available to the integration user",
            f"give the integration user's profile access to {req.sobject}",
        )
    d = fields.get(req.field)
    if d is None:
        return failed(
            name,
            f"the {req.role} field does not exist or is hidden from the integration user",
            f"{_fields_path(req.sobject)} > New: {req.field} {req.setup} (an existing field: "
            "Set Field-Level Security > the integration user's profile: Visible)",
        )
    wrong = []
    if d.get("type") not in req.types:
        wrong.append(f"type {d.get('type')}")
    if req.external_id and not d.get("externalId"):
        wrong.append("not External ID")
    if req.unique and not d.get("unique"):
        wrong.append("not Unique")
    if wrong:
        return failed(
            name,
            f"the {req.role} field is {', '.join(wrong)}; it must be {req.setup}",
            f"{_fields_path(req.sobject)} > {req.field} > Edit: {req.setup}",
        )
    length = int(d.get("length") or 0)
    if req.min_length and length < req.min_length:
        return warned(
            name,
            f"the {req.role} field holds {length} characters; {req.min_length} are recommended",
            f"{_fields_path(req.sobject)} > {req.field} > Edit: Length {req.min_length}",
        )
    return passed(name, f"{req.role}: {req.setup}")


def _sf_problem(
    sobject: str, field: str, d: dict[str, Any] | None, need: tuple[str, ...]
) -> tuple[str, str] | None:
    """(problem, fix) for a Salesforce field the user needs ``need`` access to, or None."""
    if d is None:
        return (
            f"{sobject}.{field} does not exist or is hidden",
            f"{_fields_path(sobject)} > {field} > Set Field-Level Security: Visible",
        )
    missing = [n for n in need if not d.get(n)]
    if not missing:
        return None
    problem = f"{sobject}.{field} is not {'/'.join(missing)} for the integration user"
    if not d.get("permissionable", True) or d.get("calculated"):
        return problem, f"{sobject}.{field} is read-only by definition: map it as pull or none"
    return problem, (
        f"{_fields_path(sobject)} > {field} > Set Field-Level Security: Visible, not Read-Only"
    )


Skip = set[tuple[str, str]]  # (object, field) of the sync fields: their own checks name them


def _object_spec_problems(f: Facts, spec: ObjectSpec, skip: Skip) -> list[tuple[str, str]]:
    sobject, lg_object = spec.salesforce_object, spec.leadgen_object
    sf_fields = f.describe(sobject)
    if sf_fields is None:
        return [(f"{sobject} is not available", f"give the integration user access to {sobject}")]
    lg_schema = f.lg_schema()
    write_sf = ("createable", "updateable") if spec.creates_in_salesforce else ("updateable",)
    out: list[tuple[str, str]] = []
    wanted = [(row.salesforce, row.direction) for row in spec.synced_fields]
    if spec.record_link is not None:  # the people load writes the link on every record
        link = spec.record_link
        wanted += [(n, Direction.PUSH) for n in (link.id_field, link.url_field) if n]
    for field, direction in wanted:
        if (sobject, field) in skip and field not in sf_fields:
            continue  # its own check names it
        need = write_sf if direction.writes_salesforce else ()
        problem = _sf_problem(sobject, field, sf_fields.get(field), need)
        if problem:
            out.append(problem)
    for row in spec.synced_fields:
        lg = lg_schema.lg(lg_object, row.leadgen)
        if lg is None:
            out.append(
                (
                    f"Lead Gen & CRM {lg_object} field {row.leadgen} does not exist",
                    "create the custom field in Lead Gen & CRM (Settings > Fields) or correct "
                    "the spec (custom fields are named by systemName)",
                )
            )
        elif row.direction.writes_leadgen and not lg.editable:
            out.append(
                (
                    f"Lead Gen & CRM {lg_object} field {row.leadgen} is read-only",
                    f"map {row.leadgen} as push or none",
                )
            )
    return out


def _engagement_problems(f: Facts, spec: EngagementSpec, skip: Skip) -> list[tuple[str, str]]:
    if not spec.enabled_types():
        return []
    task = f.describe("Task")
    if task is None:
        return [("Task is not available", "give the integration user access to Task")]
    names = [spec.external_id_field, *TASK_FIELDS]
    events = [spec.events[t] for t in spec.enabled_types()]
    names += ["Type"] if any(e.type for e in events) else []
    names += ["TaskSubtype"] if any(e.subtype for e in events) else []
    out = []
    for name in names:
        if ("Task", name) in skip and name not in task:
            continue
        problem = _sf_problem("Task", name, task.get(name), ("createable",))
        if problem:
            out.append(problem)
    return out


def check_write_access(f: Facts, spec_name: str) -> Check:
    """Every field of one spec readable where it is read and writable where it is written."""
    name = f"write access {spec_name}.yaml"
    skip = {(r.sobject, r.field) for r in sync_field_requirements(f.specs)}
    if spec_name == "engagement":
        if f.specs.engagement is None:
            raise Unavailable("not checked: engagement.yaml did not load")
        problems = _engagement_problems(f, f.specs.engagement, skip)
    else:
        if spec_name not in f.specs.objects:
            raise Unavailable(f"not checked: {spec_name}.yaml did not load")
        problems = _object_spec_problems(f, f.specs.objects[spec_name], skip)
    if problems:
        return failed(
            name,
            "; ".join(p for p, _ in problems),
            "; ".join(dict.fromkeys(fix for _, fix in problems)),
        )
    return passed(name, "every mapped field can be read and written as the spec says")
