"""Salesforce transport for the sync: query, describe, batch writes, retries, call counting.

This package holds no sync rules. It wraps one ``simple_salesforce.Salesforce`` connection (the
one ``SalesforceHook(conn_id).get_conn()`` builds) and adds what the DAGs need on top:

* **Lazy queries** (:mod:`.reads`) -- :meth:`SalesforceClient.query` follows
  ``nextRecordsUrl`` page by page and yields plain dicts (``attributes`` removed, parent
  relationship dicts kept). :meth:`~SalesforceClient.query_window` and
  :meth:`~SalesforceClient.query_by_values` build the SOQL with ``format_soql``.
* **Streaming exports** (:mod:`.bulk_query`) -- :meth:`SalesforceClient.bulk_query` /
  :meth:`~SalesforceClient.bulk_export` run a Bulk API 2.0 query job and yield its records one
  locator page at a time, in bounded memory.
* **Batch writes with per-record results** (:mod:`.writes`, :mod:`.bulk`) -- up to
  ``bulk_threshold`` records go through sObject Collections (``collection_size`` per call,
  ``allOrNone=false``), more through Bulk API 2.0. Every write returns exactly one
  :class:`~crm_sync.clients.results.WriteResult` per input record, in input order; a bad record
  never raises. A plain create whose answer was lost is never re-sent
  (:class:`AmbiguousWriteError`).
* **Retries** (:mod:`.transport`) -- a whole call that fails transiently is retried with
  exponential backoff, then raised as :class:`~crm_sync.errors.RetriableError`; records that
  fail with ``UNABLE_TO_LOCK_ROW`` / ``API_TEMPORARILY_UNAVAILABLE`` are re-submitted alone.
  The daily ``REQUEST_LIMIT_EXCEEDED`` is never retried here
  (:class:`~crm_sync.errors.RateLimitError`).
* **Call counting** -- a ``requests`` response hook on the connection's session sees every HTTP
  call (REST, Bulk 2.0 polls, the library's own re-logins) and counts it by kind in
  :attr:`SalesforceClient.calls`, with the same rules the org uses for its daily allocation.
* **Metadata** (:mod:`.metadata`) -- :meth:`SalesforceClient.read_metadata` for settings that
  only the Metadata API shows (a profile's session security level).
* **No secrets in logs or errors** -- messages go through :mod:`crm_sync.redact` with the
  session id, password and security token as known secrets.
"""

from __future__ import annotations

from .bulk import match_bulk_results
from .client import SalesforceClient
from .errors import AmbiguousWriteError, ResyncRequiredError, SalesforceApiError
from .util import (
    AMBIGUOUS_CODE,
    CONFIG_CODES,
    TRANSIENT_CALL_CODES,
    TRANSIENT_RECORD_CODES,
    classify_url,
    package_loggers,
    to_18,
)

__all__ = [
    "AMBIGUOUS_CODE",
    "CONFIG_CODES",
    "TRANSIENT_CALL_CODES",
    "TRANSIENT_RECORD_CODES",
    "AmbiguousWriteError",
    "ResyncRequiredError",
    "SalesforceApiError",
    "SalesforceClient",
    "classify_url",
    "match_bulk_results",
    "package_loggers",
    "to_18",
]
