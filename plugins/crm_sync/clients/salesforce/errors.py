"""Salesforce-side exceptions and the translation of transport errors into the project's types.

What to do next decides the class (see :mod:`crm_sync.errors`):

* transient (HTTP 5xx, lock errors, dropped connections, the concurrent-request limit) ->
  :class:`~crm_sync.errors.RetriableError`, retried inside the client first;
* the daily allocation spent -> :class:`~crm_sync.errors.RateLimitError`, never retried here;
* bad credentials -> :class:`~crm_sync.errors.AuthError`; a wrong query/field/object ->
  :class:`~crm_sync.errors.ConfigError`; any other refusal -> :class:`SalesforceApiError`;
* a plain create whose request may have been applied -> :class:`AmbiguousWriteError`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence

import requests
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceBulkV2LoadError,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from urllib3.exceptions import NewConnectionError

from crm_sync.clients.results import WriteResult
from crm_sync.errors import AmbiguousWriteError as BaseAmbiguousWriteError
from crm_sync.errors import (
    AuthError,
    ConfigError,
    FatalError,
    RateLimitError,
    RetriableError,
)

from .util import AMBIGUOUS_CODE, CONFIG_CODES, TRANSIENT_CALL_CODES

# The message Salesforce sends with REQUEST_LIMIT_EXCEEDED when too many long-running requests
# run at once (transient), as opposed to "TotalRequests Limit exceeded." (the daily allocation).
CONCURRENT_LIMIT_MARKER = "ConcurrentPerOrgLongTxn"


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


class AmbiguousWriteError(BaseAmbiguousWriteError):
    """Plain creates were sent, but the answer was lost: Salesforce may have applied them.

    The client does not retry such a request (a retry could create every record twice) and
    raises this once the whole write call is done. ``results`` holds one result per input
    record, in input order, like a normal write: definite outcomes for every record whose
    answer arrived, and ``AMBIGUOUS_WRITE`` failures for the records whose fate is unknown
    (their indexes are in ``ambiguous``). Record the definite ones; the ambiguous ones need a
    look-up (or a human) before they are created again. Not retriable as is, not fatal either.
    """

    def __init__(
        self, message: str, *, sobject: str, operation: str, results: Sequence[WriteResult]
    ):
        results = list(results)
        ambiguous = [r.index for r in results if r.error_code == AMBIGUOUS_CODE]
        super().__init__(
            message,
            method=f"{operation} {sobject}",
            count=len(ambiguous),
            first_index=ambiguous[0] if ambiguous else 0,
        )
        self.partial_results = results
        self.sobject = sobject
        self.operation = operation
        self.results = results
        self.ambiguous = ambiguous


def error_details(exc: SalesforceError) -> tuple[str | None, str]:
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


def login_unavailable(exc: SalesforceAuthenticationFailed) -> bool:
    """A login that failed with an HTTP 5xx (no SOAP fault code) is an outage, not bad credentials."""
    return isinstance(exc.code, int) and exc.code >= 500


def may_have_reached_server(exc: BaseException) -> bool:
    """Whether a failed request may have been received (and applied) by Salesforce.

    A refused or timed-out *connection* never carried the request; a connection that broke
    after it was sent (``RemoteDisconnected``, a read timeout, a truncated answer) may have.
    An HTTP error answer is definite: Salesforce rolls a failed request back.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    if isinstance(exc, requests.ConnectionError):
        inner = exc.args[0] if exc.args else None
        reason = getattr(inner, "reason", inner)
        return not isinstance(reason, NewConnectionError)
    return isinstance(
        exc, (requests.exceptions.ReadTimeout, requests.exceptions.ChunkedEncodingError)
    )


def _map_salesforce_error(exc: SalesforceError, where: str, redact: Callable[[str], str]):
    code, message = error_details(exc)
    text = redact(f"{where} failed with HTTP {exc.status} {code or ''}: {message}")
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


def map_error(
    exc: BaseException, where: str, conn_id: str | None, redact: Callable[[str], str]
) -> Exception | None:
    """Translate a transport exception into the project's error types (None: not ours).

    ``where`` names the call ("Salesforce query"); ``redact`` scrubs secrets from any text
    that may carry a URL or a response body.
    """
    conn = conn_id or "<unknown>"
    if isinstance(exc, SalesforceAuthenticationFailed) and login_unavailable(exc):
        return RetriableError(
            redact(f"{where}: the login service answered HTTP {exc.code}"),
            code="LOGIN_UNAVAILABLE",
        )
    if isinstance(exc, SalesforceAuthenticationFailed):
        detail = getattr(exc, "auth_message", exc)
        return AuthError(
            redact(
                f"{where}: Salesforce rejected the credentials of connection {conn!r} "
                f"({exc.code}: {detail})"
            )
        )
    if isinstance(exc, SalesforceExpiredSession):
        return AuthError(
            f"{where}: the session stayed invalid after logging in again (connection {conn!r})"
        )
    if isinstance(exc, requests.exceptions.SSLError):
        # A certificate problem is configuration (REQUESTS_CA_BUNDLE), not a transient fault.
        return ConfigError(redact(f"{where}: TLS verification failed: {exc}"))
    if isinstance(
        exc,
        (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError),
    ):
        return RetriableError(
            redact(f"{where}: connection failed: {type(exc).__name__}"), code="CONNECTION"
        )
    if isinstance(exc, SalesforceBulkV2LoadError):
        return SalesforceApiError(redact(f"{where}: {exc}"))
    if isinstance(exc, SalesforceError):
        return _map_salesforce_error(exc, where, redact)
    return None


def is_concurrent_limit(mapped: BaseException) -> bool:
    """A REQUEST_LIMIT_EXCEEDED for too many concurrent long requests (it passes in seconds)."""
    return isinstance(mapped, RateLimitError) and CONCURRENT_LIMIT_MARKER in str(mapped)
