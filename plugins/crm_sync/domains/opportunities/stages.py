"""Deal stages: ``opportunity_stages.yaml`` maps each Salesforce ``StageName`` to a deal stage
name, resolved against ``getDealStages`` once per run (names compare case- and
whitespace-insensitively). An unmapped stage never gets a default: the opportunity fails the
quality gate and is quarantined with the stage it is in. Missing deal stages are created when the
map allows it (not in a dry run).

Also the DAG's prepare stage: specs (a push row is refused), stage map, live schemas, owners.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from crm_sync.domains.opportunities.rules import SPEC_NAMES, STAGE_SPEC_NAME, lg_id
from crm_sync.errors import AmbiguousWriteError, ConfigError
from crm_sync.mapping.loader import display_path, load_stage_spec, spec_path
from crm_sync.mapping.models import StageSpec
from crm_sync.pipeline.context import RunContext

if TYPE_CHECKING:
    from collections.abc import Iterable

    from crm_sync.clients.leadgen import LeadGenClient
    from crm_sync.tasks import TaskRuntime

log = logging.getLogger(__name__)


@dataclass
class StageResolution:
    """The stage map resolved against the live deal stages.

    ``ids``: Salesforce StageName -> deal stage id. ``to_create``: deal stage names the map needs
    and Lead Gen & CRM lacks (only when the spec allows creating them). ``problems``: rows that
    cannot work (fatal). ``warnings``: stages that will quarantine opportunities, names that are
    not Salesforce stages.
    """

    ids: dict[str, str] = field(default_factory=dict)
    to_create: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    created: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageResolution:
        return cls(**d)


def _stage_key(name: str) -> str:
    return " ".join(str(name).split()).casefold()


def resolve_stages(
    spec: StageSpec, deal_stages: Iterable[dict[str, Any]], sf_stages: Iterable[str]
) -> StageResolution:
    """Resolve each mapped Salesforce stage to a deal stage id (names compare case- and
    whitespace-insensitively, as a person reading the pipeline would).

    ``sf_stages`` are the active StageName picklist values (from describe); used only to warn
    about stages nobody mapped and about map keys that are not Salesforce stages.
    """
    res = StageResolution()
    by_name: dict[str, str] = {}
    for ds in deal_stages:
        key = _stage_key(ds.get("dealStageName") or "")
        if key and key not in by_name:
            by_name[key] = lg_id(ds.get("id"))
    for sf_stage, deal_name in spec.stages.items():
        found = by_name.get(_stage_key(deal_name))
        if found:
            res.ids[sf_stage] = found
        elif spec.create_missing_deal_stages:
            if _stage_key(deal_name) not in {_stage_key(n) for n in res.to_create}:
                res.to_create.append(deal_name)
        else:
            res.problems.append(
                f"stages.{sf_stage}: deal stage {deal_name!r} does not exist in Lead Gen & CRM; "
                "create it there, map the stage to an existing one, or set "
                "create_missing_deal_stages: true"
            )
    sf_list = [s for s in sf_stages if s]
    if sf_list:
        for sf_stage in sf_list:
            if sf_stage not in spec.stages:
                res.warnings.append(
                    f"Salesforce stage {sf_stage!r} is not mapped: its opportunities are quarantined"
                )
        for sf_stage in spec.stages:
            if sf_stage not in sf_list:
                res.warnings.append(
                    f"stages.{sf_stage}: not an active Salesforce StageName value (typo?)"
                )
    return res


def stage_ids_with(res: StageResolution, spec: StageSpec, *, placeholder: bool) -> dict[str, str]:
    """StageName -> deal stage id once the missing deal stages exist (``created``); with
    ``placeholder`` (dry run) stages that would be created get a ``new:<name>`` stand-in."""
    ids = dict(res.ids)
    created = {_stage_key(k): v for k, v in res.created.items()}
    for sf_stage, deal_name in spec.stages.items():
        if sf_stage in ids:
            continue
        got = created.get(_stage_key(deal_name))
        if got:
            ids[sf_stage] = got
        elif placeholder and deal_name in res.to_create:
            ids[sf_stage] = f"new:{deal_name}"
    return ids


def load_stage_map() -> StageSpec:
    return load_stage_spec(spec_path(STAGE_SPEC_NAME))


def _existing_stages(lg: LeadGenClient, names: list[str]) -> dict[str, str]:
    by_key = {
        _stage_key(d.get("dealStageName") or ""): lg_id(d.get("id")) for d in lg.get_deal_stages()
    }
    return {n: by_key[_stage_key(n)] for n in names if by_key.get(_stage_key(n))}


def _create_deal_stages(lg: LeadGenClient, resolution: StageResolution) -> None:
    """Create the missing deal stages. A create whose answer was lost (the stages may exist) is
    not sent again blindly: the stages are read back by name and only the missing ones created."""
    todo = list(resolution.to_create)
    for attempt in (1, 2):
        try:
            results = lg.create_deal_stages([{"dealStageName": n} for n in todo])
        except AmbiguousWriteError:
            if attempt == 2:
                raise
            found = _existing_stages(lg, todo)
            resolution.created.update(found)
            todo = [n for n in todo if n not in found]
            if not todo:
                return
            continue
        failed = []
        for name, res in zip(todo, results, strict=True):
            if res.success and res.id:
                resolution.created[name] = str(res.id)
            else:
                failed.append(f"{name}: {res.error_message}")
        if failed:
            raise ConfigError(
                "could not create the deal stages the stage map needs: " + "; ".join(failed)
            )
        return


def prepare_stages(
    ctx: RunContext, spec: StageSpec, lg: LeadGenClient, resolution: StageResolution
) -> dict[str, Any]:
    """Create the deal stages the map needs (not in a dry run) and save ``stages.json``."""
    if resolution.to_create and not ctx.dry_run:
        _create_deal_stages(lg, resolution)
    ids = stage_ids_with(resolution, spec, placeholder=ctx.dry_run)
    ctx.folder.write_json("stages.json", {"ids": ids, "resolution": resolution.to_dict()})
    for w in resolution.warnings:
        log.warning("stage map: %s", w)
    log.info(
        "prepare stages: mapped=%d deal stages created=%d would_create=%d warnings=%d",
        len(ids),
        len(resolution.created),
        len(resolution.to_create) if ctx.dry_run else 0,
        len(resolution.warnings),
    )
    return {
        "stages_mapped": len(ids),
        "deal_stages_created": len(resolution.created),
        "deal_stages_would_create": len(resolution.to_create) if ctx.dry_run else 0,
        "stage_warnings": resolution.warnings,
    }


def check_stage_resolution(res: StageResolution) -> None:
    if res.problems:
        source = display_path(spec_path(STAGE_SPEC_NAME))
        raise ConfigError(
            "stage map does not match Lead Gen & CRM (nothing was written):\n"
            + "\n".join(f"{source}: {p}" for p in res.problems)
        )


def stage_ids(ctx: RunContext) -> dict[str, str]:
    return dict((ctx.folder.read_json("stages.json", {}) or {}).get("ids", {}))


def prepare(rt: TaskRuntime) -> dict[str, Any]:
    """Window; both mapping specs and the stage map loaded (a push row is refused here) and
    checked against the live schemas and deal stages; owners; missing deal stages created when
    the map allows it. Nothing is read from or written to records before this passes."""
    from crm_sync.pipeline.prepare import prepare as prepare_run
    from crm_sync.pipeline.prepare import schema_cache

    _ = rt.specs  # spec errors first, before any API call
    stage_spec = load_stage_map()
    sf, lg = rt.salesforce, rt.leadgen
    deal_stages = lg.get_deal_stages()

    def resolve() -> StageResolution:
        stage_field = sf.field_map("Opportunity").get("StageName") or {}
        sf_stages = [
            p["value"] for p in stage_field.get("picklistValues") or [] if p.get("active", True)
        ]
        resolution = resolve_stages(stage_spec, deal_stages, sf_stages)
        check_stage_resolution(resolution)
        return resolution

    # The Opportunity describe may come from the schema cache (a stage added in Setup since it
    # was stored: the check fails once, and the stages are read again from Salesforce).
    resolution = schema_cache(rt.store, sf, lg).checked(sf, lg, resolve)
    summary = prepare_run(
        rt.run,
        spec_names=SPEC_NAMES,
        sf=sf,
        lg=lg,
        store=rt.store,
        extra_sf_objects=("OpportunityContactRole",),
    )
    summary.update(prepare_stages(rt.run, stage_spec, lg, resolution))
    return summary
