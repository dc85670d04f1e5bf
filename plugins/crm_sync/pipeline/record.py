"""Record: apply the run's outcome to the state store and write the run report.

* Links: created for new pairs, re-pointed on conversion/merge/relink, marked deleted when the
  lead was deactivated, restored on undelete; every change lands in the link history.
* Synced values: only for fields whose write succeeded (or that already agreed), so a failed
  write is retried, and a successful one is never seen as a change again (echo suppression).
* Quarantine: rows rejected by the quality gate or by the target system, with reason and
  payload; rows that now pass leave it.
* Run report, then the watermark (only when the load and the quality gate succeeded).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.files import read_json, read_jsonl, write_json

log = logging.getLogger(__name__)

# Target system error codes -> quarantine categories (see docs/data-quality.md).
ERROR_CATEGORIES = {
    "REQUIRED_FIELD_MISSING": "required field",
    "INVALID_EMAIL_ADDRESS": "format",
    "INVALID_TYPE_ON_FIELD_IN_RECORD": "format",
    "JSON_PARSER_ERROR": "format",
    "MALFORMED_ID": "format",
    "STRING_TOO_LONG": "length",
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": "picklist",
    "DUPLICATE_VALUE": "duplicate",
    "DUPLICATES_DETECTED": "duplicate",
    "301": "duplicate",
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": "validation rule",
    "INSUFFICIENT_ACCESS_OR_READONLY": "permission",
    "INSUFFICIENT_ACCESS": "permission",
    "INVALID_FIELD_FOR_INSERT_UPDATE": "permission",
    "CANNOT_UPDATE_CONVERTED_LEAD": "missing link",
    "ENTITY_IS_DELETED": "missing link",
    "INVALID_CROSS_REFERENCE_KEY": "missing link",
    "INACTIVE_OWNER_OR_USER": "permission",
    "404": "missing link",
    "214": "missing link",
    "205": "format",
    "217": "format",
}

DOMAIN = "person"


def category_for(code: str | None) -> str:
    return ERROR_CATEGORIES.get(str(code or ""), "other")


def _quarantine_kwargs(ctx: RunContext, plan: dict[str, Any], direction: str) -> dict[str, Any]:
    if direction == "lg_to_sf":
        key = f"lg:{plan['lg_id']}" if plan.get("lg_id") else plan["pair"]
        target = plan["sf_object"]
        payload = plan.get("sf_payload") or {}
    else:
        key = f"sf:{plan['sf_id']}" if plan.get("sf_id") else plan["pair"]
        target = "lead"
        payload = plan.get("lg_payload") or {}
    return {
        "dag_id": ctx.dag_id,
        "domain": ctx.domain,
        "direction": direction,
        "record_key": key,
        "target_object": target,
        "lg_id": plan.get("lg_id"),
        "sf_id": plan.get("sf_id"),
        "payload": payload,
        "run_id": ctx.run_id,
        "max_attempts": ctx.max_attempts,
    }


def _gate_entry(
    ctx: RunContext, plan: dict[str, Any], direction: str, failures: list[dict[str, Any]]
) -> dict[str, Any]:
    """Quarantine row for a plan the quality gate rejected (the first failing check leads)."""
    first = failures[0]
    return {
        **_quarantine_kwargs(ctx, plan, direction),
        "category": first["category"],
        "check": first["check"],
        "field": first["field"],
        "error_code": None,
        "message": "; ".join(f["message"] for f in failures),
    }


def _load_entry(
    ctx: RunContext, plan: dict[str, Any], direction: str, res: dict[str, Any], who: str, op: str
) -> dict[str, Any]:
    """Quarantine row for a write the target system rejected, with its own error code."""
    system = "salesforce" if direction == "lg_to_sf" else "leadgen"
    return {
        **_quarantine_kwargs(ctx, plan, direction),
        "category": category_for(res["error_code"]),
        "check": f"{system}:{res['error_code']}",
        "field": ",".join(res.get("error_fields") or []) or None,
        "error_code": res["error_code"],
        "message": f"{who} rejected the {op}: {res['error_message']}",
    }


def record_people(ctx: RunContext, store: Any, stage_summaries: dict[str, Any]) -> dict[str, Any]:
    """Apply results to the state store and build the run report (dict, JSON-able)."""
    lg_results = {r["pair"]: r for r in read_jsonl(ctx.run_dir / "results" / "lg.jsonl")}
    sf_results = {r["pair"]: r for r in read_jsonl(ctx.run_dir / "results" / "sf.jsonl")}
    c: Counter = Counter()
    events: Counter = Counter()
    event_examples: dict[str, list[str]] = {}
    quarantined: list[dict[str, Any]] = []
    resolved_keys: dict[str, list[str]] = {"lg_to_sf": [], "sf_to_lg": []}
    values_by_lg: dict[str, dict[str, Any]] = {}
    planned = rejected = still_rejected = loaded = 0
    new_links: list[dict[str, Any]] = []  # first pairings, inserted in bulk
    # Rows already in quarantine before this run are retried here; failing again is not news and
    # must not turn every later run red. The threshold counts rows rejected for the first time.
    prior = {
        (direction, key)
        for direction in ("lg_to_sf", "sf_to_lg")
        for key in store.retry_keys(ctx.dag_id, direction, include_parked=True)
    }

    # One transaction for every state change of the run: fast, and all or nothing.
    with store.batch():
        for plan in read_jsonl(ctx.run_dir / "plans" / "validated.jsonl"):
            c["pairs"] += 1
            for e in plan.get("events") or []:
                events[e["event"]] += 1
                event_examples.setdefault(e["event"], [])
                if len(event_examples[e["event"]]) < 5:
                    event_examples[e["event"]].append(e.get("detail", ""))
            if plan.get("conflicts"):
                events["conflict"] += len(plan["conflicts"])
            has_write = bool(plan.get("sf_op") or plan.get("lg_op"))
            planned += has_write
            row_rejected = False
            first_q = len(quarantined)

            # -- Salesforce side (lg_to_sf) --------------------------------------------------
            sf_ok = True
            sf_id = plan.get("sf_id")
            if plan.get("sf_op"):
                if plan.get("sf_rejected"):
                    sf_ok = False
                    row_rejected = True
                    quarantined.append(_gate_entry(ctx, plan, "lg_to_sf", plan["sf_rejected"]))
                    c["sf_rejected_by_gate"] += 1
                elif ctx.dry_run:
                    c[f"sf_would_{plan['sf_op']}"] += 1
                else:
                    res = sf_results.get(plan["pair"])
                    if res is None:
                        sf_ok = False
                        c["sf_not_attempted"] += 1
                    elif res["success"]:
                        if plan["sf_op"] == "create":
                            sf_id = res["id"]
                            c[
                                "sf_created"
                                if res.get("created", True) is not False
                                else "sf_adopted"
                            ] += 1
                        else:
                            c["sf_updated"] += 1
                    else:
                        sf_ok = False
                        row_rejected = True
                        who = f"Salesforce {plan['sf_object']} {plan.get('sf_id') or '(new)'} (lead {plan.get('lg_id')})"
                        quarantined.append(
                            _load_entry(ctx, plan, "lg_to_sf", res, who, plan["sf_op"])
                        )
                        c["sf_failed"] += 1

            # -- Lead Gen & CRM side (sf_to_lg) ----------------------------------------------
            lg_ok = True
            lg_id = plan.get("lg_id")
            if plan.get("lg_op"):
                if plan.get("lg_rejected"):
                    lg_ok = False
                    row_rejected = True
                    quarantined.append(_gate_entry(ctx, plan, "sf_to_lg", plan["lg_rejected"]))
                    c["lg_rejected_by_gate"] += 1
                elif ctx.dry_run:
                    c[f"lg_would_{plan['lg_op']}"] += 1
                else:
                    res = lg_results.get(plan["pair"])
                    if res is None:
                        lg_ok = False
                        c["lg_not_attempted"] += 1
                    elif res["success"]:
                        if plan["lg_op"] == "create":
                            lg_id = res["id"]
                            c["lg_adopted" if res.get("already_existed") else "lg_created"] += 1
                        elif res.get("unchanged"):
                            c["lg_unchanged"] += 1
                        else:
                            c["lg_updated"] += 1
                        payload = plan.get("lg_payload") or {}
                        if payload.get("active") == "0":
                            c["lg_deactivated"] += 1
                        elif payload.get("active") == "1":
                            c["lg_reactivated"] += 1
                    else:
                        lg_ok = False
                        row_rejected = True
                        who = f"Lead Gen & CRM lead {plan.get('lg_id') or '(new)'} (Salesforce {plan['sf_object']} {plan.get('sf_id')})"
                        quarantined.append(
                            _load_entry(ctx, plan, "sf_to_lg", res, who, plan["lg_op"])
                        )
                        c["lg_failed"] += 1
            if not has_write:
                c["unchanged"] += 1
            loaded += has_write and not row_rejected and sf_ok and lg_ok and not ctx.dry_run
            row_new = any(
                (q["direction"], q["record_key"]) not in prior for q in quarantined[first_q:]
            )
            rejected += row_rejected and row_new
            still_rejected += row_rejected and not row_new
            if ctx.dry_run:
                continue

            # -- state: quarantine resolution, links, synced values ---------------------------
            if sf_ok and plan.get("lg_id"):
                resolved_keys["lg_to_sf"].append(f"lg:{plan['lg_id']}")
            if lg_ok and plan.get("sf_id"):
                resolved_keys["sf_to_lg"].append(f"sf:{plan['sf_id']}")
            agreed = dict(plan.get("agreed_now") or {})
            if plan.get("sf_op") and sf_ok:
                agreed.update(plan.get("agreed_if_sf") or {})
            if plan.get("lg_op") and lg_ok:
                agreed.update(plan.get("agreed_if_lg") or {})
            sf_res = sf_results.get(plan["pair"])
            if sf_res and sf_res["success"] and sf_res.get("agreed_extra"):
                agreed.update(sf_res["agreed_extra"])
            change = plan.get("link_change") or {}
            kind = change.get("kind")
            if not lg_id or not sf_id:
                continue
            if kind == "merge_collision":
                store.upsert_link(
                    DOMAIN,
                    lg_id,
                    plan["sf_object"],
                    sf_id,
                    status="collision",
                    run_id=ctx.run_id,
                    event="merge_collision",
                    detail=_first_detail(plan, "merge_collision"),
                )
                c["links_collision"] += 1
                continue
            if kind == "deleted":
                if lg_ok:
                    store.set_link_status(
                        DOMAIN,
                        lg_id,
                        "deleted",
                        event="deactivated",
                        run_id=ctx.run_id,
                        detail=f"{sf_id} deleted in Salesforce",
                    )
                    c["links_deactivated"] += 1
                continue
            if kind in ("converted", "merged", "undeleted"):
                store.upsert_link(
                    DOMAIN,
                    lg_id,
                    plan["sf_object"],
                    sf_id,
                    synced_values=agreed,
                    run_id=ctx.run_id,
                    event=kind,
                    detail=_first_detail(plan, kind),
                )
                c[f"links_{kind}"] += 1
            elif kind == "relinked":
                if sf_ok:
                    store.upsert_link(
                        DOMAIN,
                        lg_id,
                        plan["sf_object"],
                        sf_id,
                        synced_values=agreed,
                        run_id=ctx.run_id,
                        event="relinked",
                        detail="lead reactivated",
                        merge_values=False,
                    )
                    c["links_relinked"] += 1
            elif plan.get("match") in ("new", "email", "external_id"):
                created_ok = (plan.get("sf_op") != "create" or sf_ok) and (
                    plan.get("lg_op") != "create" or lg_ok
                )
                if created_ok:
                    event = {
                        "new": "created",
                        "email": "paired_by_email",
                        "external_id": "paired_by_external_id",
                    }[plan["match"]]
                    new_links.append(
                        {
                            "lg_id": lg_id,
                            "sf_object": plan["sf_object"],
                            "sf_id": sf_id,
                            "synced_values": agreed,
                            "event": event,
                        }
                    )
                    if len(new_links) >= 2000:
                        c["links_refused_duplicate"] += len(new_links) - store.add_links(
                            DOMAIN, new_links, ctx.run_id
                        )
                        new_links = []
                    c[f"links_{event}"] += 1
            elif agreed:
                values_by_lg[lg_id] = agreed
                if len(values_by_lg) >= 2000:  # bounded memory on large runs
                    store.update_synced_values(DOMAIN, values_by_lg, ctx.run_id)
                    values_by_lg = {}

        if not ctx.dry_run:
            c["links_refused_duplicate"] += len(new_links) - store.add_links(
                DOMAIN, new_links, ctx.run_id
            )
            store.update_synced_values(DOMAIN, values_by_lg, ctx.run_id)
            qkeys: dict[str, set[str]] = {"lg_to_sf": set(), "sf_to_lg": set()}
            for q in quarantined:
                store.quarantine(**q)
                qkeys[q["direction"]].add(q["record_key"])
            for direction, keys in resolved_keys.items():
                c[f"quarantine_resolved_{direction}"] += store.resolve_quarantine(
                    ctx.dag_id, direction, set(keys) - qkeys[direction], ctx.run_id
                )

    reject_rate = (rejected / planned) if planned else 0.0
    validation = read_json(ctx.run_dir / "validation.json", {}) or {}
    report = {
        **run_header(ctx),
        "extracted": {
            **(stage_summaries.get("extract_leadgen", {}).get("extracted", {})),
            **(stage_summaries.get("extract_salesforce", {}).get("extracted", {})),
        },
        "pairs": c["pairs"],
        "salesforce": {k[3:]: v for k, v in c.items() if k.startswith("sf_")},
        "leadgen": {k[3:]: v for k, v in c.items() if k.startswith("lg_")},
        "links": {k[6:]: v for k, v in c.items() if k.startswith("links_") and v},
        "unchanged": c["unchanged"],
        "quarantined": len(quarantined),
        "quarantine_resolved": c["quarantine_resolved_lg_to_sf"]
        + c["quarantine_resolved_sf_to_lg"],
        "events": dict(events),
        "event_examples": event_examples,
        "loaded_rows": loaded,
        "rejected_rows": rejected,
        "still_quarantined_rows": still_rejected,
        "planned_rows": planned,
        "reject_rate": round(reject_rate, 4),
        "max_reject_rate": ctx.max_reject_rate,
        "validation": {
            "checks": validation.get("checks", {}),
            "top_failures": validation.get("top_failures", {}),
        },
        "quarantine_examples": [
            {k: q[k] for k in ("record_key", "direction", "category", "check", "field", "message")}
            for q in quarantined[:20]
        ],
        "api_calls": sum_api_calls(stage_summaries),
    }
    write_json(ctx.path("report.json"), report)
    return report


def run_header(ctx: RunContext) -> dict[str, Any]:
    """The part of every DAG's run report that says which run and which window it was."""
    return {
        "dag_id": ctx.dag_id,
        "run_id": ctx.run_id,
        "window": {
            "start": ctx.window_start.isoformat(),
            "end": ctx.window_end.isoformat(),
            "caught_up_from": ctx.caught_up_from.isoformat() if ctx.caught_up_from else None,
        },
        "dry_run": ctx.dry_run,
        "full_resync": ctx.full_resync,
    }


def _first_detail(plan: dict[str, Any], kind: str) -> str | None:
    for e in plan.get("events") or []:
        if e["event"] == kind:
            return e.get("detail")
    return None


def sum_api_calls(stage_summaries: dict[str, Any]) -> dict[str, int]:
    """Each task builds its own clients, so the run's calls are the sum over tasks."""
    sf = sum(int(s.get("sf_api_calls", 0)) for s in stage_summaries.values() if isinstance(s, dict))
    lg = sum(int(s.get("lg_api_calls", 0)) for s in stage_summaries.values() if isinstance(s, dict))
    return {"salesforce": sf, "leadgen": lg}
