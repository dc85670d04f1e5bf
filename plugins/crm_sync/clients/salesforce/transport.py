"""The core of :class:`~crm_sync.clients.salesforce.SalesforceClient`: one connection, call
counting, secrets, and the retry loop every API call goes through.

Retry rules of :meth:`Transport._call`:

* transient failures (HTTP 5xx, call-level lock errors, the concurrent-request limit, dropped
  connections) are retried with exponential backoff ``backoff_base * 2**attempt`` (capped at
  60 s), ``max_retries`` times, then raised as :class:`~crm_sync.errors.RetriableError`;
* an expired session is renewed once per call (simple-salesforce re-logs in by itself for
  REST requests, not for Bulk 2.0 ones);
* for a call that is **not idempotent** (a plain create) a failure after which the request
  may have been applied is not retried: :class:`MaybeApplied` is raised for the caller to
  decide (see :mod:`.writes` and :mod:`.bulk`).
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession

from crm_sync.errors import RateLimitError, RetriableError
from crm_sync.redact import redact_text

from .errors import is_concurrent_limit, map_error, may_have_reached_server
from .util import (
    MAX_BACKOFF,
    MAX_COLLECTION,
    SECRETS_FILTER,
    check_ident,
    classify_url,
    package_logger,
)

log = package_logger(__name__)

T = TypeVar("T")


class MaybeApplied(Exception):
    """A non-idempotent request failed after it may have reached Salesforce (internal).

    ``mapped`` is the project error the failure maps to (a ``RetriableError``).
    """

    def __init__(self, mapped: Exception):
        super().__init__(str(mapped))
        self.mapped = mapped


class Transport:
    """One simple-salesforce connection with counting, redaction, retries and describe cache."""

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
            SECRETS_FILTER.add_secret(secret)
        self._remember_session()
        self._describe_cache: dict[str, dict[str, Any]] = {}
        self.described: set[str] = set()  # objects this client described through the API
        self._field_maps: dict[str, dict[str, dict[str, Any]]] = {}
        self._global_describe: dict[str, Any] | None = None
        sf.session.hooks.setdefault("response", []).append(self._on_response)

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
            SECRETS_FILTER.add_secret(sid)

    def _redact(self, text: str) -> str:
        return redact_text(text, (getattr(self._sf, "session_id", "") or "", *self._secrets))

    # ----------------------------------------------------------------------- retries
    def _backoff(self, attempt: int) -> float:
        return min(MAX_BACKOFF, self.backoff_base * (2**attempt))

    def _map_error(self, exc: BaseException, what: str) -> Exception | None:
        return map_error(exc, f"Salesforce {what}", self.conn_id, self._redact)

    def _retriable(self, mapped: Exception, attempt: int) -> bool:
        if not isinstance(mapped, RetriableError) or attempt >= self.max_retries:
            return False
        if isinstance(mapped, RateLimitError):
            # The daily allocation does not come back within a task; the concurrent-request
            # limit clears as soon as other long requests finish.
            return is_concurrent_limit(mapped)
        # An expired cursor stays expired: only re-running the query (a task retry) helps.
        return getattr(mapped, "code", None) != "INVALID_QUERY_LOCATOR"

    def _call(
        self,
        what: str,
        fn: Callable[[], T],
        *,
        idempotent: bool = True,
        trace: list[BaseException] | None = None,
    ) -> T:
        """Run one API call with whole-call retries (exponential backoff).

        Mapped errors are raised ``from None``: the original exception (whose text holds URLs
        and response bodies) is not chained, so nothing unredacted reaches a task log.
        ``trace`` collects every failure that was retried (callers use it to know whether an
        earlier attempt may have been applied). With ``idempotent=False`` a failure that may
        have reached Salesforce raises :class:`MaybeApplied` instead of being retried.
        """
        attempt = 0
        refreshed = refresh_now = False
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
                if not idempotent and may_have_reached_server(exc):
                    raise MaybeApplied(mapped) from None
                if not self._retriable(mapped, attempt):
                    raise mapped from None
                if trace is not None:
                    trace.append(exc)
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
        check_ident(sobject, "object")
        if sobject not in self._describe_cache:
            result = self._call(
                f"describe {sobject}", lambda: self._sf.restful(f"sobjects/{sobject}/describe")
            )
            self._describe_cache[sobject] = dict(result)
            self.described.add(sobject)
        return self._describe_cache[sobject]

    def remember_describe(self, sobject: str, describe: dict[str, Any]) -> None:
        """Use ``describe`` (a cached answer) for ``sobject`` instead of asking the API."""
        check_ident(sobject, "object")
        self._describe_cache.setdefault(sobject, dict(describe))

    def forget_describes(self) -> None:
        """Drop every describe this client holds (the next ``describe`` asks the API)."""
        self._describe_cache.clear()
        self._field_maps.clear()

    @property
    def identity(self) -> str:
        """Which org this client reaches (its instance; no secret): the key of its cache."""
        return f"sf:{self._sf.sf_instance}"

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
        """The org's ``/limits`` resource (``DailyApiRequests.Remaining`` and friends)."""
        return dict(self._call("limits", self._sf.limits))
