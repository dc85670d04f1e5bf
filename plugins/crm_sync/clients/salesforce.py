"""Salesforce transport for the sync: query, describe, batch writes, retries, call counting.

This module holds no sync rules. It wraps one ``simple_salesforce.Salesforce`` connection (the
one ``SalesforceHook(conn_id).get_conn()`` builds) and adds what the DAGs need on top:

* **Lazy queries** -- :meth:`SalesforceClient.query` follows ``nextRecordsUrl`` page by page and
  yields plain dicts (``attributes`` removed, parent relationship dicts kept).
  :meth:`~SalesforceClient.query_window` and :meth:`~SalesforceClient.query_by_values` build
  the SOQL with ``simple_salesforce.format_soql``, so no value is ever spliced in unescaped.
* **Batch writes with per-record results** -- up to ``bulk_threshold`` records go through sObject
  Collections (``collection_size`` per call, ``allOrNone=false``), more through Bulk API 2.0.
  Every write returns exactly one :class:`~crm_sync.clients.results.WriteResult` per input
  record, in input order; a bad record never raises.
* **Retries** -- a whole call that fails transiently (HTTP 5xx, dropped connection, call-level
  ``UNABLE_TO_LOCK_ROW``) is retried with exponential backoff, then raised as
  :class:`~crm_sync.errors.RetriableError`. Records that fail with ``UNABLE_TO_LOCK_ROW`` or
  ``API_TEMPORARILY_UNAVAILABLE`` are re-submitted alone, up to ``max_retries`` times, then
  returned as failures. The daily ``REQUEST_LIMIT_EXCEEDED`` is never retried here
  (:class:`~crm_sync.errors.RateLimitError`).
* **Call counting** -- a ``requests`` response hook on the connection's session sees every HTTP
  call (REST, Bulk 2.0 polls, the library's own re-logins) and counts it by kind in
  :attr:`SalesforceClient.calls`, with the same rules the org uses for its daily allocation.
* **No secrets in logs or errors** -- messages go through :mod:`crm_sync.redact` with the
  session id, password and security token as known secrets.

Bulk API 2.0 result rows are matched back to input rows by the columns the job echoes: by the
``Id`` column for update and delete (falling back to ``sf__Id``, compared in 18-character
form), by the external id for upsert, and for insert by the whole row as uploaded (identical
input rows are interchangeable, so any pairing between them is correct). An input row that no
result file mentions is reported as ``NOT_PROCESSED``.
"""

from __future__ import annotations

import collections
import csv
import datetime as dt
import decimal
import io
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.bulk2 import Operation
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceBulkV2LoadError,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from crm_sync.clients.results import RecordError, WriteResult
from crm_sync.errors import AuthError, ConfigError, FatalError, RateLimitError, RetriableError
from crm_sync.redact import SecretsFilter, redact_text

log = logging.getLogger(__name__)
# Last line of defence: whatever this module logs is scrubbed of known secrets.
_secrets_filter = SecretsFilter()
log.addFilter(_secrets_filter)

T = TypeVar("T")

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
MAX_COLLECTION = 200
IN_CLAUSE_VALUES = 300
# Keep one IN (...) list well below the ~16 KB request-URI limit once URL-encoded.
IN_CLAUSE_CHARS = 6000
BULK_MAX_BYTES = 90 * 1024 * 1024  # the library refuses uploads over 100 MB
MAX_BACKOFF = 60.0
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
_DATA_PATH = re.compile(r"^/services/data/v\d+\.\d+/?(.*)$")


class ResyncRequiredError(FatalError):
    """Salesforce no longer has the delete log for the requested window; do a full resync.

    Raised by :meth:`SalesforceClient.get_deleted` when ``start`` is older than the org's
    ``earliestDateAvailable`` (or outside the 15-day window it keeps).
    """

    def __init__(self, message: str, *, earliest_available: dt.datetime | None = None):
        super().__init__(message)
        self.earliest_available = earliest_available


class SalesforceApiError(FatalError):
    """A whole call that Salesforce refused for a reason retrying cannot fix."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


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
        return "other"
    segs = [s for s in m.group(1).split("/") if s]
    if not segs:
        return "other"
    head = segs[0].lower()
    if head in ("query", "queryall"):
        return "query" if len(segs) == 1 else "query_more"
    if head == "sobjects":
        if len(segs) == 1 or (len(segs) == 2 and method.upper() == "GET"):
            return "describe"
        if len(segs) == 3 and segs[2].lower() == "describe":
            return "describe"
        if len(segs) == 3 and segs[2].lower() == "updated":
            return "get_updated"
        if len(segs) == 3 and segs[2].lower() == "deleted":
            return "get_deleted"
        return "sobject"
    if head == "composite":
        return "collections"
    if head == "jobs":
        return "bulk2"
    if head == "limits":
        return "limits"
    return "other"


def _require_utc(value: dt.datetime, name: str) -> None:
    if (
        not isinstance(value, dt.datetime)
        or value.tzinfo is None
        or value.utcoffset() != dt.timedelta(0)
    ):
        raise ValueError(f"{name} must be a timezone-aware UTC datetime, got {value!r}")


def _check_ident(name: str, what: str) -> str:
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ValueError(f"invalid Salesforce {what} name: {name!r}")
    return name


_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


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


def _strip_attributes(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _strip_attributes(v) for k, v in value.items() if k != "attributes"}
    if isinstance(value, list):
        return [_strip_attributes(v) for v in value]
    return value


def _json_value(value: Any) -> Any:
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


def _csv_value(value: Any) -> str:
    """Python value -> Bulk API 2.0 cell. ``#N/A`` sets null; an empty cell would mean 'no change'."""
    if value is None:
        return "#N/A"
    if isinstance(value, bool):
        return "true" if value else "false"
    value = _json_value(value)
    return str(value)


def _error_details(exc: SalesforceError) -> tuple[str | None, str]:
    """(errorCode, message) from a simple-salesforce exception's parsed body."""
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        first = content[0]
        return first.get("errorCode"), str(first.get("message", ""))
    if isinstance(content, Mapping):
        return content.get("errorCode") or content.get("error"), str(
            content.get("message") or content
        )
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
    return None, text[:500]


def _window_params(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    """getUpdated/getDeleted bounds as ISO 8601 with an explicit UTC offset."""
    fmt = "%Y-%m-%dT%H:%M:%S+00:00"
    return {
        "start": start.astimezone(dt.UTC).strftime(fmt),
        "end": end.astimezone(dt.UTC).strftime(fmt),
    }


def _login_unavailable(exc: SalesforceAuthenticationFailed) -> bool:
    """A login that failed with an HTTP 5xx (no SOAP fault code) is an outage, not bad credentials."""
    return isinstance(exc.code, int) and exc.code >= 500


def _parse_sf_datetime(text: str) -> dt.datetime:
    value = dt.datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    return value.astimezone(dt.UTC)


def _parse_bulk_error(text: str) -> RecordError:
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


class SalesforceClient:
    """Transport over one simple-salesforce connection. See the module docstring."""

    def __init__(
        self,
        sf: Salesforce,
        *,
        collection_size: int = 200,
        bulk_threshold: int = 2000,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        conn_id: str | None = None,
        secrets: Sequence[str | None] = (),
        bulk_poll_wait: float = 0.1,
        bulk_job_size: int = 100_000,
    ):
        if not 1 <= collection_size <= MAX_COLLECTION:
            raise ValueError(f"collection_size must be between 1 and {MAX_COLLECTION}")
        if bulk_threshold < 0 or max_retries < 0 or backoff_base < 0 or bulk_job_size < 1:
            raise ValueError(
                "bulk_threshold, max_retries, backoff_base must be >= 0 and bulk_job_size >= 1"
            )
        self._sf = sf
        self.collection_size = collection_size
        self.bulk_threshold = bulk_threshold
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self._sleep = sleep
        self.conn_id = conn_id
        self.bulk_poll_wait = bulk_poll_wait
        self.bulk_job_size = bulk_job_size
        self.calls: collections.Counter[str] = collections.Counter()
        self._last_usage: tuple[int, int] | None = None
        self._secrets = tuple(s for s in secrets if s)
        for secret in self._secrets:
            _secrets_filter.add_secret(secret)
        self._remember_session()
        self._describe_cache: dict[str, dict[str, Any]] = {}
        self._field_maps: dict[str, dict[str, dict[str, Any]]] = {}
        self._global_describe: dict[str, Any] | None = None
        sf.session.hooks.setdefault("response", []).append(self._on_response)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_connection(cls, conn_id: str = "salesforce_default", **kw: Any) -> SalesforceClient:
        """Build the provider's ``SalesforceHook(conn_id).get_conn()`` and wrap it.

        Raises :class:`ConfigError` for a missing/incomplete connection, :class:`AuthError` when
        Salesforce refuses the credentials (the message names the connection, never a secret),
        :class:`RetriableError` when Salesforce cannot be reached.
        """
        from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

        hook = SalesforceHook(salesforce_conn_id=conn_id)
        try:
            conn = hook.get_connection(conn_id)
        except Exception as exc:  # AirflowNotFoundException and friends
            raise ConfigError(
                f"Airflow connection {conn_id!r} is not defined: {type(exc).__name__}"
            ) from None
        extras = conn.extra_dejson or {}
        secrets = [conn.password]
        for key in ("security_token", "consumer_secret", "private_key"):
            secrets.append(extras.get(key) or extras.get(f"extra__salesforce__{key}"))
        secrets = [s for s in secrets if isinstance(s, str) and s]
        try:
            sf = hook.get_conn()
        except SalesforceAuthenticationFailed as exc:
            if _login_unavailable(exc):
                raise RetriableError(
                    f"Salesforce login for connection {conn_id!r} is unavailable (HTTP {exc.code})",
                    code="LOGIN_UNAVAILABLE",
                ) from None
            raise AuthError(
                redact_text(
                    f"Salesforce rejected the credentials of connection {conn_id!r} "
                    f"({exc.code}: {getattr(exc, 'auth_message', exc)}); check its login, password and security_token",
                    secrets,
                )
            ) from None
        except TypeError as exc:
            raise ConfigError(
                f"Salesforce connection {conn_id!r} is incomplete: it needs login, password and a "
                f"non-empty security_token extra (or another complete auth method): {exc}"
            ) from None
        except requests.exceptions.SSLError as exc:
            raise ConfigError(
                f"TLS verification failed for connection {conn_id!r} ({type(exc).__name__}); "
                "check REQUESTS_CA_BUNDLE"
            ) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise RetriableError(
                redact_text(
                    f"cannot reach Salesforce for connection {conn_id!r}: {type(exc).__name__}",
                    secrets,
                ),
                code="CONNECTION",
            ) from None
        return cls(sf, conn_id=conn_id, secrets=secrets, **kw)

    # -------------------------------------------------------------------- accounting
    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Count one HTTP call (requests response hook)."""
        try:
            kind = classify_url(response.request.method or "GET", response.url)
            status = response.status_code
            if status == 401 or status == 414:
                return  # refused before reaching the org: not counted against the allocation
            if (
                status == 403
                and kind != "login"
                and b"REQUEST_LIMIT_EXCEEDED" in (response.content or b"")
            ):
                return
            self.calls[kind] += 1
            info = response.headers.get("Sforce-Limit-Info")
            if info:
                m = re.search(r"api-usage=(\d+)/(\d+)", info)
                if m:
                    self._last_usage = (int(m.group(1)), int(m.group(2)))
        except Exception:
            log.debug("could not account for a Salesforce response", exc_info=True)
        return

    @property
    def session(self) -> requests.Session:
        """The ``requests`` session every call of this client goes through (login, REST, Bulk)."""
        return self._sf.session

    @property
    def api_calls(self) -> int:
        """Calls this client made that count against the org's daily API allocation."""
        return sum(n for kind, n in self.calls.items() if kind != "login")

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """(used, max) from the last ``Sforce-Limit-Info`` header seen, or None."""
        if self._last_usage is not None:
            return self._last_usage
        usage = getattr(self._sf, "api_usage", {}).get("api-usage")
        return (usage.used, usage.total) if usage else None

    def _remember_session(self) -> None:
        sid = getattr(self._sf, "session_id", None)
        if sid:
            _secrets_filter.add_secret(sid)

    def _redact(self, text: str) -> str:
        return redact_text(text, (getattr(self._sf, "session_id", "") or "", *self._secrets))

    # ----------------------------------------------------------------------- retries
    def _backoff(self, attempt: int) -> float:
        return min(MAX_BACKOFF, self.backoff_base * (2**attempt))

    def _map_error(self, exc: BaseException, what: str) -> Exception | None:
        """Translate a transport exception into the project's error types (None: not ours)."""
        where = f"Salesforce {what}"
        if isinstance(exc, SalesforceAuthenticationFailed) and _login_unavailable(exc):
            return RetriableError(
                self._redact(f"{where}: the login service answered HTTP {exc.code}"),
                code="LOGIN_UNAVAILABLE",
            )
        if isinstance(exc, SalesforceAuthenticationFailed):
            return AuthError(
                self._redact(
                    f"{where}: Salesforce rejected the credentials of connection "
                    f"{self.conn_id or '<unknown>'!r} ({exc.code}: {getattr(exc, 'auth_message', exc)})"
                )
            )
        if isinstance(exc, SalesforceExpiredSession):
            return AuthError(
                f"{where}: the session stayed invalid after logging in again "
                f"(connection {self.conn_id or '<unknown>'!r})"
            )
        if isinstance(exc, requests.exceptions.SSLError):
            # A certificate problem is configuration (REQUESTS_CA_BUNDLE), not a transient fault.
            return ConfigError(self._redact(f"{where}: TLS verification failed: {exc}"))
        if isinstance(
            exc,
            (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError),
        ):
            return RetriableError(
                self._redact(f"{where}: connection failed: {type(exc).__name__}"), code="CONNECTION"
            )
        if isinstance(exc, SalesforceBulkV2LoadError):
            return SalesforceApiError(self._redact(f"{where}: {exc}"))
        if isinstance(exc, SalesforceError):
            code, message = _error_details(exc)
            text = self._redact(f"{where} failed with HTTP {exc.status} {code or ''}: {message}")
            if isinstance(exc, SalesforceRefusedRequest):
                if code == "REQUEST_LIMIT_EXCEEDED":
                    return RateLimitError(text, code=code)
                return SalesforceApiError(text, code=code, status=exc.status)
            if code in TRANSIENT_CALL_CODES or code == "INVALID_QUERY_LOCATOR":
                return RetriableError(text, code=code)
            if isinstance(exc, SalesforceGeneralError) and exc.status >= 500:
                return RetriableError(text, code=code or exc.status)
            if (
                isinstance(exc, (SalesforceMalformedRequest, SalesforceResourceNotFound))
                and code in CONFIG_CODES
            ):
                return ConfigError(text)
            return SalesforceApiError(text, code=code, status=exc.status)
        return None

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one API call with whole-call retries (exponential backoff).

        Mapped errors are raised ``from None``: the original exception (whose text holds URLs
        and response bodies) is not chained, so nothing unredacted reaches a task log.
        """
        attempt = 0
        refreshed = False
        refresh_now = False
        while True:
            try:
                if refresh_now:
                    log.info("Salesforce %s: session expired; logging in again", what)
                    self._sf._refresh_session()
                    refresh_now = False  # only once it worked: a failed login is retried
                result = fn()
                self._remember_session()
                return result
            except SalesforceExpiredSession as expired:
                # Bulk 2.0 requests do not log in again by themselves (REST ones already did):
                # log in once more and repeat the step.
                if (
                    not refreshed
                    and getattr(self._sf, "_salesforce_login_partial", None) is not None
                ):
                    refreshed = refresh_now = True
                    continue
                raise self._map_error(expired, what) from None  # type: ignore[misc]
            except Exception as exc:
                mapped = self._map_error(exc, what)
                if mapped is None:
                    raise
                retry = (
                    isinstance(mapped, RetriableError)
                    and not isinstance(mapped, RateLimitError)
                    # An expired cursor stays expired: only re-running the query (a task
                    # retry) helps, so do not spend calls on it here.
                    and getattr(mapped, "code", None) != "INVALID_QUERY_LOCATOR"
                    and attempt < self.max_retries
                )
                if not retry:
                    raise mapped from None
                delay = self._backoff(attempt)
                attempt += 1
                log.warning(
                    "Salesforce %s failed (%s); retry %d/%d in %.2fs",
                    what,
                    getattr(mapped, "code", None) or type(exc).__name__,
                    attempt,
                    self.max_retries,
                    delay,
                )
                self._sleep(delay)

    # Per-object calls go through ``sf.restful`` rather than ``sf.<Object>.describe()`` etc.:
    # simple-salesforce 1.12.10's SFType does not count its re-login retries on 401, so an org
    # that keeps refusing sessions makes it log in until RecursionError (about 1,000 logins).

    # ----------------------------------------------------------------------- describe
    def describe(self, sobject: str) -> dict[str, Any]:
        """The sObject describe (cached for the life of this client)."""
        _check_ident(sobject, "object")
        if sobject not in self._describe_cache:
            result = self._call(
                f"describe {sobject}", lambda: self._sf.restful(f"sobjects/{sobject}/describe")
            )
            self._describe_cache[sobject] = dict(result)
        return self._describe_cache[sobject]

    def field_map(self, sobject: str) -> dict[str, dict[str, Any]]:
        """Field name -> describe entry for ``sobject`` (cached)."""
        if sobject not in self._field_maps:
            self._field_maps[sobject] = {
                f["name"]: dict(f) for f in self.describe(sobject)["fields"]
            }
        return self._field_maps[sobject]

    def _object_for_prefix(self, prefix: str) -> str | None:
        if self._global_describe is None:
            self._global_describe = dict(self._call("describe", self._sf.describe) or {})
        for entry in self._global_describe.get("sobjects", []):
            if entry.get("keyPrefix") == prefix:
                return entry["name"]
        return None

    def limits(self) -> dict[str, Any]:
        return dict(self._call("limits", self._sf.limits))

    # -------------------------------------------------------------------------- query
    def query(self, soql: str, *, include_deleted: bool = False) -> Iterator[dict[str, Any]]:
        """Run ``soql`` and yield records lazily, one page (up to 2,000 rows) at a time."""
        what = "queryAll" if include_deleted else "query"
        page = self._call(what, lambda: self._sf.query(soql, include_deleted=include_deleted))
        while True:
            for record in page.get("records", []):
                yield _strip_attributes(record)
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return
            next_url = page["nextRecordsUrl"]
            page = self._call(
                "query_more", lambda url=next_url: self._sf.query_more(url, identifier_is_url=True)
            )

    def query_window(
        self,
        sobject: str,
        fields: Sequence[str],
        start: dt.datetime,
        end: dt.datetime,
        *,
        include_deleted: bool = False,
        where: str | None = None,
        timestamp_field: str = "SystemModstamp",
    ) -> Iterator[dict[str, Any]]:
        """Records with ``start <= timestamp_field < end``, ordered by the timestamp, then Id.

        ``start``/``end`` must be aware UTC datetimes. ``format_soql`` drops sub-second parts,
        so both bounds are floored to whole seconds; consecutive windows stay gap-free.
        ``where`` is extra SOQL AND-ed in; build it with ``format_soql`` too.
        """
        _require_utc(start, "start")
        _require_utc(end, "end")
        if end < start:
            raise ValueError("end must not be before start")
        _check_ident(sobject, "object")
        _check_ident(timestamp_field, "field")
        select = ", ".join(_check_ident(f, "field") for f in fields) or "Id"
        soql = format_soql(
            "SELECT {:literal} FROM {:literal} WHERE {:literal} >= {} AND {:literal} < {}",
            select,
            sobject,
            timestamp_field,
            start,
            timestamp_field,
            end,
        )
        if where:
            soql += f" AND ({where})"
        soql += f" ORDER BY {timestamp_field}, Id"
        return self.query(soql, include_deleted=include_deleted)

    def query_by_values(
        self,
        sobject: str,
        fields: Sequence[str],
        field: str,
        values: Sequence[Any],
        *,
        include_deleted: bool = False,
        where: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Records whose ``field`` is one of ``values``, in chunks that keep each SOQL short.

        Values are de-duplicated and ``None`` is skipped; at most 300 values (and about 6,000
        characters of quoted values) go into one ``IN (...)``. ``where`` is an extra condition
        written by the caller (never built from data), ANDed to the ``IN``.
        """
        _check_ident(sobject, "object")
        _check_ident(field, "field")
        select = ", ".join(_check_ident(f, "field") for f in fields) or "Id"
        unique = list(dict.fromkeys(v for v in values if v is not None))

        def chunks() -> Iterator[list[Any]]:
            chunk: list[Any] = []
            size = 0
            for v in unique:
                quoted = len(format_soql("{}", v)) + 1
                if chunk and (len(chunk) >= IN_CLAUSE_VALUES or size + quoted > IN_CLAUSE_CHARS):
                    yield chunk
                    chunk, size = [], 0
                chunk.append(v)
                size += quoted
            if chunk:
                yield chunk

        for chunk in chunks():
            soql = format_soql(
                "SELECT {:literal} FROM {:literal} WHERE {:literal} IN {}",
                select,
                sobject,
                field,
                chunk,
            )
            if where:
                soql += f" AND ({where})"
            yield from self.query(soql, include_deleted=include_deleted)

    # -------------------------------------------------------------- replication (getDeleted)
    def get_deleted(
        self, sobject: str, start: dt.datetime, end: dt.datetime
    ) -> list[dict[str, Any]]:
        """``[{"id", "deletedDate"}]`` deleted in ``[start, end)`` (Salesforce works per minute).

        Raises :class:`ResyncRequiredError` when the org cannot cover ``start`` any more
        (``earliestDateAvailable`` later than ``start``, or older than its 15-day window).
        """
        _require_utc(start, "start")
        _require_utc(end, "end")
        _check_ident(sobject, "object")
        try:
            result = self._call(
                f"getDeleted {sobject}",
                lambda: self._sf.restful(
                    f"sobjects/{sobject}/deleted/", params=_window_params(start, end)
                ),
            )
        except SalesforceApiError as exc:
            if exc.code == "INVALID_REPLICATION_DATE":
                raise ResyncRequiredError(
                    f"Salesforce cannot list {sobject} deletions since {start.isoformat()}: {exc}; "
                    "a full resync is required"
                ) from None
            raise
        earliest_text = result.get("earliestDateAvailable")
        earliest = _parse_sf_datetime(earliest_text) if earliest_text else None
        if earliest is not None and earliest > start:
            raise ResyncRequiredError(
                f"Salesforce keeps {sobject} deletions only since {earliest.isoformat()}, after the "
                f"requested start {start.isoformat()}; a full resync is required",
                earliest_available=earliest,
            )
        return [
            {"id": r["id"], "deletedDate": r["deletedDate"]}
            for r in result.get("deletedRecords", [])
        ]

    def get_updated(self, sobject: str, start: dt.datetime, end: dt.datetime) -> list[str]:
        """Ids created or updated in ``[start, end)`` (the 30-day getUpdated resource)."""
        _require_utc(start, "start")
        _require_utc(end, "end")
        _check_ident(sobject, "object")
        result = self._call(
            f"getUpdated {sobject}",
            lambda: self._sf.restful(
                f"sobjects/{sobject}/updated/", params=_window_params(start, end)
            ),
        )
        return list(result.get("ids", []))

    # ------------------------------------------------------------------------- writes
    def create(self, sobject: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        """Insert ``records``; one result per record, in order (``created`` is True on success)."""
        return self._write("insert", _check_ident(sobject, "object"), records)

    def update(self, sobject: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        """Update ``records`` (each carries ``Id``); one result per record, in order."""
        return self._write("update", _check_ident(sobject, "object"), records)

    def upsert(
        self, sobject: str, external_id_field: str, records: Sequence[Mapping[str, Any]]
    ) -> list[WriteResult]:
        """Create or update by ``external_id_field`` (each record carries it)."""
        _check_ident(external_id_field, "field")
        return self._write("upsert", _check_ident(sobject, "object"), records, external_id_field)

    def delete(self, ids: Sequence[str]) -> list[WriteResult]:
        """Delete records by id (any mix of objects); one result per id, in order."""
        return self._write("delete", None, [{"Id": i} for i in ids])

    def _precheck(
        self, op: str, records: Sequence[Mapping[str, Any]], ext: str | None
    ) -> list[WriteResult | None]:
        out: list[WriteResult | None] = [None] * len(records)
        for i, rec in enumerate(records):
            if op in ("update", "delete") and not rec.get("Id"):
                out[i] = WriteResult(
                    i, False, errors=(RecordError("MISSING_ARGUMENT", "Id not specified"),)
                )
            elif op == "upsert" and rec.get(ext or "") in (None, ""):
                out[i] = WriteResult(
                    i,
                    False,
                    errors=(RecordError("MISSING_ARGUMENT", f"{ext} not specified", (ext or "",)),),
                )
        return out

    def _write(
        self,
        op: str,
        sobject: str | None,
        records: Sequence[Mapping[str, Any]],
        ext: str | None = None,
    ) -> list[WriteResult]:
        self._remember_session()
        results = self._precheck(op, records, ext)
        pending = [i for i, r in enumerate(results) if r is None]
        attempt = 0
        while pending:
            batch = [records[i] for i in pending]
            outcome = self._dispatch(op, sobject, batch, ext)
            retry: list[int] = []
            for pos, idx in enumerate(pending):
                res = outcome[pos]
                if (
                    not res.success
                    and res.error_code in TRANSIENT_RECORD_CODES
                    and attempt < self.max_retries
                ):
                    retry.append(idx)
                else:
                    results[idx] = WriteResult(
                        idx, res.success, res.id, res.created, res.unchanged, res.errors
                    )
            if retry:
                delay = self._backoff(attempt)
                attempt += 1
                log.warning(
                    "Salesforce %s %s: %d record(s) failed transiently; re-submitting them (retry %d/%d in %.2fs)",
                    op,
                    sobject or "records",
                    len(retry),
                    attempt,
                    self.max_retries,
                    delay,
                )
                self._sleep(delay)
            pending = retry
        failed = sum(1 for r in results if r is not None and not r.success)
        log.info(
            "Salesforce %s %s: %d record(s), %d failed",
            op,
            sobject or "records",
            len(records),
            failed,
        )
        return [r for r in results if r is not None]

    def _dispatch(
        self, op: str, sobject: str | None, records: list[Mapping[str, Any]], ext: str | None
    ) -> list[WriteResult]:
        if len(records) > self.bulk_threshold:
            if op == "delete":
                return self._bulk_delete(records)
            assert sobject is not None
            return self._bulk(op, sobject, records, ext)
        out: list[WriteResult] = []
        for start in range(0, len(records), self.collection_size):
            out.extend(
                self._collection(op, sobject, records[start : start + self.collection_size], ext)
            )
        return out

    # -- sObject Collections
    def _collection(
        self, op: str, sobject: str | None, chunk: list[Mapping[str, Any]], ext: str | None
    ) -> list[WriteResult]:
        if op == "delete":
            ids = [str(r["Id"]) for r in chunk]
            raw = self._call(
                "collections delete",
                lambda: self._sf.restful(
                    "composite/sobjects",
                    params={"ids": ",".join(ids), "allOrNone": "false"},
                    method="DELETE",
                ),
            )
            return self._collection_results(raw or [], chunk, op)
        assert sobject is not None
        body = {
            "allOrNone": False,
            "records": [
                {
                    "attributes": {"type": sobject},
                    **{k: _json_value(v) for k, v in r.items() if k != "attributes"},
                }
                for r in chunk
            ],
        }
        if op == "insert":
            path, method = "composite/sobjects", "POST"
        elif op == "update":
            path, method = "composite/sobjects", "PATCH"
        else:
            path, method = f"composite/sobjects/{sobject}/{ext}", "PATCH"
        try:
            raw = self._call(
                f"collections {op} {sobject}",
                lambda: self._sf.restful(path, method=method, json=body),
            )
        except SalesforceApiError as exc:
            if exc.code != "JSON_PARSER_ERROR":
                raise
            # A value Salesforce cannot deserialise fails the whole request; split it to find
            # the bad record(s) so the good ones still get written.
            if len(chunk) == 1:
                return [
                    WriteResult(
                        0, False, errors=(RecordError("JSON_PARSER_ERROR", self._redact(str(exc))),)
                    )
                ]
            mid = len(chunk) // 2
            return self._collection(op, sobject, chunk[:mid], ext) + self._collection(
                op, sobject, chunk[mid:], ext
            )
        return self._collection_results(raw or [], chunk, op)

    @staticmethod
    def _collection_results(
        raw: list[Mapping[str, Any]], chunk: list[Mapping[str, Any]], op: str
    ) -> list[WriteResult]:
        if len(raw) != len(chunk):
            raise SalesforceApiError(
                f"Salesforce returned {len(raw)} results for {len(chunk)} records"
            )
        out = []
        for i, (res, rec) in enumerate(zip(raw, chunk, strict=True)):
            errors = tuple(
                RecordError(
                    str(e.get("statusCode")),
                    str(e.get("message", "")),
                    tuple(e.get("fields") or ()),
                )
                for e in res.get("errors") or []
            )
            rid = res.get("id") or (rec.get("Id") if op in ("update", "delete") else None)
            created: bool | None = res.get("created")
            if created is None and op == "insert" and res.get("success"):
                created = True
            out.append(WriteResult(i, bool(res.get("success")), rid, created, False, errors))
        return out

    # -- Bulk API 2.0
    def _bulk_delete(self, records: list[Mapping[str, Any]]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(records)
        groups: dict[str, list[int]] = {}
        for i, rec in enumerate(records):
            rid = str(rec["Id"])
            obj = self._object_for_prefix(rid[:3]) if len(rid) in (15, 18) else None
            if obj is None:
                results[i] = WriteResult(
                    i, False, errors=(RecordError("MALFORMED_ID", f"malformed id {rid}"),)
                )
            else:
                groups.setdefault(obj, []).append(i)
        for obj, idxs in groups.items():
            for pos, res in zip(
                idxs, self._bulk("delete", obj, [records[i] for i in idxs], None), strict=True
            ):
                results[pos] = res
        return [r for r in results if r is not None]

    def _bulk(
        self, op: str, sobject: str, records: list[Mapping[str, Any]], ext: str | None
    ) -> list[WriteResult]:
        if op == "delete":
            columns = ["Id"]
        else:
            columns = list(dict.fromkeys(k for r in records for k in r if k != "attributes"))
        rows = [[_csv_value(r[c]) if c in r else "" for c in columns] for r in records]
        out: list[WriteResult] = []
        start = 0
        while start < len(rows):
            # One job per bulk_job_size rows, and below the 100 MB upload limit.
            end, size = start, 0
            while end < len(rows) and end - start < self.bulk_job_size:
                row_bytes = sum(len(v) for v in rows[end]) + len(columns) + 1
                if end > start and size + row_bytes > BULK_MAX_BYTES:
                    break
                size += row_bytes
                end += 1
            out.extend(self._bulk_job(op, sobject, columns, rows[start:end], ext))
            start = end
        return out

    def _bulk_type(self, sobject: str) -> Any:
        # A fresh handler per step: it captures the current session id (after a re-login too).
        return getattr(self._sf.bulk2, sobject)

    def _bulk_job(
        self, op: str, sobject: str, columns: list[str], rows: list[list[str]], ext: str | None
    ) -> list[WriteResult]:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        data = buf.getvalue()
        what = f"bulk2 {op} {sobject}"
        operation = Operation(op)
        job = self._call(
            what,
            lambda: self._bulk_type(sobject)._client.create_job(operation, external_id_field=ext),
        )
        job_id = job["id"]
        try:
            self._call(what, lambda: self._bulk_type(sobject)._client.upload_job_data(job_id, data))
            self._close_job(what, sobject, job_id)
        except Exception:
            self._abort_quietly(sobject, job_id)
            raise
        failure_message = None
        try:
            self._call(
                what,
                lambda: self._bulk_type(sobject)._client.wait_for_job(
                    job_id, False, self.bulk_poll_wait
                ),
            )
        except SalesforceOperationError:
            info = self._call(what, lambda: self._bulk_type(sobject)._client.get_job(job_id, False))
            failure_message = str(info.get("errorMessage") or info.get("state"))
            if "InvalidBatch" in failure_message:
                raise ConfigError(
                    self._redact(f"{what}: job {job_id} failed: {failure_message}")
                ) from None
        successful = self._call(
            what, lambda: self._bulk_type(sobject).get_successful_records(job_id)
        )
        failed = self._call(what, lambda: self._bulk_type(sobject).get_failed_records(job_id))
        unprocessed = self._call(
            what, lambda: self._bulk_type(sobject).get_unprocessed_records(job_id)
        )
        results = self._match_bulk_results(
            op, columns, rows, ext, successful, failed, unprocessed, job_id, failure_message
        )
        log.info(
            "Salesforce %s: job %s, %d row(s), %d failed",
            what,
            job_id,
            len(rows),
            sum(1 for r in results if not r.success),
        )
        return results

    def _close_job(self, what: str, sobject: str, job_id: str) -> None:
        try:
            self._call(what, lambda: self._bulk_type(sobject)._client.close_job(job_id))
        except RetriableError:
            # The close may have been applied before the connection failed: look before giving up.
            info = self._call(what, lambda: self._bulk_type(sobject)._client.get_job(job_id, False))
            if info.get("state") == "Open":
                raise

    def _abort_quietly(self, sobject: str, job_id: str) -> None:
        try:
            self._bulk_type(sobject)._client.abort_job(job_id, False)
        except Exception:
            log.debug("could not abort bulk job %s", job_id, exc_info=True)

    @staticmethod
    def _match_bulk_results(
        op: str,
        columns: list[str],
        rows: list[list[str]],
        ext: str | None,
        successful: str,
        failed: str,
        unprocessed: str,
        job_id: str,
        failure_message: str | None,
    ) -> list[WriteResult]:
        if op in ("update", "delete"):
            key_cols = ["Id"]
        elif op == "upsert":
            key_cols = [ext or "Id"]
        else:
            key_cols = columns
        key_pos = [columns.index(c) for c in key_cols]
        waiting: dict[tuple[str, ...], collections.deque[int]] = collections.defaultdict(
            collections.deque
        )
        for i, row in enumerate(rows):
            waiting[tuple(row[p] for p in key_pos)].append(i)
        results: list[WriteResult | None] = [None] * len(rows)

        by_long_id: dict[str, collections.deque[int]] = collections.defaultdict(collections.deque)
        if op in ("update", "delete"):
            for i, row in enumerate(rows):
                by_long_id[to_18(row[key_pos[0]])].append(i)

        def take(rec: Mapping[str, str]) -> int | None:
            key = tuple(rec.get(c, "") for c in key_cols)
            queue = waiting.get(key)
            if queue:
                i = queue.popleft()
                if by_long_id:
                    by_long_id[to_18(rows[i][key_pos[0]])].remove(i)
                return i
            # Fall back to sf__Id (18 characters) when the echoed Id column does not match.
            fallback = by_long_id.get(to_18(rec.get("sf__Id", "")))
            if fallback:
                i = fallback.popleft()
                waiting[tuple(rows[i][p] for p in key_pos)].remove(i)
                return i
            return None

        for rec in csv.DictReader(io.StringIO(successful)):
            i = take(rec)
            if i is not None:
                created = rec.get("sf__Created", "").lower() == "true"
                results[i] = WriteResult(
                    i,
                    True,
                    rec.get("sf__Id") or None,
                    created if op in ("insert", "upsert") else None,
                )
        for rec in csv.DictReader(io.StringIO(failed)):
            i = take(rec)
            if i is not None:
                err = _parse_bulk_error(rec.get("sf__Error", ""))
                rid = rec.get("sf__Id") or (
                    rows[i][key_pos[0]] if op in ("update", "delete") else None
                )
                results[i] = WriteResult(i, False, rid or None, errors=(err,))
        reason = f"Bulk job {job_id} did not process this record" + (
            f": {failure_message}" if failure_message else ""
        )
        for rec in csv.DictReader(io.StringIO(unprocessed)):
            i = take(rec)
            if i is not None:
                results[i] = WriteResult(i, False, errors=(RecordError("NOT_PROCESSED", reason),))
        return [
            r
            if r is not None
            else WriteResult(i, False, errors=(RecordError("NOT_PROCESSED", reason),))
            for i, r in enumerate(results)
        ]


__all__ = ["ResyncRequiredError", "SalesforceApiError", "SalesforceClient", "classify_url", "to_18"]
