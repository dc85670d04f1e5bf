"""Client for the Constant Contact Lead Gen & CRM (formerly SharpSpring) JSON-RPC API v1.2.

Transport only: it connects, pages, batches, rate-limits, retries, classifies errors and counts
calls. It holds no sync rules and works unchanged against the real endpoint
``https://api.sharpspring.com/pubapi/v1.2/`` and against ``sandbox.leadgen``.

What callers can rely on (details in ``docs/sandbox-leadgen.md``):

* **Reads** never skip a record when the set changes while it is read: lists ordered by id
  are walked with a one-row overlap, ``*DateRange`` windows are split until each part fits in
  one answer (``paging``). A page ends paging only when it is shorter than what the API
  returns at most for that method. Values come back decoded (HTML entities) with timestamps
  in UTC, whatever the account's ``output_timezone`` (``codec``).
* **Writes** go in batches of at most 500 objects and return one :class:`WriteResult` per input
  object, in input order; ``""`` clears a text field, ``None`` a nullable id. A refused object
  never raises; an error that stops a batch raises with ``partial_results`` (``writes``).
* **Rate limit**: at most ``max_per_second`` calls in any 1-second window, waited for on the
  injected clock/sleep (unit tests never sleep for real).
* **Retries** with exponential backoff on 107, 999, dropped connections, timeouts and HTTP
  5xx -- except that a create without a natural key is retried only when the request cannot
  have been applied; otherwise :class:`AmbiguousWriteError` (``transport``). 106 (daily cap)
  raises :class:`RateLimitError` at once.
* **Errors**: HTTP 401 / codes 103-105 -> :class:`AuthError`; 204 (no such method) ->
  :class:`ConfigError`; other request errors -> :class:`LeadGenApiError` (a
  :class:`FatalError`). Every exception has ``code`` and ``method`` attributes.
* **Secrets**: the secret key travels in the URL query string (the API wants it there). It never
  appears in a log record, an exception message or attribute (``data`` included), ``repr()``
  or ``str()``; exceptions are raised without a ``__context__`` that could hold a request
  exception, and a :class:`SecretsFilter` guards this package's logger and urllib3's.
"""

from crm_sync.clients.leadgen.client import PAGE_CAPS, LeadGenClient
from crm_sync.clients.leadgen.codec import (
    NULLABLE_FIELDS,
    TS_FORMAT,
    decode_text,
    parse_event_data,
    parse_timestamp,
)
from crm_sync.clients.leadgen.transport import (
    DEFAULT_BASE_URL,
    MAX_OBJECTS_PER_CALL,
    MAX_PAGE_SIZE,
    MAX_RANGE_PAGE_SIZE,
    LeadGenApiError,
    RateLimiter,
    retry_safe,
)
from crm_sync.errors import AmbiguousWriteError

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_OBJECTS_PER_CALL",
    "MAX_PAGE_SIZE",
    "MAX_RANGE_PAGE_SIZE",
    "NULLABLE_FIELDS",
    "PAGE_CAPS",
    "TS_FORMAT",
    "AmbiguousWriteError",
    "LeadGenApiError",
    "LeadGenClient",
    "RateLimiter",
    "decode_text",
    "parse_event_data",
    "parse_timestamp",
    "retry_safe",
]
