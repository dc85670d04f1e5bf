"""Bulk API 2.0 ingest: jobs of at most ``bulk_job_size`` rows, results mapped back to the input.

A job is five steps -- create, upload, close (``UploadComplete``), poll, results -- and a lost
answer means something different at each:

* create: an orphan ``Open`` job writes nothing; the step is simply repeated;
* upload: nothing is written before the close, but a job takes one upload only, so the job is
  aborted and the whole job started again with a new one;
* close: this is the step that writes. The job's state is read: still ``Open`` -> close again;
  anything else -> the close was applied, go on. When the state cannot be read either, a plain
  insert job gets ``AMBIGUOUS_WRITE`` results (see :mod:`.writes`), other operations raise
  :class:`~crm_sync.errors.RetriableError` (they are safe to run again);
* poll and results: reads, repeated.

An expired session at any step is renewed and the step repeated (see :mod:`.transport`).

Result rows are matched back to input rows by the columns the job echoes: by the ``Id`` column
for update and delete (falling back to ``sf__Id``, compared in 18-character form), by the
external id for upsert, and for insert by the whole row as uploaded (identical input rows are
interchangeable, so any pairing between them is correct). An input row that no result file
mentions is reported as ``NOT_PROCESSED``.
"""

from __future__ import annotations

import collections
import csv
import io
from collections.abc import Mapping
from typing import Any

from simple_salesforce.bulk2 import Operation
from simple_salesforce.exceptions import SalesforceOperationError

from crm_sync.clients.results import RecordError, WriteResult
from crm_sync.errors import ConfigError, RetriableError

from .transport import MaybeApplied, Transport
from .util import (
    BULK_MAX_BYTES,
    ambiguous_result,
    csv_value,
    package_logger,
    parse_bulk_error,
    to_18,
)

log = package_logger(__name__)


def _csv_text(columns: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()


class _ResultMatcher:
    """Pairs Bulk result rows with the input rows they echo (see the module docstring)."""

    def __init__(self, op: str, columns: list[str], rows: list[list[str]], ext: str | None):
        if op in ("update", "delete"):
            self.key_cols = ["Id"]
        elif op == "upsert":
            self.key_cols = [ext or "Id"]
        else:
            self.key_cols = columns
        self.rows = rows
        self.key_pos = [columns.index(c) for c in self.key_cols]
        self.waiting: dict[tuple[str, ...], collections.deque[int]] = collections.defaultdict(
            collections.deque
        )
        for i in range(len(rows)):
            self.waiting[self._key(i)].append(i)
        self.by_long_id: dict[str, collections.deque[int]] = collections.defaultdict(
            collections.deque
        )
        if op in ("update", "delete"):
            for i, row in enumerate(rows):
                self.by_long_id[to_18(row[self.key_pos[0]])].append(i)

    def _key(self, i: int) -> tuple[str, ...]:
        return tuple(self.rows[i][p] for p in self.key_pos)

    def take(self, rec: Mapping[str, str]) -> int | None:
        queue = self.waiting.get(tuple(rec.get(c, "") for c in self.key_cols))
        if queue:
            i = queue.popleft()
            if self.by_long_id:
                self.by_long_id[to_18(self.rows[i][self.key_pos[0]])].remove(i)
            return i
        # Fall back to sf__Id (18 characters) when the echoed Id column does not match.
        fallback = self.by_long_id.get(to_18(rec.get("sf__Id", "")))
        if fallback:
            i = fallback.popleft()
            self.waiting[self._key(i)].remove(i)
            return i
        return None


def match_bulk_results(
    op: str,
    columns: list[str],
    rows: list[list[str]],
    ext: str | None,
    files: tuple[str, str, str],
    job_id: str,
    failure_message: str | None,
) -> list[WriteResult]:
    """(successful, failed, unprocessed) CSV texts -> one WriteResult per input row."""
    successful, failed, unprocessed = files
    matcher = _ResultMatcher(op, columns, rows, ext)
    results: list[WriteResult | None] = [None] * len(rows)
    for rec in csv.DictReader(io.StringIO(successful)):
        i = matcher.take(rec)
        if i is not None:
            created = rec.get("sf__Created", "").lower() == "true"
            results[i] = WriteResult(
                i, True, rec.get("sf__Id") or None, created if op in ("insert", "upsert") else None
            )
    for rec in csv.DictReader(io.StringIO(failed)):
        i = matcher.take(rec)
        if i is not None:
            err = parse_bulk_error(rec.get("sf__Error", ""))
            echoed = rows[i][matcher.key_pos[0]] if op in ("update", "delete") else None
            results[i] = WriteResult(i, False, rec.get("sf__Id") or echoed or None, errors=(err,))
    reason = f"Bulk job {job_id} did not process this record" + (
        f": {failure_message}" if failure_message else ""
    )
    not_processed = (RecordError("NOT_PROCESSED", reason),)
    for rec in csv.DictReader(io.StringIO(unprocessed)):
        i = matcher.take(rec)
        if i is not None:
            results[i] = WriteResult(i, False, errors=not_processed)
    return [
        r if r is not None else WriteResult(i, False, errors=not_processed)
        for i, r in enumerate(results)
    ]


class BulkIngest(Transport):
    """Bulk API 2.0 writes (used by :class:`~.writes.Writes` above ``bulk_threshold``)."""

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
        self,
        op: str,
        sobject: str,
        records: list[Mapping[str, Any]],
        ext: str | None,
        out: list[WriteResult] | None = None,
    ) -> list[WriteResult]:
        """Write ``records`` in jobs; each job's results are appended to ``out`` as it ends."""
        if op == "delete":
            columns = ["Id"]
        else:
            columns = list(dict.fromkeys(k for r in records for k in r if k != "attributes"))
        rows = [[csv_value(r[c]) if c in r else "" for c in columns] for r in records]
        out = [] if out is None else out
        first = len(out)
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
        return out[first:]

    def _bulk_type(self, sobject: str) -> Any:
        # A fresh handler per step: it captures the current session id (after a re-login too).
        return getattr(self._sf.bulk2, sobject)

    def _bulk_job(
        self, op: str, sobject: str, columns: list[str], rows: list[list[str]], ext: str | None
    ) -> list[WriteResult]:
        what = f"bulk2 {op} {sobject}"
        job_id = self._start_job(what, op, sobject, _csv_text(columns, rows), ext)
        try:
            self._close_job(what, sobject, job_id)
        except MaybeApplied as exc:
            self._abort_quietly(sobject, job_id)
            if op != "insert":
                raise exc.mapped from None
            log.warning("Salesforce %s: job %s may have run (%s)", what, job_id, exc.mapped)
            return [ambiguous_result(i, f"Bulk job {job_id}") for i in range(len(rows))]
        except Exception:
            self._abort_quietly(sobject, job_id)
            raise
        results = self._job_results(what, op, sobject, job_id, columns, rows, ext)
        log.info(
            "Salesforce %s: job %s, %d row(s), %d failed",
            what,
            job_id,
            len(rows),
            sum(1 for r in results if not r.success),
        )
        return results

    def _start_job(self, what: str, op: str, sobject: str, data: str, ext: str | None) -> str:
        """Create a job and upload ``data``; a lost upload answer restarts with a new job."""
        operation = Operation(op)
        attempt = 0
        while True:
            job = self._call(
                what,
                lambda: self._bulk_type(sobject)._client.create_job(
                    operation, external_id_field=ext
                ),
            )
            job_id = job["id"]
            try:
                self._call(
                    what,
                    lambda job_id=job_id: self._bulk_type(sobject)._client.upload_job_data(
                        job_id, data
                    ),
                    idempotent=False,  # a job takes one upload: never re-send it
                )
                return job_id
            except MaybeApplied as exc:
                self._abort_quietly(sobject, job_id)
                if attempt >= self.max_retries:
                    raise exc.mapped from None
                delay = self._backoff(attempt)
                attempt += 1
                log.warning(
                    "Salesforce %s: upload to job %s lost (%s); new job in %.2fs",
                    what,
                    job_id,
                    type(exc.mapped).__name__,
                    delay,
                )
                self._sleep(delay)
            except Exception:
                self._abort_quietly(sobject, job_id)
                raise

    def _close_job(self, what: str, sobject: str, job_id: str) -> None:
        """Close the job (this starts the writes); read its state when the answer is lost.

        Raises :class:`MaybeApplied` when the close may have been applied and the job's state
        cannot be read to find out.
        """
        for attempt in range(self.max_retries + 1):
            try:
                self._call(
                    what,
                    lambda: self._bulk_type(sobject)._client.close_job(job_id),
                    idempotent=False,
                )
                return
            except MaybeApplied as lost:
                if self._state_after_lost_close(what, sobject, job_id, lost) != "Open":
                    return  # the close was applied
            self._sleep(self._backoff(attempt))
        raise RetriableError(
            f"Salesforce {what}: job {job_id} could not be closed", code="CONNECTION"
        )

    def _state_after_lost_close(
        self, what: str, sobject: str, job_id: str, lost: MaybeApplied
    ) -> str:
        """The job's state once the answer to closing it was lost (``lost`` if unreadable)."""
        log.warning("Salesforce %s: the answer to closing job %s was lost", what, job_id)
        try:
            info = self._call(what, lambda: self._bulk_type(sobject)._client.get_job(job_id, False))
        except RetriableError:
            raise lost from None
        return str(info.get("state"))

    def _job_results(
        self,
        what: str,
        op: str,
        sobject: str,
        job_id: str,
        columns: list[str],
        rows: list[list[str]],
        ext: str | None,
    ) -> list[WriteResult]:
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
        files = (
            self._call(what, lambda: self._bulk_type(sobject).get_successful_records(job_id)),
            self._call(what, lambda: self._bulk_type(sobject).get_failed_records(job_id)),
            self._call(what, lambda: self._bulk_type(sobject).get_unprocessed_records(job_id)),
        )
        return match_bulk_results(op, columns, rows, ext, files, job_id, failure_message)

    def _abort_quietly(self, sobject: str, job_id: str) -> None:
        try:
            self._bulk_type(sobject)._client.abort_job(job_id, False)
        except Exception:
            log.debug("could not abort bulk job %s", job_id, exc_info=True)
