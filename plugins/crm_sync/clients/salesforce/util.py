"""Pure helpers of the Salesforce client: call kinds, ids, value conversion, names, loggers.

Nothing here talks to Salesforce; every function is deterministic and cheap, so the other
modules of the package (and the unit tests) can use them freely.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from crm_sync.clients.results import AMBIGUOUS_WRITE, RecordError, WriteResult
from crm_sync.redact import SecretsFilter

# Last line of defence: whatever this package logs is scrubbed of known secrets. One filter
# shared by every module logger, so a secret registered by one client is known to all.
SECRETS_FILTER = SecretsFilter()
_LOGGERS: list[logging.Logger] = []


def package_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with the package's secrets filter attached."""
    logger = logging.getLogger(name)
    if SECRETS_FILTER not in logger.filters:
        logger.addFilter(SECRETS_FILTER)
    if logger not in _LOGGERS:
        _LOGGERS.append(logger)
    return logger


def package_loggers() -> list[logging.Logger]:
    """Every logger of the package (tests remove their filters to prove messages are clean)."""
    return list(_LOGGERS)


TRANSIENT_RECORD_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "API_TEMPORARILY_UNAVAILABLE"})
TRANSIENT_CALL_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "API_TEMPORARILY_UNAVAILABLE", "SERVER_UNAVAILABLE"}
)
# Whole-call 400s that mean the query or mapping spec is wrong (fix the code/spec, not retry).
CONFIG_CODES = frozenset(
    {
        "MALFORMED_QUERY",
        "INVALID_FIELD",
        "INVALID_TYPE",
        "INVALID_QUERY_FILTER_OPERATOR",
        "NOT_FOUND",
    }
)
# The result code of a record whose write may or may not have been applied (the connection
# failed after the request was sent). Never produced by Salesforce itself.
AMBIGUOUS_CODE = AMBIGUOUS_WRITE
MAX_COLLECTION = 200
# Values per IN (...) list: SOQL sets no count of its own (a statement may be 100,000
# characters), so the URI budget below is what binds; this only caps a list of tiny values.
IN_CLAUSE_VALUES = 2000
RETRIEVE_IDS = 2000  # ids per sObject Collections retrieve
# A query travels in the request URI (GET .../query/?q=...), which a real org's front end
# refuses above 16,384 bytes (414). The SOQL, URL-encoded as requests sends it, is kept within
# this many bytes, which leaves room for the path and the API version.
SOQL_URI_BUDGET = 15_800
BULK_MAX_BYTES = 90 * 1024 * 1024  # the library refuses uploads over 100 MB
MAX_BACKOFF = 60.0
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
_DATA_PATH = re.compile(r"^/services/data/v\d+\.\d+/?(.*)$")
_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def _classify_data_path(method: str, segs: list[str]) -> str:
    head = segs[0].lower()
    if head in ("query", "queryall"):
        return "query" if len(segs) == 1 else "query_more"
    if head == "sobjects":
        if len(segs) == 1 or (len(segs) == 2 and method.upper() == "GET"):
            return "describe"
        tail = segs[2].lower() if len(segs) == 3 else ""
        return {"describe": "describe", "updated": "get_updated", "deleted": "get_deleted"}.get(
            tail, "sobject"
        )
    if head == "composite" and len(segs) == 3 and method.upper() in ("GET", "POST"):
        return "retrieve"  # collections retrieve (composite/sobjects/X): a read
    return {"composite": "collections", "jobs": "bulk2", "limits": "limits"}.get(head, "other")


def classify_url(method: str, url: str) -> str:
    """The call kind of one HTTP request, by URL (the same rules the org uses for its counts)."""
    path = urlsplit(url).path
    m = _DATA_PATH.match(path)
    if not m:
        if method.upper() == "POST" and (
            path in ("", "/")
            or "/services/Soap/u/" in path
            or path.endswith("/services/oauth2/token")
        ):
            return "login"
        if "/services/Soap/m/" in path:
            return "metadata"
        return "other"
    segs = [s for s in m.group(1).split("/") if s]
    if not segs:
        return "other"
    return _classify_data_path(method, segs)


def require_utc(value: dt.datetime, name: str) -> None:
    if (
        not isinstance(value, dt.datetime)
        or value.tzinfo is None
        or value.utcoffset() != dt.timedelta(0)
    ):
        raise ValueError(f"{name} must be a timezone-aware UTC datetime, got {value!r}")


def check_ident(name: str, what: str) -> str:
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ValueError(f"invalid Salesforce {what} name: {name!r}")
    return name


def to_18(record_id: str) -> str:
    """The 18-character form of a 15-character record id (others are returned unchanged)."""
    if len(record_id) != 15 or not record_id.isalnum():
        return record_id
    suffix = ""
    for start in (0, 5, 10):
        flags = sum(
            1 << bit for bit, ch in enumerate(record_id[start : start + 5]) if "A" <= ch <= "Z"
        )
        suffix += _SUFFIX_CHARS[flags]
    return record_id + suffix


def strip_attributes(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: strip_attributes(v) for k, v in value.items() if k != "attributes"}
    if isinstance(value, list):
        return [strip_attributes(v) for v in value]
    return value


def json_value(value: Any) -> Any:
    """Python value -> JSON value Salesforce accepts (datetimes as ISO 8601 UTC)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def csv_value(value: Any) -> str:
    """Python value -> Bulk API 2.0 cell. ``#N/A`` sets null; an empty cell would mean 'no change'."""
    if value is None:
        return "#N/A"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(json_value(value))


def window_params(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    """getUpdated/getDeleted bounds as ISO 8601 with an explicit UTC offset."""
    fmt = "%Y-%m-%dT%H:%M:%S+00:00"
    return {
        "start": start.astimezone(dt.UTC).strftime(fmt),
        "end": end.astimezone(dt.UTC).strftime(fmt),
    }


def parse_sf_datetime(text: str) -> dt.datetime:
    value = dt.datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    return value.astimezone(dt.UTC)


def parse_bulk_error(text: str) -> RecordError:
    """``CODE:message:field1,field2 --`` -> RecordError."""
    body = text.strip()
    if body.endswith("--"):
        body = body[:-2].rstrip()
    code, _, rest = body.partition(":")
    message, sep, fields = rest.rpartition(":")
    if not sep:
        message, fields = rest, ""
    names = tuple(f.strip() for f in fields.split(",") if f.strip())
    return RecordError(
        code=code.strip() or "UNKNOWN_EXCEPTION", message=message.strip(), fields=names
    )


def ambiguous_result(index: int, detail: str) -> WriteResult:
    """The result of a record whose write may or may not have been applied."""
    message = f"the answer was lost after the request was sent ({detail}); it may have been applied"
    return WriteResult(index, False, errors=(RecordError(AMBIGUOUS_CODE, message),))
