"""The ``sync_opportunities`` flow: one function per DAG task.

Like :mod:`crm_sync.flows.people`, each function takes the Airflow task context (a mapping) or
the small dict the previous task returned, builds its own clients from the connections, runs one
stage of :mod:`crm_sync.domains.opportunities` and returns a small JSON-able summary for XCom.
Configuration problems (a spec, the stage map) raise :class:`~crm_sync.errors.FatalError`, which
``guarded`` turns into a failure without retries.
"""

from __future__ import annotations

import logging
from typing import Any

from crm_sync.flows.common import build_run_context, finish, guarded, load_ctx, open_clients
from crm_sync.pipeline.context import RunContext

log = logging.getLogger(__name__)

DOMAIN = "opportunity"
STREAM = "opportunities"


def _specs() -> dict[str, Any]:
    from crm_sync.domains.opportunities import SPEC_NAMES
    from crm_sync.pipeline.prepare import load_specs

    return load_specs(SPEC_NAMES)


@guarded
def prepare(context: Any) -> dict[str, Any]:
    """Window; both mapping specs and the stage map loaded (a push row is refused here) and
    checked against the live schemas and deal stages; owners; missing deal stages created when
    the map allows it. Nothing is read from or written to records before this passes."""
    from crm_sync.domains import opportunities as opp
    from crm_sync.pipeline.prepare import prepare as prepare_stage

    _specs()  # spec errors first, before any API call
    stage_spec = opp.load_stage_map()
    store = open_clients.store(context)
    ctx = build_run_context(context, store=store, domain=DOMAIN, stream=STREAM)
    sf, lg = open_clients.salesforce(ctx), open_clients.leadgen(ctx)
    stage_field = sf.field_map("Opportunity").get("StageName") or {}
    sf_stages = [
        p["value"] for p in stage_field.get("picklistValues") or [] if p.get("active", True)
    ]
    resolution = opp.resolve_stages(stage_spec, lg.get_deal_stages(), sf_stages)
    opp.check_stage_resolution(resolution)
    summary = prepare_stage(
        ctx,
        spec_names=opp.SPEC_NAMES,
        sf=sf,
        lg=lg,
        store=store,
        extra_sf_objects=("OpportunityContactRole",),
    )
    summary.update(opp.prepare_stages(ctx, stage_spec, sf, lg, resolution))
    summary.update(sf_api_calls=sf.api_calls, lg_api_calls=lg.api_calls)
    return {"ctx": ctx.to_dict(), "summary": summary}


@guarded
def extract(prepared: dict[str, Any]) -> dict[str, Any]:
    from crm_sync.domains.opportunities import extract_stage

    ctx = load_ctx(prepared)
    return extract_stage(ctx, open_clients.salesforce(ctx), open_clients.store_for(ctx), _specs())


@guarded
def match(prepared: dict[str, Any], *_upstream: Any) -> dict[str, Any]:
    from crm_sync.domains.opportunities import match_stage

    ctx = load_ctx(prepared)
    return match_stage(ctx, open_clients.leadgen(ctx), open_clients.store_for(ctx))


def _reconcile_context(ctx: RunContext) -> Any:
    from crm_sync.pipeline.prepare import load_run_facts
    from crm_sync.pipeline.reconcile import ReconcileContext

    schema, owners = load_run_facts(ctx)
    return ReconcileContext(specs=_specs(), schema=schema, owners=owners)


@guarded
def reconcile(prepared: dict[str, Any], *_upstream: Any) -> dict[str, Any]:
    from crm_sync.domains.opportunities import reconcile_stage

    ctx = load_ctx(prepared)
    return reconcile_stage(ctx, _reconcile_context(ctx))


@guarded
def validate(prepared: dict[str, Any], *_upstream: Any) -> dict[str, Any]:
    from crm_sync.domains.opportunities import validate_stage
    from crm_sync.pipeline.prepare import load_run_facts

    ctx = load_ctx(prepared)
    schema, _ = load_run_facts(ctx)
    return validate_stage(ctx, _specs(), schema)


@guarded
def load_leadgen(prepared: dict[str, Any], *_upstream: Any) -> dict[str, Any]:
    from crm_sync.domains.opportunities import load_stage

    ctx = load_ctx(prepared)
    return load_stage(ctx, open_clients.leadgen(ctx), open_clients.store_for(ctx))


@guarded
def record(prepared: dict[str, Any], summaries: dict[str, Any]) -> dict[str, Any]:
    from crm_sync.domains.opportunities import record_stage

    ctx = load_ctx(prepared)
    store = open_clients.store_for(ctx)
    summaries = {"prepare": prepared.get("summary", {}), **summaries}
    report = record_stage(ctx, store, summaries)
    return finish(ctx, store, report, stream=STREAM, summaries=summaries)
