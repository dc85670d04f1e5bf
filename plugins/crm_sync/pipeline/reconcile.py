"""Reconcile: matched pairs -> planned writes, field by field, by direction.

Pure: no I/O. Input is a chunk of *pairs* from the match stage (each with the raw Lead Gen & CRM
record, the raw Salesforce record, the link and the last synced canonical values); output is one
*plan* per pair saying what to write to each side and which canonical values both sides will
agree on once the writes succeed.

Rules (see docs/sync-rules.md):

* ``push``: Lead Gen & CRM overrides Salesforce whenever they differ. ``pull``: the reverse.
* ``two-way``: a field changed on one side since the last sync (canonical value differs from the
  last synced one) wins from that side; changed on both sides -> the newer record wins
  (``updateTimestamp`` vs ``LastModifiedDate``), equal times -> the spec's ``two_way_tie``. For a
  first pairing there is no last value: a non-blank value fills a blank one, otherwise the
  newer record wins.
* Blank policy ``keep`` (default): a blank never overwrites a value.
* Equal canonical values are never written (echo suppression): an idle rerun plans nothing.
* A field an undo restored on one side only (``link["held"]``: key -> the values each side
  kept) is written neither way while both sides still hold them; once one side changes, the
  other side's held value counts as the last synced one (see :func:`_undo_hold`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from crm_sync.mapping.models import BlankPolicy, Direction, FieldMapping, ObjectSpec, Side
from crm_sync.mapping.owners import OwnerMap
from crm_sync.mapping.schema import LiveSchema
from crm_sync.pipeline.transform import (
    canonicalize_leadgen,
    canonicalize_salesforce,
    leadgen_value,
    salesforce_value,
)


@dataclass
class FieldDecision:
    write_sf: bool = False
    write_lg: bool = False
    value: str | None = None
    agreed: bool = False
    conflict: bool = False
    winner: str | None = None


def decide(
    row: FieldMapping,
    a: str | None,
    b: str | None,
    last: str | None,
    *,
    linked: bool,
    has_last: bool,
    lg_newer: bool | None,
    tie: Side,
) -> FieldDecision:
    """Decide one field of one pair. ``a`` = Lead Gen & CRM canonical, ``b`` = Salesforce."""
    if a == b:
        return FieldDecision(value=a, agreed=True)
    keep_blanks = row.blank is BlankPolicy.KEEP

    def allowed(value: str | None, other: str | None) -> bool:
        return not (keep_blanks and value is None and other is not None)

    if row.direction is Direction.PUSH:
        return FieldDecision(write_sf=allowed(a, b), value=a, winner="leadgen")
    if row.direction is Direction.PULL:
        return FieldDecision(write_lg=allowed(b, a), value=b, winner="salesforce")
    if row.direction is Direction.NONE:
        return FieldDecision()

    # two-way
    conflict = False
    if linked and has_last:
        changed_a, changed_b = a != last, b != last
    else:
        changed_a = changed_b = True
        if keep_blanks and (a is None) != (b is None):
            # first pairing: a value fills a blank, whichever record is newer
            changed_a, changed_b = a is not None, b is not None
    if changed_a and not changed_b:
        winner = "leadgen"
    elif changed_b and not changed_a:
        winner = "salesforce"
    else:
        conflict = True
        if lg_newer is None:
            winner = tie.value
        else:
            winner = "leadgen" if lg_newer else "salesforce"
    if winner == "leadgen":
        return FieldDecision(write_sf=allowed(a, b), value=a, conflict=conflict, winner=winner)
    return FieldDecision(write_lg=allowed(b, a), value=b, conflict=conflict, winner=winner)


@dataclass
class Plan:
    """What to do for one pair. ``agreed_*`` feed the link's synced values after the load."""

    pair: str
    lg_id: str | None
    sf_id: str | None
    sf_object: str
    match: str
    sf_op: str | None = None
    sf_payload: dict[str, Any] = field(default_factory=dict)
    sf_fields: list[str] = field(default_factory=list)
    lg_op: str | None = None
    lg_payload: dict[str, Any] = field(default_factory=dict)
    lg_fields: list[str] = field(default_factory=list)
    agreed_now: dict[str, str | None] = field(default_factory=dict)
    agreed_if_sf: dict[str, str | None] = field(default_factory=dict)
    agreed_if_lg: dict[str, str | None] = field(default_factory=dict)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    link_change: dict[str, Any] | None = None
    # For Lead Gen & CRM creates: the Salesforce record, so the load stage can reconcile the
    # values Lead Gen & CRM fills in by itself (defaults) in the same run.
    sf_record: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ReconcileContext:
    """What reconcile needs besides the pairs: the specs by Salesforce object, the live schemas,
    the owner map, the app URL for record links, and the domain's values for new Lead Gen & CRM
    records (``create_defaults``: spec -> fields every create carries)."""

    specs: dict[str, ObjectSpec]
    schema: LiveSchema
    owners: OwnerMap | None
    app_base_url: str = ""
    create_defaults: Callable[[ObjectSpec], dict[str, Any]] | None = None

    def leadgen_defaults(self, spec: ObjectSpec) -> dict[str, Any]:
        return self.create_defaults(spec) if self.create_defaults else {}


def link_url(spec: ObjectSpec, lg_id: str, base_url: str) -> str | None:
    if not spec.record_link or not spec.record_link.url_field:
        return None
    return spec.record_link.url_template.format(base_url=base_url.rstrip("/"), id=lg_id)


def _ts_newer(lg_ts: datetime | None, sf_ts: datetime | None) -> bool | None:
    if lg_ts is None or sf_ts is None or lg_ts == sf_ts:
        return None
    return lg_ts > sf_ts


def _clean(v: Any) -> Any:
    if v is None:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v


def reconcile(pairs: list[dict[str, Any]], ctx: ReconcileContext) -> list[Plan]:
    """Plan the writes for a chunk of matched pairs (grouped per Salesforce object)."""
    plans: list[Plan] = []
    by_object: dict[str, list[dict[str, Any]]] = {}
    for p in pairs:
        by_object.setdefault(p["sf_object"], []).append(p)
    for sobject, group in by_object.items():
        spec = ctx.specs[sobject]
        plans.extend(_reconcile_object(group, spec, ctx))
    return plans


def _reconcile_object(
    pairs: list[dict[str, Any]], spec: ObjectSpec, ctx: ReconcileContext
) -> list[Plan]:
    lg_rows = [p["lg"] for p in pairs if p.get("lg")]
    sf_rows = [p["sf"] for p in pairs if p.get("sf")]
    lg = (
        canonicalize_leadgen(pd.DataFrame(lg_rows), spec, ctx.schema, ctx.owners)
        if lg_rows
        else None
    )
    sf = canonicalize_salesforce(pd.DataFrame(sf_rows), spec, ctx.schema) if sf_rows else None
    sobject = spec.salesforce_object
    out: list[Plan] = []
    for p in pairs:
        lg_rec = lg.loc[str(p["lg"]["id"])] if p.get("lg") and lg is not None else None
        sf_rec = sf.loc[str(p["sf"]["Id"])] if p.get("sf") and sf is not None else None
        if isinstance(lg_rec, pd.DataFrame):  # duplicate ids in one chunk: the newest wins
            lg_rec = lg_rec.iloc[-1]
        if isinstance(sf_rec, pd.DataFrame):
            sf_rec = sf_rec.iloc[-1]
        link = p.get("link") or {}
        lg_id = str(lg_rec["_lg_id"]) if lg_rec is not None else (link.get("lg_id") or None)
        sf_id = str(sf_rec["_sf_id"]) if sf_rec is not None else (link.get("sf_id") or None)
        plan = Plan(
            pair=p["pair"],
            lg_id=lg_id,
            sf_id=sf_id,
            sf_object=sobject,
            match=p.get("match", "link"),
            events=list(p.get("events") or []),
        )
        plan.link_change = p.get("link_change")
        if p.get("skip_fields"):
            pass
        elif lg_rec is not None and sf_rec is not None:
            _plan_update(plan, spec, ctx, lg_rec, sf_rec, link)
        elif lg_rec is not None:
            _plan_create_sf(plan, spec, ctx, lg_rec)
        elif sf_rec is not None:
            _plan_create_lg(plan, spec, ctx, sf_rec)
            plan.sf_record = p["sf"]
        extras = p.get("lg_extra") or []
        if extras and plan.lg_id and plan.lg_op != "create":
            # lifecycle writes decided by the match stage (deactivate, reactivate, contact status)
            for extra in extras:
                plan.lg_payload.update(extra)
            plan.lg_payload["id"] = plan.lg_id
            plan.lg_op = "update"
        out.append(plan)
    return out


def _plan_update(
    plan: Plan,
    spec: ObjectSpec,
    ctx: ReconcileContext,
    lg_rec: pd.Series,
    sf_rec: pd.Series,
    link: dict[str, Any],
) -> None:
    last_values: dict[str, Any] = link.get("synced_values") or {}
    linked = bool(link)
    lg_newer = _ts_newer(_clean(lg_rec["_lg_updated"]), _clean(sf_rec["_sf_modified"]))
    lg_owner_unknown = bool(_clean(lg_rec["_lg_owner_unmapped"]))
    holds: dict[str, Any] = link.get("held") or {}
    for row in spec.synced_fields:
        k = row.key
        a, b = _clean(lg_rec[k]), _clean(sf_rec[k])
        if lg_owner_unknown and "owner" in row.transform:
            # Salesforce cannot express this owner (no mapped user): it is not a blank and not a
            # change. The Lead Gen & CRM side counts as unchanged, so Salesforce's owner (e.g.
            # the fallback user a new record got) never flows back over it; a reassignment made
            # in Salesforce still does.
            a = last_values.get(k, b)
        held, last = _undo_hold(plan, k, a, b, holds.get(k), last_values.get(k))
        if held:
            continue
        d = decide(
            row,
            a,
            b,
            last,
            linked=linked,
            has_last=k in last_values or k in holds,
            lg_newer=lg_newer,
            tie=spec.two_way_tie,
        )
        if d.conflict and (d.write_lg or d.write_sf):
            plan.conflicts.append({"field": k, "winner": d.winner, "leadgen": a, "salesforce": b})
        if d.agreed:
            if last_values.get(k, object()) != d.value:
                plan.agreed_now[k] = d.value
        elif d.write_sf:
            plan.sf_payload[row.salesforce] = salesforce_value(
                d.value, ctx.schema.sf_type(spec.salesforce_object, row.salesforce)
            )
            plan.sf_fields.append(k)
            plan.agreed_if_sf[k] = d.value
        elif d.write_lg:
            value = leadgen_value(
                d.value, row, ctx.schema.sf_type(spec.salesforce_object, row.salesforce), ctx.owners
            )
            if value is None:
                plan.events.append(
                    {
                        "event": "owner_unmapped_sf",
                        "detail": f"Salesforce owner {d.value} has no Lead Gen & CRM user",
                    }
                )
                continue
            plan.lg_payload[row.leadgen] = value
            plan.lg_fields.append(k)
            plan.agreed_if_lg[k] = d.value
    if _clean(lg_rec["_lg_owner_unmapped"]) and any(
        "owner" in r.transform for r in spec.synced_fields
    ):
        plan.events.append(
            {
                "event": "owner_unmapped_lg",
                "detail": f"Lead Gen & CRM owner {lg_rec['_lg_owner']} is not mapped to an active Salesforce user",
            }
        )
    _plan_record_link(plan, spec, ctx, sf_rec)
    if plan.sf_payload:
        plan.sf_op = "update"
        plan.sf_payload["Id"] = plan.sf_id
    if plan.lg_payload:
        plan.lg_op = "update"
        plan.lg_payload["id"] = plan.lg_id


def _plan_record_link(
    plan: Plan, spec: ObjectSpec, ctx: ReconcileContext, sf_rec: pd.Series
) -> None:
    """The Salesforce record must point back at the lead (hyperlink widget)."""
    if spec.record_link and plan.lg_id:
        rl = spec.record_link
        if _clean(sf_rec["_sf_lgid"]) != plan.lg_id:
            plan.sf_payload[rl.id_field] = plan.lg_id
        url = link_url(spec, plan.lg_id, ctx.app_base_url)
        if url and rl.url_field and _clean(sf_rec["_sf_link_url"]) != url:
            plan.sf_payload[rl.url_field] = url


def _undo_hold(
    plan: Plan, key: str, a: str | None, b: str | None, hold: dict[str, Any] | None, last: Any
) -> tuple[bool, Any]:
    """(still held, last synced value to decide with) for a field an undo may hold: held while
    both sides keep the values the undo left; else the hold is released (an event the record
    stage acts on) and the side that did not change gives the last synced value."""
    if hold is None:
        return False, last
    if (a, b) == (hold["leadgen"], hold["salesforce"]):
        plan.events.append(
            {"event": "undo_held", "detail": f"{key}: left as undo {hold['run_id']} restored it"}
        )
        return True, last
    plan.events.append(
        {"event": "undo_hold_released", "detail": f"{key} changed since the undo", "key": key}
    )
    if a == hold["leadgen"]:
        return False, a
    return False, (b if b == hold["salesforce"] else last)


def _plan_create_sf(plan: Plan, spec: ObjectSpec, ctx: ReconcileContext, lg_rec: pd.Series) -> None:
    """A Lead Gen & CRM record with no Salesforce counterpart -> create it there (upsert on the
    record-link external id, so a rerun after a crash cannot create it twice)."""
    if not spec.creates_in_salesforce:
        plan.events.append({"event": "create_disabled", "detail": "create_in_salesforce is off"})
        return
    for row in spec.synced_fields:
        if not row.direction.writes_salesforce:
            continue
        v = _clean(lg_rec[row.key])
        if v is None:
            continue
        plan.sf_payload[row.salesforce] = salesforce_value(
            v, ctx.schema.sf_type(spec.salesforce_object, row.salesforce)
        )
        plan.sf_fields.append(row.key)
        plan.agreed_if_sf[row.key] = v
    owner_rows = [
        r for r in spec.synced_fields if "owner" in r.transform and r.direction.writes_salesforce
    ]
    if (
        owner_rows
        and owner_rows[0].salesforce not in plan.sf_payload
        and ctx.owners
        and ctx.owners.fallback_sf
    ):
        plan.sf_payload[owner_rows[0].salesforce] = ctx.owners.fallback_sf
        plan.events.append(
            {
                "event": "owner_fallback",
                "detail": f"new record owned by fallback user {ctx.owners.fallback_sf}",
            }
        )
    if _clean(lg_rec["_lg_owner_unmapped"]) and owner_rows:
        plan.events.append(
            {
                "event": "owner_unmapped_lg",
                "detail": f"Lead Gen & CRM owner {lg_rec['_lg_owner']} is not mapped to an active Salesforce user",
            }
        )
    if spec.record_link:
        plan.sf_payload[spec.record_link.id_field] = plan.lg_id
        url = link_url(spec, str(plan.lg_id), ctx.app_base_url)
        if url and spec.record_link.url_field:
            plan.sf_payload[spec.record_link.url_field] = url
    plan.sf_op = "create"


def _plan_create_lg(plan: Plan, spec: ObjectSpec, ctx: ReconcileContext, sf_rec: pd.Series) -> None:
    """A Salesforce record with no Lead Gen & CRM counterpart -> create it there."""
    if not spec.creates_in_leadgen:
        plan.events.append({"event": "create_disabled", "detail": "create_in_leadgen is off"})
        return
    for row in spec.synced_fields:
        if not row.direction.writes_leadgen:
            continue
        v = _clean(sf_rec[row.key])
        if v is None:
            continue
        value = leadgen_value(
            v, row, ctx.schema.sf_type(spec.salesforce_object, row.salesforce), ctx.owners
        )
        if value is None:
            plan.events.append(
                {
                    "event": "owner_unmapped_sf",
                    "detail": f"Salesforce owner {v} has no Lead Gen & CRM user",
                }
            )
            continue
        plan.lg_payload[row.leadgen] = value
        plan.lg_fields.append(row.key)
        plan.agreed_if_lg[row.key] = v
    if "ownerID" not in plan.lg_payload and ctx.owners and ctx.owners.fallback_lg:
        plan.lg_payload["ownerID"] = ctx.owners.fallback_lg
    plan.lg_payload.update(ctx.leadgen_defaults(spec))
    plan.lg_op = "create"
