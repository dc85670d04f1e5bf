"""The one JSON-RPC call: rate limit, envelope, error classification, retries, redaction.

Which failures are retried depends on the method (``retry_safe``): reads, updates, deletes by
id and ``createLeads`` (the API answers 301 for a duplicate email, so a repeated create
cannot make a second lead) retry every transient failure. A create without a natural key
retries only failures that certainly happened before the server did anything -- the
connection could not be opened, or the API refused the call with a rate-limit code (106/107)
or a proxy answered 429 -- and otherwise raises :class:`~crm_sync.errors.AmbiguousWriteError`:
a dropped connection, a timeout, a 5xx or a 999 after the request was sent may follow a write
that was applied.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from crm_sync.errors import (
    AmbiguousWriteError,
    AuthError,
    ConfigError,
    FatalError,
    RateLimitError,
    RetriableError,
    SyncError,
)
from crm_sync.redact import SecretsFilter, redact_text, redact_url

log = logging.getLogger("crm_sync.clients.leadgen")

DEFAULT_BASE_URL = "https://api.sharpspring.com/pubapi/v1.2/"
MAX_OBJECTS_PER_CALL = 500  # API cap for batch writes and where-lists (error 209 above it)
MAX_PAGE_SIZE = 500  # getLeads silently caps pages at 500, whatever limit is asked
MAX_RANGE_PAGE_SIZE = 5000  # getLeadsDateRange accepts larger pages (reference 4)
RATE_WINDOW_MARGIN = 0.05  # seconds added to the limiter window: covers network jitter
MAX_BACKOFF = 30.0

# Codes worth retrying: the per-second limit and "temporarily unavailable".
RETRIABLE_CODES = frozenset({107, 999})
AUTH_CODES = frozenset({103, 104, 105})
UNCHANGED_CODE = 302
# Answers the API gives before doing anything: a call refused with them was not applied.
NOT_APPLIED = frozenset({107, 429, "refused"})
# Creates the API deduplicates itself (createLeads: 301 on an existing email).
KEYED_CREATES = frozenset({"createLeads"})

# One filter for the process: each client registers its secret. It sits on our logger and on
# urllib3's connection-pool logger, whose DEBUG lines print the request URL with its query.
_SECRETS_FILTER = SecretsFilter()
for _name in ("crm_sync.clients.leadgen", "urllib3.connectionpool"):
    if _SECRETS_FILTER not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_SECRETS_FILTER)


def retry_safe(method: str) -> bool:
    """May ``method`` be sent again after an attempt that may have reached the server?

    Reads, updates and deletes by id are idempotent (a repeated update answers 302, a repeated
    delete 404); createLeads is keyed by email. Any other create (or unknown write) is not.
    """
    if method.startswith(("get", "update", "delete")):
        return True
    return method in KEYED_CREATES


class LeadGenApiError(FatalError):
    """The API refused the request itself (malformed request, bad parameter, unknown method...).

    ``code`` is the API's numeric code, ``method`` the API method, ``data`` the ``data`` member
    of the error object with every string redacted.
    """

    def __init__(
        self, message: str, *, code: int | None = None, method: str | None = None, data: Any = None
    ):
        super().__init__(message)
        self.code = code
        self.method = method
        self.data = data


class _Transient(Exception):
    """Internal: this attempt failed in a way worth retrying. ``code`` says how; codes in
    ``NOT_APPLIED`` mean the server certainly did not process the call."""

    def __init__(self, message: str, code: int | str | None):
        super().__init__(message)
        self.code = code


def _tag(exc: SyncError, *, code: int | str | None, method: str | None) -> SyncError:
    """Give every exception the client raises ``code`` and ``method`` attributes."""
    exc.code = code  # type: ignore[attr-defined]
    exc.method = method  # type: ignore[attr-defined]
    return exc


def _never_sent(exc: requests.RequestException) -> bool:
    """Did the request certainly not reach the server (no connection was ever opened)?"""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    # requests wraps urllib3's MaxRetryError, whose reason is NewConnectionError when the TCP
    # connection could not be opened (refused, no route, DNS failure).
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return type(reason).__name__ in ("NewConnectionError", "NameResolutionError")


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


class Transport:
    """Connection settings, counters and the call itself; :class:`LeadGenClient` adds methods."""

    def __init__(
        self,
        base_url: str,
        account_id: str,
        secret_key: str,
        *,
        session: requests.Session | None = None,
        max_per_second: float = 10,
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
        if max_retries < 0:
            raise ConfigError("max_retries must not be negative")
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.account_id = str(account_id)
        self._secret_key = str(secret_key)
        _SECRETS_FILTER.add_secret(self._secret_key)
        self.conn_id = conn_id
        self.session = session or requests.Session()
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
    def identity(self) -> str:
        """Which account this client reaches (no secret): the key of what is cached for it."""
        return f"lg:{self.base_url}#{self.account_id}"

    @property
    def api_calls(self) -> int:
        """HTTP requests sent to the API (retries included: each one spends the daily budget)."""
        return sum(self.calls.values())

    def _where(self) -> str:
        name = f"connection {self.conn_id!r}, " if self.conn_id else ""
        return f"{name}account {self.account_id} at {self.base_url}"

    def _redact(self, text: str) -> str:
        return redact_text(text, [self._secret_key])

    def _redact_data(self, value: Any) -> Any:
        """``value`` with every string in it redacted (the ``data`` of an API error)."""
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, Mapping):
            return {self._redact(str(k)): self._redact_data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._redact_data(v) for v in value]
        return value

    # -- the one call -------------------------------------------------------------------

    def call(self, method: str, params: Mapping[str, Any]) -> Any:
        """Send one JSON-RPC request; return ``result``. Retries transient failures (for a
        create without a natural key, only those that certainly did not reach the server).

        Per-object failures of writes are not errors here: the caller reads them from the
        ``creates``/``updates``/``deletes`` entries.
        """
        return self.call_tracked(method, params)[0]

    def call_tracked(self, method: str, params: Mapping[str, Any]) -> tuple[Any, bool]:
        """Like :meth:`call`; also says whether an earlier attempt may have been applied (a
        retry after a lost answer: a delete then answers 404, an update 302)."""
        attempt = 0
        maybe_applied = False
        while True:
            self.limiter.acquire()
            self.calls[method] += 1
            try:
                return self._attempt(method, dict(params)), maybe_applied
            except _Transient as exc:
                failure = exc
            applied = failure.code not in NOT_APPLIED
            if applied and not retry_safe(method):
                raise self._ambiguous(method, params, failure)
            if attempt >= self.max_retries:
                cls = RateLimitError if failure.code == 107 else RetriableError
                message = f"Lead Gen & CRM {method} still failing after {attempt + 1} attempts ({self._where()}): {failure}"
                raise _tag(cls(message, code=failure.code), code=failure.code, method=method)
            maybe_applied = maybe_applied or applied
            delay = min(self.backoff_base * (2**attempt), MAX_BACKOFF)
            attempt += 1
            self.retries += 1
            log.warning(
                "Lead Gen & CRM %s failed (%s); retry %d of %d in %.2f s",
                method,
                failure,
                attempt,
                self.max_retries,
                delay,
            )
            self._sleep(delay)

    def _ambiguous(
        self, method: str, params: Mapping[str, Any], failure: _Transient
    ) -> AmbiguousWriteError:
        objects = params.get("objects")
        count = len(objects) if isinstance(objects, (list, tuple)) else 0
        log.error(
            "Lead Gen & CRM %s of %d objects may have been applied (%s); not retried",
            method,
            count,
            failure,
        )
        return AmbiguousWriteError(
            f"Lead Gen & CRM {method} of {count} objects may or may not have been applied "
            f"({self._where()}): {failure}. Not retried: the API has no natural key for these "
            "records, so look them up before creating them again.",
            method=method,
            count=count,
            code=failure.code,
        )

    def _attempt(self, method: str, params: dict[str, Any]) -> Any:
        request_id = f"crm-sync-{next(self._ids)}"
        body = {"method": method, "params": params, "id": request_id}
        started = time.perf_counter()
        response, failure = None, None
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
        except requests.RequestException as exc:
            # Built here, raised below: outside the except block the new exception carries no
            # __context__, so the requests exception (whose text embeds the URL, secret
            # included) is not reachable from it.
            failure = self._request_failure(method, exc)
        if failure is not None:
            raise failure
        assert response is not None
        return self._read_response(method, response, request_id, started)

    def _request_failure(self, method: str, exc: requests.RequestException) -> Exception:
        text = self._redact(str(exc))
        if isinstance(exc, requests.exceptions.SSLError):
            # A certificate that does not verify will not verify on retry either.
            return _tag(
                ConfigError(
                    f"TLS verification failed for {self._where()}: {text}. "
                    "Check the CA bundle (connection extra 'verify')."
                ),
                code="tls",
                method=method,
            )
        if isinstance(
            exc,
            (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError),
        ):
            code = "refused" if _never_sent(exc) else "connection"
            return _Transient(f"{type(exc).__name__}: {text}", code)
        return _tag(
            FatalError(f"Lead Gen & CRM {method} request failed ({self._where()}): {text}"),
            code=None,
            method=method,
        )

    def _read_response(self, method: str, response: Any, request_id: str, started: float) -> Any:
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
        envelope = self._envelope(response)
        self._note_usage(envelope)
        error = envelope.get("error")
        if isinstance(error, Mapping):
            raise self._api_error(method, error)
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

    @staticmethod
    def _envelope(response: Any) -> dict[str, Any]:
        try:
            envelope = response.json()
        except ValueError:
            envelope = None  # a body cut short (connection dropped mid-answer) or a proxy page
        if not isinstance(envelope, dict):
            raise _Transient("response body is not a JSON object", "bad-json")
        return envelope

    def _note_usage(self, envelope: Mapping[str, Any]) -> None:
        try:
            self.daily_usage = (int(envelope["callCount"]), int(envelope["queryLimit"]))
        except (KeyError, TypeError, ValueError):
            pass

    def _api_error(self, method: str, error: Mapping[str, Any]) -> Exception:
        """The exception for a top-level error object (raised by the caller)."""
        try:
            code = int(error.get("code"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            code = None
        message = self._redact(str(error.get("message", "")))
        data = self._redact_data(error.get("data"))
        data_text = json.dumps(data, default=str)[:500] if data not in (None, [], {}) else ""
        detail = f"error {code}: {message}" + (f" {data_text}" if data_text else "")
        if code in RETRIABLE_CODES:
            return _Transient(detail, code)
        if code == 106:
            usage = (
                f" (daily usage {self.daily_usage[0]} of {self.daily_usage[1]})"
                if self.daily_usage
                else ""
            )
            return _tag(
                RateLimitError(
                    f"Lead Gen & CRM daily call limit reached for {self._where()}{usage}: {detail}",
                    code=106,
                ),
                code=106,
                method=method,
            )
        if code in AUTH_CODES:
            return _tag(
                AuthError(f"Lead Gen & CRM refused {self._where()}: {detail}"),
                code=code,
                method=method,
            )
        if code == 204:
            return _tag(
                ConfigError(f"Lead Gen & CRM has no method {method!r}: {detail}"),
                code=code,
                method=method,
            )
        return LeadGenApiError(
            f"Lead Gen & CRM {method} failed: {detail}", code=code, method=method, data=data
        )
