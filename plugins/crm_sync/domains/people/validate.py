"""Validate: the quality gate for people writes, on both sides.

* Salesforce Leads/Contacts: the spine's checks from describe (required fields on creates and
  whenever a write would blank them — Lead ``LastName``/``Company``, Contact ``LastName``; email
  format; lengths; restricted picklists; values that parse) and the spec's own rules.
* Lead Gen & CRM leads: ``emailAddress`` required and well-formed; lengths (getFields, else the
  standard lead fields' lengths of :data:`LEADGEN_LENGTHS`); picklist options; the spec's rules.

A failing plan gets ``sf_rejected`` / ``lg_rejected`` (the side it may not be written to).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from crm_sync.domains.people.rules import LG_OBJECT
from crm_sync.mapping.models import FieldMapping, ObjectSpec
from crm_sync.mapping.schema import LiveSchema, sf_type_family
from crm_sync.pipeline.validate import (
    Check,
    Failure,
    Validator,
    check_group,
    email_check,
    length_check,
    parseable_check,
    picklist_check,
    required_check,
    required_fields,
    rule_checks,
    salesforce_checks,
    spec_gate,
    type_rule,
)

if TYPE_CHECKING:
    pass

# Lengths of standard Lead Gen & CRM lead fields (reference §7.1); custom ones come from getFields.
LEADGEN_LENGTHS = {
    "firstName": 50,
    "lastName": 50,
    "emailAddress": 150,
    "companyName": 100,
    "state": 50,
    "zipcode": 50,
    "title": 255,
    "street": 255,
    "city": 255,
    "country": 255,
    "website": 255,
    "phoneNumber": 255,
    "officePhoneNumber": 255,
    "mobilePhoneNumber": 255,
    "faxNumber": 255,
    "industry": 255,
    "persona": 128,
}


def leadgen_checks(
    op: str,
    columns: Iterable[str],
    schema: LiveSchema,
    spec_rows: dict[str, FieldMapping],
    sf_object: str | None = None,
) -> list[Check]:
    cols = set(columns)
    checks: list[Check] = []
    if op == "create" or "emailAddress" in cols:
        checks.append(required_check("emailAddress", only_written=op != "create"))
    if "emailAddress" in cols:
        checks.append(email_check("emailAddress"))
    for name in sorted(cols):
        if name in ("id", "__row") or name.startswith("__has_"):
            continue
        lf = schema.lg(LG_OBJECT, name)
        length = (lf.length if lf and lf.length else 0) or LEADGEN_LENGTHS.get(name, 0)
        if length:
            checks.append(length_check(name, length))
        if lf and lf.options and lf.data_type == "picklist":
            checks.append(picklist_check(name, lf.options))
        row = spec_rows.get(name)
        checks.append(parseable_check(name, rule=_value_rule(schema, sf_object, row)))
        if row is not None and row.direction.writes_leadgen:
            checks.extend(rule_checks(row.rules, name))
    return checks


def _value_rule(schema: LiveSchema, sf_object: str | None, row: FieldMapping | None) -> str | None:
    """What a value coming from the mapped Salesforce field must look like (its type's rule),
    for the message of a value that could not be read."""
    sf = schema.sf(sf_object, row.salesforce) if sf_object and row else None
    if sf is None or sf_type_family(sf.type) == "text":
        return None
    return type_rule(sf)


def _groups(plans: list[dict[str, Any]], *key: str) -> dict[tuple[Any, ...], list[int]]:
    """Plan positions grouped by the values of ``key`` (plans whose first key is empty left out)."""
    out: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for i, p in enumerate(plans):
        if p.get(key[0]):
            out[tuple(p[k] for k in key)].append(i)
    return out


def validate_plans(
    plans: list[dict[str, Any]],
    specs: dict[str, ObjectSpec],
    schema: LiveSchema,
    validator: Validator,
) -> dict[int, list[Failure]]:
    """Validate a chunk of plans; return failures by plan index (position in ``plans``)."""
    failures: dict[int, list[Failure]] = defaultdict(list)
    for (op, sobject), idx in _groups(plans, "sf_op", "sf_object").items():
        check_group(
            validator,
            f"sf_{sobject}_{op}",
            plans,
            idx,
            target="salesforce",
            payload=lambda p: {k: v for k, v in p["sf_payload"].items() if k != "Id"},
            checks=lambda cols, o=op, so=sobject: salesforce_checks(so, o, cols, schema, specs[so]),
            who=lambda p, so=sobject: (
                f"Salesforce {so} {p.get('sf_id') or '(new)'} (lead {p.get('lg_id') or '(new)'})"
            ),
            ensure=required_fields(schema, sobject) if op == "create" else (),
            into=failures,
        )
    rows_by_lg: dict[str, FieldMapping] = {}
    for spec in specs.values():
        for row in spec.fields:
            rows_by_lg.setdefault(row.leadgen, row)
    for (op, sobject), idx in _groups(plans, "lg_op", "sf_object").items():
        check_group(
            validator,
            f"lg_{op}",
            plans,
            idx,
            target="leadgen",
            payload=lambda p: p["lg_payload"],
            checks=lambda cols, o=op, so=sobject: leadgen_checks(o, cols, schema, rows_by_lg, so),
            who=lambda p: (
                f"Lead Gen & CRM lead {p.get('lg_id') or '(new)'} "
                f"(Salesforce {p['sf_object']} {p.get('sf_id') or '(new)'})"
            ),
            ensure=("emailAddress",) if op == "create" else (),
            empty_is_blank=True,
            into=failures,
        )
    return failures


# ``plans/plans.jsonl`` -> ``plans/validated.jsonl`` with ``sf_rejected`` / ``lg_rejected`` marked
validate = spec_gate(validate_plans, label="people")
