"""Extract: the records that changed in the window, from both systems, into the run folder.

Salesforce: ``queryAll`` on ``SystemModstamp`` (inclusive lower bound), so deletions, merges and
conversions in the window are seen too. Lead Gen & CRM: ``getLeadsDateRange`` on the update
timestamp. Both add back the records quarantined earlier, so a fixed record is retried
without waiting for it to change again.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from crm_sync.mapping.models import ObjectSpec
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.files import write_jsonl
from crm_sync.pipeline.transform import SF_LEAD_SYSTEM_FIELDS, SF_PERSON_SYSTEM_FIELDS

log = logging.getLogger(__name__)

SF_KEY_PREFIX = {
    "Lead": "00Q",
    "Contact": "003",
    "Account": "001",
    "Opportunity": "006",
    "OpportunityContactRole": "00K",
    "Task": "00T",
}


def sf_fields(spec: ObjectSpec) -> list[str]:
    """Every Salesforce field the sync reads for ``spec``'s object, system fields first."""
    system = SF_LEAD_SYSTEM_FIELDS if spec.salesforce_object == "Lead" else SF_PERSON_SYSTEM_FIELDS
    fields: list[str] = list(system)
    for row in spec.fields:
        if row.salesforce not in fields:
            fields.append(row.salesforce)
    if spec.record_link:
        for name in (spec.record_link.id_field, spec.record_link.url_field):
            if name and name not in fields:
                fields.append(name)
    return fields


def _unique(records: Iterable[dict[str, Any]], key: str) -> Iterator[dict[str, Any]]:
    """Each record once (the first time its id is seen), streamed: only ids stay in memory."""
    seen: set[str] = set()
    for r in records:
        k = str(r[key])
        if k not in seen:
            seen.add(k)
            yield r


def extract_salesforce_people(
    ctx: RunContext, sf: Any, store: Any, specs: dict[str, ObjectSpec]
) -> dict[str, Any]:
    """Changed Leads and Contacts (deleted ones included) -> ``extract/sf_<Object>.jsonl``,
    streamed page by page to the run folder."""
    counts: dict[str, int] = {}
    retry_ids = [
        k[3:]
        for k in store.retry_keys(ctx.dag_id, "sf_to_lg", include_parked=ctx.retry_quarantined)
    ]
    for sobject, spec in specs.items():
        fields = sf_fields(spec)
        if ctx.full_resync:
            records: Iterable[dict[str, Any]] = sf.query(
                f"SELECT {', '.join(fields)} FROM {sobject}"
            )
        else:
            records = sf.query_window(
                sobject, fields, ctx.window_start, ctx.window_end, include_deleted=True
            )
        mine = [i for i in retry_ids if i.startswith(SF_KEY_PREFIX[sobject])]
        if mine:
            records = itertools.chain(
                records, sf.query_by_values(sobject, fields, "Id", mine, include_deleted=True)
            )
        counts[sobject] = write_jsonl(
            ctx.path("extract", f"sf_{sobject}.jsonl"), _unique(records, "Id")
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
    return {"extracted": counts, "sf_api_calls": sf.api_calls}


def extract_leadgen_people(ctx: RunContext, lg: Any, store: Any) -> dict[str, Any]:
    """Changed leads -> ``extract/lg.jsonl``, streamed. ``getLeadsDateRange`` on the update
    timestamp also returns leads created and never updated (reference §8.6), and hides inactive
    leads, as the API does."""
    if ctx.full_resync:
        records: Iterable[dict[str, Any]] = lg.get_leads(where={})
    else:
        # The API's date range is inclusive at both ends; our window is [start, end).
        end = ctx.window_end - timedelta(seconds=1)
        records = lg.get_leads_date_range(ctx.window_start, end, timestamp="update")
    retry_ids = [
        k[3:]
        for k in store.retry_keys(ctx.dag_id, "lg_to_sf", include_parked=ctx.retry_quarantined)
    ]
    if retry_ids:
        records = itertools.chain(records, lg.get_leads_by_ids(retry_ids))
    n = write_jsonl(ctx.path("extract", "lg.jsonl"), _unique(records, "id"))
    log.info(
        "extract leadgen: leads=%d in [%s, %s) (retried from quarantine: %d) api_calls=%d",
        n,
        ctx.window_start.isoformat(),
        ctx.window_end.isoformat(),
        len(retry_ids),
        lg.api_calls,
    )
    return {"extracted": {"lead": n, "lead_retried": len(retry_ids)}, "lg_api_calls": lg.api_calls}
