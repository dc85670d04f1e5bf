"""Opportunities domain: Salesforce Opportunities, their Accounts, stages and contact roles ->
Lead Gen & CRM opportunities, accounts and opportunity leads ("memberships"). One way only.

What is specific to this domain (the spine's shared stages do the rest):

* **Stages**: ``opportunity_stages.yaml`` maps each Salesforce ``StageName`` to a deal stage
  name, resolved against ``getDealStages`` once per run. An unmapped stage never gets a default:
  the opportunity fails the quality gate and is quarantined with the stage it is in.
* **References**: ``dealStageID``, ``accountID`` and ``primaryLeadID`` are not spec rows; they
  are Lead Gen & CRM ids resolved from the stage map and from the state store's links (accounts
  pulled by this DAG, persons linked by ``sync_leads_contacts``). Their last synced values live in
  the opportunity link next to the spec fields', so an idle rerun writes nothing.
* **Memberships**: every contact role whose contact is linked becomes one opportunity lead (one
  per opportunity and lead: several roles of one person are one membership); the primary role's
  lead is the opportunity's ``primaryLeadID``. A role whose contact is not linked yet is *held*
  in the state store and completed by a later run; it is only released as dropped when the role
  itself is deleted in Salesforce.
* **Accounts** referenced by an opportunity of the run or by a contact linked to a person are
  pulled (created when unknown, updated when they changed in the window).
* **One way**: Salesforce wins every field. An edit made in Lead Gen & CRM is overwritten by the
  next Salesforce change of that record, and the run report names it.

Writes that create records are recorded as links right after each batch (the API has no
external id for opportunities, accounts or opportunity leads), so a crash between load and
record, or a retried load, can never create a record twice.

Pure helpers (stage map, memberships, primary lead, plan refinement, checks, tallies) come
first; the stage functions that read and write (``extract_stage`` ... ``record_stage``) follow.
The quality gate reuses the helpers of :mod:`crm_sync.pipeline.validate` (``rule_checks``,
``frame``, ``json_safe``, ``safe_column``) rather than copying them.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from crm_sync.errors import ConfigError
from crm_sync.mapping.loader import display_path, load_stage_spec, spec_path
from crm_sync.mapping.models import ObjectSpec, StageSpec
from crm_sync.mapping.owners import OwnerMap
from crm_sync.mapping.schema import LiveSchema
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.files import chunked, dumps, read_json, read_jsonl, write_json, write_jsonl
from crm_sync.pipeline.record import category_for, run_header, sum_api_calls
from crm_sync.pipeline.transform import canonicalize_leadgen, is_blank

log = logging.getLogger(__name__)

DOMAIN_OPPORTUNITY = "opportunity"
DOMAIN_ACCOUNT = "account"
DOMAIN_MEMBERSHIP = "membership"
DOMAIN_PERSON = "person"
STREAM = "opportunities"
HELD_KIND = "contact_role"
SPEC_NAMES = {"Opportunity": "opportunities", "Account": "accounts"}
STAGE_SPEC_NAME = "opportunity_stages"
DIRECTION = "sf_to_lg"  # the only direction of this DAG (quarantine rows, retries)

# Salesforce fields read besides the spec rows (lifecycle, references, stage).
OPP_SYSTEM_FIELDS = (
    "Id",
    "IsDeleted",
    "LastModifiedDate",
    "SystemModstamp",
    "OwnerId",
    "AccountId",
    "StageName",
)
ACCOUNT_SYSTEM_FIELDS = (
    "Id",
    "IsDeleted",
    "MasterRecordId",
    "LastModifiedDate",
    "SystemModstamp",
    "OwnerId",
)
ROLE_FIELDS = ("Id", "IsDeleted", "OpportunityId", "ContactId", "IsPrimary", "Role")

# Lead Gen & CRM fields of an opportunity that the domain resolves (not spec rows).
REF_STAGE = "dealStageID"
REF_ACCOUNT = "accountID"
REF_PRIMARY = "primaryLeadID"
REFERENCES = (REF_STAGE, REF_ACCOUNT, REF_PRIMARY)

# Reading Lead Gen & CRM records one id per call (the API filters on one id at a time) costs a
# call each; above this many it is cheaper to page through every record (500 per call).
LG_PER_ID_MAX = 50
CHUNK = 1000
LG_BATCH = 500

KIND_OPPORTUNITY = "opportunity"
KIND_ACCOUNT = "account"
KIND_MEMBERSHIP = "membership"
KIND_PENDING = "role_pending"
# report section per plan kind
SECTIONS = {
    KIND_OPPORTUNITY: "opportunities",
    KIND_ACCOUNT: "accounts",
    KIND_MEMBERSHIP: "memberships",
}
LG_TARGET = {
    KIND_OPPORTUNITY: "opportunity",
    KIND_ACCOUNT: "account",
    KIND_MEMBERSHIP: "opportunityLead",
}
LINK_DOMAIN = {
    KIND_OPPORTUNITY: DOMAIN_OPPORTUNITY,
    KIND_ACCOUNT: DOMAIN_ACCOUNT,
    KIND_MEMBERSHIP: DOMAIN_MEMBERSHIP,
}


def truthy(v: Any) -> bool:
    return v is True or str(v).strip().lower() in ("1", "true")


def _id(v: Any) -> str:
    """A Lead Gen & CRM id as text ("" for none): reads give strings, creates give numbers."""
    return "" if is_blank(v) else str(v).strip()


def link_dict(link: Any) -> dict[str, Any]:
    return {
        "lg_id": link.lg_id,
        "sf_id": link.sf_id,
        "sf_object": link.sf_object,
        "status": link.status,
        "synced_values": dict(link.synced_values or {}),
    }


# =============================================================================================
# Stages
# =============================================================================================


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
            by_name[key] = _id(ds.get("id"))
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


def prepare_stages(
    ctx: RunContext, spec: StageSpec, sf: Any, lg: Any, resolution: StageResolution
) -> dict[str, Any]:
    """Create the deal stages the map needs (not in a dry run) and save ``stages.json``."""
    if resolution.to_create and not ctx.dry_run:
        results = lg.create_deal_stages([{"dealStageName": n} for n in resolution.to_create])
        failed = []
        for name, res in zip(resolution.to_create, results, strict=True):
            if res.success and res.id:
                resolution.created[name] = str(res.id)
            else:
                failed.append(f"{name}: {res.error_message}")
        if failed:
            raise ConfigError(
                "could not create the deal stages the stage map needs: " + "; ".join(failed)
            )
    ids = stage_ids_with(resolution, spec, placeholder=ctx.dry_run)
    write_json(ctx.path("stages.json"), {"ids": ids, "resolution": resolution.to_dict()})
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
    return dict((read_json(ctx.run_dir / "stages.json", {}) or {}).get("ids", {}))


# =============================================================================================
# Memberships and the primary lead (pure)
# =============================================================================================


@dataclass
class MembershipChanges:
    """What one opportunity's contact roles ask of its opportunity leads.

    ``creates``: ``{"lead_lg", "contact_sf", "roles"}`` per lead to add. ``deletes``: the
    membership links (dicts) to remove. ``pending``: ``{"role_id", "contact_sf"}`` per role whose
    contact is not linked yet. ``covered``: roles whose membership exists already and stays.
    """

    creates: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    covered: list[str] = field(default_factory=list)


def live_roles(roles: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Roles that count: not deleted, with a contact; ordered by id (deterministic choices)."""
    return sorted(
        (r for r in roles if not truthy(r.get("IsDeleted")) and r.get("ContactId")),
        key=lambda r: str(r["Id"]),
    )


def plan_memberships(
    roles: Iterable[dict[str, Any]],
    contacts: dict[str, str],
    existing: Iterable[dict[str, Any]],
    *,
    opportunity_lg: str | None,
    recreate: bool,
) -> MembershipChanges:
    """Diff the opportunity's current roles against its membership links.

    ``contacts``: Salesforce Contact id -> linked Lead Gen & CRM lead id. ``existing``: active
    membership links of the opportunity (``synced_values``: lead, contact, opportunity, roles).
    Lead Gen & CRM keeps one opportunity lead per (opportunity, lead), so roles are grouped by
    lead. ``recreate``: the opportunity gets a new Lead Gen & CRM record, so every membership is
    made again on it.
    """
    out = MembershipChanges()
    wanted: dict[str, dict[str, Any]] = {}
    for r in live_roles(roles):
        cid = str(r["ContactId"])
        lead = contacts.get(cid)
        if lead is None:
            out.pending.append({"role_id": str(r["Id"]), "contact_sf": cid})
            continue
        w = wanted.setdefault(lead, {"lead_lg": lead, "contact_sf": cid, "roles": []})
        w["roles"].append(str(r["Id"]))
    kept: set[str] = set()
    for link in existing:
        sv = link.get("synced_values") or {}
        lead = _id(sv.get("lead"))
        same_opp = opportunity_lg is None or _id(sv.get("opportunity")) == _id(opportunity_lg)
        if not recreate and lead in wanted and lead not in kept and same_opp:
            kept.add(lead)
        else:
            out.deletes.append(link)
    out.covered = sorted(r for lead in kept for r in wanted[lead]["roles"])
    out.creates = [w for lead, w in wanted.items() if lead not in kept]
    return out


def primary_lead(
    roles: Iterable[dict[str, Any]], contacts: dict[str, str]
) -> tuple[str | None, bool]:
    """The opportunity's ``primaryLeadID`` from its roles: ``(lead id, False)``; ``("", False)``
    when no role is primary (clear it); ``(None, True)`` when the primary contact is not linked
    yet (leave the field alone until it is). Several primaries (possible in old data): the
    lowest role id wins."""
    primaries = [r for r in live_roles(roles) if truthy(r.get("IsPrimary"))]
    if not primaries:
        return "", False
    lead = contacts.get(str(primaries[0]["ContactId"]))
    if lead is None:
        return None, True
    return lead, False


# =============================================================================================
# Reading Lead Gen & CRM records by id
# =============================================================================================


def leadgen_by_ids(
    ids: Iterable[str],
    one: Callable[[str], Iterable[dict[str, Any]]],
    every: Callable[[], Iterable[dict[str, Any]]],
    *,
    per_id_max: int = LG_PER_ID_MAX,
) -> dict[str, dict[str, Any]]:
    """Current Lead Gen & CRM records for ``ids`` (missing ones are absent).

    The API filters opportunities and accounts on one id per call: a few ids are read one by
    one, many by paging through every record (500 per call) and keeping the wanted ones."""
    wanted = {_id(i) for i in ids if _id(i)}
    out: dict[str, dict[str, Any]] = {}
    if not wanted:
        return out
    rows = (r for i in sorted(wanted) for r in one(i)) if len(wanted) <= per_id_max else every()
    for r in rows:
        rid = _id(r.get("id"))
        if rid in wanted:
            out[rid] = r
    return out


# =============================================================================================
# Plans (pure): reconcile output refined with the domain's references and memberships
# =============================================================================================


def _current(lg_rec: dict[str, Any] | None, name: str) -> str:
    return _id((lg_rec or {}).get(name))


def leadgen_edits(
    spec: ObjectSpec,
    schema: LiveSchema,
    owners: OwnerMap | None,
    lg_rec: dict[str, Any],
    synced: dict[str, Any],
    written: Iterable[str],
) -> list[str]:
    """Fields about to be written whose Lead Gen & CRM value is no longer the last synced one:
    someone edited them there (one-way sync: Salesforce overwrites them)."""
    written = [k for k in written if k in synced]
    if not written:
        return []
    canon = canonicalize_leadgen(pd.DataFrame([lg_rec]), spec, schema, owners).iloc[0]
    edited = []
    for key in written:
        if key in REFERENCES:
            if _current(lg_rec, key) != _id(synced[key]):
                edited.append(key)
            continue
        value = canon.get(key)
        value = None if value is None or (isinstance(value, float) and value != value) else value
        if value != synced[key]:
            edited.append(key)
    return edited


def refine_opportunity_plan(
    plan: dict[str, Any],
    pair: dict[str, Any],
    stages: dict[str, str],
) -> None:
    """Add the references (deal stage, account, primary lead) to a reconcile plan.

    Creates always carry them; updates carry those that differ from the record in Lead Gen &
    CRM. ``None`` means "do not touch": an account that is created in this same run
    (``account_deferred``, resolved at load) and a primary contact that is not linked yet.
    An unmapped stage puts ``dealStageID: None`` in the payload, which the quality gate rejects
    with the stage's name.
    """
    sf = pair["sf"]
    lg_rec = pair.get("lg")
    link = pair.get("link") or {}
    synced = link.get("synced_values") or {}
    creating = plan.get("lg_op") == "create"
    stage_name = sf.get("StageName")
    desired: dict[str, str | None] = {}
    desired[REF_STAGE] = stages.get(stage_name) if stage_name else None
    if desired[REF_STAGE] is None:
        plan["stage_unmapped"] = stage_name or ""
    account_sf = sf.get("AccountId")
    if not account_sf:
        desired[REF_ACCOUNT] = ""
    elif pair.get("account_lg"):
        desired[REF_ACCOUNT] = _id(pair["account_lg"])
    else:
        desired[REF_ACCOUNT] = None
        plan["account_deferred"] = str(account_sf)
    primary, pending = primary_lead(sf.get("_roles") or [], pair.get("contacts") or {})
    desired[REF_PRIMARY] = primary
    if pending:
        plan["primary_pending"] = True
    payload = plan.setdefault("lg_payload", {})
    agreed_now = plan.setdefault("agreed_now", {})
    agreed_if = plan.setdefault("agreed_if_lg", {})
    fields = plan.setdefault("lg_fields", [])
    for ref, want in desired.items():
        if ref == REF_STAGE and want is None:
            payload[ref] = None  # rejected by the gate: never a silent default stage
            continue
        if want is None:
            continue
        if creating:
            if want:
                payload[ref] = want
                fields.append(ref)
                agreed_if[ref] = want
            continue
        if want != _current(lg_rec, ref):
            payload[ref] = want
            fields.append(ref)
            agreed_if[ref] = want
        elif synced.get(ref, object()) != want:
            agreed_now[ref] = want
    if plan.get("account_deferred") and not creating:
        # the account is created by this run's load; its id goes in then
        plan["lg_op"] = "update"
    if payload and not creating:
        plan["lg_op"] = "update"
    if plan.get("lg_op") == "update":
        payload["id"] = plan["lg_id"]


def _pair_for_reconcile(pair: dict[str, Any], sobject: str) -> dict[str, Any]:
    sf = {k: v for k, v in pair["sf"].items() if not k.startswith("_")}
    return {
        "pair": pair["pair"],
        "lg": pair.get("lg"),
        "sf": sf,
        "sf_object": sobject,
        "link": pair.get("link") if pair.get("lg") else None,
        "match": "link" if pair.get("lg") else "new",
        "events": list(pair.get("events") or []),
    }


def _base_plan(kind: str, pair: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "pair": pair["pair"],
        "kind": kind,
        "sf_id": pair["sf"]["Id"],
        "lg_id": (pair.get("link") or {}).get("lg_id"),
        "lg_op": None,
        "lg_payload": {},
        "lg_fields": [],
        "agreed_now": {},
        "agreed_if_lg": {},
        "events": list(pair.get("events") or []),
        **extra,
    }


def plan_records(
    kind: str,
    pairs: list[dict[str, Any]],
    rctx: Any,
    stages: dict[str, str],
) -> list[dict[str, Any]]:
    """Plans for a chunk of opportunity or account pairs (and their memberships).

    ``rctx`` is the spine's ``ReconcileContext`` (specs by Salesforce object, schema, owners).
    Deleted Salesforce records delete their linked Lead Gen & CRM record; the others go through
    the spine's per-field reconcile (every spec row is pull), then get this domain's references.
    """
    from crm_sync.pipeline.reconcile import reconcile

    sobject = "Opportunity" if kind == KIND_OPPORTUNITY else "Account"
    spec: ObjectSpec = rctx.specs[sobject]
    out: list[dict[str, Any]] = []
    live: list[dict[str, Any]] = []
    for pair in pairs:
        sf = pair["sf"]
        link = pair.get("link")
        gone = truthy(sf.get("IsDeleted"))
        if gone:
            if link and link.get("status") == "active":
                plan = _base_plan(kind, pair, lg_op="delete")
                plan["lg_payload"] = {"id": link["lg_id"]}
                detail = (
                    f"merged into {sf['MasterRecordId']}" if sf.get("MasterRecordId") else "deleted"
                )
                plan["events"].append(
                    {"event": "deleted", "detail": f"{sobject} {sf['Id']} {detail} in Salesforce"}
                )
                if kind == KIND_OPPORTUNITY:
                    # Lead Gen & CRM removes an opportunity's leads with it: only the links go.
                    plan["memberships_drop"] = [m["lg_id"] for m in pair.get("memberships") or []]
                out.append(plan)
            continue
        live.append(pair)
    if not live:
        return out
    plans = {
        p.pair: p.to_dict()
        for p in reconcile([_pair_for_reconcile(p, sobject) for p in live], rctx)
    }
    for pair in live:
        plan = plans[pair["pair"]]
        plan["kind"] = kind
        plan.pop("sf_record", None)
        plan.pop("sf_payload", None)
        link = pair.get("link") or {}
        state = pair.get("state", "new")
        if state in ("recreate", "undeleted"):
            plan["link_change"] = {"kind": state, "old_lg_id": link.get("lg_id")}
            plan["events"].append(
                {
                    "event": state,
                    "detail": f"Lead Gen & CRM {LG_TARGET[kind]} {link.get('lg_id')} is gone; "
                    f"{sobject} {pair['sf']['Id']} is created again",
                }
            )
            plan["lg_id"] = None
        if kind == KIND_OPPORTUNITY:
            refine_opportunity_plan(plan, pair, stages)
        if plan.get("lg_op") == "update" and pair.get("lg") is not None:
            edited = leadgen_edits(
                spec,
                rctx.schema,
                rctx.owners,
                pair["lg"],
                link.get("synced_values") or {},
                [k for k in plan.get("lg_fields") or [] if k in plan.get("agreed_if_lg", {})],
            )
            if edited:
                plan["events"].append(
                    {
                        "event": "leadgen_edit_overwritten",
                        "detail": f"{LG_TARGET[kind]} {plan['lg_id']}: {', '.join(sorted(edited))} "
                        f"changed in Lead Gen & CRM, overwritten from Salesforce {pair['sf']['Id']}",
                    }
                )
        out.append(plan)
        if kind == KIND_OPPORTUNITY:
            out.extend(_membership_plans(plan, pair))
    return out


def _membership_plans(opp_plan: dict[str, Any], pair: dict[str, Any]) -> list[dict[str, Any]]:
    sf = pair["sf"]
    opp_sf = str(sf["Id"])
    recreate = opp_plan.get("lg_op") == "create"
    opp_lg = None if recreate else opp_plan.get("lg_id")
    changes = plan_memberships(
        sf.get("_roles") or [],
        pair.get("contacts") or {},
        pair.get("memberships") or [],
        opportunity_lg=opp_lg,
        recreate=recreate,
    )
    opp_plan["roles_covered"] = changes.covered
    opp_plan["memberships_kept"] = len(pair.get("memberships") or []) - len(changes.deletes)
    out: list[dict[str, Any]] = []
    for link in changes.deletes:
        sv = link.get("synced_values") or {}
        out.append(
            {
                # keyed by the opportunity lead id, creates by the lead id: never the same key
                "pair": f"memdel:{opp_sf}:{link['lg_id']}",
                "kind": KIND_MEMBERSHIP,
                "lg_op": "delete",
                "lg_id": link["lg_id"],
                "sf_id": opp_sf,
                "opportunity_sf": opp_sf,
                "lead_lg": sv.get("lead"),
                "contact_sf": sv.get("contact"),
                "roles": list(sv.get("roles") or []),
                "lg_payload": {"id": link["lg_id"]},
                "events": [],
            }
        )
    for c in changes.creates:
        out.append(
            {
                "pair": f"mem:{opp_sf}:{c['lead_lg']}",
                "kind": KIND_MEMBERSHIP,
                "lg_op": "create",
                "lg_id": None,
                "sf_id": opp_sf,
                "opportunity_sf": opp_sf,
                "opportunity_lg": opp_lg,
                "lead_lg": c["lead_lg"],
                "contact_sf": c["contact_sf"],
                "roles": c["roles"],
                "lg_payload": {"opportunityID": opp_lg, "leadID": c["lead_lg"]},
                "events": [],
            }
        )
    for p in changes.pending:
        out.append(
            {
                "pair": f"role:{p['role_id']}",
                "kind": KIND_PENDING,
                "lg_op": None,
                "sf_id": p["role_id"],
                "opportunity_sf": opp_sf,
                "contact_sf": p["contact_sf"],
                "events": [],
            }
        )
    return out


def record_key(plan: dict[str, Any]) -> str:
    """The quarantine key of a plan's *source* record (what a later run re-reads)."""
    if plan["kind"] == KIND_MEMBERSHIP:
        roles = plan.get("roles") or []
        return f"sf:{roles[0]}" if roles else f"sf:{plan['opportunity_sf']}"
    return f"sf:{plan['sf_id']}"


# =============================================================================================
# Quality gate: Great Expectations checks for Lead Gen & CRM opportunities and accounts
# =============================================================================================

REQUIRED = {KIND_OPPORTUNITY: ("opportunityName",), KIND_ACCOUNT: ("accountName",)}
# Lead Gen & CRM picks the probability from 0 to 100 (whole percent).
PROBABILITY_RE = r"^(?:100|[1-9]?[0-9])$"


def leadgen_object_checks(
    kind: str, op: str, columns: Iterable[str], schema: LiveSchema, spec: ObjectSpec
) -> list[Any]:
    """Checks for Lead Gen & CRM ``opportunity``/``account`` payloads of one operation.

    Required names on creates (and on updates that would blank them); a deal stage for every
    opportunity; lengths from getFields; the probability as a whole percent; values that parse;
    the spec's own rules on the fields it writes.
    """
    import great_expectations.expectations as gxe

    from crm_sync.pipeline.validate import (
        Check,
        length_check,
        parseable_check,
        required_check,
        rule_checks,
    )

    lg_object = LG_TARGET[kind]
    cols = [c for c in columns if not c.startswith("__") and c != "id"]
    checks: list[Check] = [
        required_check(name, only_written=op != "create")
        for name in REQUIRED[kind]
        if op == "create" or name in cols
    ]
    if kind == KIND_OPPORTUNITY and REF_STAGE in cols:
        checks.append(
            Check(
                "picklist:stage_map",
                REF_STAGE,
                required_check(REF_STAGE, only_written=True).expectation,
                "must come from a Salesforce stage mapped in opportunity_stages.yaml",
            )
        )
    if kind == KIND_OPPORTUNITY and "probability" in cols:
        checks.append(
            Check(
                "format:probability",
                "probability",
                gxe.ExpectColumnValuesToMatchRegex(column="probability", regex=PROBABILITY_RE),
                "must be a whole percent from 0 to 100",
            )
        )
    rows = {r.leadgen: r for r in spec.fields}
    for name in sorted(cols):
        lf = schema.lg(lg_object, name)
        if lf is not None and lf.length and lf.data_type not in ("int", "date", "datetime"):
            checks.append(length_check(name, lf.length))
        checks.append(parseable_check(name))
        row = rows.get(name)
        if row is not None and row.direction.writes_leadgen:
            checks.extend(rule_checks(row.rules, name))
    return checks


def validate_plans(
    plans: list[dict[str, Any]],
    specs: dict[str, ObjectSpec],
    schema: LiveSchema,
    validator: Any,
) -> dict[int, list[Any]]:
    """Run the gate on a chunk of plans; failures by plan index. Deletes and memberships carry
    only ids this sync resolved, so they are not checked."""
    from crm_sync.pipeline.validate import Failure, explain, frame, safe_column

    failures: dict[int, list[Any]] = defaultdict(list)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, p in enumerate(plans):
        if p["kind"] in (KIND_OPPORTUNITY, KIND_ACCOUNT) and p.get("lg_op") in ("create", "update"):
            groups[(p["kind"], p["lg_op"])].append(i)
    for (kind, op), idx in groups.items():
        spec = specs["Opportunity" if kind == KIND_OPPORTUNITY else "Account"]
        payloads = [
            {k: v for k, v in plans[i]["lg_payload"].items() if k != "id" and safe_column(k)}
            for i in idx
        ]
        df = frame(
            payloads, idx, ensure=REQUIRED[kind] if op == "create" else (), empty_is_blank=True
        )
        checks = leadgen_object_checks(kind, op, df.columns, schema, spec)
        for row, check, value in validator.run(f"lg_{kind}_{op}", df, checks):
            p = plans[row]
            who = (
                f"Lead Gen & CRM {LG_TARGET[kind]} {p.get('lg_id') or '(new)'} "
                f"(Salesforce {spec.salesforce_object} {p['sf_id']})"
            )
            if check.name == "picklist:stage_map":
                message = (
                    f"{who}: stage {p.get('stage_unmapped')!r} has no deal stage in "
                    f"{display_path(spec_path(STAGE_SPEC_NAME))}; map it there (the opportunity "
                    "is retried every run, never given a default stage)"
                )
                value = p.get("stage_unmapped")
            else:
                message = explain(who, check, value)
            failures[row].append(
                Failure("leadgen", p["pair"], check.name, check.column, value, message)
            )
    return failures


# =============================================================================================
# Tallies (pure): plans + results -> counters, quarantine rows, held-item changes
# =============================================================================================


@dataclass
class Tally:
    sections: dict[str, Counter] = field(
        default_factory=lambda: {s: Counter() for s in SECTIONS.values()}
    )
    leadgen: Counter = field(default_factory=Counter)
    links: Counter = field(default_factory=Counter)
    events: Counter = field(default_factory=Counter)
    event_examples: dict[str, list[str]] = field(default_factory=dict)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    resolved: set[str] = field(default_factory=set)
    pending: list[dict[str, Any]] = field(default_factory=list)
    delivered: set[str] = field(default_factory=set)
    planned: int = 0
    rejected_keys: list[str] = field(default_factory=list)
    records: int = 0
    unchanged: int = 0


def tally(
    ctx: RunContext, plans: Iterable[dict[str, Any]], results: dict[str, dict[str, Any]]
) -> Tally:
    """Count what the run did per object, collect quarantine rows (gate and API rejections),
    the source keys that passed (to resolve their quarantine), roles to hold and roles whose
    membership now exists."""
    t = Tally()
    for plan in plans:
        kind = plan["kind"]
        for e in plan.get("events") or []:
            t.events[e["event"]] += 1
            ex = t.event_examples.setdefault(e["event"], [])
            if len(ex) < 5:
                ex.append(e.get("detail", ""))
        if kind == KIND_PENDING:
            t.pending.append(plan)
            t.sections["memberships"]["pending"] += 1
            continue
        section = t.sections[SECTIONS[kind]]
        if not ctx.dry_run:
            t.delivered.update(plan.get("roles_covered") or [])
        if plan.get("memberships_kept"):
            t.sections["memberships"]["unchanged"] += plan["memberships_kept"]
        op = plan.get("lg_op")
        key = record_key(plan)
        if kind != KIND_MEMBERSHIP:
            t.records += 1
        if not op:
            section["unchanged"] += 1
            t.unchanged += kind != KIND_MEMBERSHIP
            t.resolved.add(key)
            continue
        t.planned += 1
        verb = {"create": "created", "update": "updated", "delete": "deleted"}[op]
        if plan.get("lg_rejected"):
            f = plan["lg_rejected"][0]
            t.quarantine.append(
                _quarantine_row(
                    ctx,
                    plan,
                    category=f["category"],
                    check=f["check"],
                    field_name=f["field"],
                    error_code=None,
                    message="; ".join(x["message"] for x in plan["lg_rejected"]),
                )
            )
            section["quarantined"] += 1
            t.rejected_keys.append(key)
            continue
        if ctx.dry_run:
            section[f"would_{op}"] += 1
            continue
        res = results.get(plan["pair"])
        for e in (res or {}).get("events") or []:
            t.events[e["event"]] += 1
            ex = t.event_examples.setdefault(e["event"], [])
            if len(ex) < 5:
                ex.append(e.get("detail", ""))
        if res is None:
            # not attempted: a membership whose opportunity could not be written this run
            section["waiting_for_opportunity" if kind == KIND_MEMBERSHIP else "not_attempted"] += 1
            continue
        if res["success"]:
            if res.get("unchanged"):
                section["unchanged"] += 1
                t.leadgen["unchanged"] += 1
            else:
                section[verb] += 1
                t.leadgen["writes"] += 1
            if res.get("already_gone"):
                section["already_gone"] += 1
            if res.get("adopted"):
                section["adopted"] += 1
            if kind == KIND_MEMBERSHIP and op == "create":
                t.delivered.update(plan.get("roles") or [])
            t.resolved.add(key)
            for name, n in (res.get("links") or {}).items():
                t.links[name] += n
            continue
        t.quarantine.append(
            _quarantine_row(
                ctx,
                plan,
                category=category_for(res.get("error_code")),
                check=f"leadgen:{res.get('error_code')}",
                field_name=",".join(res.get("error_fields") or []) or None,
                error_code=res.get("error_code"),
                message=(
                    f"Lead Gen & CRM {LG_TARGET[kind]} {plan.get('lg_id') or '(new)'} (Salesforce "
                    f"{plan['sf_id']}) rejected the {op}: {res.get('error_message')}"
                ),
            )
        )
        section["failed"] += 1
        t.leadgen["failed"] += 1
        t.rejected_keys.append(key)
    for section in t.sections.values():
        section["quarantined"] += 0  # present in every report, even when zero
    return t


def _quarantine_row(
    ctx: RunContext,
    plan: dict[str, Any],
    *,
    category: str,
    check: str,
    field_name: str | None,
    error_code: str | None,
    message: str,
) -> dict[str, Any]:
    kind = plan["kind"]
    return {
        "dag_id": ctx.dag_id,
        "domain": LINK_DOMAIN[kind],
        "direction": DIRECTION,
        "record_key": record_key(plan),
        "target_object": LG_TARGET[kind],
        "lg_id": plan.get("lg_id"),
        "sf_id": plan.get("sf_id"),
        "category": category,
        "check": check,
        "field": field_name,
        "error_code": error_code,
        "message": message,
        "payload": plan.get("lg_payload") or {},
        "run_id": ctx.run_id,
        "max_attempts": ctx.max_attempts,
    }


# =============================================================================================
# Stage: extract (Salesforce only: this DAG never reads Lead Gen & CRM changes)
# =============================================================================================


def sf_fields(spec: ObjectSpec, system: Iterable[str]) -> list[str]:
    """The Salesforce fields read for ``spec``'s object: ``system`` ones, then the spec's."""
    out = list(dict.fromkeys(system))
    for row in spec.fields:
        if row.salesforce not in out:
            out.append(row.salesforce)
    return out


def _active_links(store: Any, domain: str, sf_ids: Iterable[str]) -> dict[str, Any]:
    """Salesforce id -> its active link (the first one) in ``domain``."""
    out = {}
    for sid, links in store.links_by_sf(domain, list(sf_ids), active_only=True).items():
        out[sid] = links[0]
    return out


def extract_stage(
    ctx: RunContext, sf: Any, store: Any, specs: dict[str, ObjectSpec]
) -> dict[str, Any]:
    """Opportunities, roles and accounts of this run -> ``extract/*.jsonl``.

    The run's opportunities: changed in the window (``queryAll`` on SystemModstamp, so deleted
    ones too), the parents of roles changed in the window, those with a held role whose contact
    is linked now, and those quarantined earlier (retried every run). Each carries all of its
    current roles (``_roles``). Accounts: referenced by those opportunities or by contacts
    changed in the window that are linked to a person, when not linked yet; linked ones that
    changed in the window; and quarantined ones.
    """
    opp_fields = sf_fields(specs["Opportunity"], OPP_SYSTEM_FIELDS)
    acc_fields = sf_fields(specs["Account"], ACCOUNT_SYSTEM_FIELDS)
    counts: Counter = Counter()
    ws, we = ctx.window_start, ctx.window_end

    def query(sobject: str, fields: list[str], where: str | None = None) -> Iterator[dict]:
        if ctx.full_resync:
            soql = f"SELECT {', '.join(fields)} FROM {sobject}"
            if where:
                soql += f" WHERE {where}"
            return sf.query(soql, include_deleted=where is None)
        return sf.query_window(sobject, fields, ws, we, include_deleted=where is None, where=where)

    opps = {r["Id"]: r for r in query("Opportunity", opp_fields)}
    counts["Opportunity"] = len(opps)
    wanted: set[str] = set(opps)
    if not ctx.full_resync:
        changed_roles = list(query("OpportunityContactRole", list(ROLE_FIELDS)))
        counts["OpportunityContactRole"] = len(changed_roles)
        wanted |= {r["OpportunityId"] for r in changed_roles if r.get("OpportunityId")}

    retry_ids = [
        k[3:]
        for k in store.retry_keys(ctx.dag_id, DIRECTION, include_parked=ctx.retry_quarantined)
        if k.startswith("sf:")
    ]
    retry_opps = [i for i in retry_ids if i.startswith("006")]
    retry_roles = [i for i in retry_ids if i.startswith("00K")]
    retry_accounts = [i for i in retry_ids if i.startswith("001")]
    counts["retried"] = len(retry_ids)

    # Held roles: still there? contact linked now? Only those that can complete pull their
    # opportunity into the run; the others wait without costing more than this one query.
    held = store.held(ctx.dag_id, HELD_KIND)
    role_ids = [h.item_key for h in held] + retry_roles
    role_recs = (
        {
            r["Id"]: r
            for r in sf.query_by_values(
                "OpportunityContactRole", list(ROLE_FIELDS), "Id", role_ids, include_deleted=True
            )
        }
        if role_ids
        else {}
    )
    linked_contacts = _active_links(
        store, DOMAIN_PERSON, {r["ContactId"] for r in role_recs.values() if r.get("ContactId")}
    )
    held_rows = []
    for h in held:
        rec = role_recs.get(h.item_key)
        if rec is None or truthy(rec.get("IsDeleted")):
            state = "gone"
        elif rec.get("ContactId") in linked_contacts:
            state = "ready"
            wanted.add(rec["OpportunityId"])
        else:
            state = "waiting"
        held_rows.append({"role_id": h.item_key, "state": state, "payload": h.payload})
    counts.update(f"held_{r['state']}" for r in held_rows)
    for rid in retry_roles:
        if rid in role_recs and role_recs[rid].get("OpportunityId"):
            wanted.add(role_recs[rid]["OpportunityId"])
    wanted |= set(retry_opps)

    missing = sorted(wanted - set(opps))
    if missing:
        for r in sf.query_by_values("Opportunity", opp_fields, "Id", missing, include_deleted=True):
            opps[r["Id"]] = r
    live = sorted(i for i, r in opps.items() if not truthy(r.get("IsDeleted")))
    roles_by_opp: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if live:
        for r in sf.query_by_values(
            "OpportunityContactRole", list(ROLE_FIELDS), "OpportunityId", live
        ):
            roles_by_opp[r["OpportunityId"]].append(r)
    counts["opportunities_in_run"] = write_jsonl(
        ctx.path("extract", "opportunities.jsonl"),
        ({**r, "_roles": roles_by_opp.get(i, [])} for i, r in sorted(opps.items())),
    )
    counts["roles_in_run"] = sum(len(v) for v in roles_by_opp.values())
    write_jsonl(ctx.path("extract", "held.jsonl"), held_rows)

    # Accounts
    referenced = {
        r["AccountId"]
        for r in opps.values()
        if r.get("AccountId") and not truthy(r.get("IsDeleted"))
    }
    contacts = list(query("Contact", ["Id", "AccountId"], where="AccountId != null"))
    counts["Contact"] = len(contacts)
    linked = _active_links(store, DOMAIN_PERSON, [c["Id"] for c in contacts])
    referenced |= {c["AccountId"] for c in contacts if c["Id"] in linked}
    accounts = {r["Id"]: r for r in query("Account", acc_fields)}
    counts["Account"] = len(accounts)
    acc_links = _active_links(store, DOMAIN_ACCOUNT, set(accounts) | referenced)
    keep = {i for i in accounts if i in acc_links or i in referenced}
    keep |= {i for i in referenced if i not in acc_links} | set(retry_accounts)
    fetch = sorted(keep - set(accounts))
    if fetch:
        for r in sf.query_by_values("Account", acc_fields, "Id", fetch, include_deleted=True):
            accounts[r["Id"]] = r
    counts["accounts_in_run"] = write_jsonl(
        ctx.path("extract", "accounts.jsonl"),
        (accounts[i] for i in sorted(keep) if i in accounts),
    )
    log.info(
        "extract salesforce: %s in [%s, %s) api_calls=%d",
        " ".join(f"{k}={v}" for k, v in sorted(counts.items())),
        ws.isoformat(),
        we.isoformat(),
        sf.api_calls,
    )
    return {"extracted": dict(counts), "sf_api_calls": sf.api_calls}


# =============================================================================================
# Stage: match (links, and the Lead Gen & CRM side of every linked record)
# =============================================================================================


class _Index:
    """Records by id in a small SQLite file of the run folder (memory stays bounded)."""

    def __init__(self, path: str):
        self.db = sqlite3.connect(path)
        self.db.execute("DROP TABLE IF EXISTS rec")
        self.db.execute("CREATE TABLE rec (id TEXT PRIMARY KEY, body TEXT)")

    def put(self, rows: Iterable[tuple[str, dict[str, Any]]]) -> None:
        for chunk in chunked(rows, 2000):
            self.db.executemany(
                "INSERT OR REPLACE INTO rec VALUES (?, ?)", [(k, dumps(v)) for k, v in chunk]
            )
        self.db.commit()

    def get(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        import json

        out = {}
        for chunk in chunked(ids, 500):
            q = f"SELECT id, body FROM rec WHERE id IN ({','.join('?' * len(chunk))})"
            out.update({i: json.loads(b) for i, b in self.db.execute(q, chunk)})
        return out

    def close(self) -> None:
        self.db.close()


def _link_state(links: list[Any]) -> tuple[Any | None, str]:
    """The link that speaks for a Salesforce record, and its state: ``linked``, ``deleted``
    (deleted by an earlier run) or ``new``."""
    active = [lk for lk in links if lk.status == "active"]
    if active:
        return active[0], "linked"
    deleted = [lk for lk in links if lk.status == "deleted"]
    if deleted:
        return deleted[-1], "deleted"
    return None, "new"


def _match_file(
    ctx: RunContext,
    store: Any,
    lg: Any,
    *,
    domain: str,
    source: str,
    target: str,
    fetch_one: Callable[[str], Iterable[dict[str, Any]]],
    fetch_all: Callable[[], Iterable[dict[str, Any]]],
    enrich: Callable[[list[dict[str, Any]]], None] | None = None,
) -> Counter:
    """Pair each extracted record with its link and current Lead Gen & CRM record."""
    counts: Counter = Counter()
    path = ctx.run_dir / "extract" / source
    # pass 1: which Lead Gen & CRM records are needed (one id per call, or all when many)
    wanted: list[str] = []
    for chunk in chunked(read_jsonl(path), CHUNK):
        for lk_list in store.links_by_sf(domain, [r["Id"] for r in chunk]).values():
            link, state = _link_state(lk_list)
            if state == "linked":
                wanted.append(link.lg_id)
    index = _Index(str(ctx.path("match", f"{domain}.db")))
    try:
        index.put(leadgen_by_ids(wanted, fetch_one, fetch_all).items())

        def pairs() -> Iterator[dict[str, Any]]:
            for chunk in chunked(read_jsonl(path), CHUNK):
                links = store.links_by_sf(domain, [r["Id"] for r in chunk])
                chosen = {sid: _link_state(lks) for sid, lks in links.items()}
                current = index.get([lk.lg_id for lk, st in chosen.values() if st == "linked"])
                out = []
                for rec in chunk:
                    link, state = chosen.get(rec["Id"], (None, "new"))
                    lg_rec = (
                        current.get(link.lg_id) if link is not None and state == "linked" else None
                    )
                    if state == "linked" and lg_rec is None:
                        state = "recreate"  # deleted in Lead Gen & CRM: Salesforce brings it back
                    elif state == "deleted" and not truthy(rec.get("IsDeleted")):
                        state = "undeleted"
                    counts[state] += 1
                    out.append(
                        {
                            "pair": f"{domain[:3]}:{rec['Id']}",
                            "sf": rec,
                            "lg": lg_rec,
                            "link": link_dict(link) if link is not None else None,
                            "state": state,
                        }
                    )
                if enrich is not None:
                    enrich(out)
                yield from out

        counts["pairs"] = write_jsonl(ctx.path("pairs", target), pairs())
    finally:
        index.close()
    return counts


def match_stage(ctx: RunContext, lg: Any, store: Any) -> dict[str, Any]:
    """``extract/*.jsonl`` -> ``pairs/*.jsonl``: each record with its link, its current Lead
    Gen & CRM record and, for opportunities, the persons linked to its contacts, its membership
    links and its account's Lead Gen & CRM id."""

    def enrich(pairs: list[dict[str, Any]]) -> None:
        sf_ids = [p["sf"]["Id"] for p in pairs]
        contact_ids = {
            r["ContactId"] for p in pairs for r in p["sf"].get("_roles") or [] if r.get("ContactId")
        }
        persons = _active_links(store, DOMAIN_PERSON, contact_ids)
        members = store.links_by_sf(DOMAIN_MEMBERSHIP, sf_ids, active_only=True)
        accounts = _active_links(
            store, DOMAIN_ACCOUNT, {p["sf"]["AccountId"] for p in pairs if p["sf"].get("AccountId")}
        )
        for p in pairs:
            roles = p["sf"].get("_roles") or []
            p["contacts"] = {
                r["ContactId"]: persons[r["ContactId"]].lg_id
                for r in roles
                if r.get("ContactId") in persons
            }
            p["memberships"] = [link_dict(lk) for lk in members.get(p["sf"]["Id"], [])]
            acc = accounts.get(p["sf"].get("AccountId") or "")
            p["account_lg"] = acc.lg_id if acc is not None else None

    opp = _match_file(
        ctx,
        store,
        lg,
        domain=DOMAIN_OPPORTUNITY,
        source="opportunities.jsonl",
        target="opportunities.jsonl",
        fetch_one=lambda i: lg.get_opportunities({"id": i}),
        fetch_all=lambda: lg.get_opportunities({}),
        enrich=enrich,
    )
    acc = _match_file(
        ctx,
        store,
        lg,
        domain=DOMAIN_ACCOUNT,
        source="accounts.jsonl",
        target="accounts.jsonl",
        fetch_one=lambda i: lg.get_accounts({"id": i}),
        fetch_all=lambda: lg.get_accounts({}),
    )
    log.info(
        "match: opportunities %s; accounts %s; lg_api_calls=%d",
        " ".join(f"{k}={v}" for k, v in sorted(opp.items())),
        " ".join(f"{k}={v}" for k, v in sorted(acc.items())),
        lg.api_calls,
    )
    return {
        "opportunities": dict(opp),
        "accounts": dict(acc),
        "lg_api_calls": lg.api_calls,
    }


# =============================================================================================
# Stage: reconcile
# =============================================================================================


def reconcile_stage(ctx: RunContext, rctx: Any) -> dict[str, Any]:
    """``pairs/*.jsonl`` -> ``plans/plans.jsonl`` (accounts first: opportunities refer to them)."""
    stages = stage_ids(ctx)
    counts: Counter = Counter()

    def plans() -> Iterator[dict[str, Any]]:
        for kind, name in (
            (KIND_ACCOUNT, "accounts.jsonl"),
            (KIND_OPPORTUNITY, "opportunities.jsonl"),
        ):
            for chunk in chunked(read_jsonl(ctx.run_dir / "pairs" / name), CHUNK):
                for plan in plan_records(kind, chunk, rctx, stages):
                    counts[f"{plan['kind']}_{plan.get('lg_op') or 'none'}"] += 1
                    yield plan

    write_jsonl(ctx.path("plans", "plans.jsonl"), plans())
    log.info("reconcile: %s", " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return {"counts": dict(counts)}


# =============================================================================================
# Stage: validate
# =============================================================================================


def validate_stage(
    ctx: RunContext, specs: dict[str, ObjectSpec], schema: LiveSchema, chunk_size: int = 5000
) -> dict[str, Any]:
    """``plans/plans.jsonl`` -> ``plans/validated.jsonl`` with ``lg_rejected`` on failing plans."""
    from crm_sync.pipeline.validate import run_gate

    def mark(plan: dict[str, Any], found: list[Any], counts: Counter) -> None:
        plan["lg_rejected"] = [f.to_dict() for f in found]
        if plan.get("lg_op") and plan["kind"] in (KIND_OPPORTUNITY, KIND_ACCOUNT):
            counts["checked"] += 1
        counts["rejected"] += bool(found)

    return run_gate(
        ctx,
        lambda chunk, validator: validate_plans(chunk, specs, schema, validator),
        mark,
        label="opportunities",
        chunk_size=chunk_size,
    )


# =============================================================================================
# Stage: load (Lead Gen & CRM only), recording links batch by batch
# =============================================================================================


@dataclass
class _Loader:
    ctx: RunContext
    lg: Any
    store: Any
    results_path: Any
    done: set[str]
    counts: Counter = field(default_factory=Counter)
    notes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def _row(self, plan: dict[str, Any], res: Any, **extra: Any) -> dict[str, Any]:
        return {
            "pair": plan["pair"],
            "kind": plan["kind"],
            "op": plan["lg_op"],
            "success": bool(res.success),
            "id": res.id,
            "unchanged": bool(getattr(res, "unchanged", False)),
            "error_code": res.error_code,
            "error_message": res.error_message,
            "error_fields": [f for e in res.errors for f in e.fields],
            **extra,
        }

    def _agreed(self, plan: dict[str, Any]) -> dict[str, Any]:
        return {**(plan.get("agreed_now") or {}), **(plan.get("agreed_if_lg") or {})}

    def write(
        self,
        plans: list[dict[str, Any]],
        call: Callable[[list[Any]], list[Any]],
        arg: Callable[[dict[str, Any]], Any],
        after: Callable[[dict[str, Any], dict[str, Any]], None],
    ) -> None:
        """Write ``plans`` in batches; after each batch, record the state and the results."""
        todo = [p for p in plans if p["pair"] not in self.done]
        for batch in chunked(todo, LG_BATCH):
            results = call([arg(p) for p in batch])
            rows = []
            for plan, res in zip(batch, results, strict=True):
                row = self._row(plan, res, events=self.notes.get(plan["pair"], []))
                if not res.success and res.error_code == "404" and plan["lg_op"] == "delete":
                    row.update(success=True, already_gone=True, error_code=None, error_message="")
                if row["success"]:
                    after(plan, row)
                rows.append(row)
                self.counts[
                    f"{plan['kind']}_{plan['lg_op']}_{'ok' if row['success'] else 'failed'}"
                ] += 1
            write_jsonl(self.results_path, rows, append=True)

    # -- after-write bookkeeping (links and synced values) ----------------------------------
    def created(self, domain: str) -> Callable[[dict[str, Any], dict[str, Any]], None]:
        def after(plan: dict[str, Any], row: dict[str, Any]) -> None:
            change = plan.get("link_change") or {}
            if change.get("old_lg_id"):
                self.store.set_link_status(
                    domain,
                    change["old_lg_id"],
                    "superseded",
                    event=change["kind"],
                    run_id=self.ctx.run_id,
                    detail=f"replaced by {row['id']}",
                )
            self.store.upsert_link(
                domain,
                str(row["id"]),
                "Opportunity" if domain == DOMAIN_OPPORTUNITY else "Account",
                plan["sf_id"],
                synced_values=self._agreed(plan),
                run_id=self.ctx.run_id,
                event="created",
            )
            row["links"] = {f"{domain}_created": 1}

        return after

    def updated(self, domain: str) -> Callable[[dict[str, Any], dict[str, Any]], None]:
        def after(plan: dict[str, Any], row: dict[str, Any]) -> None:
            self.store.update_synced_values(
                domain, {plan["lg_id"]: self._agreed(plan)}, self.ctx.run_id
            )

        return after

    def deleted(self, domain: str) -> Callable[[dict[str, Any], dict[str, Any]], None]:
        def after(plan: dict[str, Any], row: dict[str, Any]) -> None:
            self.store.set_link_status(
                domain,
                plan["lg_id"],
                "deleted",
                event="deleted",
                run_id=self.ctx.run_id,
                detail=f"{plan['sf_id']} deleted in Salesforce",
            )
            for mid in plan.get("memberships_drop") or []:
                self.store.delete_link(DOMAIN_MEMBERSHIP, mid, run_id=self.ctx.run_id)
            row["links"] = {
                f"{domain}_deleted": 1,
                "membership_removed": len(plan.get("memberships_drop") or []),
            }

        return after

    def membership_created(self, plan: dict[str, Any], row: dict[str, Any]) -> None:
        self.store.upsert_link(
            DOMAIN_MEMBERSHIP,
            str(row["id"]),
            "Opportunity",
            plan["opportunity_sf"],
            synced_values={
                "opportunity": _id(plan["lg_payload"]["opportunityID"]),
                "lead": _id(plan["lead_lg"]),
                "contact": plan["contact_sf"],
                "roles": plan.get("roles") or [],
            },
            run_id=self.ctx.run_id,
            event="created",
            detail=f"contact {plan['contact_sf']} on opportunity {plan['opportunity_sf']}",
        )
        row["links"] = {"membership_created": 1}

    def membership_deleted(self, plan: dict[str, Any], row: dict[str, Any]) -> None:
        self.store.delete_link(DOMAIN_MEMBERSHIP, plan["lg_id"], run_id=self.ctx.run_id)
        row["links"] = {"membership_removed": 1}

    def adopt_duplicates(self, plans: list[dict[str, Any]]) -> None:
        """A membership create refused with 301 already exists (an earlier attempt wrote it and
        could not record it): find its id and link it instead of failing."""
        rows = list(read_jsonl(self.results_path))
        ok = {r["pair"] for r in rows if r["success"]}
        dup = {
            r["pair"]
            for r in rows
            if r["kind"] == KIND_MEMBERSHIP and r["op"] == "create" and r["error_code"] == "301"
        } - ok
        if not dup:
            return
        fixed = []
        by_opp: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for p in plans:
            if p["pair"] in dup:
                by_opp[_id(p["lg_payload"]["opportunityID"])].append(p)
        for opp_id, group in by_opp.items():
            existing = {
                _id(r.get("leadID")): _id(r.get("id"))
                for r in self.lg.get_opportunity_leads({"opportunityID": opp_id})
            }
            for p in group:
                found = existing.get(_id(p["lead_lg"]))
                if found:
                    row = {
                        "pair": p["pair"],
                        "kind": KIND_MEMBERSHIP,
                        "op": "create",
                        "success": True,
                        "id": found,
                        "unchanged": False,
                        "adopted": True,
                        "error_code": None,
                        "error_message": "",
                        "error_fields": [],
                    }
                    self.membership_created(p, row)
                    fixed.append(row)
        if fixed:
            # later rows win when the record stage reads the results
            write_jsonl(self.results_path, fixed, append=True)


def load_stage(ctx: RunContext, lg: Any, store: Any) -> dict[str, Any]:
    """Write the validated plans: accounts, then opportunities (their accounts resolved), then
    memberships (their opportunities resolved). Each batch's links are recorded right after it,
    and its results appended to ``results/lg.jsonl``; a retried task skips what is done."""
    results_path = ctx.path("results", "lg.jsonl")
    done = {r["pair"] for r in read_jsonl(results_path) if r["success"]}
    plans = [
        p
        for p in read_jsonl(ctx.run_dir / "plans" / "validated.jsonl")
        if p.get("lg_op") and not p.get("lg_rejected")
    ]
    if ctx.dry_run:
        counts = Counter(f"would_{p['lg_op']}_{p['kind']}" for p in plans)
        log.info("load leadgen (dry run): nothing written; would %s", dict(counts))
        return {"counts": dict(counts), "lg_api_calls": lg.api_calls}
    ld = _Loader(ctx, lg, store, results_path, done)
    ld.counts["skipped_already_done"] = len(done)

    def of(kind: str, op: str) -> list[dict[str, Any]]:
        return [p for p in plans if p["kind"] == kind and p["lg_op"] == op]

    payload = lambda p: p["lg_payload"]  # noqa: E731
    lg_id = lambda p: p["lg_id"]  # noqa: E731
    # accounts
    ld.write(of(KIND_ACCOUNT, "create"), lg.create_accounts, payload, ld.created(DOMAIN_ACCOUNT))
    ld.write(of(KIND_ACCOUNT, "update"), lg.update_accounts, payload, ld.updated(DOMAIN_ACCOUNT))
    ld.write(of(KIND_ACCOUNT, "delete"), lg.delete_accounts, lg_id, ld.deleted(DOMAIN_ACCOUNT))
    # opportunities: accounts created above are linked now
    deferred = [p for p in plans if p["kind"] == KIND_OPPORTUNITY and p.get("account_deferred")]
    accounts = _active_links(store, DOMAIN_ACCOUNT, {p["account_deferred"] for p in deferred})
    skipped = []
    for p in deferred:
        acc = accounts.get(p["account_deferred"])
        if acc is not None:
            p["lg_payload"][REF_ACCOUNT] = acc.lg_id
            p.setdefault("agreed_if_lg", {})[REF_ACCOUNT] = acc.lg_id
            continue
        # The account could not be written (it is in the quarantine): the opportunity goes
        # without it now; the account reference is not recorded as synced, so it is set on
        # the opportunity's next change.
        ld.counts["account_unresolved"] += 1
        ld.notes[p["pair"]] = [
            {
                "event": "account_unresolved",
                "detail": f"account {p['account_deferred']} of opportunity {p['sf_id']} is not in "
                "Lead Gen & CRM yet (see the quarantine)",
            }
        ]
        if p["lg_op"] == "update" and set(p["lg_payload"]) == {"id"}:
            skipped.append(p)
    if skipped:
        write_jsonl(
            results_path,
            [
                {
                    "pair": p["pair"],
                    "kind": p["kind"],
                    "op": "update",
                    "success": True,
                    "id": p["lg_id"],
                    "unchanged": True,
                    "error_code": None,
                    "error_message": "",
                    "error_fields": [],
                    "events": ld.notes[p["pair"]],
                }
                for p in skipped
            ],
            append=True,
        )
        ld.done |= {p["pair"] for p in skipped}
    ld.write(
        of(KIND_OPPORTUNITY, "create"),
        lg.create_opportunities,
        payload,
        ld.created(DOMAIN_OPPORTUNITY),
    )
    ld.write(
        of(KIND_OPPORTUNITY, "update"),
        lg.update_opportunities,
        payload,
        ld.updated(DOMAIN_OPPORTUNITY),
    )
    ld.write(
        of(KIND_OPPORTUNITY, "delete"),
        lg.delete_opportunities,
        lg_id,
        ld.deleted(DOMAIN_OPPORTUNITY),
    )
    # memberships: opportunities created above are linked now; one whose opportunity could not
    # be written waits for it (recomputed when the opportunity is retried)
    creates = of(KIND_MEMBERSHIP, "create")
    unresolved = {p["opportunity_sf"] for p in creates if not p["lg_payload"].get("opportunityID")}
    opps = _active_links(store, DOMAIN_OPPORTUNITY, unresolved) if unresolved else {}
    ready = []
    for p in creates:
        if not p["lg_payload"].get("opportunityID"):
            link = opps.get(p["opportunity_sf"])
            if link is None:
                ld.counts["membership_waiting_for_opportunity"] += 1
                continue
            p["lg_payload"]["opportunityID"] = link.lg_id
        ready.append(p)
    ld.write(
        of(KIND_MEMBERSHIP, "delete"), lg.delete_opportunity_leads, lg_id, ld.membership_deleted
    )
    ld.write(ready, lg.create_opportunity_leads, payload, ld.membership_created)
    ld.adopt_duplicates(ready)
    # agreements without a write (values that already matched) refresh the synced values
    for kind in (KIND_ACCOUNT, KIND_OPPORTUNITY):
        agreed = {
            p["lg_id"]: p["agreed_now"]
            for p in read_jsonl(ctx.run_dir / "plans" / "validated.jsonl")
            if p["kind"] == kind and not p.get("lg_op") and p.get("agreed_now") and p.get("lg_id")
        }
        store.update_synced_values(LINK_DOMAIN[kind], agreed, ctx.run_id)
    log.info(
        "load leadgen: %s api_calls=%d",
        " ".join(f"{k}={v}" for k, v in sorted(ld.counts.items())),
        lg.api_calls,
    )
    return {"counts": dict(ld.counts), "lg_api_calls": lg.api_calls}


# =============================================================================================
# Stage: record (quarantine, held roles, run report)
# =============================================================================================


def record_stage(ctx: RunContext, store: Any, summaries: dict[str, Any]) -> dict[str, Any]:
    """Quarantine rejected rows (and release the ones that pass now), hold roles waiting for
    their contact, release completed and deleted ones, and build the run report."""
    results: dict[str, dict[str, Any]] = {}
    for r in read_jsonl(ctx.run_dir / "results" / "lg.jsonl"):
        if r["success"] or r["pair"] not in results:
            results[r["pair"]] = r
    prior = set(store.retry_keys(ctx.dag_id, DIRECTION, include_parked=True))
    t = tally(ctx, read_jsonl(ctx.run_dir / "plans" / "validated.jsonl"), results)
    held_rows = list(read_jsonl(ctx.run_dir / "extract" / "held.jsonl"))
    in_run = {p["sf_id"] for p in t.pending}
    waiting = [h for h in held_rows if h["state"] == "waiting" and h["role_id"] not in in_run]
    gone = [h["role_id"] for h in held_rows if h["state"] == "gone"]
    mem = t.sections["memberships"]
    mem["pending"] += len(waiting)
    resolved = 0
    if not ctx.dry_run:
        qkeys = set()
        for q in t.quarantine:
            store.quarantine(**q)
            qkeys.add(q["record_key"])
        resolved = store.resolve_quarantine(ctx.dag_id, DIRECTION, t.resolved - qkeys, ctx.run_id)
        for p in t.pending:
            store.hold(
                ctx.dag_id,
                HELD_KIND,
                p["sf_id"],
                payload={"opportunity_sf": p["opportunity_sf"], "contact_sf": p["contact_sf"]},
                reason=f"contact {p['contact_sf']} is not linked to a Lead Gen & CRM lead yet",
                waiting_for=f"person:{p['contact_sf']}",
            )
        for h in waiting:
            payload = h.get("payload") or {}
            store.hold(
                ctx.dag_id,
                HELD_KIND,
                h["role_id"],
                payload=payload,
                reason=f"contact {payload.get('contact_sf')} is not linked to a Lead Gen & CRM lead yet",
                waiting_for=f"person:{payload.get('contact_sf')}",
            )
        held_now = {h.item_key for h in store.held(ctx.dag_id, HELD_KIND)}
        mem["completed"] += store.release(
            ctx.dag_id, HELD_KIND, t.delivered & held_now, status="delivered"
        )
        mem["dropped"] += store.release(
            ctx.dag_id,
            HELD_KIND,
            set(gone) & held_now,
            status="dropped",
            reason="contact role deleted in Salesforce before its contact was linked",
        )
    new_rejects = [k for k in t.rejected_keys if k not in prior]
    rejected = len(new_rejects)
    reject_rate = (rejected / t.planned) if t.planned else 0.0
    validation = read_json(ctx.run_dir / "validation.json", {}) or {}
    stages = (read_json(ctx.run_dir / "stages.json", {}) or {}).get("resolution", {})
    prepared = summaries.get("prepare", {})
    report = {
        **run_header(ctx),
        "extracted": summaries.get("extract", {}).get("extracted", {}),
        "pairs": t.records,
        "salesforce": {},  # one way: nothing is ever written to Salesforce
        "leadgen": {"writes": 0, "failed": 0, "unchanged": 0, **dict(t.leadgen)},
        "opportunities": dict(t.sections["opportunities"]),
        "accounts": dict(t.sections["accounts"]),
        "memberships": dict(mem),
        "deal_stages": {
            "mapped": int(prepared.get("stages_mapped", 0)),
            "created": len(stages.get("created") or {}),
            "would_create": int(prepared.get("deal_stages_would_create", 0)),
        },
        "links": dict(t.links),
        "unchanged": t.unchanged,
        "quarantined": len(t.quarantine),
        "quarantine_resolved": resolved,
        "events": dict(t.events),
        "event_examples": t.event_examples,
        "rejected_rows": rejected,
        "still_quarantined_rows": len(t.rejected_keys) - rejected,
        "planned_rows": t.planned,
        "reject_rate": round(reject_rate, 4),
        "max_reject_rate": ctx.max_reject_rate,
        "validation": {
            "checks": validation.get("checks", {}),
            "top_failures": validation.get("top_failures", {}),
        },
        "quarantine_examples": [
            {k: q[k] for k in ("record_key", "direction", "category", "check", "field", "message")}
            for q in t.quarantine[:20]
        ],
        "warnings": list(prepared.get("stage_warnings") or [])
        + list(prepared.get("owner_problems") or []),
        "api_calls": sum_api_calls(summaries),
    }
    write_json(ctx.path("report.json"), report)
    log.info(
        "record: opportunities=%s accounts=%s memberships=%s quarantined=%d resolved=%d",
        report["opportunities"],
        report["accounts"],
        report["memberships"],
        report["quarantined"],
        resolved,
    )
    return report
