"""Conversion between API values and stored values.

Writes are lenient about types the way the real API is (numbers may arrive as strings, booleans
as ``0``/``1``/``"0"``/``"1"``/``true``), and strict about what the real API rejects: ``null`` on a
non-nullable field (205), an array where a scalar belongs (210), a value that is not a number or
not in a picklist (217), a string longer than the column (205, a sandbox choice: the real
MySQL-backed API may truncate instead). Reads return every value as a string or ``null``.

Text is stored the way the real API leaves it (RMUIT ``encoding.md``, tested on the live API):

* written through the API (``TEXT_API``): raw, except that every ``<`` that is not the last
  non-blank character becomes ``&lt;`` -- the one entity a client reads back from its own writes;
* typed in the UI (``TEXT_UI``, admin API only): standard fields are HTML-encoded (``&`` ``<``
  ``>`` ``"`` ``'``, with ``<`` encoded twice: ``&amp;lt;``), custom fields get ``<`` -> ``&lt;``.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from .catalog import CONTACT_STATUSES, QUALIFIED_STATUSES, FieldDef
from .clock import parse_timestamp
from .errors import ObjectError

_INT_RE = re.compile(r"^-?\d+$")
TEXT_API = "api"
TEXT_UI = "ui"
TEXT_MODES = (TEXT_API, TEXT_UI)
# PHP htmlspecialchars(ENT_QUOTES): what the UI applies to standard fields before saving.
_HTML_SPECIAL = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#039;"}
)


def api_text(text: str) -> str:
    """The API's ``<`` quirk: every ``<`` except a last non-blank one reads back as ``&lt;``."""
    if "<" not in text:
        return text
    end = len(text.rstrip(" "))
    return text[: end - 1].replace("<", "&lt;") + text[end - 1 :]


def ui_text(text: str, *, custom: bool) -> str:
    """A value as the UI saves it: custom fields encode ``<`` only; standard fields encode
    ``<`` and then the whole value (so ``<`` ends up as ``&amp;lt;``)."""
    encoded = text.replace("<", "&lt;")
    return encoded if custom else encoded.translate(_HTML_SPECIAL)


def store_text(text: str, mode: str, *, custom: bool) -> str:
    return ui_text(text, custom=custom) if mode == TEXT_UI else api_text(text)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _field_error(code: int, field: str, **extra: Any) -> ObjectError:
    return ObjectError(code, data={"field": field, **extra})


def to_int(value: Any, field: str) -> int:
    """Accept ``12`` or ``"12"`` (the vendor's own samples send numbers as strings)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_RE.match(value.strip()):
        return int(value.strip())
    raise _field_error(217, field, value=value, expected="integer")


def to_bool(value: Any, field: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return 1
        if text in _FALSE:
            return 0
    raise _field_error(217, field, value=value, expected="0 or 1")


def normalize(fd: FieldDef, value: Any, text_mode: str = TEXT_API) -> Any:
    """Turn one written value into its stored form, or raise the object error the API gives."""
    if isinstance(value, (list, dict)):
        raise _field_error(210, fd.name)
    if value is None:
        if not fd.nullable:
            raise ObjectError(
                205,
                f"Field {fd.name} cannot be null; send an empty string instead",
                {"field": fd.name},
            )
        return None
    kind = fd.kind
    if value == "" and fd.nullable and (fd.ref or kind == "bool"):
        # RMUIT: empty strings are refused in integer id columns (and in the nullable flags
        # active/isUnsubscribed); null clears them.
        raise ObjectError(
            205,
            f"Invalid parameters: {fd.name} cannot be an empty string; send null to clear it",
            {"field": fd.name},
        )
    if kind == "int":
        if value == "":
            return None
        return to_int(value, fd.name)
    if kind == "bool":
        return to_bool(value, fd.name)
    if kind == "decimal":
        if value == "":
            return None
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise _field_error(217, fd.name, value=value, expected="number") from None
        return format(number, "f")
    if kind == "date":
        if value == "":
            return None
        try:
            return parse_timestamp(value).strftime("%Y-%m-%d 00:00:00")
        except ValueError:
            raise _field_error(217, fd.name, value=value, expected="YYYY-MM-DD") from None
    if kind == "picklist":
        text = str(value)
        if text not in fd.options:
            raise ObjectError(
                217,
                f"Invalid value for {fd.name}",
                {"field": fd.name, "value": text, "allowed": list(fd.options)},
            )
        return text
    # strings
    text = value if isinstance(value, str) else _scalar_text(value)
    if fd.length is not None and len(text) > fd.length:
        raise ObjectError(
            205,
            f"Value for {fd.name} is longer than {fd.length} characters",
            {"field": fd.name, "maxLength": fd.length},
        )
    return store_text(text, text_mode, custom=False)


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def normalize_custom(
    system_name: str, data_type: str, length: int | None, value: Any, text_mode: str = TEXT_API
) -> str:
    """Custom values are stored as strings; ``null`` is not allowed (send ``""``).

    Multi-select values may be sent as a list and are stored comma-joined, which is how they read
    back (reference 7.2). Picklist values are *not* checked against the options: the API is not
    known to validate custom picklists, and the sync must cope with values it cannot map.
    """
    if value is None:
        raise ObjectError(
            205,
            f"Field {system_name} cannot be null; send an empty string instead",
            {"field": system_name},
        )
    if isinstance(value, dict):
        raise _field_error(210, system_name)
    if isinstance(value, list):
        text = ",".join(_scalar_text(v) for v in value)
    elif data_type in ("boolean", "bit", "checkbox") and isinstance(value, bool):
        text = "1" if value else "0"
    else:
        text = _scalar_text(value)
    if length and data_type not in ("textarea",) and len(text) > length:
        raise ObjectError(
            205,
            f"Value for {system_name} is longer than {length} characters",
            {"field": system_name, "maxLength": length},
        )
    return store_text(text, text_mode, custom=True)


def to_api(fd: FieldDef, stored: Any) -> str | None:
    """Stored value -> API value: everything is a string, unset standard fields are null."""
    if stored is None:
        return None
    return stored if isinstance(stored, str) else str(stored)


def derived_flags(lead_status: str | None) -> tuple[str, str, str]:
    """(isQualified, isContact, isCustomer) derived from leadStatus (documented choice)."""
    status = lead_status or "unqualified"
    return (
        "1" if status in QUALIFIED_STATUSES else "0",
        "1" if status in CONTACT_STATUSES else "0",
        "1" if status == "customer" else "0",
    )


def load_custom(raw: str | None) -> dict[str, str]:
    return json.loads(raw) if raw else {}


def dump_custom(values: dict[str, str]) -> str | None:
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False) if values else None
