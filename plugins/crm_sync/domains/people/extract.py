"""Extract: the leads, Leads and Contacts that changed in the window, into the run folder.

Salesforce: ``queryAll`` on ``SystemModstamp`` (inclusive lower bound), so deletions, merges and
conversions in the window are seen too. Lead Gen & CRM: ``getLeadsDateRange`` on the update
timestamp. Both add back the records quarantined earlier, so a fixed record is retried
without waiting for it to change again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from crm_sync.clients.sf_ids import is_of
from crm_sync.definitions import LG_TO_SF, SF_TO_LG
from crm_sync.domains.people.rules import sf_fields
from crm_sync.mapping.scope import compile_soql
from crm_sync.pipeline.record_ids import RecordIds
from crm_sync.pipeline.window import TARGETED

if TYPE_CHECKING:
    from crm_sync.mapping.models import ObjectSpec
    from crm_sync.tasks import TaskRuntime

log = logging.getLogger(__name__)


def with_retries(
    records: Iterable[dict[str, Any]],
    key: str,
    retry: Iterable[str],
    fetch: Callable[[list[str]], Iterable[dict[str, Any]]],
) -> Iterator[dict[str, Any]]:
    """The window's records, then the quarantined ones (``retry`` ids) the window did not return
    already, read with ``fetch``. Each record once: the readers never return a record twice
    (query locators on Salesforce; ``id_walk`` / ``range_scan`` on Lead Gen & CRM), so only
    the retry ids stay in memory -- the quarantine's size, not the window's."""
    pending = dict.fromkeys(str(i) for i in retry)
    for r in records:
        pending.pop(str(r[key]), None)
        yield r
    if pending:
        yield from fetch(list(pending))


def retry_ids(rt: TaskRuntime, direction: str) -> list[str]:
    """Source ids of this DAG's quarantine rows in ``direction`` (keys ``lg:<id>``/``sf:<id>``)."""
    ctx = rt.run
    keys = rt.store.retry_keys(ctx.dag_id, direction, include_parked=ctx.retry_quarantined)
    return [k[3:] for k in keys]


def targets(rt: TaskRuntime) -> RecordIds | None:
    """The records a targeted run (``record_ids``) syncs; None for every other run."""
    return RecordIds.from_dict(rt.run.record_ids) if rt.run.run_kind == TARGETED else None


def _sf_changed(rt: TaskRuntime, sobject: str, spec: ObjectSpec, fields: list[str]) -> Any:
    """The records of a window (deleted ones too), or of the whole object on a full resync --
    only those inside the spec's scope, filtered by the query itself. A window reads every
    changed record, so the match can count the linked ones that left scope."""
    ctx, sf = rt.run, rt.salesforce
    if ctx.full_resync:
        where = compile_soql(spec.scope, sobject, rt.schema)
        return sf.query(
            f"SELECT {', '.join(fields)} FROM {sobject}" + (f" WHERE {where}" if where else "")
        )
    return sf.query_window(sobject, fields, ctx.window_start, ctx.window_end, include_deleted=True)


def extract_salesforce(rt: TaskRuntime) -> dict[str, Any]:
    """Changed Leads and Contacts (deleted ones included) -> ``extract/sf_<Object>.jsonl``,
    streamed page by page to the run folder; on a targeted run, exactly the chosen records
    (by id, deleted ones too, and by email)."""
    ctx, sf = rt.run, rt.salesforce
    chosen = targets(rt)
    counts: dict[str, int] = {}
    retry = retry_ids(rt, SF_TO_LG) if chosen is None else []
    for sobject, spec in rt.specs.items():
        fields = sf_fields(spec)

        def by_id(ids: list[str], sobject: str = sobject, fields: list[str] = fields) -> Any:
            return sf.query_by_values(sobject, fields, "Id", ids, include_deleted=True)

        if chosen is None:
            records: Iterable[dict[str, Any]] = _sf_changed(rt, sobject, spec, fields)
            mine = [i for i in retry if is_of(i, sobject)]
        else:
            emails = list(chosen.emails)
            records = sf.query_by_values(sobject, fields, "Email", emails) if emails else []
            mine = [i for i in chosen.sf_ids if is_of(i, sobject)]
        counts[sobject] = ctx.folder.write_jsonl(
            f"extract/sf_{sobject}.jsonl", with_retries(records, "Id", mine, by_id)
        )
        counts[f"{sobject}_{'retried' if chosen is None else 'asked_by_id'}"] = len(mine)
    log.info(
        "extract salesforce: %s %s api_calls=%d",
        ", ".join(f"{k}={v}" for k, v in counts.items()),
        _what(rt, chosen),
        sf.api_calls,
    )
    return {"extracted": counts}


def extract_leadgen(rt: TaskRuntime) -> dict[str, Any]:
    """Changed leads -> ``extract/lg.jsonl``, streamed. ``getLeadsDateRange`` on the update
    timestamp also returns leads created and never updated (reference §8.6), and hides inactive
    leads, as the API does. On a targeted run, exactly the chosen leads (by id and email)."""
    ctx, lg = rt.run, rt.leadgen
    chosen = targets(rt)
    if chosen is not None:
        emails = list(chosen.emails)
        records: Iterable[dict[str, Any]] = lg.get_leads_by_emails(emails) if emails else []
        again, key = list(chosen.lg_ids), "lead_asked_by_id"
    else:
        if ctx.full_resync:
            records = lg.get_leads(where={})
        else:
            # The API's date range is inclusive at both ends; our window is [start, end).
            end = ctx.window_end - timedelta(seconds=1)
            records = lg.get_leads_date_range(ctx.window_start, end, timestamp="update")
        again, key = retry_ids(rt, LG_TO_SF), "lead_retried"
    n = ctx.folder.write_jsonl(
        "extract/lg.jsonl", with_retries(records, "id", again, lg.get_leads_by_ids)
    )
    log.info(
        "extract leadgen: leads=%d %s=%d %s api_calls=%d",
        n,
        key,
        len(again),
        _what(rt, chosen),
        lg.api_calls,
    )
    return {"extracted": {"lead": n, key: len(again)}}


def _what(rt: TaskRuntime, chosen: RecordIds | None) -> str:
    ctx = rt.run
    if chosen is not None:
        return f"(targeted run: {len(chosen)} record ids given, window ignored)"
    return f"in [{ctx.window_start.isoformat()}, {ctx.window_end.isoformat()})"
