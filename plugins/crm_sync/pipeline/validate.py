"""Validate: the data-quality gate between plan and load (Great Expectations 1.x).

The spine's part of the gate: one :class:`Validator` per run (an ephemeral GX context), the check
factories every DAG builds its suites from (required, email, length, picklist, parseable, the
spec's own rules, and a Salesforce object's checks from its describe), one message format
(:func:`explain`) and the stage itself (:func:`run_gate`). Each DAG says which payloads of its
plans go to which checks (:func:`check_group`).

A failing row is not written to that target; it is quarantined (by the record stage) with the
record, the field, the rule and the value. The rest of the batch goes on. A value the transform
could not read is shown as it was in the source, next to what a valid value of the field's type
looks like (:func:`type_rule`; docs/reliability.md, "Bad input"). The per-check summary
(evaluated, failed, examples) goes into the run report.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from crm_sync.mapping.models import ObjectSpec
from crm_sync.mapping.schema import LiveSchema, SfField, sf_type_family
from crm_sync.pipeline.transform import (
    INVALID,
    MAX_SIGNIFICANT_DIGITS,
    SF_MAX_DATE,
    SF_MIN_DATE,
    is_invalid,
    json_safe,
)

if TYPE_CHECKING:
    from crm_sync.pipeline.context import RunContext


log = logging.getLogger(__name__)

# One address: ASCII before the @ (Salesforce refuses anything else), a domain of ASCII labels
# (an international domain arrives here in its punycode form, ``xn--...``, TLDs included).
EMAIL_RE = (
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.(?:[A-Za-z]{2,}|xn--[A-Za-z0-9-]{2,59})$"
)
EMAIL_RULE = "must be one valid email address (name@domain, only ASCII letters before the @)"

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
        self._context: Any = None
        self._n = 0
        self.stats: dict[str, CheckStats] = defaultdict(CheckStats)

    def _open(self) -> Any:
        """The GX context, built on the first frame with rows (an idle run builds none)."""
        if self._context is None:
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            logging.getLogger("great_expectations").setLevel(logging.WARNING)
            self.gx = gx
            self._context = gx.get_context(mode="ephemeral")
            self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
            self.source = self._context.data_sources.add_pandas("crm_sync")
        return self._context

    @property
    def context(self) -> Any:
        return self._open()

    def run(
        self, frame_name: str, df: pd.DataFrame, checks: list[Check]
    ) -> list[tuple[int, Check, Any]]:
        """Run ``checks`` on ``df`` (which has a ``__row`` column); return failing (row, check, value)."""
        if df.empty or not checks:
            return []
        self._open()
        self._n += 1
        name = f"{frame_name}_{self._n}"
        asset = self.source.add_dataframe_asset(name)
        batch = asset.add_batch_definition_whole_dataframe("all")
        # The suite is filled before the context stores it: one store write for the suite
        # instead of one per expectation (the store copies the whole suite on each). The ids
        # are given on that write; a check equal to an earlier one is not added (GX suites are
        # sets) and gets none, as before.
        suite = self.gx.ExpectationSuite(name=name)
        added = [(suite.add_expectation(c.expectation), c) for c in checks]
        suite = self.context.suites.add(suite)
        by_id: dict[str, Check] = {exp.id: c for exp, c in added if exp.id}
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
        self.forget(name)
        return failures

    def forget(self, name: str) -> None:
        """Drop what one frame left in the GX context: its validation definition, suite, asset
        and stored result (the whole ``COMPLETE`` result, every failing row's index), and the
        frame and metrics the execution engine caches by batch. GX 1.x keeps all of them for
        the life of the context: a run of a million plans would keep every chunk's."""
        self.context.validation_definitions.delete(name)
        self.context.suites.delete(name)
        self.source.delete_asset(name)
        results = self.context.validation_results_store
        for key in results.list_keys():
            results.remove_key(key)
        engine = self.source.get_execution_engine()
        engine.batch_manager.reset_batch_cache()
        engine.batch_manager._batch_data_cache.clear()  # no public API (GX 1.24)
        engine._metric_cache.clear()

    def cached_batches(self) -> int:
        """Frames, metrics and results the context still holds (0 after every :meth:`run`)."""
        engine = self.source.get_execution_engine()
        return (
            len(engine.batch_manager._batch_data_cache)
            + len(engine._metric_cache)
            + len(self.context.validation_results_store.list_keys())
            + len(self.source.assets)
        )

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
    (describe's ``defaultedOnCreate``: a status picklist or the owner often have defaults)."""
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
        EMAIL_RULE,
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


def parseable_check(column: str, what: str = "value", *, rule: str | None = None) -> Check:
    """Values the transform could not parse carry the ``INVALID`` marker: they must not pass.
    ``rule`` says what a valid value looks like (default: "must be a valid <what>")."""
    return Check(
        "parseable",
        column,
        _gxe().ExpectColumnValuesToNotBeInSet(column=column, value_set=[INVALID]),
        rule or f"must be a valid {what}",
    )


def type_rule(f: SfField) -> str:
    """What a value of a Salesforce field of type number, date, datetime or checkbox must look
    like, in the words of a quarantine reason (the rules of ``pipeline.transform``)."""
    dates = f"between {SF_MIN_DATE.isoformat()} and {SF_MAX_DATE.isoformat()}"
    if f.type == "boolean":
        return "must be true or false (1/0, yes/no, y/n, t/f and on/off are read too)"
    if f.type == "date":
        return (
            "must be a date written YYYY-MM-DD (D/M/YYYY or M/D/YYYY only when the day cannot "
            f"be taken for the month) {dates}"
        )
    if f.type == "datetime":
        return f"must be a date and time written YYYY-MM-DD HH:MM:SS (UTC) {dates}"
    if f.type in ("int", "long"):
        size = f" of at most {f.digits} digits" if f.digits else ""
        return f"must be a whole number{size}"
    size = (
        f" with at most {f.precision - f.scale} digits before the decimal point"
        if f.precision
        else ""
    )
    return (
        f"must be a number{size} and at most {MAX_SIGNIFICANT_DIGITS} significant digits "
        "('.' is the decimal point, ',' only separates thousands)"
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
            checks.append(parseable_check(name, f.type, rule=type_rule(f)))
    for row in spec.fields:
        if row.salesforce in cols and row.direction.writes_salesforce:
            checks.extend(rule_checks(row.rules, row.salesforce))
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
    """``Salesforce Account (new) (account 123): field Name must be at most 255 characters
    [check max_length]; got 'Acme …'``: the record, the field, the rule and the value
    (long values cut at 120 characters; the quarantine keeps the whole payload)."""
    shown = json_safe(value)
    if isinstance(shown, str) and len(shown) > 120:
        shown = shown[:117] + "..."
    got = "it is blank" if shown is None else f"got {quoted(shown)}"
    return f"{who}: field {check.column} {check.describe} [check {check.name}]; {got}"


def quoted(value: Any) -> str:
    """A value as a quarantine reason shows it: text in quotes as a person would type it (no
    doubled backslashes), line breaks, tabs and other invisible characters made visible."""
    if not isinstance(value, str):
        return repr(value)
    visible = "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in value)
    return f"'{visible}'"


def safe_column(name: str) -> bool:
    # Payload keys become frame columns (and __has_ markers); only identifier-like names qualify.
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is not None


def check_group(
    validator: Validator,
    frame_name: str,
    plans: list[dict[str, Any]],
    idx: list[int],
    *,
    target: str,
    payload: Callable[[dict[str, Any]], dict[str, Any]],
    checks: Callable[[list[str]], list[Check]],
    who: Callable[[dict[str, Any]], str],
    key: str = "pair",
    ensure: Iterable[str] = (),
    empty_is_blank: bool = False,
    explain_with: Callable[[dict[str, Any], Check, Any], tuple[Any, str] | None] | None = None,
    into: dict[int, list[Failure]],
) -> dict[int, list[Failure]]:
    """Run ``checks`` on the payloads of ``plans[i] for i in idx`` (one frame); add each failure
    to ``into`` under the plan's position (and return it). ``who`` names the record in messages;
    ``explain_with`` may replace the value and message of a check the domain explains better."""
    # A marker followed by its source text is checked as the bare marker; the message shows
    # the source text, taken from the payload itself.
    payloads = [
        {k: INVALID if is_invalid(v) else v for k, v in payload(plans[i]).items() if safe_column(k)}
        for i in idx
    ]
    df = frame(payloads, idx, ensure=ensure, empty_is_blank=empty_is_blank)
    columns = [c for c in df.columns if not c.startswith("__")]
    for row, check, value in validator.run(frame_name, df, checks(columns)):
        p = plans[row]
        if value == INVALID:
            value = payload(p).get(check.column, value)  # the marker with its source text
        custom = explain_with(p, check, value) if explain_with else None
        value, message = custom or (value, explain(who(p), check, value))
        into[row].append(Failure(target, p[key], check.name, check.column, value, message))
    return into


def summarize_failures(failures: Iterable[Failure]) -> dict[str, int]:
    return dict(Counter(f"{f.target}:{f.check}:{f.field}" for f in failures).most_common())


# Plan keys of each target system: ``sf_op``/``sf_payload``/``sf_rejected``, ``lg_*``.
PREFIX = {"salesforce": "sf", "leadgen": "lg"}


def mark(plan: dict[str, Any], found: list[Failure], counts: Counter) -> None:
    """Record a plan's failures on it, per target (``sf_rejected`` / ``lg_rejected``: that side
    must not be written), and count what was checked and rejected."""
    for target, prefix in PREFIX.items():
        if plan.get(f"{prefix}_op"):
            rejected = [f.to_dict() for f in found if f.target == target]
            plan[f"{prefix}_rejected"] = rejected
            counts[f"{prefix}_checked"] += 1
            counts[f"{prefix}_rejected"] += bool(rejected)


def run_gate(
    ctx: RunContext,
    check_chunk: Callable[[list[dict[str, Any]], Validator], dict[int, list[Failure]]],
    *,
    label: str,
    chunk_size: int = 5000,
) -> dict[str, Any]:
    """The validate stage every DAG runs: ``plans/plans.jsonl`` -> ``plans/validated.jsonl``.

    ``check_chunk`` finds the failures of a chunk of plans (by position); each plan gets them
    per target (:func:`mark`). The per-check summary (evaluated, failed, examples) and the top
    failures go to ``validation.json`` for the run report."""
    from crm_sync.pipeline.files import chunked

    folder = ctx.folder
    validator = Validator()
    counts: Counter = Counter()
    sample: list[Failure] = []

    def out() -> Iterator[dict[str, Any]]:
        for chunk in chunked(folder.read_jsonl("plans/plans.jsonl"), chunk_size):
            failures = check_chunk(chunk, validator)
            for i, plan in enumerate(chunk):
                found = failures.get(i, [])
                mark(plan, found, counts)
                if len(sample) < 10_000:
                    sample.extend(found)
                yield plan

    folder.write_jsonl("plans/validated.jsonl", out())
    top = summarize_failures(sample)
    folder.write_json(
        "validation.json",
        {"checks": validator.summary(), "top_failures": top, "counts": dict(counts)},
    )
    log.info(
        "validate %s: %s top=%s",
        label,
        " ".join(f"{k}={v}" for k, v in sorted(counts.items())),
        dict(list(top.items())[:3]),
    )
    return {"counts": dict(counts), "top_failures": dict(list(top.items())[:10])}


class SpecRuntime(Protocol):
    """What :func:`spec_gate`'s stage reads from the task runtime (``crm_sync.tasks``)."""

    @property
    def run(self) -> RunContext: ...

    @property
    def specs(self) -> dict[str, ObjectSpec]: ...

    @property
    def schema(self) -> LiveSchema: ...


def spec_gate(
    check_plans: Callable[
        [list[dict[str, Any]], dict[str, ObjectSpec], LiveSchema, Validator],
        dict[int, list[Failure]],
    ],
    *,
    label: str,
) -> Callable[[SpecRuntime], dict[str, Any]]:
    """The validate stage of a DAG whose plans are checked against its specs (by Salesforce
    object) and the live schema: ``check_plans(chunk, specs, schema, validator)`` per chunk,
    through :func:`run_gate`."""

    def validate(rt: SpecRuntime) -> dict[str, Any]:
        specs, schema = rt.specs, rt.schema
        return run_gate(
            rt.run,
            lambda chunk, validator: check_plans(chunk, specs, schema, validator),
            label=label,
        )

    return validate
