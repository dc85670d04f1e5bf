"""The engagement spec (``engagement.yaml``): checked on its own and against the org's Task
describe, snapshotted by ``prepare`` so every task of one run works from the same spec; and the
DAG's prepare stage.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_sync.domains.engagement.events import template_names
from crm_sync.domains.engagement.rules import (
    COMMON_FIELDS,
    EVENT_TYPES,
    MIN_KEY_LENGTH,
    PERSON_OBJECTS,
    SPEC_NAME,
    TASK,
    TYPE_FIELDS,
)
from crm_sync.errors import ConfigError
from crm_sync.mapping.models import EngagementSpec
from crm_sync.mapping.schema import LiveSchema
from crm_sync.pipeline.context import RunContext

if TYPE_CHECKING:
    from crm_sync.tasks import TaskRuntime

log = logging.getLogger(__name__)


def check_spec(spec: EngagementSpec) -> list[tuple[str, str]]:
    """Problems of the spec on its own (templates, description fields, time zone), as
    ``(path, message)`` pairs. Disabled types are checked too: switching one on must not be the
    moment a typo surfaces."""
    problems: list[tuple[str, str]] = []
    try:
        ZoneInfo(spec.activity_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            ("activity_timezone", f"unknown time zone {spec.activity_timezone!r} (IANA name)")
        )
    for etype, tspec in spec.events.items():
        allowed = set(COMMON_FIELDS) | set(TYPE_FIELDS[etype])
        try:
            names = template_names(tspec.subject)
        except ValueError as exc:
            problems.append((f"events.{etype}.subject", str(exc)))
            names = []
        for name in names:
            if name not in allowed:
                problems.append(
                    (
                        f"events.{etype}.subject",
                        f"unknown field {{{name}}} for {etype}; use one of {sorted(allowed)}",
                    )
                )
        for i, name in enumerate(tspec.description):
            if name not in allowed:
                problems.append(
                    (
                        f"events.{etype}.description[{i}]",
                        f"unknown field {name!r} for {etype}; use one of {sorted(allowed)}",
                    )
                )
    return problems


def check_spec_against_schema(spec: EngagementSpec, schema: LiveSchema) -> list[tuple[str, str]]:
    """What in the spec cannot work against the org's Task describe, as ``(path, message)``."""
    if TASK not in schema.salesforce:
        return [("", "Salesforce object Task is not available to the integration user")]
    problems: list[tuple[str, str]] = []
    ext = schema.sf(TASK, spec.external_id_field)
    if ext is None:
        problems.append(
            ("external_id_field", f"Task.{spec.external_id_field} does not exist or is not visible")
        )
    else:
        if not ext.external_id:
            problems.append(
                ("external_id_field", f"Task.{ext.name} is not marked External ID in Salesforce")
            )
        if not ext.createable:
            problems.append(("external_id_field", f"Task.{ext.name} is not createable"))
        if ext.length and ext.length < MIN_KEY_LENGTH:
            problems.append(
                (
                    "external_id_field",
                    f"Task.{ext.name} holds {ext.length} characters; event keys need {MIN_KEY_LENGTH}",
                )
            )
    for name in ("WhoId", "Subject", "ActivityDate", "Description", "OwnerId"):
        f = schema.sf(TASK, name)
        if f is None or not f.createable:
            problems.append(("", f"Task.{name} does not exist or is not createable"))
    values: list[tuple[str, str, str]] = [
        ("status", "Status", spec.status),
        ("priority", "Priority", spec.priority),
    ]
    for etype in spec.enabled_types():
        tspec = spec.events[etype]
        if tspec.type:
            values.append((f"events.{etype}.type", "Type", tspec.type))
        if tspec.subtype:
            values.append((f"events.{etype}.subtype", "TaskSubtype", tspec.subtype))
    for path, name, value in values:
        f = schema.sf(TASK, name)
        if f is None or not f.createable:
            problems.append((path, f"Task.{name} does not exist or is not createable"))
        elif f.restricted_picklist and f.picklist_values and value not in f.picklist_values:
            problems.append(
                (path, f"{value!r} is not a value of Task.{name} (one of {f.picklist_values})")
            )
    return problems


def load_spec() -> EngagementSpec:
    """``engagement.yaml`` from the mappings folder, checked; SpecError names file and path."""
    from crm_sync.mapping.loader import (
        SpecError,
        display_path,
        load_engagement_spec,
        spec_path,
    )

    path = spec_path(SPEC_NAME)
    spec = load_engagement_spec(path)
    problems = check_spec(spec)
    if problems:
        raise SpecError(display_path(path), problems)
    return spec


def run_spec(ctx: RunContext) -> EngagementSpec:
    """The spec as ``prepare`` read it: every task of one run works from the same snapshot."""
    return EngagementSpec.model_validate(ctx.folder.read_json("engagement_spec.json"))


def run_schema(ctx: RunContext) -> LiveSchema:
    return LiveSchema.from_dict(ctx.folder.read_json("schema.json", {}) or {})


def prepare(rt: TaskRuntime) -> dict[str, Any]:
    """Spec loaded and checked against the Task describe, active users read, run recorded.

    Every configuration problem fails here, before any record is read or written. The rest is
    the shared :func:`crm_sync.pipeline.prepare.prepare` (run folder, schema facts, run row).
    """
    from crm_sync.mapping.loader import display_path, spec_path
    from crm_sync.pipeline.prepare import prepare as prepare_run
    from crm_sync.pipeline.prepare import schema_cache

    ctx, sf = rt.run, rt.salesforce
    spec = load_spec()

    def read_and_check() -> None:
        schema = LiveSchema()
        for sobject in (TASK, *PERSON_OBJECTS):
            schema.add_salesforce_describe(sobject, sf.describe(sobject))
        problems = check_spec_against_schema(spec, schema)
        if problems:
            source = display_path(spec_path(SPEC_NAME))
            raise ConfigError(
                "engagement spec does not match the Salesforce Task object (nothing was "
                "written):\n"
                + "\n".join(f"{source}: {p}: {m}" if p else f"{source}: {m}" for p, m in problems)
            )

    # Describes cached by earlier runs (clients/schema_cache.py), kept by the shared prepare.
    schema_cache(rt.store, sf, None).checked(sf, None, read_and_check)
    active = sorted(
        str(u["Id"]) for u in sf.query("SELECT Id, IsActive FROM User") if u.get("IsActive")
    )
    # Describes are cached on the client, so the shared prepare spends no second call on them.
    summary = prepare_run(
        ctx,
        spec_names={},
        sf=sf,
        lg=rt.leadgen,
        store=rt.store,
        extra_sf_objects=(TASK, *PERSON_OBJECTS),
        with_owners=False,
    )
    ctx.folder.write_json("engagement_spec.json", spec.model_dump(mode="json"))
    ctx.folder.write_json("users.json", {"active": active})
    enabled = spec.enabled_types()
    log.info(
        "prepare engagement: enabled=%s disabled=%s active_users=%d",
        ",".join(enabled) or "-",
        ",".join(t for t in EVENT_TYPES if t not in enabled) or "-",
        len(active),
    )
    return {**summary, "enabled_types": enabled}
