"""Batch writes: at most ``batch_size`` objects per call, one :class:`WriteResult` per object.

A refused object never raises. An error that stops a whole batch raises, carrying
``partial_results`` (the results of the batches already written) so no created id is lost.
Objects go out through ``codec.write_object`` (``""`` clears text, ``null`` clears nullable
id references). A delete repeated after a lost answer gets 404 for what the first attempt
deleted: those count as done (``unchanged=True``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from crm_sync.clients.leadgen.codec import write_object
from crm_sync.clients.leadgen.transport import UNCHANGED_CODE, LeadGenApiError, _tag
from crm_sync.clients.results import RecordError, WriteResult
from crm_sync.errors import AmbiguousWriteError, SyncError

log = logging.getLogger("crm_sync.clients.leadgen")

NOT_FOUND_CODE = "404"


def _truthy(value: Any) -> bool:
    # Vendor samples use real booleans; some clients also see "true"/"false" strings.
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)


class WriteMethods:
    """The write half of :class:`LeadGenClient`. It relies on the client for ``batch_size``,
    ``call_tracked`` and ``_redact`` (``transport.Transport``) and ``_rows`` (the client)."""

    batch_size: int
    call_tracked: Any
    _redact: Any
    _rows: Any

    def _write(
        self, method: str, objects: Iterable[Mapping[str, Any]], key: str, *, creates: bool
    ) -> list[WriteResult]:
        """Batch ``objects`` (<= batch_size per call); one WriteResult per object, input order."""
        if creates or method.startswith("update"):
            items = [write_object(dict(o)) for o in objects]
        else:
            items = [dict(o) for o in objects]
        results: list[WriteResult] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            try:
                result, repeated = self.call_tracked(method, {"objects": chunk})
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
            except AmbiguousWriteError as exc:
                exc.first_index = start
                exc.partial_results = list(results)  # type: ignore[attr-defined]
                raise
            except SyncError as exc:
                exc.partial_results = list(results)  # type: ignore[attr-defined]
                raise
            deleted_before = repeated and key == "deletes"
            for offset, entry in enumerate(entries):
                results.append(
                    self._entry(start + offset, entry, creates=creates, deleted=deleted_before)
                )
        failed = sum(1 for r in results if not r.success)
        if failed:
            log.info("Lead Gen & CRM %s: %d of %d objects refused", method, failed, len(results))
        return results

    def _entry(self, index: int, entry: Any, *, creates: bool, deleted: bool) -> WriteResult:
        if not isinstance(entry, Mapping):
            text = self._redact(f"unexpected result entry {entry!r}")
            return WriteResult(index, False, errors=(RecordError("unknown", text),))
        raw_id = entry.get("id")
        record_id = None if raw_id in (None, "") else str(raw_id)
        if _truthy(entry.get("success")):
            return WriteResult(index, True, id=record_id, created=True if creates else None)
        error = self._record_error(entry.get("error"))
        if error.code == str(UNCHANGED_CODE) or (deleted and error.code == NOT_FOUND_CODE):
            # 302: nothing to change. 404 on a repeated delete: the lost attempt deleted it.
            return WriteResult(
                index, True, id=record_id, created=False if creates else None, unchanged=True
            )
        return WriteResult(
            index, False, id=record_id, created=False if creates else None, errors=(error,)
        )

    def _record_error(self, error: Any) -> RecordError:
        if not isinstance(error, Mapping):
            return RecordError("unknown", self._redact(str(error)))
        data = error.get("data")
        fields: tuple[str, ...] = ()
        if isinstance(data, Mapping):
            if isinstance(data.get("field"), str):
                fields = (data["field"],)
            elif isinstance(data.get("fields"), list):
                fields = tuple(str(f) for f in data["fields"])
        message = self._redact(str(error.get("message", "")))
        return RecordError(str(error.get("code", "unknown")), message, fields)

    @staticmethod
    def _id_objects(ids: Iterable[str | int]) -> list[dict[str, str]]:
        return [{"id": str(i)} for i in ids]

    # -- leads ------------------------------------------------------------------------

    def create_leads(self, objs: Iterable[Mapping[str, Any]]) -> list[WriteResult]:
        """createLeads; ``WriteResult.id`` is the new lead id (as str). Duplicate email -> 301.
        Keyed by email, so it is retried like a read."""
        return self._write("createLeads", objs, "creates", creates=True)

    def update_leads(self, objs: Iterable[Mapping[str, Any]]) -> list[WriteResult]:
        """updateLeadsV2 (an unknown id fails with 404 instead of the silent success of
        updateLeads); 302 "no rows affected" -> success with ``unchanged=True``."""
        return self._write("updateLeadsV2", objs, "updates", creates=False)

    def delete_leads(self, ids: Iterable[str | int]) -> list[WriteResult]:
        return self._write("deleteLeads", self._id_objects(ids), "deletes", creates=False)

    def create_fields(self, objs: Iterable[Mapping[str, Any]]) -> list[WriteResult]:
        """createFields. Not keyed: an ambiguous failure raises AmbiguousWriteError."""
        return self._write("createFields", objs, "creates", creates=True)

    # -- sales objects (creates are not keyed: AmbiguousWriteError on a lost answer) -----

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
