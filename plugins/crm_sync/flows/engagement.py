"""The ``sync_engagement_activities`` flow: one function per DAG task.

Like :mod:`crm_sync.flows.people`: each function takes the Airflow task context (a mapping) or
the small dict the previous task returned, builds its own clients from the connections, runs
one stage of :mod:`crm_sync.domains.engagement` and returns a JSON-able summary for XCom.
"""

from __future__ import annotations

import logging
from typing import Any

from crm_sync.flows.common import (
    build_run_context,
    finish,
    guarded,
    load_ctx,
    open_clients,
    people_window_synced,
)

log = logging.getLogger(__name__)

DOMAIN = "engagement"
STREAM = "engagement"


def people_ready(context: Any) -> bool:
    """Sensor condition: sync_leads_contacts has loaded this run's window, so every lead that
    could be linked is linked before events are matched to Salesforce records."""
    return people_window_synced(context)


@guarded
def prepare(context: Any) -> dict[str, Any]:
    from crm_sync.domains.engagement import prepare_stage

    store = open_clients.store(context)
    ctx = build_run_context(context, store=store, domain=DOMAIN, stream=STREAM)
    sf, lg = open_clients.salesforce(ctx), open_clients.leadgen(ctx)
    summary = prepare_stage(ctx, sf=sf, lg=lg, store=store)
    return {"ctx": ctx.to_dict(), "summary": summary}


@guarded
def extract(prepared: dict[str, Any]) -> dict[str, Any]:
    from crm_sync.domains.engagement import extract_stage

    ctx = load_ctx(prepared)
    return extract_stage(ctx, open_clients.leadgen(ctx), open_clients.store_for(ctx))


@guarded
def plan(prepared: dict[str, Any], *_upstream: Any) -> dict[str, Any]:
    from crm_sync.domains.engagement import plan_stage

    ctx = load_ctx(prepared)
    return plan_stage(ctx, open_clients.salesforce(ctx), open_clients.store_for(ctx))


@guarded
def validate(prepared: dict[str, Any], *_upstream: Any) -> dict[str, Any]:
    from crm_sync.domains.engagement import validate_stage

    return validate_stage(load_ctx(prepared))


@guarded
def load(prepared: dict[str, Any], *_upstream: Any) -> dict[str, Any]:
    from crm_sync.domains.engagement import load_stage

    ctx = load_ctx(prepared)
    return load_stage(ctx, open_clients.salesforce(ctx))


@guarded
def record(prepared: dict[str, Any], summaries: dict[str, Any]) -> dict[str, Any]:
    from crm_sync.domains.engagement import record_stage

    ctx = load_ctx(prepared)
    store = open_clients.store_for(ctx)
    summaries = {"prepare": prepared.get("summary", {}), **summaries}
    report = record_stage(ctx, store, summaries)
    return finish(ctx, store, report, stream=STREAM, summaries=summaries)
