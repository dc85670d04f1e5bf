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

from crm_sync.errors import BudgetExhaustedError
from crm_sync.mapping.models import ObjectSpec
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.files import DiskMap, chunked, read_jsonl, write_jsonl
from crm_sync.pipeline.reconcile import ReconcileContext, reconcile

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

    def todo(op: str | None = None) -> Iterator[dict[str, Any]]:
        # Streamed from the run folder (read once per operation): memory stays bounded whatever
        # the size of the run.
        for p in _plans(ctx):
            if p.get("lg_op") and not p.get("lg_rejected") and p["pair"] not in done:
                if op is None or p["lg_op"] == op:
                    yield p

    counts["skipped_already_done"] = len(done)
    if ctx.dry_run:
        for p in todo():
            counts[f"would_{p['lg_op']}"] += 1
        log.info("load leadgen (dry run): nothing written; would %s", dict(counts))
        return {"counts": dict(counts), "lg_api_calls": lg.api_calls}
    for op in ("create", "update"):
        for batch in chunked(todo(op), LG_BATCH):
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
            if op == "create":
                # Read the new leads back: Lead Gen & CRM fills defaults (score 0, flags) that the
                # Salesforce side must get in this run, or the next run would see a change.
                created = {str(r["id"]): r for r in rows if r["success"] and r.get("id")}
                for lead in lg.get_leads_by_ids(list(created)) if created else []:
                    created[str(lead["id"])]["record"] = lead
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


def _link_back(
    plans: list[dict[str, Any]], created: dict[str, dict[str, Any]], rctx: ReconcileContext
) -> None:
    """Plans for Salesforce records whose leads were just created from them: point each at its
    lead (record link) and take the values Lead Gen & CRM filled in itself (push fields such as
    the default score). Reconciled in one pass per chunk (not record by record); each plan gets
    ``agreed_extra``, the canonical values both sides agree on once the write succeeds."""
    for chunk in chunked(plans, 2000):
        pairs = []
        for plan in chunk:
            new = created[plan["pair"]]
            pairs.append(
                {
                    "pair": plan["pair"],
                    "lg": new.get("record") or {"id": new["id"]},
                    "sf": plan.get("sf_record") or {"Id": plan["sf_id"]},
                    "sf_object": plan["sf_object"],
                    "match": "new",
                    "link": {
                        "lg_id": new["id"],
                        "sf_id": plan["sf_id"],
                        "synced_values": dict(plan.get("agreed_if_lg") or {}),
                    },
                }
            )
        by_pair = {p.pair: p for p in reconcile(pairs, rctx)}
        for plan in chunk:
            again = by_pair[plan["pair"]]
            plan["sf_op"] = plan.get("sf_op") or "update"
            plan["sf_payload"] = {
                **(plan.get("sf_payload") or {}),
                **again.sf_payload,
                "Id": plan["sf_id"],
            }
            plan["agreed_if_sf"] = {**(plan.get("agreed_if_sf") or {}), **again.agreed_if_sf}
            plan["agreed_extra"] = {**again.agreed_now, **again.agreed_if_sf}


def load_salesforce_stage(
    ctx: RunContext, sf: Any, specs: dict[str, ObjectSpec], rctx: ReconcileContext
) -> dict[str, Any]:
    """Creates (upserts on the record link) and updates, per object, streamed from the run
    folder in chunks. Records whose lead was created from them a moment ago get the link back
    (and Lead Gen & CRM's defaults) in the same pass."""
    counts: Counter = Counter()
    results_path = ctx.path("results", "sf.jsonl")
    done = _done(results_path)
    created = DiskMap(ctx.path("work", "lg_created.db"))
    created.put_many(
        (r["pair"], r)
        for r in read_jsonl(ctx.run_dir / "results" / "lg.jsonl")
        if r["op"] == "create" and r["success"] and r.get("id")
    )
    counts["skipped_already_done"] = len(done)
    try:

        def todo(sobject: str | None = None, op: str | None = None) -> Iterator[dict[str, Any]]:
            for chunk in chunked(_plans(ctx), 2000):
                chunk = [
                    p
                    for p in chunk
                    if p["pair"] not in done
                    and not p.get("sf_rejected")
                    and (sobject is None or p["sf_object"] == sobject)
                ]
                linking = [
                    p
                    for p in chunk
                    if p.get("sf_id") and specs[p["sf_object"]].record_link and p["pair"] in created
                ]
                if linking and op != "create":  # link-backs are updates
                    _link_back(linking, created.get_many(p["pair"] for p in linking), rctx)
                for p in chunk:
                    if p.get("sf_op") and (op is None or p["sf_op"] == op):
                        yield p

        if ctx.dry_run:
            for p in todo():
                counts[f"would_{p['sf_op']}_{p['sf_object']}"] += 1
            log.info("load salesforce (dry run): nothing written; would %s", dict(counts))
            return {"counts": dict(counts), "sf_api_calls": sf.api_calls}
        try:
            for sobject, spec in specs.items():
                for op in ("create", "update"):
                    total = sum(1 for _ in todo(sobject, op))
                    # Up to the Bulk threshold, one batch per sObject Collections call: as many
                    # calls as letting the client chunk, but results are recorded call by call,
                    # so a stop (API budget, crash) loses nothing that was written.
                    size = SF_BATCH if total > sf.bulk_threshold else sf.collection_size
                    for batch in chunked(todo(sobject, op), size):
                        _write_batch(sf, spec, sobject, op, batch, results_path, counts)
        except BudgetExhaustedError as exc:
            # Stop writing cleanly: what was written is recorded; the rest is deferred to the
            # next run (the watermark does not advance, so it is planned again).
            log.warning("load salesforce: %s", exc)
            written = _done(results_path)
            counts["deferred_by_budget"] = sum(1 for p in todo() if p["pair"] not in written)
            return {
                "counts": dict(counts),
                "sf_api_calls": sf.api_calls,
                "budget_exhausted": str(exc),
            }
    finally:
        created.close()
    log.info(
        "load salesforce: %s api_calls=%d",
        " ".join(f"{k}={v}" for k, v in sorted(counts.items())),
        sf.api_calls,
    )
    return {"counts": dict(counts), "sf_api_calls": sf.api_calls}


def _write_batch(
    sf: Any,
    spec: ObjectSpec,
    sobject: str,
    op: str,
    batch: list[dict[str, Any]],
    results_path: Any,
    counts: Counter,
) -> None:
    payloads = [p["sf_payload"] for p in batch]
    if op == "create":
        if spec.record_link:
            results = sf.upsert(sobject, spec.record_link.id_field, payloads)
        else:
            results = sf.create(sobject, payloads)
    else:
        results = sf.update(sobject, payloads)
    rows = [
        _result_row(plan, "salesforce", op, res, agreed_extra=plan.get("agreed_extra") or {})
        for plan, res in zip(batch, results, strict=True)
    ]
    for plan, r in zip(batch, rows, strict=True):
        if op == "update" and r["success"] and not r["id"]:
            r["id"] = plan["sf_payload"].get("Id")
        counts[f"{op}_{sobject}_{'ok' if r['success'] else 'failed'}"] += 1
    write_jsonl(results_path, rows, append=True)
