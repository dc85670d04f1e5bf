"""Validate: the quality gate for Task payloads. WhoId, Subject and the external id are required
(a blank string is as missing as no value); text no longer than the field; restricted picklists
(from describe) hold a listed value. Only events to deliver are checked."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from crm_sync.domains.engagement.rules import TASK, VALIDATE_CHUNK
from crm_sync.domains.engagement.spec import run_schema, run_spec
from crm_sync.mapping.models import EngagementSpec
from crm_sync.mapping.schema import LiveSchema
from crm_sync.pipeline.validate import (
    Check,
    Failure,
    Validator,
    check_group,
    length_check,
    picklist_check,
    required_check,
    run_gate,
)

if TYPE_CHECKING:
    from crm_sync.tasks import TaskRuntime

TEXT_TYPES = ("string", "textarea", "combobox", "url", "email", "phone")


def required(spec: EngagementSpec) -> tuple[str, ...]:
    return ("WhoId", "Subject", spec.external_id_field)


def task_checks(columns: Iterable[str], spec: EngagementSpec, schema: LiveSchema) -> list[Check]:
    checks = [required_check(name) for name in required(spec)]
    for name in sorted(set(columns)):
        f = schema.sf(TASK, name)
        if f is None:
            continue
        if f.length and f.type in TEXT_TYPES:
            checks.append(length_check(name, f.length))
        if f.restricted_picklist and f.picklist_values:
            checks.append(picklist_check(name, f.picklist_values))
    return checks


def validate_tasks(
    plans: list[dict[str, Any]], spec: EngagementSpec, schema: LiveSchema, validator: Validator
) -> dict[int, list[Failure]]:
    """Run the gate on the deliverable plans of a chunk; failures by position in ``plans``."""
    idx = [i for i, p in enumerate(plans) if p.get("sf_op")]
    failures: dict[int, list[Failure]] = defaultdict(list)
    if not idx:
        return failures
    check_group(
        validator,
        "sf_Task_upsert",
        plans,
        idx,
        target="salesforce",
        payload=lambda p: p["sf_payload"],
        checks=lambda cols: task_checks(cols, spec, schema),
        who=lambda p: f"Task {p['key']} ({p['type']}, lead {p.get('lead_id')})",
        key="key",
        ensure=required(spec),
        empty_is_blank=True,
        into=failures,
    )
    return failures


def validate(rt: TaskRuntime) -> dict[str, Any]:
    """``sf_rejected`` on each failing Task plan; the per-check summary to ``validation.json``."""
    spec, schema = run_spec(rt.run), run_schema(rt.run)
    return run_gate(
        rt.run,
        lambda chunk, validator: validate_tasks(chunk, spec, schema, validator),
        label="engagement",
        chunk_size=VALIDATE_CHUNK,
    )
