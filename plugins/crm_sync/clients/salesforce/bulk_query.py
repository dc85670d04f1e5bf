"""Streaming Bulk API 2.0 queries for large exports (backups of every mapped field).

One query job per call: create (``POST jobs/query``), wait until ``JobComplete``, then read the
result pages with the ``Sforce-Locator`` of the previous page until it says ``null``. Records
are yielded as they are parsed; at most one page (``page_size`` rows) is held in memory, so an
export of millions of records runs in bounded memory. A page is read whole before its first
record is yielded: a retried page (dropped connection, expired session) never yields a record
twice.

Values are the CSV text Bulk API 2.0 sends (``2024-01-31T10:00:00.000Z``, ``true``, ``42.0``),
with empty cells as ``None`` (Bulk CSV does not tell null from an empty string); relationship
columns are flat (``Owner.Email``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from typing import Any

from simple_salesforce import format_soql
from simple_salesforce.bulk2 import Operation
from simple_salesforce.exceptions import SalesforceOperationError

from .errors import SalesforceApiError
from .transport import Transport
from .util import check_ident, package_logger

log = package_logger(__name__)

DEFAULT_PAGE_SIZE = 10_000
_FROM = re.compile(r"\bFROM\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)


class BulkQuery(Transport):
    """Bulk API 2.0 query jobs of :class:`~crm_sync.clients.salesforce.SalesforceClient`."""

    def bulk_query(
        self, soql: str, *, include_deleted: bool = False, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[dict[str, str | None]]:
        """Run ``soql`` as a Bulk API 2.0 query job and yield its records lazily.

        Nothing is sent until the first record is asked for. ``include_deleted`` runs a
        ``queryAll`` job (recycle-bin rows included). Raises
        :class:`~crm_sync.errors.ConfigError` for a query Salesforce refuses (bad field,
        object, syntax) and :class:`SalesforceApiError` when the job fails.
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        m = _FROM.search(soql)
        if m is None:
            raise ValueError("the SOQL needs a FROM clause")
        return self._bulk_query_pages(soql, m.group(1), include_deleted, page_size)

    def bulk_export(
        self,
        sobject: str,
        fields: Sequence[str],
        *,
        where: str | None = None,
        include_deleted: bool = False,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[dict[str, str | None]]:
        """Every record of ``sobject`` (``fields`` only) through :meth:`bulk_query`.

        ``where`` is an extra condition written by the caller (never built from data).
        """
        check_ident(sobject, "object")
        select = ", ".join(check_ident(f, "field") for f in fields) or "Id"
        soql = format_soql("SELECT {:literal} FROM {:literal}", select, sobject)
        if where:
            soql += f" WHERE {where}"
        return self.bulk_query(soql, include_deleted=include_deleted, page_size=page_size)

    def _bulk_query_pages(
        self, soql: str, sobject: str, include_deleted: bool, page_size: int
    ) -> Iterator[dict[str, str | None]]:
        what = f"bulk2 {'queryAll' if include_deleted else 'query'} {sobject}"
        operation = Operation.query_all if include_deleted else Operation.query

        def client() -> Any:
            # A fresh handler per step: it captures the current session id (after a re-login).
            return getattr(self._sf.bulk2, sobject)._client

        job = self._call(what, lambda: client().create_job(operation, query=soql))
        job_id = job["id"]
        self._wait_for_query(what, client, job_id)
        locator, pages, rows = "", 0, 0
        while True:
            page = self._call(
                what,
                lambda loc=locator: client().get_query_results(job_id, loc, page_size),
            )
            pages += 1
            reader = csv.DictReader(io.StringIO(page["records"]))
            for record in reader:
                rows += 1
                yield {k: (v if v != "" else None) for k, v in record.items()}
            locator = page["locator"]
            del page, reader  # drop the page text before the next one is read
            if not locator:
                break
        log.info("Salesforce %s: job %s, %d record(s) in %d page(s)", what, job_id, rows, pages)

    def _wait_for_query(self, what: str, client: Any, job_id: str) -> None:
        try:
            self._call(what, lambda: client().wait_for_job(job_id, True, self.bulk_poll_wait))
        except SalesforceOperationError:
            info = self._call(what, lambda: client().get_job(job_id, True))
            message = str(info.get("errorMessage") or info.get("state"))
            raise SalesforceApiError(
                self._redact(f"Salesforce {what}: job {job_id} failed: {message}")
            ) from None
