"""Transform: raw records of either system -> canonical frames, and canonical values -> payloads.

Pure functions (``df, spec -> df``), no I/O. The *canonical* form of a mapped value is what both
systems must agree on: a string (or ``None`` for blank) typed by the Salesforce field (booleans
``"true"``/``"false"``, numbers without trailing zeros, dates ``YYYY-MM-DD``, datetimes ISO UTC),
after the row's transforms (trim/lower/upper), value map (Lead Gen & CRM -> Salesforce) and owner
mapping (owners are canonical as Salesforce user ids). Comparing canonical values is how the sync
decides whether anything changed, which is what keeps it from ping-ponging its own writes.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd

from crm_sync.mapping.models import FieldMapping, ObjectSpec
from crm_sync.mapping.owners import OwnerMap
from crm_sync.mapping.schema import LiveSchema, sf_type_family

INVALID = (
    "\x00invalid"  # marker for a value that could not be parsed; validate turns it into a reason
)


def truthy(v: Any) -> bool:
    """A boolean as either API sends it (``True``, ``"true"``, ``"1"``)."""
    return v is True or str(v).strip().lower() in ("1", "true")


def is_blank(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip() == ""


def parse_lg_timestamp(v: Any) -> datetime | None:
    """Lead Gen & CRM v1.2 timestamps: ``YYYY-MM-DD HH:MM:SS`` in UTC."""
    if is_blank(v):
        return None
    s = str(v).strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%Y/%m/%d %H:%M"):
        try:
            return datetime.strptime(s, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def parse_sf_datetime(v: Any) -> datetime | None:
    """Salesforce datetimes: ``2013-05-20T20:49:32.000+0000``."""
    if is_blank(v):
        return None
    s = str(v).strip()
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(s, fmt).astimezone(UTC)
        except ValueError:
            continue
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)
    except ValueError:
        return None


def _canon_number(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    try:
        d = Decimal(str(v).strip().replace(",", ""))
    except InvalidOperation:
        return INVALID
    if not d.is_finite():
        return INVALID
    d = d.normalize()
    # normalize() writes 100 as 1E+2: format back to plain notation
    return format(d, "f") if d == d.to_integral() else format(d, "f").rstrip("0").rstrip(".")


def _canon_bool(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "y", "t", "on"):
        return "true"
    if s in ("0", "false", "no", "n", "f", "off"):
        return "false"
    return INVALID


def _canon_date(v: Any) -> str:
    if isinstance(v, datetime):
        return v.date().isoformat()
    if isinstance(v, date):
        return v.isoformat()
    s = str(v).strip()
    for fmt in (
        "%Y-%m-%d",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S.%f%z",
        "%Y-%m-%dT%H:%M:%S%z",
        "%m/%d/%Y",
    ):
        try:
            return datetime.strptime(s, fmt).date().isoformat()
        except ValueError:
            continue
    return INVALID


def _canon_datetime(v: Any) -> str:
    dt = v if isinstance(v, datetime) else (parse_sf_datetime(v) or parse_lg_timestamp(v))
    if dt is None:
        return INVALID
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical_value(raw: Any, sf_type: str) -> str | None:
    """Type-normalize one raw value by the Salesforce field type (``None`` = blank)."""
    if is_blank(raw):
        return None
    family = sf_type_family(sf_type)
    if family == "boolean":
        return _canon_bool(raw)
    if family == "number":
        return _canon_number(raw)
    if family == "date":
        return _canon_date(raw)
    if family == "datetime":
        return _canon_datetime(raw)
    return str(raw)


def apply_steps(value: str | None, row: FieldMapping) -> str | None:
    if value is None or value == INVALID:
        return value
    for step in row.transform:
        if step == "trim":
            value = value.strip()
        elif step == "lower":
            value = value.lower()
        elif step == "upper":
            value = value.upper()
    return value or None


def _lg_to_canonical(
    raw: Any, row: FieldMapping, sf_type: str, owners: OwnerMap | None
) -> str | None:
    if "owner" in row.transform:
        if is_blank(raw):
            return None
        # An unmapped owner is canonical blank: it never overwrites a mapped one (blank policy),
        # and the extract summary reports it by name.
        return (owners.lg_to_sf.get(str(raw).strip()) if owners else None) or None
    v = canonical_value(raw, sf_type)
    v = apply_steps(v, row)
    if v is not None and v != INVALID and row.value_map:
        v = row.value_map.get(v, v)
    return v


def _sf_to_canonical(raw: Any, row: FieldMapping, sf_type: str) -> str | None:
    if "owner" in row.transform:
        return None if is_blank(raw) else str(raw)
    return apply_steps(canonical_value(raw, sf_type), row)


def canonicalize_leadgen(
    df: pd.DataFrame, spec: ObjectSpec, schema: LiveSchema, owners: OwnerMap | None
) -> pd.DataFrame:
    """Raw Lead Gen & CRM records (strings) -> canonical frame indexed by ``_lg_id``.

    Meta columns: ``_lg_id``, ``_lg_updated`` (aware datetime), ``_lg_owner`` (raw user id),
    ``_lg_owner_unmapped``.
    """
    out = pd.DataFrame(index=range(len(df)))
    out["_lg_id"] = df["id"].astype(str).values if "id" in df else None
    get = lambda name: df[name] if name in df else pd.Series([None] * len(df))  # noqa: E731
    out["_lg_updated"] = [parse_lg_timestamp(v) for v in get("updateTimestamp")]
    out["_lg_owner"] = [None if is_blank(v) else str(v).strip() for v in get("ownerID")]
    out["_lg_owner_unmapped"] = [
        bool(o) and (owners is None or o not in owners.lg_to_sf) for o in out["_lg_owner"]
    ]
    for row in spec.synced_fields:
        sf_type = schema.sf_type(spec.salesforce_object, row.salesforce)
        out[row.key] = [_lg_to_canonical(v, row, sf_type, owners) for v in get(row.leadgen)]
    return out.set_index("_lg_id", drop=False)


def canonicalize_salesforce(df: pd.DataFrame, spec: ObjectSpec, schema: LiveSchema) -> pd.DataFrame:
    """Raw Salesforce records of ``spec.salesforce_object`` -> canonical frame indexed by ``_sf_id``.

    Meta columns: ``_sf_id``, ``_sf_modified``, ``_sf_lgid`` (record-link external id),
    ``_sf_link_url``.
    """
    out = pd.DataFrame(index=range(len(df)))
    get = lambda name: df[name] if name in df else pd.Series([None] * len(df))  # noqa: E731
    out["_sf_id"] = get("Id").astype(str).values
    out["_sf_modified"] = [parse_sf_datetime(v) for v in get("LastModifiedDate")]
    id_field = spec.record_link.id_field if spec.record_link else None
    out["_sf_lgid"] = (
        [None if is_blank(v) else str(v).strip() for v in get(id_field)] if id_field else None
    )
    url_field = spec.record_link.url_field if spec.record_link else None
    out["_sf_link_url"] = (
        [None if is_blank(v) else str(v) for v in get(url_field)] if url_field else None
    )
    for row in spec.synced_fields:
        sf_type = schema.sf_type(spec.salesforce_object, row.salesforce)
        out[row.key] = [_sf_to_canonical(v, row, sf_type) for v in get(row.salesforce)]
    return out.set_index("_sf_id", drop=False)


# -- canonical -> payloads ----------------------------------------------------------------


def salesforce_value(canonical: str | None, sf_type: str) -> Any:
    """Canonical value -> the JSON value Salesforce expects for a field of ``sf_type``."""
    if canonical is None:
        return None
    if canonical == INVALID:
        return INVALID  # unparseable source value: the validate stage quarantines it by name
    family = sf_type_family(sf_type)
    if family == "boolean":
        return canonical == "true"
    if family == "number":
        try:
            d = Decimal(canonical)
        except InvalidOperation:
            return canonical  # validate reports it; never silently coerced
        return int(d) if d == d.to_integral() and sf_type in ("int", "long") else float(d)
    return canonical


def leadgen_value(
    canonical: str | None, row: FieldMapping, sf_type: str, owners: OwnerMap | None
) -> str | None:
    """Canonical value -> Lead Gen & CRM string. Returns ``None`` when it cannot be expressed
    there (an owner with no mapped Lead Gen & CRM user); blank is ``""`` (the API refuses null
    on non-nullable fields)."""
    if "owner" in row.transform:
        if canonical is None:
            return None
        return owners.sf_to_lg.get(canonical) if owners else None
    if canonical is None:
        return ""
    if canonical == INVALID:
        return INVALID
    if row.value_map:
        inverse = {v: k for k, v in row.value_map.items()}
        canonical = inverse.get(canonical, canonical)
    family = sf_type_family(sf_type)
    if family == "boolean":
        return "1" if canonical == "true" else "0"
    if family == "datetime" and canonical.endswith("Z"):
        dt = parse_sf_datetime(canonical)
        return dt.strftime("%Y-%m-%d %H:%M:%S") if dt else canonical
    return canonical
