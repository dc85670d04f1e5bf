"""Live schemas of both systems, and the check of a mapping spec against them.

The schema is read once per run (Salesforce describe, Lead Gen & CRM getFields), reduced to what
the sync needs, and saved in the run folder so later stages use the same facts without calling
the APIs again. Checking happens before any write: a spec row naming a missing field, an
incompatible type or a field the integration user cannot write fails the run with a message
naming the row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from crm_sync.mapping.catalog import LEADGEN_STANDARD_LEAD_FIELDS
from crm_sync.mapping.loader import LEADGEN_READ_ONLY
from crm_sync.mapping.models import Direction, FieldMapping, ObjectSpec
from crm_sync.mapping.scope import scope_problems_live

_SF_TEXT = {
    "string",
    "textarea",
    "phone",
    "url",
    "email",
    "picklist",
    "multipicklist",
    "combobox",
    "id",
    "reference",
}
_SF_NUMBER = {"double", "int", "long", "currency", "percent"}
_LG_TEXTUAL = {
    "string",
    "text",
    "textarea",
    "hidden",
    "picklist",
    "country",
    "state",
    "phone",
    "url",
    "radio",
    "select",
    "email",
}
_LG_BOOL = {"boolean", "checkbox", "bit"}
_LG_NUMBER = {"int", "integer", "number", "float", "decimal", "smallint", "bigint", "tinyint"}
_LG_DATE = {"date", "datetime"}

COMPATIBLE: dict[str, set[str]] = {
    "text": _LG_TEXTUAL | _LG_NUMBER,
    "boolean": _LG_BOOL,
    "number": _LG_NUMBER | {"string", "text", "hidden"},
    "date": _LG_DATE | {"string", "text"},
    "datetime": _LG_DATE | {"string", "text"},
}


def sf_type_family(sf_type: str) -> str:
    if sf_type in _SF_TEXT:
        return "text"
    if sf_type == "boolean":
        return "boolean"
    if sf_type in _SF_NUMBER:
        return "number"
    if sf_type == "date":
        return "date"
    if sf_type == "datetime":
        return "datetime"
    return "text"


@dataclass
class SfField:
    name: str
    type: str
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    restricted_picklist: bool = False
    picklist_values: list[str] = field(default_factory=list)
    precision: int = 0
    scale: int = 0
    digits: int = 0  # whole-number fields: how many digits (describe's ``digits``)
    defaulted_on_create: bool = False
    filterable: bool = True  # may appear in a SOQL WHERE (long text areas may not)

    @classmethod
    def from_describe(cls, f: dict[str, Any]) -> SfField:
        return cls(
            name=f["name"],
            type=f.get("type", "string"),
            length=int(f.get("length") or 0),
            nillable=bool(f.get("nillable", True)),
            createable=bool(f.get("createable", True)),
            updateable=bool(f.get("updateable", True)),
            external_id=bool(f.get("externalId", False)),
            restricted_picklist=bool(f.get("restrictedPicklist", False)),
            picklist_values=[
                p["value"] for p in f.get("picklistValues") or [] if p.get("active", True)
            ],
            precision=int(f.get("precision") or 0),
            scale=int(f.get("scale") or 0),
            digits=int(f.get("digits") or 0),
            defaulted_on_create=bool(f.get("defaultedOnCreate", False)),
            filterable=bool(f.get("filterable", True)),
        )


@dataclass
class LgField:
    name: str
    data_type: str
    length: int = 0
    is_custom: bool = False
    editable: bool = True
    options: list[str] = field(default_factory=list)


@dataclass
class LiveSchema:
    """The facts about both systems a run relies on; JSON-serializable via :meth:`to_dict`."""

    salesforce: dict[str, dict[str, SfField]] = field(default_factory=dict)
    leadgen: dict[str, dict[str, LgField]] = field(default_factory=dict)

    def sf(self, sobject: str, name: str) -> SfField | None:
        return self.salesforce.get(sobject, {}).get(name)

    def sf_type(self, sobject: str, name: str) -> str:
        f = self.sf(sobject, name)
        return f.type if f else "string"

    def lg(self, lg_object: str, name: str) -> LgField | None:
        return self.leadgen.get(lg_object, {}).get(name)

    def add_salesforce_describe(self, sobject: str, describe: dict[str, Any]) -> None:
        self.salesforce[sobject] = {
            f["name"]: SfField.from_describe(f) for f in describe.get("fields", [])
        }

    def add_leadgen_fields(self, fields: list[dict[str, Any]]) -> None:
        """Fold a getFields result (all relationships) into per-object field tables."""
        lead = self.leadgen.setdefault("lead", {})
        for name, dtype in LEADGEN_STANDARD_LEAD_FIELDS.items():
            lead.setdefault(
                name, LgField(name=name, data_type=dtype, editable=name not in LEADGEN_READ_ONLY)
            )
        for f in fields:
            rel = (f.get("relationship") or "lead").lower()
            name = f.get("systemName") or f.get("label")
            if not name:
                continue
            is_custom = str(f.get("isCustom", "0")) in ("1", "true", "True")
            editable = str(f.get("isEditableInContactManager", "1")) not in ("0", "false", "False")
            opts = f.get("options") or f.get("picklistValues") or []
            if isinstance(opts, str):
                opts = [o for o in opts.split(",") if o]
            self.leadgen.setdefault(rel, {})[name] = LgField(
                name=name,
                data_type=str(f.get("dataType") or "string").lower(),
                length=int(f.get("dataLength") or 0),
                is_custom=is_custom,
                editable=editable and name not in LEADGEN_READ_ONLY,
                options=[str(o) for o in opts] if isinstance(opts, list) else [],
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "salesforce": {
                o: {n: asdict(f) for n, f in fs.items()} for o, fs in self.salesforce.items()
            },
            "leadgen": {o: {n: asdict(f) for n, f in fs.items()} for o, fs in self.leadgen.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LiveSchema:
        return cls(
            salesforce={
                o: {n: SfField(**f) for n, f in fs.items()}
                for o, fs in data.get("salesforce", {}).items()
            },
            leadgen={
                o: {n: LgField(**f) for n, f in fs.items()}
                for o, fs in data.get("leadgen", {}).items()
            },
        )


def _row_problems(
    spec: ObjectSpec, p: str, row: FieldMapping, sf: SfField, lg: LgField
) -> list[tuple[str, str]]:
    """What stops one mapped row whose fields exist on both sides."""
    sobject = spec.salesforce_object
    out: list[tuple[str, str]] = []
    if "owner" in row.transform:
        if sf.type != "reference":
            out.append(
                (
                    f"{p}.salesforce",
                    f"owner mapping needs a user reference field, {row.salesforce} is {sf.type}",
                )
            )
    elif lg.data_type not in COMPATIBLE[sf_type_family(sf.type)]:
        out.append(
            (
                f"{p}",
                f"incompatible types: Salesforce {row.salesforce} is {sf.type}, Lead Gen & CRM {row.leadgen} is {lg.data_type}",
            )
        )
    if row.direction.writes_salesforce and not (sf.updateable or sf.createable):
        out.append(
            (
                f"{p}.direction",
                f"{sobject}.{row.salesforce} is read-only for the integration user, so {row.direction.value!r} cannot write it",
            )
        )
    if row.direction.writes_leadgen and not lg.editable:
        out.append(
            (
                f"{p}.direction",
                f"Lead Gen & CRM field {row.leadgen} is read-only, so {row.direction.value!r} cannot write it",
            )
        )
    if row.value_map and sf.restricted_picklist:
        bad = sorted(v for v in row.value_map.values() if v not in sf.picklist_values)
        if bad:
            out.append(
                (
                    f"{p}.value_map",
                    f"values {bad} are not allowed by the restricted picklist {sobject}.{row.salesforce}",
                )
            )
    return out


def _record_link_problems(spec: ObjectSpec, schema: LiveSchema) -> list[tuple[str, str]]:
    """The record link's fields must exist, be writable, and the id field be an External ID."""
    sobject = spec.salesforce_object
    out: list[tuple[str, str]] = []
    for attr in ("id_field", "url_field"):
        name = getattr(spec.record_link, attr)
        if not name:
            continue
        f = schema.sf(sobject, name)
        if f is None:
            out.append(
                (
                    f"record_link.{attr}",
                    f"{sobject}.{name} does not exist; create it in Salesforce (see docs/setup-salesforce.md)",
                )
            )
        elif not (f.updateable and f.createable):
            out.append(
                (f"record_link.{attr}", f"{sobject}.{name} is not writable by the integration user")
            )
        elif attr == "id_field" and not f.external_id:
            out.append(
                (
                    f"record_link.{attr}",
                    f"{sobject}.{name} must be an External ID field so writes can be upserts",
                )
            )
    return out


def check_spec_against_schema(
    spec: ObjectSpec, schema: LiveSchema, *, source: str
) -> list[tuple[str, str]]:
    """Every problem that must stop the run before any write, as ``(path, message)``."""
    problems: list[tuple[str, str]] = []
    sobject = spec.salesforce_object
    if sobject not in schema.salesforce:
        return [
            (
                "salesforce_object",
                f"Salesforce object {sobject!r} is not available to the integration user",
            )
        ]
    for i, row in enumerate(spec.fields):
        p = f"fields[{i}]"
        if row.direction is Direction.NONE:
            continue
        sf = schema.sf(sobject, row.salesforce)
        lg = schema.lg(spec.leadgen_object, row.leadgen)
        if sf is None:
            problems.append(
                (
                    f"{p}.salesforce",
                    f"{sobject}.{row.salesforce} does not exist or is not visible to the integration user",
                )
            )
        if lg is None:
            problems.append(
                (
                    f"{p}.leadgen",
                    f"Lead Gen & CRM {spec.leadgen_object} field {row.leadgen!r} does not exist (custom fields are named by systemName)",
                )
            )
        if sf is not None and lg is not None:
            problems.extend(_row_problems(spec, p, row, sf, lg))
    if spec.record_link:
        problems.extend(_record_link_problems(spec, schema))
    problems.extend(scope_problems_live(spec, schema))
    return problems
