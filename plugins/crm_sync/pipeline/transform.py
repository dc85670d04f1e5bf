"""Transform: raw records of either system -> canonical frames, and canonical values -> payloads.

Pure functions (``df, spec -> df``), no I/O. The *canonical* form of a mapped value is what both
systems must agree on: a string (or ``None`` for blank) typed by the Salesforce field (booleans
``"true"``/``"false"``, numbers without trailing zeros, dates ``YYYY-MM-DD``, datetimes ISO UTC),
after the row's transforms (trim/lower/upper), value map (Lead Gen & CRM -> Salesforce) and owner
mapping (owners are canonical as Salesforce user ids). Comparing canonical values is how the sync
decides whether anything changed, which is what keeps it from ping-ponging its own writes.

Bad input (docs/reliability.md, "Bad input"; ``tests/fixtures/bad_inputs.yaml``) is decided here
too, the same way on both sides so that a cleaned value never looks like a change:

* text is NFC-normalised; control characters (except tab, line feed, carriage return) and the
  invisible zero-width space, word joiner and byte-order mark are removed;
* emails: surrounding blanks and every invisible format character removed, the domain's root dot
  dropped, an international domain written in its ASCII (punycode) form;
* picklists: blanks collapsed, the value spelled as the Salesforce picklist spells it;
* numbers: ``.`` is the decimal point, ``,`` (or a blank or ``'``) only a thousands separator in
  groups of three; rounded half up to the field's scale; out of the field's range is invalid;
* dates: ISO, or day and month in an order the numbers make certain; 1700-01-01 to 4000-12-31;
* ``null``, ``none``, ``n/a`` ... in a number, date or checkbox field are blank (in text they
  are text: people are called Null), and ``0000-00-00`` is a blank date.

A value that cannot be read becomes the ``INVALID`` marker (followed by the source text in the
frames), which the validate stage turns into a quarantine reason.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import idna  # IDNA 2008 + UTS 46 (installed with requests)
import pandas as pd

from crm_sync.mapping.models import FieldMapping, ObjectSpec
from crm_sync.mapping.owners import OwnerMap
from crm_sync.mapping.schema import LgField, LiveSchema, SfField, sf_type_family

INVALID = (
    "\x00invalid"  # marker for a value that could not be parsed; validate turns it into a reason
)
SOURCE_SHOWN = 200  # characters of an unreadable source value kept next to the marker

# Salesforce's JSON numbers are read as doubles (simple-salesforce), which carry 15 significant
# digits exactly; a longer number would come back changed in its last digits.
MAX_SIGNIFICANT_DIGITS = 15
# The range Salesforce accepts for date and datetime fields.
SF_MIN_DATE = date(1700, 1, 1)
SF_MAX_DATE = date(4000, 12, 31)

# Words exports write for "no value". Blank in number, date and checkbox fields; in text fields
# they are text (the surname Null exists).
NULL_WORDS = frozenset({"null", "none", "nil", "undefined", "n/a", "#n/a"})

# C0 and C1 control characters except tab, line feed and carriage return: debris of imports and
# terminals that no user can see or type, and that Salesforce's XML APIs refuse.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Invisible characters that carry no meaning in a CRM value (zero-width space, word joiner,
# byte-order mark). Zero-width (non-)joiners are kept: they shape emoji and Persian/Indic text.
_INVISIBLE = re.compile("[\u200b\u2060\ufeff]")
_BLANKS = re.compile(r"\s+")

_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# Thousands separators: one kind per value, groups of exactly three digits, "." for decimals.
_GROUPED_NUMBER = re.compile(
    r"[+-]?\d{1,3}(?P<sep>[, '\u00a0\u202f\u2019])\d{3}(?:(?P=sep)\d{3})*(?:\.\d+)?"
)
_SLASH_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")


def truthy(v: Any) -> bool:
    """A boolean as either API sends it (``True``, ``"true"``, ``"1"``)."""
    return v is True or str(v).strip().lower() in ("1", "true")


def is_blank(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip() == ""


def is_invalid(v: Any) -> bool:
    """``v`` is the marker of an unreadable value (bare, or followed by its source text)."""
    return isinstance(v, str) and v.startswith(INVALID)


def invalid_source(v: str) -> str | None:
    """The source text a marker carries (``None`` for the bare marker)."""
    return v[len(INVALID) + 1 :] if len(v) > len(INVALID) else None


def with_source(value: str | None, raw: Any) -> str | None:
    """``value``, or the marker followed by the (shortened) source text when it is ``INVALID``,
    so the quarantine reason can show what was in the source record."""
    if value != INVALID:
        return value
    return f"{INVALID}:{clean_text(str(raw))[:SOURCE_SHOWN]}"


def clean_text(text: str) -> str:
    """Text as both sides compare it: control and invisible characters removed, NFC."""
    if text.isascii() and text.isprintable():
        return text  # the common case, kept cheap
    text = _INVISIBLE.sub("", _CONTROL.sub("", text))
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def canonical_email(v: Any) -> str | None:
    """An email address cleaned of what cannot be part of it and written the way Salesforce
    stores it: invisible format characters and surrounding blanks removed, the domain's root
    dot dropped, an international domain in its ASCII (punycode) form. What is left is not
    checked here: the validate stage refuses addresses that are still malformed."""
    if is_blank(v):
        return None
    text = clean_text(str(v))
    if not text.isascii():
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = text.strip()
    local, at, domain = text.rpartition("@")
    if not at or not domain.strip("."):
        return text or None
    domain = domain.rstrip(".")
    if not domain.isascii():
        domain = _ascii_domain(domain)
    return f"{local}@{domain.lower()}"


def _ascii_domain(domain: str) -> str:
    """IDNA 2008 with UTS 46 mapping (what browsers and mail servers use); the domain is left
    as it is when it cannot be encoded, and the email check refuses it."""
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return domain


def json_safe(v: Any) -> Any:
    """A value as JSON can hold it (reports, the quarantine): missing values (NaN, NaT, None)
    become null, an unparseable value its source text, anything else not a JSON scalar its
    ``str``; containers are walked, so a payload never carries NaN, which Postgres' JSON
    refuses, nor an object json cannot encode."""
    if isinstance(v, Mapping):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [json_safe(x) for x in v]
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if is_invalid(v):
        source = invalid_source(v)
        return "<unparseable>" if source is None else source
    return v if isinstance(v, str | int | float | bool) or v is None else str(v)


def _is_null_word(v: Any) -> bool:
    return isinstance(v, str) and v.strip().lower() in NULL_WORDS


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


def parse_number(v: Any) -> Decimal | None:
    """A number as people and exports write it, or ``None`` when it is not one for certain.

    ``.`` is the decimal point; ``,`` (or a blank, ``'``) only separates thousands, in groups of
    three, so ``1,234.50`` is 1234.5 while ``1,5``, ``12,34`` and ``1.234,50`` are refused rather
    than guessed. Currency signs, words and ``NaN``/``Infinity`` are refused.
    """
    if isinstance(v, bool):
        return Decimal(int(v))
    if isinstance(v, int | float | Decimal):
        d = Decimal(str(v))
        return d if d.is_finite() else None
    s = str(v).strip()
    if _GROUPED_NUMBER.fullmatch(s):
        s = re.sub(r"[, '\u00a0\u202f\u2019]", "", s)
    elif not _PLAIN_NUMBER.fullmatch(s):
        return None
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _canon_number(v: Any, field: SfField | None = None) -> str:
    d = parse_number(v)
    if d is None:
        return INVALID
    if field is not None:
        try:
            d = _fit_number(d, field)
        except InvalidOperation:
            return INVALID
        if d is None:
            return INVALID
    if d == 0:
        return "0"  # no "-0", no "0E-7"
    d = d.normalize()
    # normalize() writes 100 as 1E+2: format back to plain notation
    return format(d, "f") if d == d.to_integral() else format(d, "f").rstrip("0").rstrip(".")


def _fit_number(d: Decimal, field: SfField) -> Decimal | None:
    """``d`` as the Salesforce field stores it (rounded half up to its scale), or ``None`` when
    the field cannot hold it: a fraction in a whole-number field, too many digits."""
    if field.type in ("int", "long"):
        if d != d.to_integral_value():
            return None
        digits = field.digits
    else:
        d = d.quantize(Decimal(1).scaleb(-field.scale), rounding=ROUND_HALF_UP)
        digits = field.precision - field.scale if field.precision else 0
    if digits and abs(d) >= Decimal(10) ** digits:
        return None
    if len(d.normalize().as_tuple().digits) > MAX_SIGNIFICANT_DIGITS:
        return None
    return d


def _canon_bool(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "y", "t", "on"):
        return "true"
    if s in ("0", "false", "no", "n", "f", "off"):
        return "false"
    return INVALID


def parse_date(v: Any) -> date | None:
    """A date written ISO-style (``YYYY-MM-DD``, with or without a time, or ``YYYY/MM/DD``) or as
    ``D/M/YYYY`` / ``M/D/YYYY`` when the numbers make the order certain (``31/12/2026``,
    ``12/31/2026``, ``5/5/2026``); ``01/02/2026`` could be either and is refused."""
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    s = str(v).strip()
    m = _SLASH_DATE.fullmatch(s)
    if m:
        a, b, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if a != b and a <= 12 and b <= 12:
            return None  # day and month could be either way round
        day, month = (a, b) if a > 12 else (b, a)
        try:
            return date(year, month, day)
        except ValueError:
            return None
    for fmt in ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d"):
        try:
            return datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _canon_date(v: Any) -> str:
    d = parse_date(v)
    if d is None or not SF_MIN_DATE <= d <= SF_MAX_DATE:
        return INVALID
    return d.isoformat()


def _canon_datetime(v: Any) -> str:
    dt = v if isinstance(v, datetime) else (parse_sf_datetime(v) or parse_lg_timestamp(v))
    if dt is None:
        return INVALID
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    if not SF_MIN_DATE <= dt.date() <= SF_MAX_DATE:
        return INVALID
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_zero_date(v: Any) -> bool:
    """MySQL's "no date" (``0000-00-00``, with or without a time)."""
    return isinstance(v, str) and v.strip().startswith("0000-00-00")


def decode_entities(text: str) -> str:
    """HTML entities decoded the way the Lead Gen & CRM client decodes every string it reads
    (``clients.leadgen.codec.decode_text``: the API and its UI store ``&lt;``, ``&amp;`` ...).
    Text of both sides is compared decoded, so an entity Lead Gen & CRM reads back decoded is
    never taken for a change, whichever side it was typed on."""
    if "&" not in text:
        return text
    return html.unescape(text).replace("&lt;", "<")


def canonical_value(raw: Any, sf_type: str, field: SfField | None = None) -> str | None:
    """Type-normalize one raw value by the Salesforce field type (``None`` = blank). With the
    ``field``'s describe facts, numbers are also rounded to its scale and checked against its
    size."""
    return canonical_for(sf_type, field)(raw)


def _canon_text(raw: Any) -> str | None:
    if is_blank(raw):
        return None
    return decode_entities(clean_text(raw if type(raw) is str else str(raw))) or None


def canonical_for(sf_type: str, field: SfField | None = None) -> Callable[[Any], str | None]:
    """:func:`canonical_value` for one field type, chosen once (it runs for every value)."""
    family = sf_type_family(sf_type)
    if family == "text":
        return canonical_email if sf_type == "email" else _canon_text
    parse: Callable[[Any], str] = {
        "boolean": _canon_bool,
        "number": lambda raw: _canon_number(raw, field),
        "date": _canon_date,
    }.get(family, _canon_datetime)

    def typed(raw: Any) -> str | None:
        if is_blank(raw):
            return None
        if isinstance(raw, str):
            raw = clean_text(raw)
            if _is_null_word(raw) or _is_zero_date(raw):
                return None
        return parse(raw)

    return typed


def apply_steps(value: str | None, row: FieldMapping) -> str | None:
    if value is None or is_invalid(value):
        return value
    for step in row.transform:
        if step == "trim":
            value = value.strip()
        elif step == "lower":
            value = value.lower()
        elif step == "upper":
            value = value.upper()
    return value or None


def _loose(v: str) -> str:
    """A picklist value compared loosely: blanks collapsed, case folded."""
    return _BLANKS.sub(" ", v).strip().casefold()


def picklist_spelling(value: str | None, field: SfField | None) -> str | None:
    """A picklist value with stray blanks removed and spelled as the Salesforce picklist spells
    it (``" crm "`` -> ``"CRM"``); values the picklist does not know keep their text (a
    restricted picklist's check refuses them)."""
    if value is None or is_invalid(value) or field is None or field.type != "picklist":
        return value
    tidy = _BLANKS.sub(" ", value).strip()
    if tidy in field.picklist_values:
        return tidy
    loose = tidy.casefold()
    return next((p for p in field.picklist_values if _loose(p) == loose), tidy) or None


def map_value(value: str | None, value_map: dict[str, str] | None) -> str | None:
    """The spec's value map (Lead Gen & CRM -> Salesforce), tolerant of case and blanks."""
    if value is None or is_invalid(value) or not value_map:
        return value
    if value in value_map:
        return value_map[value]
    loose = _loose(value)
    return next((v for k, v in value_map.items() if _loose(k) == loose), value)


# Lead Gen & CRM custom checkboxes read "" when unticked (custom fields have no null); a
# Salesforce checkbox is never null either. Their blank is "false", or every unticked box would
# look like a difference on every run.
_LG_CHECKBOX_TYPES = frozenset({"boolean", "checkbox", "bit"})


def _lg_blank_is_false(lg: LgField | None, sf_type: str) -> bool:
    return (
        lg is not None
        and lg.is_custom
        and lg.data_type in _LG_CHECKBOX_TYPES
        and sf_type_family(sf_type) == "boolean"
    )


def _converter(
    row: FieldMapping,
    sf: SfField | None,
    *,
    leadgen: bool,
    owners: OwnerMap | None = None,
    blank_is_false: bool = False,
) -> Callable[[Any], str | None]:
    """The raw -> canonical function of one mapped row on one side, with the steps the row does
    not need left out (this runs once per value of every extracted record)."""
    if "owner" in row.transform:
        if not leadgen:
            return lambda raw: None if is_blank(raw) else str(raw)
        # An unmapped owner is canonical blank: it never overwrites a mapped one (blank policy),
        # and the extract summary reports it by name.
        lg_to_sf = owners.lg_to_sf if owners else {}
        return lambda raw: None if is_blank(raw) else (lg_to_sf.get(str(raw).strip()) or None)
    canonical = canonical_for(sf.type if sf else "string", sf)
    steps = bool(row.transform)
    value_map = row.value_map if leadgen else None  # Lead Gen & CRM values -> Salesforce ones
    picklist = sf if sf is not None and sf.type == "picklist" else None

    def convert(raw: Any) -> str | None:
        v = canonical(raw)
        if steps:
            v = apply_steps(v, row)
        if value_map:
            v = map_value(v, value_map)
        if picklist is not None:
            v = picklist_spelling(v, picklist)
        if v is None:
            return "false" if blank_is_false else None
        return v if v != INVALID else with_source(v, raw)

    return convert


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
        sf = schema.sf(spec.salesforce_object, row.salesforce)
        lg = schema.lg(spec.leadgen_object, row.leadgen)
        convert = _converter(
            row,
            sf,
            leadgen=True,
            owners=owners,
            blank_is_false=_lg_blank_is_false(lg, sf.type if sf else "string"),
        )
        out[row.key] = [convert(v) for v in get(row.leadgen)]
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
        convert = _converter(row, schema.sf(spec.salesforce_object, row.salesforce), leadgen=False)
        out[row.key] = [convert(v) for v in get(row.salesforce)]
    return out.set_index("_sf_id", drop=False)


# -- canonical -> payloads ----------------------------------------------------------------


def salesforce_value(canonical: str | None, sf_type: str) -> Any:
    """Canonical value -> the JSON value Salesforce expects for a field of ``sf_type``."""
    if canonical is None:
        return None
    if is_invalid(canonical):
        return canonical  # unparseable source value: the validate stage quarantines it by name
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
    if is_invalid(canonical):
        return canonical
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
