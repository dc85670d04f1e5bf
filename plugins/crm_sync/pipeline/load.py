"""Load: write the validated plans to each side, in batches, keeping every per-record result.

Lead Gen & CRM first (creates give the lead ids that Salesforce records must point back to),
then Salesforce. Every write is keyed so a rerun writes nothing twice:

* Salesforce creates are upserts on the record-link external id (the Lead Gen & CRM id);
  updates target the linked id.
* Lead Gen & CRM creates that hit "301 entry already exists" (a rerun after a crash) resolve to
  the existing lead by email; updates that change nothing come back as "302 no change".
* Results are appended to ``results/<side>.jsonl`` after each batch; a retried task skips the
  plans whose result is already recorded.

Rows rejected by the validate stage are not written; the record stage quarantines them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

from crm_sync.mapping.models import ObjectSpec
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.files import chunked, read_jsonl, write_jsonl
from crm_sync.pipeline.reconcile import link_url

log = logging.getLogger(__name__)

LG_BATCH = 500
SF_BATCH = 2000  # the client switches to Bulk API 2.0 above its own threshold


def _done(path: Any) -> set[str]:
    return {r["pair"] for r in read_jsonl(path)}


def _result_row(
    plan: dict[str, Any], target: str, op: str, res: Any, **extra: Any
) -> dict[str, Any]:
    return {
        "pair": plan["pair"],
        "target": target,
        "op": op,
        "success": bool(res.success),
        "id": res.id,
        "created": res.created,
        "unchanged": bool(getattr(res, "unchanged", False)),
        "error_code": res.error_code,
        "error_message": res.error_message,
        "error_fields": [f for e in res.errors for f in e.fields],
        **extra,
    }


def _plans(ctx: RunContext) -> Iterator[dict[str, Any]]:
    yield from read_jsonl(ctx.run_dir / "plans" / "validated.jsonl")


def load_leadgen_stage(ctx: RunContext, lg: Any) -> dict[str, Any]:
    counts: Counter = Counter()
    results_path = ctx.path("results", "lg.jsonl")
    done = _done(results_path)
    todo = [
        p
        for p in _plans(ctx)
        if p.get("lg_op") and not p.get("lg_rejected") and p["pair"] not in done
    ]
    counts["skipped_already_done"] = len(done)
    if ctx.dry_run:
        for p in todo:
            counts[f"would_{p['lg_op']}"] += 1
        log.info("load leadgen (dry run): nothing written; would %s", dict(counts))
        return {"counts": dict(counts), "lg_api_calls": lg.api_calls}
    for op in ("create", "update"):
        batch_plans = [p for p in todo if p["lg_op"] == op]
        for batch in chunked(batch_plans, LG_BATCH):
            payloads = [p["lg_payload"] for p in batch]
            results = lg.create_leads(payloads) if op == "create" else lg.update_leads(payloads)
            rows = []
            dup_emails = {}
            for plan, res in zip(batch, results, strict=True):
                if op == "create" and not res.success and res.error_code == "301":
                    dup_emails[str(plan["lg_payload"].get("emailAddress", "")).lower()] = plan
                    continue
                rows.append(_result_row(plan, "leadgen", op, res))
            if dup_emails:
                # 301: the lead exists already (a rerun after a crash, or a race): adopt it.
                existing = {
                    str(r.get("emailAddress", "")).lower(): r
                    for r in lg.get_leads_by_emails(list(dup_emails))
                }
                for email, plan in dup_emails.items():
                    found = existing.get(email)
                    rows.append(
                        {
                            "pair": plan["pair"],
                            "target": "leadgen",
                            "op": op,
                            "success": found is not None,
                            "id": str(found["id"]) if found else None,
                            "created": False,
                            "unchanged": False,
                            "already_existed": found is not None,
                            "error_code": None if found else "301",
                            "error_message": None
                            if found
                            else "entry already exists and could not be found by email",
                            "error_fields": [] if found else ["emailAddress"],
                        }
                    )
            for r in rows:
                counts[f"{op}_{'ok' if r['success'] else 'failed'}"] += 1
                if r.get("unchanged"):
                    counts["unchanged"] += 1
            write_jsonl(results_path, rows, append=True)
    log.info(
        "load leadgen: %s api_calls=%d",
        " ".join(f"{k}={v}" for k, v in sorted(counts.items())),
        lg.api_calls,
    )
    return {"counts": dict(counts), "lg_api_calls": lg.api_calls}


def load_salesforce_stage(
    ctx: RunContext, sf: Any, specs: dict[str, ObjectSpec], app_base_url: str
) -> dict[str, Any]:
    counts: Counter = Counter()
    results_path = ctx.path("results", "sf.jsonl")
    done = _done(results_path)
    lg_created = {
        r["pair"]: r["id"]
        for r in read_jsonl(ctx.run_dir / "results" / "lg.jsonl")
        if r["op"] == "create" and r["success"] and r.get("id")
    }
    todo: list[dict[str, Any]] = []
    for p in _plans(ctx):
        if p["pair"] in done or p.get("sf_rejected"):
            continue
        spec = specs[p["sf_object"]]
        if p["pair"] in lg_created and p.get("sf_id") and spec.record_link:
            # a lead just created from this Salesforce record: point the record back at it
            new_id = lg_created[p["pair"]]
            p["sf_op"] = p.get("sf_op") or "update"
            p["sf_payload"] = {
                **(p.get("sf_payload") or {}),
                "Id": p["sf_id"],
                spec.record_link.id_field: new_id,
            }
            url = link_url(spec, new_id, app_base_url)
            if url and spec.record_link.url_field:
                p["sf_payload"][spec.record_link.url_field] = url
        if p.get("sf_op"):
            todo.append(p)
    counts["skipped_already_done"] = len(done)
    if ctx.dry_run:
        for p in todo:
            counts[f"would_{p['sf_op']}_{p['sf_object']}"] += 1
        log.info("load salesforce (dry run): nothing written; would %s", dict(counts))
        return {"counts": dict(counts), "sf_api_calls": sf.api_calls}
    for sobject, spec in specs.items():
        for op in ("create", "update"):
            batch_plans = [p for p in todo if p["sf_object"] == sobject and p["sf_op"] == op]
            for batch in chunked(batch_plans, SF_BATCH):
                payloads = [p["sf_payload"] for p in batch]
                if op == "create":
                    if not spec.record_link:
                        results = sf.create(sobject, payloads)
                    else:
                        results = sf.upsert(sobject, spec.record_link.id_field, payloads)
                else:
                    results = sf.update(sobject, payloads)
                rows = [
                    _result_row(plan, "salesforce", op, res)
                    for plan, res in zip(batch, results, strict=True)
                ]
                for plan, r in zip(batch, rows, strict=True):
                    if op == "update" and r["success"] and not r["id"]:
                        r["id"] = plan["sf_payload"].get("Id")
                    counts[f"{op}_{sobject}_{'ok' if r['success'] else 'failed'}"] += 1
                write_jsonl(results_path, rows, append=True)
    log.info(
        "load salesforce: %s api_calls=%d",
        " ".join(f"{k}={v}" for k, v in sorted(counts.items())),
        sf.api_calls,
    )
    return {"counts": dict(counts), "sf_api_calls": sf.api_calls}
