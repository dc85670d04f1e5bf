"""Values on the wire: time zones, HTML entities, blanks and ``eventData``.

Transport rules, applied to every read and write so callers see one consistent shape:

* **Timestamps** the API answers (``createTimestamp``, ``updateTimestamp``, event times,
  ``createDate`` of getEmailEvents) are in the account's output time zone (connection extra
  ``output_timezone``, default UTC) with no zone marker; they come back from the client in
  UTC, in the API's own format. Date arguments go out in the account zone.
* **HTML entities**: values typed in the product's UI may come back entity-encoded
  (``&amp;``, ``&lt;``; ``<`` even twice, ``&amp;lt;``), and an API-written ``<`` that is not
  the last character reads back as ``&lt;`` (RMUIT ``encoding.md``). Every string read is
  decoded (:func:`decode_text`), so callers compare and push decoded text. ``eventData`` (JSON
  text) is left alone.
* **Blanks on write**: the API refuses ``null`` in standard text fields and custom fields
  (object error 205, "send an empty string instead") and refuses ``""`` in integer id
  references. :func:`write_value` sends ``""`` to clear a text field and ``null`` to clear a
  field that is not text (:data:`NON_TEXT_FIELDS`).
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_sync.errors import ConfigError

TS_FORMAT = "%Y-%m-%d %H:%M:%S"
EMAIL_EVENT_FORMAT = "%Y/%m/%d %H:%M"  # getEmailEvents createDate ("2016/11/01 16:37")
TIMESTAMP_KEYS = frozenset({"createTimestamp", "updateTimestamp", "__createTimestamp"})
EMAIL_DATE_KEYS = frozenset({"createDate"})
RAW_KEYS = frozenset({"eventData"})  # JSON text: decoding entities could break it

# Standard fields that are not text -- integer id references, flags, numbers, dates -- by
# object. RMUIT: the lead's accountID, ownerID, campaignID, isUnsubscribed and active "can be
# (re)set to null, unlike string fields", and "Sharpspring won't accept empty strings as values
# in integer ID columns" -- "probably" any non-required int/tinyint column [I]. They take null to
# clear and never "". Every other field (standard text, custom fields) takes "" and never null.
ID_REFERENCES = frozenset(
    {
        "ownerID",
        "accountID",
        "campaignID",
        "dealStageID",
        "primaryLeadID",
        "originatingLeadID",
        "opportunityID",
        "leadID",
    }
)
NON_TEXT_FIELDS = ID_REFERENCES | {
    # lead
    "active",
    "isUnsubscribed",
    "leadScore",
    "leadScoreWeighted",
    # account
    "annualRevenue",
    "numberOfEmployees",
    "yearStarted",
    # opportunity
    "probability",
    "amount",
    "isClosed",
    "isWon",
    "closeDate",
    "isActive",
    # deal stage
    "defaultProbability",
    "weight",
    "isEditable",
}
NULLABLE_FIELDS = NON_TEXT_FIELDS


def account_zone(name: str | tzinfo | None) -> tzinfo:
    """The account's output time zone from a connection setting (IANA name; default UTC)."""
    if name is None or name == "":
        return UTC
    if isinstance(name, tzinfo):
        return name
    if str(name).upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"output_timezone {name!r} is not a time zone; use an IANA name such as "
            "'UTC' or 'America/New_York'"
        ) from None


def format_for_api(value: datetime, name: str, zone: tzinfo = UTC) -> str:
    """Aware datetime -> the API's ``YYYY-MM-DD HH:MM:SS`` in the account zone."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC); got naive {value.isoformat()}")
    return value.astimezone(zone).strftime(TS_FORMAT)


def parse_timestamp(value: str | None) -> datetime | None:
    """A timestamp as the client returns it (``YYYY-MM-DD HH:MM:SS``, UTC) -> aware datetime."""
    if not value:
        return None
    return datetime.strptime(value, TS_FORMAT).replace(tzinfo=UTC)


def to_utc_text(value: str, zone: tzinfo, fmt: str = TS_FORMAT) -> str:
    """An API timestamp in the account zone -> the same format in UTC (unparseable: as is).

    A local time that a daylight-saving change makes ambiguous is read as its first
    occurrence (``fold=0``).
    """
    if zone is UTC:
        return value
    if fmt == TS_FORMAT:
        # fromisoformat/isoformat: ~5x faster than strptime/strftime on a million-row read
        if len(value) != 19:
            return value
        try:
            local = datetime.fromisoformat(value)
        except ValueError:
            return value
        return local.replace(tzinfo=zone).astimezone(UTC).isoformat(sep=" ")[:19]
    try:
        local = datetime.strptime(value, fmt)
    except ValueError:
        return value
    return local.replace(tzinfo=zone).astimezone(UTC).strftime(fmt)


def decode_text(value: str) -> str:
    """Undo the HTML encoding the API and its UI apply to stored text.

    One ``html.unescape`` decodes UI-typed values and the API's own ``&lt;``; the UI encodes a
    typed ``<`` twice in standard fields (``&amp;lt;``), which the second step turns back
    into ``<``. A literal entity typed into a field is decoded too: the API keeps no way to
    tell the two apart.
    """
    if "&" not in value:
        return value
    return html.unescape(value).replace("&lt;", "<")


def clean_row(row: Any, zone: tzinfo) -> Any:
    """A read object with entities decoded and timestamps in UTC (in place; returned)."""
    if not isinstance(row, dict):
        return row
    for key, value in row.items():
        if not isinstance(value, str) or key in RAW_KEYS:
            continue
        if key in TIMESTAMP_KEYS:
            row[key] = to_utc_text(value, zone)
        elif key in EMAIL_DATE_KEYS:
            row[key] = to_utc_text(value, zone, EMAIL_EVENT_FORMAT)
        elif "&" in value:
            row[key] = decode_text(value)
    return row


def write_value(key: str, value: Any) -> Any:
    """The value to send for ``key``: ``""`` clears a text or custom field (``null`` is refused
    there), ``null`` clears an id, flag, number or date (``""`` is refused there)."""
    if key in NON_TEXT_FIELDS:
        return None if value == "" else value
    return "" if value is None else value


def write_object(obj: dict[str, Any]) -> dict[str, Any]:
    """A create/update object with the blank rules of :func:`write_value` applied."""
    return {key: write_value(key, value) for key, value in obj.items()}


def parse_event_data(value: Any) -> dict[str, Any]:
    """``eventData`` of getEvents is null, an object, or a *string* holding JSON -- sometimes
    single-quoted pseudo-JSON (reference 7.9). Always returns a dict ({} when unusable)."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        for text in (value, value.replace("'", '"')):
            try:
                parsed = json.loads(text)
            except ValueError:
                continue
            return parsed if isinstance(parsed, dict) else {"value": parsed}
    return {}
