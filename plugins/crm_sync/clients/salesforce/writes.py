"""Writes with per-record results: sObject Collections up to ``bulk_threshold``, Bulk API 2.0 above.

Every write returns exactly one :class:`~crm_sync.clients.results.WriteResult` per input record,
in input order; a bad record never raises. What happens when an answer is lost (the request
may have been applied):

* **upsert** (by external id) and **update** are re-sent: applying them twice changes nothing
  twice (an upsert that created the record the first time reports ``created=False`` then);
* **delete** is re-sent; ``ENTITY_IS_DELETED`` on that retry is reported as a success with
  ``unchanged=True`` (the first attempt deleted the record);
* a plain **insert** is *not* re-sent -- it would create every record of the chunk twice. Its
  records get an ``AMBIGUOUS_WRITE`` result, the rest of the call goes on, and the call ends
  with :class:`~crm_sync.clients.salesforce.errors.AmbiguousWriteError` carrying all results.
  Give the records a key (``create(..., external_id_field=...)``) to make creates safe to retry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crm_sync.clients.results import RecordError, WriteResult

from .bulk import BulkIngest
from .errors import AmbiguousWriteError, SalesforceApiError, may_have_reached_server
from .transport import MaybeApplied
from .util import (
    AMBIGUOUS_CODE,
    TRANSIENT_RECORD_CODES,
    ambiguous_result,
    check_ident,
    json_value,
    package_logger,
)

log = package_logger(__name__)


def collection_results(
    raw: list[Mapping[str, Any]], chunk: list[Mapping[str, Any]], op: str
) -> list[WriteResult]:
    """sObject Collections answer -> one WriteResult per record of ``chunk``."""
    if len(raw) != len(chunk):
        raise SalesforceApiError(f"Salesforce returned {len(raw)} results for {len(chunk)} records")
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


def _deleted_before(result: WriteResult) -> WriteResult:
    """After a lost answer, ENTITY_IS_DELETED means the first attempt deleted the record."""
    if result.success or result.error_code != "ENTITY_IS_DELETED":
        return result
    return WriteResult(result.index, True, result.id, None, True, ())


class Writes(BulkIngest):
    """create / update / upsert / delete of :class:`~crm_sync.clients.salesforce.SalesforceClient`."""

    def create(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        external_id_field: str | None = None,
    ) -> list[WriteResult]:
        """Insert ``records``; one result per record, in order (``created`` is True on success).

        With ``external_id_field`` the records are upserted on that key instead, so a retry
        after a lost answer cannot create them twice. Without it, a lost answer ends the call
        with :class:`~crm_sync.clients.salesforce.errors.AmbiguousWriteError` (see the module).
        """
        if external_id_field is not None:
            return self.upsert(sobject, external_id_field, records)
        return self._write("insert", check_ident(sobject, "object"), records)

    def update(self, sobject: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        """Update ``records`` (each carries ``Id``); one result per record, in order."""
        return self._write("update", check_ident(sobject, "object"), records)

    def upsert(
        self, sobject: str, external_id_field: str, records: Sequence[Mapping[str, Any]]
    ) -> list[WriteResult]:
        """Create or update by ``external_id_field`` (each record carries it)."""
        check_ident(external_id_field, "field")
        return self._write("upsert", check_ident(sobject, "object"), records, external_id_field)

    def delete(self, ids: Sequence[str]) -> list[WriteResult]:
        """Delete records by id (any mix of objects); one result per id, in order."""
        return self._write("delete", None, [{"Id": i} for i in ids])

    # ------------------------------------------------------------------------ engine
    @staticmethod
    def _precheck(
        op: str, records: Sequence[Mapping[str, Any]], ext: str | None
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

    def _settle(
        self,
        results: list[WriteResult | None],
        pending: list[int],
        outcome: list[WriteResult],
        attempt: int,
    ) -> list[int]:
        """Store final outcomes; return the input indexes whose records failed transiently."""
        retry: list[int] = []
        for pos, idx in enumerate(pending):
            res = outcome[pos]
            transient = not res.success and res.error_code in TRANSIENT_RECORD_CODES
            if transient and attempt < self.max_retries:
                retry.append(idx)
            else:
                results[idx] = WriteResult(
                    idx, res.success, res.id, res.created, res.unchanged, res.errors
                )
        return retry

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
            outcome: list[WriteResult] = []
            try:
                self._dispatch(op, sobject, batch, ext, outcome)
            except Exception as exc:
                self._raise_if_ambiguous_so_far(op, sobject or "records", outcome, batch, exc)
                raise
            retry = self._settle(results, pending, outcome, attempt)
            if retry:
                delay = self._backoff(attempt)
                attempt += 1
                log.warning(
                    "Salesforce %s %s: %d record(s) failed transiently; re-submitting them "
                    "(retry %d/%d in %.2fs)",
                    op,
                    sobject or "records",
                    len(retry),
                    attempt,
                    self.max_retries,
                    delay,
                )
                self._sleep(delay)
            pending = retry
        final = [r for r in results if r is not None]
        failed = sum(1 for r in final if not r.success)
        log.info(
            "Salesforce %s %s: %d record(s), %d failed",
            op,
            sobject or "records",
            len(final),
            failed,
        )
        self._raise_if_ambiguous(op, sobject or "records", final)
        return final

    @staticmethod
    def _raise_if_ambiguous(op: str, sobject: str, results: list[WriteResult]) -> None:
        unknown = sum(1 for r in results if r.error_code == AMBIGUOUS_CODE)
        if not unknown:
            return
        raise AmbiguousWriteError(
            f"Salesforce {op} {sobject}: the answer for {unknown} of {len(results)} record(s) "
            "was lost after the request was sent, so Salesforce may have created them. They "
            "were not sent again (a plain create has no key to find them by): look for them "
            "before creating them again, or give the records an external id and upsert",
            sobject=sobject,
            operation=op,
            results=results,
        )

    def _raise_if_ambiguous_so_far(
        self,
        op: str,
        sobject: str,
        done: list[WriteResult],
        batch: list[Mapping[str, Any]],
        exc: Exception,
    ) -> None:
        """A call that fails after some creates' answers were lost must not end in a plain
        error: re-running it would send those creates again. Raise AmbiguousWriteError with
        what is known instead (the records never sent are reported NOT_PROCESSED)."""
        if op != "insert" or not any(r.error_code == AMBIGUOUS_CODE for r in done):
            return
        reason = self._redact(f"not sent: the call failed first ({type(exc).__name__}: {exc})")
        rest = [
            WriteResult(i, False, errors=(RecordError("NOT_PROCESSED", reason),))
            for i in range(len(done), len(batch))
        ]
        results = [
            WriteResult(i, r.success, r.id, r.created, r.unchanged, r.errors)
            for i, r in enumerate([*done, *rest])
        ]
        self._raise_if_ambiguous(op, sobject, results)

    def _dispatch(
        self,
        op: str,
        sobject: str | None,
        records: list[Mapping[str, Any]],
        ext: str | None,
        out: list[WriteResult],
    ) -> None:
        """Write ``records``, appending one result per record to ``out`` as calls complete."""
        if len(records) > self.bulk_threshold:
            if op == "delete":
                out.extend(self._bulk_delete(records))
                return
            assert sobject is not None
            self._bulk(op, sobject, records, ext, out)
            return
        for start in range(0, len(records), self.collection_size):
            chunk = records[start : start + self.collection_size]
            if op == "delete":
                out.extend(self._collection_delete(chunk))
            else:
                assert sobject is not None
                out.extend(self._collection(op, sobject, chunk, ext))

    # -- sObject Collections
    def _collection_delete(self, chunk: list[Mapping[str, Any]]) -> list[WriteResult]:
        ids = [str(r["Id"]) for r in chunk]
        trace: list[BaseException] = []
        raw = self._call(
            "collections delete",
            lambda: self._sf.restful(
                "composite/sobjects",
                params={"ids": ",".join(ids), "allOrNone": "false"},
                method="DELETE",
            ),
            trace=trace,
        )
        results = collection_results(raw or [], chunk, "delete")
        if any(may_have_reached_server(e) for e in trace):
            results = [_deleted_before(r) for r in results]
        return results

    def _collection(
        self, op: str, sobject: str, chunk: list[Mapping[str, Any]], ext: str | None
    ) -> list[WriteResult]:
        body = {
            "allOrNone": False,
            "records": [
                {
                    "attributes": {"type": sobject},
                    **{k: json_value(v) for k, v in r.items() if k != "attributes"},
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
        what = f"collections {op} {sobject}"
        try:
            raw = self._call(
                what,
                lambda: self._sf.restful(path, method=method, json=body),
                idempotent=op != "insert",
            )
        except MaybeApplied as exc:
            log.warning(
                "Salesforce %s: the answer was lost (%s); not re-sent (plain creates)",
                what,
                getattr(exc.mapped, "code", None) or type(exc.mapped).__name__,
            )
            return [ambiguous_result(i, type(exc.mapped).__name__) for i in range(len(chunk))]
        except SalesforceApiError as exc:
            if exc.code != "JSON_PARSER_ERROR":
                raise
            return self._bisect(op, sobject, chunk, ext, exc)
        return collection_results(raw or [], chunk, op)

    def _bisect(
        self,
        op: str,
        sobject: str,
        chunk: list[Mapping[str, Any]],
        ext: str | None,
        exc: SalesforceApiError,
    ) -> list[WriteResult]:
        """A value Salesforce cannot deserialise fails the whole request; split the chunk to
        find the bad record(s) so the good ones still get written."""
        if len(chunk) == 1:
            error = RecordError("JSON_PARSER_ERROR", self._redact(str(exc)))
            return [WriteResult(0, False, errors=(error,))]
        mid = len(chunk) // 2
        left = self._collection(op, sobject, chunk[:mid], ext)
        right = self._collection(op, sobject, chunk[mid:], ext)
        return left + [
            WriteResult(r.index + mid, r.success, r.id, r.created, r.unchanged, r.errors)
            for r in right
        ]
