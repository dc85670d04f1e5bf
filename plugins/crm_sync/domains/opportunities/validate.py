"""Validate: the quality gate for Lead Gen & CRM opportunities and accounts.

Required names on creates (and on updates that would blank them); a deal stage for every
opportunity (an unmapped Salesforce stage is quarantined with its name, never given a default);
lengths from getFields; the probability as a whole percent; values that parse; the spec's own
rules. Deletes and memberships carry only ids this sync resolved, so they are not checked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from crm_sync.domains.opportunities.rules import (
    KIND_ACCOUNT,
    KIND_OPPORTUNITY,
    LG_TARGET,
    REF_STAGE,
    SF_OBJECT,
    STAGE_SPEC_NAME,
)
from crm_sync.mapping.loader import display_path, spec_path
from crm_sync.mapping.models import ObjectSpec
from crm_sync.mapping.schema import LiveSchema
from crm_sync.pipeline.validate import (
    Check,
    Failure,
    Validator,
    check_group,
    length_check,
    parseable_check,
    required_check,
    rule_checks,
    spec_gate,
)

if TYPE_CHECKING:
    pass

REQUIRED = {KIND_OPPORTUNITY: ("opportunityName",), KIND_ACCOUNT: ("accountName",)}
# Lead Gen & CRM picks the probability from 0 to 100 (whole percent).
PROBABILITY_RE = r"^(?:100|[1-9]?[0-9])$"


def leadgen_object_checks(
    kind: str, op: str, columns: Iterable[str], schema: LiveSchema, spec: ObjectSpec
) -> list[Check]:
    """Checks for Lead Gen & CRM ``opportunity``/``account`` payloads of one operation.

    Required names on creates (and on updates that would blank them); a deal stage for every
    opportunity; lengths from getFields; the probability as a whole percent; values that parse;
    the spec's own rules on the fields it writes.
    """
    import great_expectations.expectations as gxe

    lg_object = LG_TARGET[kind]
    cols = [c for c in columns if not c.startswith("__") and c != "id"]
    checks: list[Check] = [
        required_check(name, only_written=op != "create")
        for name in REQUIRED[kind]
        if op == "create" or name in cols
    ]
    if kind == KIND_OPPORTUNITY and REF_STAGE in cols:
        checks.append(
            Check(
                "picklist:stage_map",
                REF_STAGE,
                required_check(REF_STAGE, only_written=True).expectation,
                "must come from a Salesforce stage mapped in opportunity_stages.yaml",
            )
        )
    if kind == KIND_OPPORTUNITY and "probability" in cols:
        checks.append(
            Check(
                "format:probability",
                "probability",
                gxe.ExpectColumnValuesToMatchRegex(column="probability", regex=PROBABILITY_RE),
                "must be a whole percent from 0 to 100",
            )
        )
    rows = {r.leadgen: r for r in spec.fields}
    for name in sorted(cols):
        lf = schema.lg(lg_object, name)
        if lf is not None and lf.length and lf.data_type not in ("int", "date", "datetime"):
            checks.append(length_check(name, lf.length))
        checks.append(parseable_check(name))
        row = rows.get(name)
        if row is not None and row.direction.writes_leadgen:
            checks.extend(rule_checks(row.rules, name))
    return checks


def _stage_explained(p: dict[str, Any], check: Check, value: Any) -> tuple[Any, str] | None:
    if check.name != "picklist:stage_map":
        return None
    sobject = "Opportunity"
    return p.get("stage_unmapped"), (
        f"Lead Gen & CRM {LG_TARGET[KIND_OPPORTUNITY]} {p.get('lg_id') or '(new)'} "
        f"(Salesforce {sobject} {p['sf_id']}): stage {p.get('stage_unmapped')!r} has no deal "
        f"stage in {display_path(spec_path(STAGE_SPEC_NAME))}; map it there (the opportunity "
        "is retried every run, never given a default stage)"
    )


def validate_plans(
    plans: list[dict[str, Any]],
    specs: dict[str, ObjectSpec],
    schema: LiveSchema,
    validator: Validator,
) -> dict[int, list[Failure]]:
    """Run the gate on a chunk of plans; failures by plan index."""
    failures: dict[int, list[Failure]] = defaultdict(list)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, p in enumerate(plans):
        if p["kind"] in (KIND_OPPORTUNITY, KIND_ACCOUNT) and p.get("lg_op") in ("create", "update"):
            groups[(p["kind"], p["lg_op"])].append(i)
    for (kind, op), idx in groups.items():
        spec = specs[SF_OBJECT[kind]]
        check_group(
            validator,
            f"lg_{kind}_{op}",
            plans,
            idx,
            target="leadgen",
            payload=lambda p: {k: v for k, v in p["lg_payload"].items() if k != "id"},
            checks=lambda cols, k=kind, o=op, sp=spec: leadgen_object_checks(
                k, o, cols, schema, sp
            ),
            who=lambda p, k=kind, sp=spec: (
                f"Lead Gen & CRM {LG_TARGET[k]} {p.get('lg_id') or '(new)'} "
                f"(Salesforce {sp.salesforce_object} {p['sf_id']})"
            ),
            ensure=REQUIRED[kind] if op == "create" else (),
            empty_is_blank=True,
            explain_with=_stage_explained,
            into=failures,
        )
    return failures


# ``plans/plans.jsonl`` -> ``plans/validated.jsonl`` with ``sf_rejected`` / ``lg_rejected`` marked
validate = spec_gate(validate_plans, label="opportunities")
