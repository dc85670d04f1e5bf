"""Plan: reconcile output refined with the domain's references and memberships.

Every spec row is pull (Salesforce wins every field): the spine's per-field reconcile plans the
field writes; this module adds the references that are not spec rows — ``dealStageID`` from the
stage map, ``accountID`` and ``primaryLeadID`` from the state store's links — and the membership
plans of each opportunity. Their last synced values live in the opportunity link next to the
spec fields', so an idle rerun writes nothing. An edit made in Lead Gen & CRM is overwritten by
the next Salesforce change of that record, and the run report names it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pandas as pd

from crm_sync.domains.opportunities.memberships import plan_memberships, primary_lead
from crm_sync.domains.opportunities.rules import (
    CHUNK,
    KIND_ACCOUNT,
    KIND_MEMBERSHIP,
    KIND_OPPORTUNITY,
    KIND_PENDING,
    LG_TARGET,
    REF_ACCOUNT,
    REF_PRIMARY,
    REF_STAGE,
    REFERENCES,
    SF_OBJECT,
    lg_id,
)
from crm_sync.domains.opportunities.stages import stage_ids
from crm_sync.mapping.models import ObjectSpec
from crm_sync.mapping.owners import OwnerMap
from crm_sync.mapping.schema import LiveSchema
from crm_sync.pipeline.changelog import before_values
from crm_sync.pipeline.files import chunked
from crm_sync.pipeline.reconcile import ReconcileContext, reconcile
from crm_sync.pipeline.transform import canonicalize_leadgen, truthy

if TYPE_CHECKING:
    from crm_sync.tasks import TaskRuntime

log = logging.getLogger(__name__)


def _current(lg_rec: dict[str, Any] | None, name: str) -> str:
    return lg_id((lg_rec or {}).get(name))


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
            if _current(lg_rec, key) != lg_id(synced[key]):
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
        desired[REF_ACCOUNT] = lg_id(pair["account_lg"])
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


def _deleted_plan(kind: str, pair: dict[str, Any]) -> dict[str, Any] | None:
    """A Salesforce record deleted (or merged away): delete its linked Lead Gen & CRM record."""
    sf, link = pair["sf"], pair.get("link")
    if not (link and link.get("status") == "active"):
        return None
    plan = _base_plan(kind, pair, lg_op="delete")
    plan["lg_payload"] = {"id": link["lg_id"]}
    detail = f"merged into {sf['MasterRecordId']}" if sf.get("MasterRecordId") else "deleted"
    plan["events"].append(
        {"event": "deleted", "detail": f"{SF_OBJECT[kind]} {sf['Id']} {detail} in Salesforce"}
    )
    if kind == KIND_OPPORTUNITY:
        # Lead Gen & CRM removes an opportunity's leads with it: only the links go.
        plan["memberships_drop"] = [m["lg_id"] for m in pair.get("memberships") or []]
    return plan


def _refine(
    plan: dict[str, Any],
    pair: dict[str, Any],
    kind: str,
    rctx: ReconcileContext,
    stages: dict[str, str],
) -> None:
    """The domain's part of a live record's plan: a record created again, the references, and
    the Lead Gen & CRM edits this one-way sync overwrites (reported)."""
    sobject = SF_OBJECT[kind]
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
    if plan.get("lg_op") != "update" or pair.get("lg") is None:
        return
    # the values this update overwrites, for the change log (undo restores them); an account
    # created by this run is set on the payload at load time
    written = [*plan["lg_payload"], *([REF_ACCOUNT] if plan.get("account_deferred") else [])]
    plan["lg_before"] = before_values(dict.fromkeys(written), pair["lg"])
    edited = leadgen_edits(
        rctx.specs[sobject],
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


def plan_records(
    kind: str,
    pairs: list[dict[str, Any]],
    rctx: ReconcileContext,
    stages: dict[str, str],
) -> list[dict[str, Any]]:
    """Plans for a chunk of opportunity or account pairs (and their memberships).

    ``rctx`` is the spine's ``ReconcileContext`` (specs by Salesforce object, schema, owners).
    Deleted Salesforce records delete their linked Lead Gen & CRM record; the others go through
    the spine's per-field reconcile (every spec row is pull), then get this domain's references.
    """
    sobject = SF_OBJECT[kind]
    out: list[dict[str, Any]] = []
    live: list[dict[str, Any]] = []
    for pair in pairs:
        if truthy(pair["sf"].get("IsDeleted")):
            gone = _deleted_plan(kind, pair)
            if gone is not None:
                out.append(gone)
        else:
            live.append(pair)
    if not live:
        return out
    plans = {
        p.pair: p.to_dict()
        for p in reconcile([_pair_for_reconcile(p, sobject) for p in live], rctx)
    }
    for pair in live:
        plan = plans[pair["pair"]]
        _refine(plan, pair, kind, rctx, stages)
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


def plan(rt: TaskRuntime) -> dict[str, Any]:
    """``pairs/*.jsonl`` -> ``plans/plans.jsonl`` (accounts first: opportunities refer to them)."""
    ctx = rt.run
    rctx = ReconcileContext(specs=rt.specs, schema=rt.schema, owners=rt.owners)
    stages = stage_ids(ctx)
    counts: Counter = Counter()

    def plans() -> Iterator[dict[str, Any]]:
        for kind, name in (
            (KIND_ACCOUNT, "accounts.jsonl"),
            (KIND_OPPORTUNITY, "opportunities.jsonl"),
        ):
            for chunk in chunked(ctx.folder.read_jsonl(f"pairs/{name}"), CHUNK):
                for p in plan_records(kind, chunk, rctx, stages):
                    counts[f"{p['kind']}_{p.get('lg_op') or 'none'}"] += 1
                    yield p

    ctx.folder.write_jsonl("plans/plans.jsonl", plans())
    log.info("reconcile: %s", " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return {"counts": dict(counts)}
