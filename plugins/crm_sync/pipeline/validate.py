"""Validate: the data-quality gate between reconcile and load (Great Expectations 1.x).

Suites are derived from the mapping specs and the live schemas, per target and operation:

* Salesforce: required fields (non-nillable, createable: Lead ``LastName``/``Company``, Contact
  ``LastName``) on creates and whenever a write would blank them; email format; string length
  <= the field's length; restricted picklist values from describe; numeric/date/boolean values
  that parse; the spec's own rules.
* Lead Gen & CRM: ``emailAddress`` required and well-formed; lengths; picklist options; the
  spec's rules.

A failing row is not written to that target; it is quarantined (by the record stage) with the
record, the field, the rule and the value. The rest of the batch goes on. The per-check summary
(evaluated, failed, examples) goes into the run report.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from crm_sync.mapping.models import ObjectSpec
from crm_sync.mapping.schema import LiveSchema, sf_type_family
from crm_sync.pipeline.transform import INVALID

log = logging.getLogger(__name__)

EMAIL_RE = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,}$"

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

CATEGORY_BY_CHECK = {
    "required": "required field",
    "email_format": "format",
    "parseable": "format",
    "max_length": "length",
    "picklist": "picklist",
    "rule": "validation rule",
}


@dataclass
class Failure:
    target: str  # "salesforce" | "leadgen"
    pair: str
    check: str
    field: str
    value: Any
    message: str

    @property
    def category(self) -> str:
        return CATEGORY_BY_CHECK.get(self.check.split(":")[0], "other")

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "check": self.check,
            "field": self.field,
            "value": json_safe(self.value),
            "message": self.message,
            "category": self.category,
        }


def json_safe(v: Any) -> Any:
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(v, str) and v == INVALID:
        return "<unparseable>"
    return v if isinstance(v, str | int | float | bool) or v is None else str(v)


@dataclass
class Check:
    """One expectation plus how to explain its failures."""

    name: str  # e.g. "max_length" or "rule:phone-format"
    column: str
    expectation: Any
    describe: str  # human sentence of the rule, e.g. "at most 80 characters"


@dataclass
class CheckStats:
    evaluated: int = 0
    failed: int = 0
    examples: list[Any] = field(default_factory=list)


class Validator:
    """Builds suites per target frame and runs them through one ephemeral GX context."""

    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_pandas("crm_sync")
        self._n = 0
        self.stats: dict[str, CheckStats] = defaultdict(CheckStats)

    def run(
        self, frame_name: str, df: pd.DataFrame, checks: list[Check]
    ) -> list[tuple[int, Check, Any]]:
        """Run ``checks`` on ``df`` (which has a ``__row`` column); return failing (row, check, value)."""
        if df.empty or not checks:
            return []
        self._n += 1
        name = f"{frame_name}_{self._n}"
        asset = self.source.add_dataframe_asset(name)
        batch = asset.add_batch_definition_whole_dataframe("all")
        suite = self.context.suites.add(self.gx.ExpectationSuite(name=name))
        by_id: dict[str, Check] = {}
        for c in checks:
            exp = suite.add_expectation(c.expectation)
            by_id[exp.id] = c
        vd = self.context.validation_definitions.add(
            self.gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        result = vd.run(
            batch_parameters={"dataframe": df},
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["__row"]},
        )
        failures: list[tuple[int, Check, Any]] = []
        for r in result.results:
            check = by_id.get(r.expectation_config.id)
            if check is None:
                continue
            stats = self.stats[f"{frame_name}:{check.name}:{check.column}"]
            stats.evaluated += int(r.result.get("element_count") or 0)
            unexpected = r.result.get("unexpected_index_list") or []
            stats.failed += len(unexpected)
            for item in unexpected:
                value = item.get(check.column)
                if len(stats.examples) < 5:
                    stats.examples.append(json_safe(value))
                failures.append((int(item["__row"]), check, value))
            message = _raised(r.exception_info)
            if message:
                # A broken expectation must not let rows through unchecked.
                raise RuntimeError(f"expectation {check.name} on {check.column} raised: {message}")
        self.context.suites.delete(name)
        return failures

    def summary(self) -> dict[str, dict[str, Any]]:
        return {
            k: {"evaluated": v.evaluated, "failed": v.failed, "examples": v.examples}
            for k, v in sorted(self.stats.items())
        }


def only_where_written(column: str) -> dict[str, Any]:
    """Expectation kwargs that limit a check to the rows whose payload writes ``column`` (an
    update that leaves a required field alone must not fail for it)."""
    from great_expectations.expectations.row_conditions import Column

    return {"row_condition": Column(f"__has_{column}") == True}  # noqa: E712 - builds a GX condition


def _raised(info: Any) -> str | None:
    """The exception message inside a GX ``exception_info`` (flat or keyed by metric), if any."""
    if isinstance(info, dict):
        if info.get("raised_exception"):
            return str(info.get("exception_message") or "unknown error")
        for v in info.values():
            found = _raised(v)
            if found:
                return found
    return None


def _gxe() -> Any:
    import great_expectations.expectations as gxe

    return gxe


def required_fields(schema: LiveSchema, sobject: str) -> list[str]:
    """Fields a create must set: not nillable, createable, and without a default on create
    (describe's ``defaultedOnCreate``: e.g. Lead Status and OwnerId have defaults)."""
    return [
        f.name
        for f in schema.salesforce.get(sobject, {}).values()
        if not f.nillable and f.createable and not f.defaulted_on_create and f.type != "boolean"
    ]


# -- check factories: every DAG builds its suites from these, so the checks read alike -------


def required_check(column: str, *, only_written: bool = False) -> Check:
    """``column`` must not be blank; with ``only_written`` only in rows whose payload writes it
    (an update that leaves a required field alone must not fail for it)."""
    cond = only_where_written(column) if only_written else {}
    return Check(
        "required",
        column,
        _gxe().ExpectColumnValuesToNotBeNull(column=column, **cond),
        "is required",
    )


def email_check(column: str) -> Check:
    return Check(
        "email_format",
        column,
        _gxe().ExpectColumnValuesToMatchRegex(column=column, regex=EMAIL_RE),
        "must be a valid email address",
    )


def length_check(column: str, length: int) -> Check:
    return Check(
        "max_length",
        column,
        _gxe().ExpectColumnValueLengthsToBeBetween(column=column, max_value=length),
        f"must be at most {length} characters",
    )


def picklist_check(column: str, values: Iterable[str], name: str = "picklist") -> Check:
    allowed = list(values)
    return Check(
        name,
        column,
        _gxe().ExpectColumnValuesToBeInSet(column=column, value_set=allowed),
        f"must be one of {allowed}",
    )


def parseable_check(column: str, what: str = "value") -> Check:
    """Values the transform could not parse carry the ``INVALID`` marker: they must not pass."""
    return Check(
        "parseable",
        column,
        _gxe().ExpectColumnValuesToNotBeInSet(column=column, value_set=[INVALID]),
        f"must be a valid {what}",
    )


def salesforce_checks(
    sobject: str, op: str, columns: Iterable[str], schema: LiveSchema, spec: ObjectSpec
) -> list[Check]:
    cols = set(columns)
    fields = schema.salesforce.get(sobject, {})
    checks = [
        required_check(name, only_written=op != "create")
        for name in required_fields(schema, sobject)
        if op == "create" or name in cols
    ]
    for name in sorted(cols):
        f = fields.get(name)
        if f is None or name == "Id":
            continue
        family = sf_type_family(f.type)
        if f.type == "email":
            checks.append(email_check(name))
        if (
            family == "text"
            and f.length
            and f.type not in ("id", "reference", "picklist", "multipicklist")
        ):
            checks.append(length_check(name, f.length))
        if f.restricted_picklist and f.picklist_values:
            checks.append(picklist_check(name, f.picklist_values))
        if family in ("number", "date", "datetime", "boolean"):
            checks.append(parseable_check(name, f.type))
    for row in spec.fields:
        if row.salesforce in cols and row.direction.writes_salesforce:
            checks.extend(rule_checks(row.rules, row.salesforce))
    return checks


def leadgen_checks(
    op: str, columns: Iterable[str], schema: LiveSchema, spec_rows: dict[str, Any]
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
        lf = schema.lg("lead", name)
        length = (lf.length if lf and lf.length else 0) or LEADGEN_LENGTHS.get(name, 0)
        if length:
            checks.append(length_check(name, length))
        if lf and lf.options and lf.data_type == "picklist":
            checks.append(picklist_check(name, lf.options))
        checks.append(parseable_check(name))
        row = spec_rows.get(name)
        if row is not None and row.direction.writes_leadgen:
            checks.extend(rule_checks(row.rules, name))
    return checks


def rule_checks(rules: list[Any], column: str) -> list[Check]:
    """The spec's own rules on ``column``, named ``rule:<name>`` and explained by their message."""
    out = []
    for i, rule in enumerate(rules):
        if rule.regex is not None:
            base = Check(
                "rule",
                column,
                _gxe().ExpectColumnValuesToMatchRegex(column=column, regex=rule.regex),
                f"must match {rule.regex}",
            )
        elif rule.max_length is not None:
            base = length_check(column, rule.max_length)
        elif rule.required:
            base = required_check(column, only_written=True)
        elif rule.allowed is not None:
            base = picklist_check(column, rule.allowed)
        else:
            continue
        out.append(
            replace(base, name=f"rule:{rule.name or i}", describe=rule.message or base.describe)
        )
    return out


def frame(
    payloads: list[dict[str, Any]],
    rows: list[int],
    ensure: Iterable[str] = (),
    *,
    empty_is_blank: bool = False,
) -> pd.DataFrame:
    """One row per payload; ``ensure`` columns exist even when no payload has them (a required
    field missing from every row must fail, not be skipped). ``empty_is_blank``: ``""`` counts
    as missing (how Lead Gen & CRM writes a blank)."""
    df = pd.DataFrame(payloads).astype(object)
    for c in ensure:
        if c not in df.columns:
            df[c] = None
    df = df.where(pd.notna(df), None)
    if empty_is_blank:
        df = df.map(lambda v: None if v == "" else v)
    for c in list(df.columns):
        df[f"__has_{c}"] = [c in p for p in payloads]
    df["__row"] = rows
    return df


def explain(who: str, check: Check, value: Any) -> str:
    """``Salesforce Lead (new) (lead 123): field Title must be at most 128 characters
    [check max_length]; got 'Senior Vice …'``: the record, the field, the rule and the value
    (long values cut at 120 characters; the quarantine keeps the whole payload)."""
    shown = json_safe(value)
    if isinstance(shown, str) and len(shown) > 120:
        shown = shown[:117] + "..."
    got = "it is blank" if shown is None else f"got {shown!r}"
    return f"{who}: field {check.column} {check.describe} [check {check.name}]; {got}"


def safe_column(name: str) -> bool:
    # Payload keys become frame columns (and __has_ markers); only identifier-like names qualify.
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is not None


def validate_plans(
    plans: list[dict[str, Any]],
    specs: dict[str, ObjectSpec],
    schema: LiveSchema,
    validator: Validator,
) -> dict[int, list[Failure]]:
    """Validate a chunk of plans; return failures by plan index (position in ``plans``)."""
    failures: dict[int, list[Failure]] = defaultdict(list)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, p in enumerate(plans):
        if p.get("sf_op"):
            groups[(p["sf_object"], p["sf_op"])].append(i)
    for (sobject, op), idx in groups.items():
        payloads = [
            {k: v for k, v in plans[i]["sf_payload"].items() if k != "Id" and safe_column(k)}
            for i in idx
        ]
        required = required_fields(schema, sobject)
        df = frame(payloads, idx, ensure=required if op == "create" else ())
        checks = salesforce_checks(
            sobject, op, [c for c in df.columns if not c.startswith("__")], schema, specs[sobject]
        )
        for row, check, value in validator.run(f"sf_{sobject}_{op}", df, checks):
            p = plans[row]
            who = f"Salesforce {sobject} {p.get('sf_id') or '(new)'} (lead {p.get('lg_id') or '(new)'})"
            failures[row].append(
                Failure(
                    "salesforce",
                    p["pair"],
                    check.name,
                    check.column,
                    value,
                    explain(who, check, value),
                )
            )
    lg_groups: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(plans):
        if p.get("lg_op"):
            lg_groups[p["lg_op"]].append(i)
    rows_by_lg = {}
    for spec in specs.values():
        for row in spec.fields:
            rows_by_lg.setdefault(row.leadgen, row)
    for op, idx in lg_groups.items():
        payloads = [
            {k: v for k, v in plans[i]["lg_payload"].items() if safe_column(k)} for i in idx
        ]
        df = frame(
            payloads, idx, ensure=("emailAddress",) if op == "create" else (), empty_is_blank=True
        )
        checks = leadgen_checks(
            op, [c for c in df.columns if not c.startswith("__")], schema, rows_by_lg
        )
        for row, check, value in validator.run(f"lg_{op}", df, checks):
            p = plans[row]
            who = f"Lead Gen & CRM lead {p.get('lg_id') or '(new)'} (Salesforce {p['sf_object']} {p.get('sf_id') or '(new)'})"
            failures[row].append(
                Failure(
                    "leadgen",
                    p["pair"],
                    check.name,
                    check.column,
                    value,
                    explain(who, check, value),
                )
            )
    return failures


def summarize_failures(failures: Iterable[Failure]) -> dict[str, int]:
    return dict(Counter(f"{f.target}:{f.check}:{f.field}" for f in failures).most_common())


def run_gate(
    ctx: Any,
    check_chunk: Callable[[list[dict[str, Any]], Validator], dict[int, list[Failure]]],
    mark: Callable[[dict[str, Any], list[Failure], Counter], None],
    *,
    label: str,
    chunk_size: int = 5000,
) -> dict[str, Any]:
    """The validate stage every DAG runs: ``plans/plans.jsonl`` -> ``plans/validated.jsonl``.

    ``check_chunk`` finds the failures of a chunk of plans (by position); ``mark`` records them
    on a plan and counts it. The per-check summary (evaluated, failed, examples) and the top
    failures go to ``validation.json`` for the run report."""
    from crm_sync.pipeline.files import chunked, read_jsonl, write_json, write_jsonl

    validator = Validator()
    counts: Counter = Counter()
    sample: list[Failure] = []

    def out() -> Iterator[dict[str, Any]]:
        for chunk in chunked(read_jsonl(ctx.run_dir / "plans" / "plans.jsonl"), chunk_size):
            failures = check_chunk(chunk, validator)
            for i, plan in enumerate(chunk):
                found = failures.get(i, [])
                mark(plan, found, counts)
                if len(sample) < 10_000:
                    sample.extend(found)
                yield plan

    write_jsonl(ctx.path("plans", "validated.jsonl"), out())
    top = summarize_failures(sample)
    write_json(
        ctx.path("validation.json"),
        {"checks": validator.summary(), "top_failures": top, "counts": dict(counts)},
    )
    log.info(
        "validate %s: %s top=%s",
        label,
        " ".join(f"{k}={v}" for k, v in sorted(counts.items())),
        dict(list(top.items())[:3]),
    )
    return {"counts": dict(counts), "top_failures": dict(list(top.items())[:10])}


def validate_stage(
    ctx: Any, specs: dict[str, ObjectSpec], schema: LiveSchema, chunk_size: int = 5000
) -> dict[str, Any]:
    """Leads/contacts: ``sf_rejected``/``lg_rejected`` on each failing plan."""

    def mark(plan: dict[str, Any], found: list[Failure], counts: Counter) -> None:
        plan["sf_rejected"] = [f.to_dict() for f in found if f.target == "salesforce"]
        plan["lg_rejected"] = [f.to_dict() for f in found if f.target == "leadgen"]
        counts["sf_checked"] += bool(plan.get("sf_op"))
        counts["lg_checked"] += bool(plan.get("lg_op"))
        counts["sf_rejected"] += bool(plan["sf_rejected"])
        counts["lg_rejected"] += bool(plan["lg_rejected"])

    return run_gate(
        ctx,
        lambda chunk, validator: validate_plans(chunk, specs, schema, validator),
        mark,
        label="people",
        chunk_size=chunk_size,
    )
