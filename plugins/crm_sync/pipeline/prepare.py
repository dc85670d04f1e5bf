"""Prepare: the window, the specs checked against the live schemas, the owner map.

Runs before any read of records and any write. Everything that is configuration — an invalid
spec, a field that does not exist or cannot be written, a missing connection, bad credentials —
fails here, at once, with a message saying what to fix.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from crm_sync.clients.schema_cache import SchemaCache
from crm_sync.errors import ConfigError
from crm_sync.mapping.loader import display_path, load_object_spec, load_owner_spec, spec_path
from crm_sync.mapping.models import ObjectSpec
from crm_sync.mapping.owners import OwnerMap, build_owner_map
from crm_sync.mapping.schema import LiveSchema, check_spec_against_schema
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.record_ids import parse_record_ids
from crm_sync.pipeline.scope import check_scopes
from crm_sync.pipeline.window import compute_window, covers_window, run_kind

if TYPE_CHECKING:
    from crm_sync.clients.leadgen import LeadGenClient
    from crm_sync.clients.salesforce import SalesforceClient
    from crm_sync.state.store import SyncStore


log = logging.getLogger(__name__)


def build_context(
    *,
    dag_id: str,
    run_id: str,
    domain: str,
    interval_start: datetime | None,
    interval_end: datetime | None,
    run_after: datetime,
    run_type: str,
    has_logical_date: bool,
    params: dict[str, Any],
    store: SyncStore,
    stream: str,
    conn_ids: dict[str, str],
) -> RunContext:
    """Turn Airflow's run facts and params into a :class:`RunContext` with its sync window."""
    lookback = timedelta(minutes=int(params.get("lookback_minutes", 5)))
    targets = parse_record_ids(params.get("record_ids"))
    if targets and params.get("full_resync"):
        raise ConfigError("record_ids syncs those records only, full_resync every record: set one")
    # A full resync stopped by an API budget (an initial load larger than a day's allowance)
    # is continued by the DAG's next runs until one finishes: what it wrote is linked and
    # unchanged now, so each continuation writes only the rest. A targeted run is no resync.
    continued = not params.get("dry_run") and not targets and store.resync_unfinished(dag_id)
    full_resync = bool(params.get("full_resync", False)) or continued
    kind = run_kind(run_type, has_logical_date=has_logical_date, targeted=bool(targets))
    window = compute_window(
        kind=kind,
        interval_start=interval_start,
        interval_end=interval_end,
        run_after=run_after,
        lookback=lookback,
        watermark=store.get_watermark(dag_id, stream),
        full_resync=full_resync,
    )
    return RunContext(
        dag_id=dag_id,
        run_id=run_id,
        domain=domain,
        window_start=window.start,
        window_end=window.end,
        caught_up_from=window.caught_up_from,
        full_resync=full_resync,
        dry_run=bool(params.get("dry_run", False)),
        retry_quarantined=bool(params.get("retry_quarantined", False)),
        run_type=run_type,
        run_kind=kind,
        lookback_minutes=int(params.get("lookback_minutes", 5)),
        max_reject_rate=float(params.get("max_reject_rate", 0.05)),
        max_attempts=int(params.get("max_attempts", 5)),
        conn_ids=conn_ids,
        options={
            **{
                k: v
                for k, v in params.items()
                if k not in {"full_resync", "dry_run", "retry_quarantined", "record_ids"}
            },
            **({"resync_continued": True} if continued else {}),
        },
        record_ids=targets.to_dict() if targets else None,
    )


def schema_cache(store: SyncStore, sf: Any | None, lg: Any | None) -> SchemaCache:
    """The schemas cached by earlier runs, given to this run's clients (so their ``describe``
    and ``get_fields`` ask the APIs only for what is missing or stale). Call it before the
    first describe of a prepare; :func:`prepare` stores what the clients read."""
    from crm_sync.settings import schema_ttl

    cache = SchemaCache(store, schema_ttl())
    cache.prime(sf, lg)
    return cache


# A continued full resync starts only when this share of each day's budget is free: re-reading
# both systems costs calls, and a run that could only re-read and stop would waste them.
CONTINUE_SHARE = 0.5


def wait_for_allowance(ctx: RunContext, store: SyncStore) -> None:
    """Before a continued full resync reads anything: enough of both budgets must be free, else
    the run stops here (recorded as ``budget_exhausted``, no call spent) and a later run goes
    on when the rolling 24 h have freed calls."""
    from crm_sync.budget import current_budget, current_lg_budget
    from crm_sync.errors import BudgetExhaustedError

    for budget in (current_budget(store), current_lg_budget(store)):
        if budget.remaining < budget.cap * CONTINUE_SHARE:
            store.start_run(  # a full resync run, so the next run continues it too
                ctx.dag_id,
                ctx.run_id,
                window_start=ctx.window_start,
                window_end=ctx.window_end,
                dry_run=ctx.dry_run,
                full_resync=True,
            )
            raise BudgetExhaustedError(
                f"the full resync of {ctx.dag_id} goes on when half of the {budget.system} "
                f"budget is free ({budget.remaining:,} of {budget.cap:,} calls left in the "
                f"last 24 h, {budget.setting})"
            )
    log.warning("%s: continuing the full resync an API budget stopped", ctx.dag_id)


def load_specs(names: dict[str, str]) -> dict[str, ObjectSpec]:
    """``{"Account": "accounts"}`` -> ``{"Account": <spec of include/mappings/accounts.yaml>}``."""
    return {sobject: load_object_spec(spec_path(name)) for sobject, name in names.items()}


def read_live_schema(
    specs: dict[str, ObjectSpec],
    sf: SalesforceClient,
    lg: LeadGenClient,
    extra_objects: tuple[str, ...] = (),
) -> LiveSchema:
    schema = LiveSchema()
    for sobject in sorted({s.salesforce_object for s in specs.values()} | set(extra_objects)):
        schema.add_salesforce_describe(sobject, sf.describe(sobject))
    if specs:  # a DAG without Lead Gen & CRM object specs (engagement) needs no field list
        schema.add_leadgen_fields(lg.get_fields())
    return schema


def check_specs(specs: dict[str, ObjectSpec], schema: LiveSchema) -> None:
    """Raise one :class:`ConfigError` listing every row that cannot work against the live schemas."""
    problems: list[str] = []
    for _name, spec in sorted(specs.items()):
        source = display_path(spec_path(spec.kind))
        for path, msg in check_spec_against_schema(spec, schema, source=source):
            problems.append(f"{source}: {path}: {msg}")
    if problems:
        raise ConfigError(
            "mapping spec does not match the live schemas (nothing was written):\n"
            + "\n".join(problems)
        )


def resolve_owners(sf: SalesforceClient, lg: LeadGenClient) -> OwnerMap:
    spec = load_owner_spec(spec_path("owners"))
    sf_users = list(sf.query("SELECT Id, Username, Email, Name, IsActive FROM User"))
    lg_users = lg.get_user_profiles()
    owners = build_owner_map(spec, lg_users, sf_users)
    for problem in owners.problems:
        log.warning("owner mapping: %s", problem)
    return owners


def prepare(
    ctx: RunContext,
    *,
    spec_names: dict[str, str],
    sf: SalesforceClient,
    lg: LeadGenClient,
    store: SyncStore,
    extra_sf_objects: tuple[str, ...] = (),
    with_owners: bool = True,
) -> dict[str, Any]:
    """Check specs against live schemas, resolve owners, record the run start; save the facts
    (``schema.json``, ``owners.json``) in the run folder for the later stages."""
    # A new run (or a whole run cleared and started again) plans from scratch against the current
    # state of both systems; leftovers of an earlier attempt must not be mistaken for its results.
    # Retries of later tasks keep the folder: load skips what it already wrote.
    ctx.folder.clear()
    if ctx.options.get("resync_continued"):
        wait_for_allowance(ctx, store)
    specs = load_specs(spec_names)
    cache = schema_cache(store, sf, lg)

    def read_and_check() -> LiveSchema:
        schema = read_live_schema(specs, sf, lg, extra_sf_objects)
        check_specs(specs, schema)
        check_scopes(specs, schema, lg)  # lists and picklist values named by the scopes
        return schema

    schema = cache.checked(sf, lg, read_and_check)
    cache.keep(sf, lg)  # only a schema that passed the checks is reused
    owners = resolve_owners(sf, lg) if with_owners else OwnerMap()
    ctx.folder.write_json("schema.json", schema.to_dict())
    ctx.folder.write_json("owners.json", owners.to_dict())
    ctx.folder.write_json("context.json", ctx.to_dict())
    covers = covers_window(ctx.run_kind)  # a targeted run's window is not synced time
    store.start_run(
        ctx.dag_id,
        ctx.run_id,
        window_start=ctx.window_start if covers else None,
        window_end=ctx.window_end if covers else None,
        dry_run=ctx.dry_run,
        full_resync=ctx.full_resync,
    )
    log.info(
        "prepare: window [%s, %s) run_kind=%s dry_run=%s full_resync=%s specs=%s owners mapped=%d problems=%d",
        ctx.window_start.isoformat(),
        ctx.window_end.isoformat(),
        ctx.run_kind,
        ctx.dry_run,
        ctx.full_resync,
        ",".join(sorted(spec_names.values())),
        len(owners.lg_to_sf),
        len(owners.problems),
    )
    return {
        "window_start": ctx.window_start.isoformat(),
        "window_end": ctx.window_end.isoformat(),
        "caught_up_from": ctx.caught_up_from.isoformat() if ctx.caught_up_from else None,
        "owners_mapped": len(owners.lg_to_sf),
        "owner_problems": owners.problems,
        "schema_cache": cache.used,
    }


def load_run_facts(ctx: RunContext) -> tuple[LiveSchema, OwnerMap]:
    schema = LiveSchema.from_dict(ctx.folder.read_json("schema.json", {}))
    owners = OwnerMap.from_dict(ctx.folder.read_json("owners.json", {}) or {})
    return schema, owners
