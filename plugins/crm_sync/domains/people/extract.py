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

if TYPE_CHECKING:
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


def extract_salesforce(rt: TaskRuntime) -> dict[str, Any]:
    """Changed Leads and Contacts (deleted ones included) -> ``extract/sf_<Object>.jsonl``,
    streamed page by page to the run folder."""
    ctx, sf = rt.run, rt.salesforce
    counts: dict[str, int] = {}
    retry = retry_ids(rt, SF_TO_LG)
    for sobject, spec in rt.specs.items():
        fields = sf_fields(spec)
        if ctx.full_resync:
            records: Iterable[dict[str, Any]] = sf.query(
                f"SELECT {', '.join(fields)} FROM {sobject}"
            )
        else:
            records = sf.query_window(
                sobject, fields, ctx.window_start, ctx.window_end, include_deleted=True
            )
        mine = [i for i in retry if is_of(i, sobject)]

        def by_id(ids: list[str], sobject: str = sobject, fields: list[str] = fields) -> Any:
            return sf.query_by_values(sobject, fields, "Id", ids, include_deleted=True)

        counts[sobject] = ctx.folder.write_jsonl(
            f"extract/sf_{sobject}.jsonl", with_retries(records, "Id", mine, by_id)
        )
        counts[f"{sobject}_retried"] = len(mine)
    log.info(
        "extract salesforce: %s in [%s, %s) (retried from quarantine: %d) api_calls=%d",
        ", ".join(f"{k}={v}" for k, v in counts.items() if not k.endswith("_retried")),
        ctx.window_start.isoformat(),
        ctx.window_end.isoformat(),
        sum(v for k, v in counts.items() if k.endswith("_retried")),
        sf.api_calls,
    )
    return {"extracted": counts}


def extract_leadgen(rt: TaskRuntime) -> dict[str, Any]:
    """Changed leads -> ``extract/lg.jsonl``, streamed. ``getLeadsDateRange`` on the update
    timestamp also returns leads created and never updated (reference §8.6), and hides inactive
    leads, as the API does."""
    ctx, lg = rt.run, rt.leadgen
    if ctx.full_resync:
        records: Iterable[dict[str, Any]] = lg.get_leads(where={})
    else:
        # The API's date range is inclusive at both ends; our window is [start, end).
        end = ctx.window_end - timedelta(seconds=1)
        records = lg.get_leads_date_range(ctx.window_start, end, timestamp="update")
    retry = retry_ids(rt, LG_TO_SF)
    n = ctx.folder.write_jsonl(
        "extract/lg.jsonl", with_retries(records, "id", retry, lg.get_leads_by_ids)
    )
    log.info(
        "extract leadgen: leads=%d in [%s, %s) (retried from quarantine: %d) api_calls=%d",
        n,
        ctx.window_start.isoformat(),
        ctx.window_end.isoformat(),
        len(retry),
        lg.api_calls,
    )
    return {"extracted": {"lead": n, "lead_retried": len(retry)}}
