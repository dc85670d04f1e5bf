"""Client for the Constant Contact Lead Gen & CRM (formerly SharpSpring) JSON-RPC API v1.2.

Transport only: it connects, pages, batches, rate-limits, retries, classifies errors and counts
calls. It holds no sync rules and works unchanged against the real endpoint
``https://api.sharpspring.com/pubapi/v1.2/`` and against ``sandbox.leadgen``.

What callers can rely on:

* **Reads** page lazily with ``limit``/``offset`` until a short or empty page (the API has no
  total count and no cursor), 500 rows per call at most.
* **Writes** go in batches of at most 500 objects and return one :class:`WriteResult` per input
  object, in input order. A refused object never raises; an error that stops the whole batch
  raises, and the exception carries ``partial_results`` with the results of the batches that
  were already written, so no created id is ever lost.
* **Rate limit**: at most ``max_per_second`` calls in any 1-second window, waited for on the
  injected clock/sleep (unit tests never sleep for real).
* **Retries** with exponential backoff on 107 (per-second limit), 999 (temporarily
  unavailable), dropped connections, timeouts and HTTP 5xx; then :class:`RetriableError`
  (:class:`RateLimitError` for 107). 106 (daily cap) raises :class:`RateLimitError` at once.
* **Errors**: HTTP 401 / codes 103-105 -> :class:`AuthError`; 204 (no such method) ->
  :class:`ConfigError`; other request errors (101-104, 201-210, ...) -> :class:`LeadGenApiError`
  (a :class:`FatalError`). Every exception has ``code`` and ``method`` attributes.
* **Secrets**: the secret key travels in the URL query string (the API wants it there). It never
  appears in a log record, an exception message, ``repr()`` or ``str()``: request exceptions are
  re-raised with redacted text ``from None`` (their own message embeds the URL), and a
  :class:`SecretsFilter` guards this module's logger and urllib3's (whose DEBUG line carries
  the request URL).
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import requests

from crm_sync.clients.results import RecordError, WriteResult
from crm_sync.errors import (
    AuthError,
    ConfigError,
    FatalError,
    RateLimitError,
    RetriableError,
    SyncError,
)
from crm_sync.redact import SecretsFilter, redact_text, redact_url

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.sharpspring.com/pubapi/v1.2/"
MAX_OBJECTS_PER_CALL = 500  # API cap for batch writes and where-lists (error 209 above it)
MAX_PAGE_SIZE = 500  # getLeads silently caps pages at 500; a larger limit would end paging early
RATE_WINDOW_MARGIN = 0.05  # seconds added to the limiter window: covers network jitter
MAX_BACKOFF = 30.0
TS_FORMAT = "%Y-%m-%d %H:%M:%S"

# Codes worth retrying: the per-second limit and "temporarily unavailable".
RETRIABLE_CODES = frozenset({107, 999})
AUTH_CODES = frozenset({103, 104, 105})
UNCHANGED_CODE = 302

# One filter for the process: each client registers its secret. It sits on our logger and on
# urllib3's connection-pool logger, whose DEBUG lines print the request URL with its query.
_SECRETS_FILTER = SecretsFilter()
for _name in (__name__, "urllib3.connectionpool"):
    if _SECRETS_FILTER not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_SECRETS_FILTER)


class LeadGenApiError(FatalError):
    """The API refused the request itself (malformed request, bad parameter, unknown method...).

    ``code`` is the API's numeric code, ``method`` the API method, ``data`` the (redacted)
    ``data`` member of the error object.
    """

    def __init__(
        self, message: str, *, code: int | None = None, method: str | None = None, data: Any = None
    ):
        super().__init__(message)
        self.code = code
        self.method = method
        self.data = data


class _Transient(Exception):
    """Internal: this attempt failed in a way worth retrying."""

    def __init__(self, message: str, code: int | str | None):
        super().__init__(message)
        self.code = code


def _tag(exc: SyncError, *, code: int | str | None, method: str | None) -> SyncError:
    """Give every exception the client raises ``code`` and ``method`` attributes."""
    exc.code = code  # type: ignore[attr-defined]
    exc.method = method  # type: ignore[attr-defined]
    return exc


class RateLimiter:
    """At most ``max_per_second`` calls in any window of one second (sliding window).

    The API counts calls per second, so a token bucket with a burst larger than one could let
    ``burst + rate`` calls into one second and trip error 107; a sliding window of the last N
    call times cannot. For a fractional rate r, N = max(1, floor(r)) calls per N/r seconds.
    ``RATE_WINDOW_MARGIN`` widens the window slightly because the server timestamps arrivals,
    not departures. ``clock``/``sleep`` are injected so tests never wait for real.
    """

    def __init__(
        self,
        max_per_second: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin: float = RATE_WINDOW_MARGIN,
    ):
        self.enabled = bool(max_per_second and max_per_second > 0)
        self._clock = clock
        self._sleep = sleep
        if self.enabled:
            assert max_per_second is not None
            self.capacity = max(1, math.floor(max_per_second))
            self.window = self.capacity / max_per_second + margin
        else:
            self.capacity, self.window = 0, 0.0
        self._sent: collections.deque[float] = collections.deque()
        self.waited = 0.0  # total seconds spent waiting, for reports

    def acquire(self) -> float:
        """Block (via ``sleep``) until one more call fits; return the seconds waited."""
        if not self.enabled:
            return 0.0
        waited = 0.0
        while True:
            now = self._clock()
            # 1e-9: after sleeping exactly the computed delay, float rounding must not make
            # the oldest call look a hair too recent (which would add a needless micro-sleep).
            while self._sent and now - self._sent[0] >= self.window - 1e-9:
                self._sent.popleft()
            if len(self._sent) < self.capacity:
                self._sent.append(now)
                self.waited += waited
                return waited
            delay = self.window - (now - self._sent[0])
            self._sleep(delay)
            waited += delay


def _fmt_ts(value: datetime, name: str) -> str:
    """Aware datetime -> the API's UTC ``YYYY-MM-DD HH:MM:SS`` (v1.2 reads arguments as UTC)."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC); got naive {value.isoformat()}")
    return value.astimezone(UTC).strftime(TS_FORMAT)


def parse_timestamp(value: str | None) -> datetime | None:
    """An API timestamp (``YYYY-MM-DD HH:MM:SS``, UTC in v1.2) -> aware datetime, or None."""
    if not value:
        return None
    return datetime.strptime(value, TS_FORMAT).replace(tzinfo=UTC)


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


def _truthy(value: Any) -> bool:
    # Vendor samples use real booleans; some clients also see "true"/"false" strings.
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)


def _record_error(error: Any) -> RecordError:
    if not isinstance(error, Mapping):
        return RecordError("unknown", str(error))
    data = error.get("data")
    fields: tuple[str, ...] = ()
    if isinstance(data, Mapping):
        if isinstance(data.get("field"), str):
            fields = (data["field"],)
        elif isinstance(data.get("fields"), list):
            fields = tuple(str(f) for f in data["fields"])
    return RecordError(str(error.get("code", "unknown")), str(error.get("message", "")), fields)


class LeadGenClient:
    """One account's API client. Thread-compatible, not thread-safe (one per task)."""

    def __init__(
        self,
        base_url: str,
        account_id: str,
        secret_key: str,
        *,
        session: requests.Session | None = None,
        max_per_second: float = 10,
        batch_size: int = 500,
        page_size: int = 500,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        timeout: float = 60,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        conn_id: str | None = None,
    ):
        if not base_url or "://" not in base_url:
            raise ConfigError(f"Lead Gen & CRM base URL must be absolute, e.g. {DEFAULT_BASE_URL}")
        if "?" in base_url:
            # Credentials go in the query string we build; a URL that already has one is
            # probably a pasted request URL with a secret in it. Never echo it.
            raise ConfigError(
                "Lead Gen & CRM base URL must not contain a query string (put the secret key in the password)"
            )
        if not account_id or not secret_key:
            which = f"connection {conn_id!r}" if conn_id else "client"
            raise ConfigError(
                f"Lead Gen & CRM {which} needs an account ID (login) and a secret key (password)"
            )
        if not 1 <= batch_size <= MAX_OBJECTS_PER_CALL:
            raise ConfigError(
                f"batch_size must be between 1 and {MAX_OBJECTS_PER_CALL}, got {batch_size}"
            )
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ConfigError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
        if max_retries < 0:
            raise ConfigError("max_retries must not be negative")
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.account_id = str(account_id)
        self._secret_key = str(secret_key)
        _SECRETS_FILTER.add_secret(self._secret_key)
        self.conn_id = conn_id
        self.session = session or requests.Session()
        self.batch_size = batch_size
        self.page_size = page_size
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.timeout = timeout
        self._sleep = sleep
        self.limiter = RateLimiter(max_per_second, clock=clock, sleep=sleep)
        self.calls: collections.Counter[str] = collections.Counter()
        self.retries = 0
        self.daily_usage: tuple[int, int] | None = None
        self._ids = itertools.count(1)

    # -- identity -----------------------------------------------------------------------

    def __repr__(self) -> str:
        conn = f", conn_id={self.conn_id!r}" if self.conn_id else ""
        return f"LeadGenClient(base_url={self.base_url!r}, account_id={self.account_id!r}{conn})"

    __str__ = __repr__

    @property
    def api_calls(self) -> int:
        """HTTP requests sent to the API (retries included: each one spends the daily budget)."""
        return sum(self.calls.values())

    def _where(self) -> str:
        name = f"connection {self.conn_id!r}, " if self.conn_id else ""
        return f"{name}account {self.account_id} at {self.base_url}"

    def _redact(self, text: str) -> str:
        return redact_text(text, [self._secret_key])

    # -- the one call -------------------------------------------------------------------

    def call(self, method: str, params: Mapping[str, Any]) -> Any:
        """Send one JSON-RPC request; return ``result``. Retries transient failures.

        Per-object failures of writes are not errors here: the caller reads them from the
        ``creates``/``updates``/``deletes`` entries.
        """
        attempt = 0
        while True:
            self.limiter.acquire()
            self.calls[method] += 1
            try:
                return self._attempt(method, dict(params))
            except _Transient as exc:
                if attempt >= self.max_retries:
                    cls = RateLimitError if exc.code == 107 else RetriableError
                    message = f"Lead Gen & CRM {method} still failing after {attempt + 1} attempts ({self._where()}): {exc}"
                    raise _tag(cls(message, code=exc.code), code=exc.code, method=method) from None
                delay = min(self.backoff_base * (2**attempt), MAX_BACKOFF)
                attempt += 1
                self.retries += 1
                log.warning(
                    "Lead Gen & CRM %s failed (%s); retry %d of %d in %.2f s",
                    method,
                    exc,
                    attempt,
                    self.max_retries,
                    delay,
                )
                self._sleep(delay)

    def _attempt(self, method: str, params: dict[str, Any]) -> Any:
        request_id = f"crm-sync-{next(self._ids)}"
        body = {"method": method, "params": params, "id": request_id}
        started = time.perf_counter()
        try:
            response = self.session.post(
                self.base_url,
                params={"accountID": self.account_id, "secretKey": self._secret_key},
                json=body,
                timeout=self.timeout,
                # Pass the session's setting explicitly: otherwise requests lets a
                # REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE environment variable override a CA file set
                # on the session (requests issue #3829).
                verify=self.session.verify,
            )
        except requests.exceptions.SSLError as exc:
            # A certificate that does not verify will not verify on retry either.
            raise _tag(
                ConfigError(
                    f"TLS verification failed for {self._where()}: {self._redact(str(exc))}. "
                    "Check the CA bundle (connection extra 'verify')."
                ),
                code="tls",
                method=method,
            ) from None
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            # Dropped connections, timeouts and bodies cut short. requests' messages embed the
            # full URL, query string (secret) included, hence the redaction.
            raise _Transient(
                f"{type(exc).__name__}: {self._redact(str(exc))}", "connection"
            ) from None
        except requests.RequestException as exc:
            raise _tag(
                FatalError(
                    f"Lead Gen & CRM {method} request failed ({self._where()}): {self._redact(str(exc))}"
                ),
                code=None,
                method=method,
            ) from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        status = response.status_code
        if status == 401:
            text = self._redact(response.text[:200].strip())
            raise _tag(
                AuthError(
                    f"Lead Gen & CRM rejected the credentials for {self._where()} (HTTP 401: {text}). "
                    "Check the connection's login (account ID) and password (secret key)."
                ),
                code=401,
                method=method,
            )
        if status >= 500 or status == 429:
            raise _Transient(f"HTTP {status}", status)
        if status != 200:
            raise _tag(
                ConfigError(
                    f"Lead Gen & CRM answered HTTP {status} for {method} at {redact_url(response.url or self.base_url)}"
                    f" ({self._where()}); is the base URL right?"
                ),
                code=status,
                method=method,
            )
        try:
            envelope = response.json()
        except ValueError:
            # A body cut short (the connection dropped mid-response) or a proxy error page.
            raise _Transient("response body is not JSON", "bad-json") from None
        if not isinstance(envelope, dict):
            raise _Transient("response body is not a JSON object", "bad-json")
        self._note_usage(envelope)
        error = envelope.get("error")
        if isinstance(error, Mapping):
            self._raise_api_error(method, error)
        if envelope.get("id") != request_id:
            raise _tag(
                LeadGenApiError(
                    f"Lead Gen & CRM {method}: response id {envelope.get('id')!r} does not match request id {request_id!r}",
                    method=method,
                ),
                code=None,
                method=method,
            )
        log.debug(
            "Lead Gen & CRM %s ok in %.0f ms (daily usage %s)", method, elapsed_ms, self.daily_usage
        )
        return envelope.get("result")

    def _note_usage(self, envelope: Mapping[str, Any]) -> None:
        try:
            self.daily_usage = (int(envelope["callCount"]), int(envelope["queryLimit"]))
        except (KeyError, TypeError, ValueError):
            pass

    def _raise_api_error(self, method: str, error: Mapping[str, Any]) -> None:
        try:
            code = int(error.get("code"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            code = None
        message = self._redact(str(error.get("message", "")))
        data = error.get("data")
        data_text = (
            self._redact(json.dumps(data, default=str)[:500]) if data not in (None, [], {}) else ""
        )
        detail = f"error {code}: {message}" + (f" {data_text}" if data_text else "")
        if code in RETRIABLE_CODES:
            raise _Transient(detail, code)
        if code == 106:
            usage = (
                f" (daily usage {self.daily_usage[0]} of {self.daily_usage[1]})"
                if self.daily_usage
                else ""
            )
            raise _tag(
                RateLimitError(
                    f"Lead Gen & CRM daily call limit reached for {self._where()}{usage}: {detail}",
                    code=106,
                ),
                code=106,
                method=method,
            )
        if code in AUTH_CODES:
            raise _tag(
                AuthError(f"Lead Gen & CRM refused {self._where()}: {detail}"),
                code=code,
                method=method,
            )
        if code == 204:
            raise _tag(
                ConfigError(f"Lead Gen & CRM has no method {method!r}: {detail}"),
                code=code,
                method=method,
            )
        raise LeadGenApiError(
            f"Lead Gen & CRM {method} failed: {detail}", code=code, method=method, data=data
        )

    # -- reading ------------------------------------------------------------------------

    def _pages(self, method: str, params: Mapping[str, Any], key: str) -> Iterator[dict[str, Any]]:
        """Lazily page ``method`` with limit/offset until a short or empty page (or hasMore false)."""
        offset = 0
        limit = self.page_size
        while True:
            result = self.call(method, {**params, "limit": limit, "offset": offset})
            rows = self._rows(method, result, key)
            yield from rows
            if len(rows) < limit or (
                isinstance(result, Mapping) and result.get("hasMore") is False
            ):
                return
            offset += len(rows)

    @staticmethod
    def _rows(method: str, result: Any, key: str) -> list[dict[str, Any]]:
        if isinstance(result, Mapping) and key in result:
            rows = result[key]
            if rows is None:
                return []
            if isinstance(rows, list):
                return rows
        found = sorted(result) if isinstance(result, Mapping) else type(result).__name__
        raise _tag(
            LeadGenApiError(
                f"Lead Gen & CRM {method}: expected result key {key!r}, got {found}", method=method
            ),
            code=None,
            method=method,
        )

    @staticmethod
    def _fields(params: dict[str, Any], fields: Sequence[str] | None) -> dict[str, Any]:
        if fields:
            params["fields"] = list(fields)
        return params

    def get_lead(self, lead_id: str | int) -> dict[str, Any] | None:
        rows = self._rows("getLead", self.call("getLead", {"id": str(lead_id)}), "lead")
        return rows[0] if rows else None

    def get_leads(
        self, where: Mapping[str, Any] | None = None, fields: Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """All leads matching ``where`` (``{}`` = every *active* lead), lazily, ordered by id."""
        return self._pages("getLeads", self._fields({"where": dict(where or {})}, fields), "lead")

    def _by_keys(
        self, key: str, values: Sequence[Any], fields: Sequence[str] | None
    ) -> list[dict[str, Any]]:
        wanted = list(dict.fromkeys(str(v) for v in values if v not in (None, "")))
        found: dict[str, dict[str, Any]] = {}
        norm = (lambda v: v.lower()) if key == "emailAddress" else (lambda v: v)
        if fields and key not in fields:
            fields = [key, *fields]
        for start in range(0, len(wanted), MAX_OBJECTS_PER_CALL):
            chunk = wanted[start : start + MAX_OBJECTS_PER_CALL]
            params = self._fields(
                {"where": {key: chunk}, "limit": MAX_PAGE_SIZE, "offset": 0}, fields
            )
            for row in self._rows("getLeads", self.call("getLeads", params), "lead"):
                found[norm(str(row.get(key, "")))] = row
        return [found[norm(v)] for v in wanted if norm(v) in found]

    def get_leads_by_ids(
        self, ids: Sequence[str | int], fields: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Leads by id in chunks of 500, inactive ones included, in the order asked (missing ids
        are simply absent)."""
        return self._by_keys("id", ids, fields)

    def get_leads_by_emails(
        self, emails: Sequence[str], fields: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Leads by email (case-insensitive) in chunks of 500, inactive ones included."""
        return self._by_keys("emailAddress", emails, fields)

    def _range_params(self, start: datetime, end: datetime, timestamp: str) -> dict[str, Any]:
        if timestamp not in ("create", "update"):
            raise ValueError(f"timestamp must be 'create' or 'update', got {timestamp!r}")
        return {
            "startDate": _fmt_ts(start, "start"),
            "endDate": _fmt_ts(end, "end"),
            "timestamp": timestamp,
        }

    def get_leads_date_range(
        self,
        start: datetime,
        end: datetime,
        timestamp: str = "update",
        fields: Sequence[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Active leads created/updated in ``[start, end]`` (both inclusive on the sandbox; aware
        datetimes, sent as UTC). Offset paging is not a snapshot: a lead updated while the pages
        are read can move past the window; callers use overlapping windows and idempotent writes."""
        params = self._fields(self._range_params(start, end, timestamp), fields)
        return self._pages("getLeadsDateRange", params, "lead")

    def get_fields(self) -> list[dict[str, Any]]:
        """Standard and custom fields of leads, opportunities and accounts."""
        return list(self._pages("getFields", {"where": {}}, "field"))

    def get_user_profiles(self) -> list[dict[str, Any]]:
        return list(self._pages("getUserProfiles", {"where": {}}, "userProfile"))

    def get_accounts(self, where: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        return self._pages("getAccounts", {"where": dict(where or {})}, "account")

    def get_accounts_date_range(
        self, start: datetime, end: datetime, timestamp: str = "update"
    ) -> Iterator[dict[str, Any]]:
        return self._pages(
            "getAccountsDateRange", self._range_params(start, end, timestamp), "account"
        )

    def get_opportunities(self, where: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        return self._pages("getOpportunities", {"where": dict(where or {})}, "opportunity")

    def get_opportunities_date_range(
        self, start: datetime, end: datetime, timestamp: str = "update"
    ) -> Iterator[dict[str, Any]]:
        return self._pages(
            "getOpportunitiesDateRange", self._range_params(start, end, timestamp), "opportunity"
        )

    def get_opportunity_leads(self, where: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        # The real result key is the generator artifact "getWhereopportunityLeads".
        return list(
            self._pages(
                "getOpportunityLeads", {"where": dict(where or {})}, "getWhereopportunityLeads"
            )
        )

    def get_deal_stages(self) -> list[dict[str, Any]]:
        return list(self._pages("getDealStages", {"where": {}}, "dealStage"))

    def get_campaigns(self) -> list[dict[str, Any]]:
        return list(self._pages("getCampaigns", {"where": {}}, "campaign"))

    def get_events(
        self,
        since: datetime,
        until: datetime | None = None,
        *,
        lead_id: str | int | None = None,
        event_source: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Marketing events with ``since <= createTimestamp <= until``, ordered by event id.

        ``where.createTimestamp`` is sent as the lower bound; the API has no upper bound, so
        ``until`` is applied here (every page is still read). Event ``id`` is the stable identity
        to key idempotent writes on.
        """
        where: dict[str, Any] = {"createTimestamp": _fmt_ts(since, "since")}
        if lead_id is not None:
            where["leadID"] = str(lead_id)
        if event_source is not None:
            where["eventSource"] = event_source
        upper = _fmt_ts(until, "until") if until is not None else None
        for event in self._pages("getEvents", {"where": where}, "event"):
            if upper is None or str(event.get("createTimestamp") or "") <= upper:
                yield event

    def get_lead_timeline(self, lead_id: str | int) -> list[dict[str, Any]]:
        """The lead's "life of the lead" rows (no ids: use get_events for identity)."""
        return list(
            self._pages("getLeadTimeline", {"where": {"whoID": str(lead_id)}}, "leadTimeline")
        )

    def get_email_listing(self) -> list[dict[str, Any]]:
        return list(self._pages("getEmailListing", {"where": {}}, "getAllemailListings"))

    def get_email_jobs(self) -> list[dict[str, Any]]:
        return list(self._pages("getEmailJobs", {}, "getAllgetEmailJobss"))

    def get_email_events(self, email_job_id: str | int, event_type: str) -> list[dict[str, Any]]:
        """Rows of one send: ``event_type`` in sends, opens, clicks, bounces, unsubscribes."""
        params = {"emailJobID": str(email_job_id), "eventType": event_type}
        return list(self._pages("getEmailEvents", params, "lead"))

    def get_active_lists(self) -> list[dict[str, Any]]:
        return list(self._pages("getActiveLists", {"where": {}}, "activeList"))

    def get_list_members(self, list_id: str | int) -> list[dict[str, Any]]:
        return list(
            self._pages("getListMembers", {"where": {"id": str(list_id)}}, "getWherelistMemberGets")
        )

    # -- writing ------------------------------------------------------------------------

    def _write(
        self, method: str, objects: Iterable[Mapping[str, Any]], key: str, *, creates: bool
    ) -> list[WriteResult]:
        """Batch ``objects`` (<= batch_size per call); one WriteResult per object, input order."""
        items = [dict(o) for o in objects]
        results: list[WriteResult] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            try:
                result = self.call(method, {"objects": chunk})
                entries = self._rows(method, result, key)
                if len(entries) != len(chunk):
                    raise _tag(
                        LeadGenApiError(
                            f"Lead Gen & CRM {method}: {len(entries)} results for {len(chunk)} objects",
                            method=method,
                        ),
                        code=None,
                        method=method,
                    )
            except SyncError as exc:
                exc.partial_results = list(results)  # type: ignore[attr-defined]
                raise
            for offset, entry in enumerate(entries):
                results.append(self._entry(start + offset, entry, creates=creates))
        failed = sum(1 for r in results if not r.success)
        if failed:
            log.info("Lead Gen & CRM %s: %d of %d objects refused", method, failed, len(results))
        return results

    @staticmethod
    def _entry(index: int, entry: Any, *, creates: bool) -> WriteResult:
        if not isinstance(entry, Mapping):
            return WriteResult(
                index, False, errors=(RecordError("unknown", f"unexpected result entry {entry!r}"),)
            )
        raw_id = entry.get("id")
        record_id = None if raw_id in (None, "") else str(raw_id)
        if _truthy(entry.get("success")):
            return WriteResult(index, True, id=record_id, created=True if creates else None)
        error = _record_error(entry.get("error"))
        if error.code == str(UNCHANGED_CODE):
            return WriteResult(
                index, True, id=record_id, created=False if creates else None, unchanged=True
            )
        return WriteResult(
            index, False, id=record_id, created=False if creates else None, errors=(error,)
        )

    @staticmethod
    def _id_objects(ids: Iterable[str | int]) -> list[dict[str, str]]:
        return [{"id": str(i)} for i in ids]

    def create_leads(self, objs: Iterable[Mapping[str, Any]]) -> list[WriteResult]:
        """createLeads; ``WriteResult.id`` is the new lead id (as str). Duplicate email -> 301."""
        return self._write("createLeads", objs, "creates", creates=True)

    def update_leads(self, objs: Iterable[Mapping[str, Any]]) -> list[WriteResult]:
        """updateLeadsV2 (an unknown id fails with 404 instead of the silent success of
        updateLeads); 302 "no rows affected" -> success with ``unchanged=True``."""
        return self._write("updateLeadsV2", objs, "updates", creates=False)

    def delete_leads(self, ids: Iterable[str | int]) -> list[WriteResult]:
        return self._write("deleteLeads", self._id_objects(ids), "deletes", creates=False)

    def create_fields(self, objs: Iterable[Mapping[str, Any]]) -> list[WriteResult]:
        return self._write("createFields", objs, "creates", creates=True)

    def create_accounts(self, objs: Iterable[Mapping[str, Any]]) -> list[WriteResult]:
        return self._write("createAccounts", objs, "creates", creates=True)

    def update_accounts(self, objs: Iterable[Mapping[str, Any]]) -> list[WriteResult]:
        return self._write("updateAccounts", objs, "updates", creates=False)

    def delete_accounts(self, ids: Iterable[str | int]) -> list[WriteResult]:
        return self._write("deleteAccounts", self._id_objects(ids), "deletes", creates=False)

    def create_opportunities(self, objs: Iterable[Mapping[str, Any]]) -> list[WriteResult]:
        return self._write("createOpportunities", objs, "creates", creates=True)

    def update_opportunities(self, objs: Iterable[Mapping[str, Any]]) -> list[WriteResult]:
        return self._write("updateOpportunities", objs, "updates", creates=False)

    def delete_opportunities(self, ids: Iterable[str | int]) -> list[WriteResult]:
        return self._write("deleteOpportunities", self._id_objects(ids), "deletes", creates=False)

    def create_opportunity_leads(self, objs: Iterable[Mapping[str, Any]]) -> list[WriteResult]:
        """Link leads to opportunities (``{opportunityID, leadID}``). The API has no update."""
        return self._write("createOpportunityLeads", objs, "creates", creates=True)

    def delete_opportunity_leads(self, ids: Iterable[str | int]) -> list[WriteResult]:
        return self._write(
            "deleteOpportunityLeads", self._id_objects(ids), "deletes", creates=False
        )

    def create_deal_stages(self, objs: Iterable[Mapping[str, Any]]) -> list[WriteResult]:
        return self._write("createDealStages", objs, "creates", creates=True)

    def update_deal_stages(self, objs: Iterable[Mapping[str, Any]]) -> list[WriteResult]:
        return self._write("updateDealStages", objs, "updates", creates=False)

    def delete_deal_stages(self, ids: Iterable[str | int]) -> list[WriteResult]:
        return self._write("deleteDealStages", self._id_objects(ids), "deletes", creates=False)
