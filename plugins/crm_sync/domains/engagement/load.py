"""Load: write the Tasks that Salesforce does not have yet, in batches, keeping every result.

Per batch of :data:`LOAD_CHUNK`: one read of the keys already in Salesforce (``queryAll``, IN lists
of up to 300 keys, so Tasks a rep deleted are seen too and not resurrected), then one upsert on the
external id of the rest (the client uses sObject Collections up to the spec's ``bulk_threshold``,
Bulk API 2.0 above). Results go to ``results/sf`` after each batch; a retried task skips keys
already there. A dry run does the read (so it can say what would be created) and writes nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from crm_sync.clients.results import WriteResult
from crm_sync.domains.engagement.rules import LOAD_CHUNK, TASK
from crm_sync.domains.engagement.spec import run_spec
from crm_sync.errors import BudgetExhaustedError
from crm_sync.pipeline.changelog import SALESFORCE, ChangeLog
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.files import chunked
from crm_sync.pipeline.results import ResultLog, ResultRow, outcome_row, result_row

if TYPE_CHECKING:
    from crm_sync.clients.salesforce import SalesforceClient
    from crm_sync.tasks import TaskRuntime

log = logging.getLogger(__name__)


def existing(sf: SalesforceClient, field: str, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Tasks already carrying one of ``keys`` (deleted ones included), by lower-cased key."""
    found: dict[str, dict[str, Any]] = {}
    if not keys:
        return found
    for rec in sf.query_by_values(
        TASK, ["Id", field, "IsDeleted"], field, keys, include_deleted=True
    ):
        key = str(rec.get(field) or "").lower()
        # A live Task wins over a deleted one carrying the same key.
        if key not in found or found[key].get("IsDeleted"):
            found[key] = rec
    return found


def matched_existing(res: WriteResult) -> bool:
    """An upsert that met an existing Task on its update path and refused TaskSubtype (which
    Salesforce only sets on create): another writer created the Task between our read and our
    write. The activity exists: that is 'already present', not a failure."""
    return (
        not res.success
        and res.error_code == "INVALID_FIELD_FOR_INSERT_UPDATE"
        and any("TaskSubtype" in e.fields for e in res.errors)
    )


def _present(key: str, task_id: str, deleted: bool) -> ResultRow:
    return outcome_row(key, "salesforce", "present", id=task_id, deleted=deleted)


def _batch_rows(
    ctx: RunContext,
    sf: SalesforceClient,
    ext: str,
    batch: list[dict[str, Any]],
    counts: Counter,
    changes: ChangeLog | None = None,
) -> list[ResultRow]:
    present = existing(sf, ext, [p["key"] for p in batch])
    rows: list[ResultRow] = []
    to_write: list[dict[str, Any]] = []
    for p in batch:
        hit = present.get(p["key"].lower())
        if hit is not None:
            deleted = bool(hit.get("IsDeleted"))
            rows.append(_present(p["key"], hit["Id"], deleted))
            counts["deleted_in_salesforce" if deleted else "already_present"] += 1
        elif ctx.dry_run:
            rows.append(outcome_row(p["key"], "salesforce", "dry_run", id=None))
            counts["would_create"] += 1
        else:
            to_write.append(p)
    if not to_write:
        return rows
    if changes is not None:
        changes.sending(to_write)
    written = len(rows)
    for p, res in zip(
        to_write, sf.upsert(TASK, ext, [p["sf_payload"] for p in to_write]), strict=True
    ):
        if matched_existing(res):
            rows.append(_present(p["key"], res.id or "", False))
            counts["already_present"] += 1
            continue
        rows.append(result_row(p["key"], "salesforce", "upsert", res))
        if res.success:
            counts["created" if res.created is not False else "already_present"] += 1
        else:
            counts["failed"] += 1
    if changes is not None:  # the Tasks this run created, for Sync health and undo
        changes.log(to_write, rows[written:], obj=TASK)
    return rows


def load_tasks(
    ctx: RunContext, sf: SalesforceClient, changes: ChangeLog | None = None
) -> dict[str, Any]:
    """The load stage's work on a run context and a client (see the module docstring);
    ``changes`` logs the Tasks created (the change log undo reads)."""
    spec = run_spec(ctx)
    ext = spec.external_id_field
    sf.bulk_threshold = spec.bulk_threshold
    results = ResultLog(ctx.folder, "sf")
    done = results.done()
    todo: Iterable[dict[str, Any]] = (
        p
        for p in ctx.folder.read_jsonl("plans/validated.jsonl")
        if p.get("sf_op") and not p.get("sf_rejected") and p["key"] not in done
    )
    counts: Counter = Counter(skipped_already_done=len(done))
    try:
        for batch in chunked(todo, LOAD_CHUNK):
            results.append(_batch_rows(ctx, sf, ext, batch, counts, changes))
    except BudgetExhaustedError as exc:
        # Stop cleanly: written Tasks are recorded; the rest waits for the next run (the
        # watermark does not advance, so the window is read again).
        log.warning("load engagement: %s", exc)
        return {"counts": dict(counts), "budget_exhausted": str(exc)}
    log.info(
        "load engagement%s: %s sf_api_calls=%d",
        " (dry run: nothing written)" if ctx.dry_run else "",
        " ".join(f"{k}={v}" for k, v in sorted(counts.items())),
        sf.api_calls,
    )
    return {"counts": dict(counts)}


def load(rt: TaskRuntime) -> dict[str, Any]:
    changes = ChangeLog(rt.store, rt.run, SALESFORCE, prefix="sf", key="key")
    return load_tasks(rt.run, rt.salesforce, changes)
