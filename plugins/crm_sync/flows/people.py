"""The ``sync_leads_contacts`` flow: one function per DAG task.

Each function takes the Airflow task context (a mapping; nothing here imports Airflow's
scheduler) or the small dict the previous task returned, builds its own clients from the
connections, runs one pipeline stage and returns a small JSON-able summary for XCom.
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
)
from crm_sync.pipeline.context import RunContext

log = logging.getLogger(__name__)

DOMAIN = "person"
STREAM = "people"
SPEC_NAMES = {"Lead": "leads", "Contact": "contacts"}


def _specs() -> dict[str, Any]:
    from crm_sync.pipeline.prepare import load_specs

    return load_specs(SPEC_NAMES)


@guarded
def prepare(context: Any) -> dict[str, Any]:
    from crm_sync.pipeline.prepare import prepare as prepare_stage

    store = open_clients.store(context)
    ctx = build_run_context(context, store=store, domain=DOMAIN, stream=STREAM)
    sf, lg = open_clients.salesforce(ctx), open_clients.leadgen(ctx)
    summary = prepare_stage(ctx, spec_names=SPEC_NAMES, sf=sf, lg=lg, store=store)
    return {"ctx": ctx.to_dict(), "summary": summary}


@guarded
def extract_leadgen(prepared: dict[str, Any]) -> dict[str, Any]:
    from crm_sync.pipeline.extract import extract_leadgen_people

    ctx = load_ctx(prepared)
    return extract_leadgen_people(ctx, open_clients.leadgen(ctx), open_clients.store_for(ctx))


@guarded
def extract_salesforce(prepared: dict[str, Any]) -> dict[str, Any]:
    from crm_sync.pipeline.extract import extract_salesforce_people

    ctx = load_ctx(prepared)
    return extract_salesforce_people(
        ctx, open_clients.salesforce(ctx), open_clients.store_for(ctx), _specs()
    )


@guarded
def match(prepared: dict[str, Any], *_upstream: Any) -> dict[str, Any]:
    from crm_sync.pipeline.match import match_people

    ctx = load_ctx(prepared)
    return match_people(
        ctx,
        open_clients.salesforce(ctx),
        open_clients.leadgen(ctx),
        open_clients.store_for(ctx),
        _specs(),
    )


def _reconcile_context(ctx: RunContext) -> Any:
    from crm_sync.pipeline.prepare import load_run_facts
    from crm_sync.pipeline.reconcile import ReconcileContext
    from crm_sync.runtime import app_base_url

    schema, owners = load_run_facts(ctx)
    return ReconcileContext(
        specs=_specs(),
        schema=schema,
        owners=owners,
        app_base_url=app_base_url(ctx.conn_ids["leadgen"]),
    )


@guarded
def reconcile(prepared: dict[str, Any], *_upstream: Any) -> dict[str, Any]:
    from crm_sync.pipeline.reconcile import reconcile_stage

    ctx = load_ctx(prepared)
    return reconcile_stage(ctx, _reconcile_context(ctx))


@guarded
def validate(prepared: dict[str, Any], *_upstream: Any) -> dict[str, Any]:
    from crm_sync.pipeline.prepare import load_run_facts
    from crm_sync.pipeline.validate import validate_stage

    ctx = load_ctx(prepared)
    schema, _ = load_run_facts(ctx)
    return validate_stage(ctx, _specs(), schema)


@guarded
def load_leadgen(prepared: dict[str, Any], *_upstream: Any) -> dict[str, Any]:
    from crm_sync.pipeline.load import load_leadgen_stage

    ctx = load_ctx(prepared)
    return load_leadgen_stage(ctx, open_clients.leadgen(ctx))


@guarded
def load_salesforce(prepared: dict[str, Any], *_upstream: Any) -> dict[str, Any]:
    from crm_sync.pipeline.load import load_salesforce_stage

    ctx = load_ctx(prepared)
    return load_salesforce_stage(
        ctx, open_clients.salesforce(ctx), _specs(), _reconcile_context(ctx)
    )


@guarded
def record(prepared: dict[str, Any], summaries: dict[str, Any]) -> dict[str, Any]:
    from crm_sync.pipeline.record import record_people

    ctx: RunContext = load_ctx(prepared)
    store = open_clients.store_for(ctx)
    summaries = {"prepare": prepared.get("summary", {}), **summaries}
    report = record_people(ctx, store, summaries)
    return finish(ctx, store, report, stream=STREAM, summaries=summaries)
