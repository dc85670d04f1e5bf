"""Reads: lazy SOQL queries (REST, page by page), windows, IN-lists, getUpdated/getDeleted.

Every query is built with ``simple_salesforce.format_soql``, so no value is ever spliced in
unescaped; object and field names are checked against a strict identifier pattern.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Iterator, Sequence
from typing import Any
from urllib.parse import quote_plus

from simple_salesforce import format_soql

from .errors import ResyncRequiredError, SalesforceApiError
from .transport import Transport
from .util import (
    IN_CLAUSE_VALUES,
    RETRIEVE_IDS,
    SOQL_URI_BUDGET,
    check_ident,
    parse_sf_datetime,
    require_utc,
    strip_attributes,
    window_params,
)


def _in_chunks(values: Sequence[Any], fixed: str) -> Iterator[list[Any]]:
    """Unique non-null ``values`` in lists that keep ``fixed`` (the query without them)
    within :data:`SOQL_URI_BUDGET` bytes once URL-encoded, and within IN_CLAUSE_VALUES values."""
    budget = SOQL_URI_BUDGET - len(quote_plus(fixed))
    chunk: list[Any] = []
    size = 0
    for v in dict.fromkeys(v for v in values if v is not None):
        encoded = len(quote_plus(format_soql("{}", v))) + len("%2C")
        if chunk and (len(chunk) >= IN_CLAUSE_VALUES or size + encoded > budget):
            yield chunk
            chunk, size = [], 0
        chunk.append(v)
        size += encoded
    if chunk:
        yield chunk


class Reads(Transport):
    """Query and replication reads of :class:`~crm_sync.clients.salesforce.SalesforceClient`."""

    def query(self, soql: str, *, include_deleted: bool = False) -> Iterator[dict[str, Any]]:
        """Run ``soql`` and yield records lazily, one page (up to 2,000 rows) at a time."""
        what = "queryAll" if include_deleted else "query"
        page = self._call(what, lambda: self._sf.query(soql, include_deleted=include_deleted))
        while True:
            for record in page.get("records", []):
                yield strip_attributes(record)
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
        require_utc(start, "start")
        require_utc(end, "end")
        if end < start:
            raise ValueError("end must not be before start")
        check_ident(sobject, "object")
        check_ident(timestamp_field, "field")
        select = ", ".join(check_ident(f, "field") for f in fields) or "Id"
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

        Values are de-duplicated and ``None`` is skipped; each ``IN (...)`` takes as many as keep
        the URL-encoded query within the request-URI limit (about 450 emails). ``where`` is an extra condition
        written by the caller (never built from data), ANDed to the ``IN``. Lookups by ``Id`` of
        plain fields without ``where`` go through sObject Collections retrieve instead (2,000
        ids per call); with ``include_deleted`` the ids it does not return are then asked for
        through ``queryAll``.
        """
        check_ident(sobject, "object")
        check_ident(field, "field")
        select = ", ".join(check_ident(f, "field") for f in fields) or "Id"
        if field == "Id" and where is None and fields and all("." not in f for f in fields):
            # By id: sObject Collections retrieve, 2,000 ids per call instead of ~600 per SOQL
            # IN list. It answers null for ids in the recycle bin (or unknown): those are asked
            # again through SOQL when deleted records are wanted.
            missing = yield from self._retrieve(sobject, fields, values)
            if not include_deleted or not missing:
                return
            values = missing
        head = f"SELECT {select} FROM {sobject} WHERE {field} IN "
        tail = f" AND ({where})" if where else ""
        for chunk in _in_chunks(values, head + "()" + tail):
            soql = head + format_soql("{}", chunk) + tail
            yield from self.query(soql, include_deleted=include_deleted)

    def _retrieve(
        self, sobject: str, fields: Sequence[str], ids: Sequence[Any]
    ) -> Generator[dict[str, Any], None, list[str]]:
        """Records by id through sObject Collections retrieve (POST, up to 2,000 ids a call);
        returns the ids it answered null for (deleted or unknown)."""
        wanted = list(dict.fromkeys(str(i) for i in ids if i))
        missing: list[str] = []
        for start in range(0, len(wanted), RETRIEVE_IDS):
            chunk = wanted[start : start + RETRIEVE_IDS]
            body = {"ids": chunk, "fields": list(dict.fromkeys(["Id", *fields]))}
            answer = self._call(
                f"retrieve {sobject}",
                lambda b=body: self._sf.restful(
                    f"composite/sobjects/{sobject}", method="POST", json=b
                ),
            )
            for rid, record in zip(chunk, answer or [], strict=False):
                if record is None:
                    missing.append(rid)
                else:
                    yield strip_attributes(record)
            missing.extend(chunk[len(answer or []) :])
        return missing

    # -------------------------------------------------------------- replication (getDeleted)
    def get_deleted(
        self, sobject: str, start: dt.datetime, end: dt.datetime
    ) -> list[dict[str, Any]]:
        """``[{"id", "deletedDate"}]`` deleted in ``[start, end)`` (Salesforce works per minute).

        Raises :class:`ResyncRequiredError` when the org cannot cover ``start`` any more
        (``earliestDateAvailable`` later than ``start``, or older than its 15-day window).
        """
        require_utc(start, "start")
        require_utc(end, "end")
        check_ident(sobject, "object")
        try:
            result = self._call(
                f"getDeleted {sobject}",
                lambda: self._sf.restful(
                    f"sobjects/{sobject}/deleted/", params=window_params(start, end)
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
        earliest = parse_sf_datetime(earliest_text) if earliest_text else None
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
        require_utc(start, "start")
        require_utc(end, "end")
        check_ident(sobject, "object")
        result = self._call(
            f"getUpdated {sobject}",
            lambda: self._sf.restful(
                f"sobjects/{sobject}/updated/", params=window_params(start, end)
            ),
        )
        return list(result.get("ids", []))
