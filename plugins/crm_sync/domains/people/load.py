"""Load: write the validated plans to each side, in batches, keeping every per-record result.

Lead Gen & CRM first (creates give the lead ids that Salesforce records must point back to),
then Salesforce. Every write is keyed so a rerun writes nothing twice:

* Salesforce creates are upserts on the record-link external id (the Lead Gen & CRM id);
  updates target the linked id.
* Lead Gen & CRM creates that hit "301 entry already exists" (a rerun after a crash) resolve to
  the existing lead by email; updates that change nothing come back as "302 no change".
* Results are appended after each batch (:class:`~crm_sync.pipeline.results.ResultLog`); a
  retried task skips the plans whose result is already recorded.
* Each batch's successful writes go to the run's change log first
  (:class:`~crm_sync.pipeline.changelog.ChangeLog`: before and after of every field, created
  records), which an undo reads.

Rows rejected by the validate stage are not written; the record stage quarantines them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from crm_sync.clients.results import AMBIGUOUS_WRITE, WriteResult
from crm_sync.domains.people.rules import DOMAIN, LG_OBJECT
from crm_sync.errors import AmbiguousWriteError, BudgetExhaustedError
from crm_sync.mapping.models import ObjectSpec
from crm_sync.pipeline.changelog import LEADGEN, SALESFORCE, ChangeLog, attach_before
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.files import DiskIndex, chunked
from crm_sync.pipeline.readback import NOT_APPLIED, not_applied
from crm_sync.pipeline.reconcile import ReconcileContext, reconcile
from crm_sync.pipeline.results import ResultLog, ResultRow, outcome_row, result_row

if TYPE_CHECKING:
    from crm_sync.clients.leadgen import LeadGenClient
    from crm_sync.clients.salesforce import SalesforceClient
    from crm_sync.state.store import SyncStore
    from crm_sync.tasks import TaskRuntime

log = logging.getLogger(__name__)

LG_BATCH = 500
# Above the client's Bulk threshold, one Bulk API 2.0 job per batch of this many records (about
# 7 calls for 10,000 records instead of 50 sObject Collections calls); results are recorded
# job by job, so a stop loses at most one job's answers, and creates are upserts on the record
# link, so writing them again cannot make anyone twice. One batch of plans in memory at a time.
SF_BULK_BATCH = 10_000
CHUNK = 2000


def _plans(ctx: RunContext) -> Iterator[dict[str, Any]]:
    yield from ctx.folder.read_jsonl("plans/validated.jsonl")


def load_leadgen(rt: TaskRuntime) -> dict[str, Any]:
    ctx, lg = rt.run, rt.leadgen
    results = ResultLog(ctx.folder, "lg")
    done = results.done()
    counts: Counter = Counter(skipped_already_done=len(done))

    def todo(op: str | None = None) -> Iterator[dict[str, Any]]:
        # Streamed from the run folder (read once per operation): memory stays bounded whatever
        # the size of the run.
        for p in _plans(ctx):
            if p.get("lg_op") and not p.get("lg_rejected") and p["pair"] not in done:
                if op is None or p["lg_op"] == op:
                    yield p

    if ctx.dry_run:
        for p in todo():
            counts[f"would_{p['lg_op']}"] += 1
        log.info("load leadgen (dry run): nothing written; would %s", dict(counts))
        return {"counts": dict(counts)}
    changes = ChangeLog(rt.store, ctx, LEADGEN, prefix="lg", link_domain=DOMAIN)
    for op in ("create", "update"):
        for batch in chunked(todo(op), LG_BATCH):
            changes.sending(batch)
            rows = _write_leads(lg, rt.store, op, batch)
            changes.log(batch, rows, obj=LG_OBJECT)
            for r in rows:
                counts[f"{op}_{'ok' if r['success'] else 'failed'}"] += 1
                if r.get("unchanged"):
                    counts["unchanged"] += 1
            results.append(rows)
    log.info(
        "load leadgen: %s api_calls=%d",
        " ".join(f"{k}={v}" for k, v in sorted(counts.items())),
        lg.api_calls,
    )
    return {"counts": dict(counts)}


def _write_leads(
    lg: LeadGenClient, store: SyncStore, op: str, batch: list[dict[str, Any]]
) -> list[ResultRow]:
    payloads = [p["lg_payload"] for p in batch]
    answers = lg.create_leads(payloads) if op == "create" else lg.update_leads(payloads)
    rows: list[ResultRow] = []
    dup_emails: dict[str, dict[str, Any]] = {}
    for plan, res in zip(batch, answers, strict=True):
        if op == "create" and not res.success and res.error_code == "301":
            dup_emails[str(plan["lg_payload"].get("emailAddress", "")).lower()] = plan
            continue
        rows.append(result_row(plan["pair"], "leadgen", op, res))
    if dup_emails:
        rows.extend(_adopt_existing(lg, store, op, dup_emails))
    if op == "create":
        # Read the new leads back: Lead Gen & CRM fills defaults (score 0, flags) that the
        # Salesforce side must get in this run, or the next run would see a change.
        created = {str(r["id"]): r for r in rows if r["success"] and r.get("id")}
        for lead in lg.get_leads_by_ids(list(created)) if created else []:
            created[str(lead["id"])]["record"] = lead  # type: ignore[typeddict-unknown-key]
    else:
        _check_updates(lg, batch, rows)
    return rows


def _check_updates(lg: LeadGenClient, batch: list[dict[str, Any]], rows: list[ResultRow]) -> None:
    """Read the updated leads back (one call per 500) and fail every update whose fields did not
    land, naming them (and, for an email, the lead that has it): the record stage quarantines
    it instead of recording values Lead Gen & CRM does not hold."""
    done = {r["pair"]: r for r in rows if r["success"]}
    plans = [p for p in batch if p["pair"] in done]
    if not plans:
        return
    current = {str(r["id"]): r for r in lg.get_leads_by_ids([p["lg_id"] for p in plans])}
    for plan in plans:
        missing = not_applied(plan["lg_payload"], current.get(str(plan["lg_id"])))
        if not missing:
            continue
        row = done[plan["pair"]]
        reason = f"Lead Gen & CRM answered success but did not change {', '.join(missing)}"
        email = plan["lg_payload"].get("emailAddress")
        if "emailAddress" in missing and email:
            owner = [
                str(r["id"])
                for r in lg.get_leads_by_emails([email])
                if str(r["id"]) != str(plan["lg_id"])
            ]
            if owner:
                reason = f"email {email} is already used by lead {owner[0]}; {reason}"
        row.update(
            success=False, error_code=NOT_APPLIED, error_message=reason, error_fields=missing
        )


def _adopt_existing(
    lg: LeadGenClient, store: SyncStore, op: str, dup_emails: dict[str, dict[str, Any]]
) -> list[ResultRow]:
    """301: a lead with this email exists already. A rerun after a crash (or a race with the
    form that created it) is adopted; a lead linked to *another* Salesforce record is not: the
    email belongs to another person in Salesforce, which is a duplicate to resolve there."""
    existing = {
        str(r.get("emailAddress", "")).strip().lower(): r
        for r in lg.get_leads_by_emails(list(dup_emails))
    }
    links = store.links_by_lg(DOMAIN, [str(r["id"]) for r in existing.values()])
    rows = []
    for email, plan in dup_emails.items():
        found = existing.get(email)
        link = links.get(str(found["id"])) if found is not None else None
        if found is not None and (
            link is None or link.status != "active" or link.sf_id == plan.get("sf_id")
        ):
            rows.append(
                outcome_row(plan["pair"], "leadgen", op, id=str(found["id"]), already_existed=True)
            )
            continue
        why = (
            f"email {email} belongs to lead {found['id']}, which is linked to Salesforce "
            f"{link.sf_id}"
            if found is not None and link is not None
            else "entry already exists and could not be found by email"
        )
        rows.append(
            outcome_row(
                plan["pair"],
                "leadgen",
                op,
                id=None,
                success=False,
                error_code="301",
                error_message=why,
                error_fields=["emailAddress"],
                already_existed=False,
            )
        )
    return rows


def _link_back(
    plans: list[dict[str, Any]], created: dict[str, dict[str, Any]], rctx: ReconcileContext
) -> None:
    """Plans for Salesforce records whose leads were just created from them: point each at its
    lead (record link) and take the values Lead Gen & CRM filled in itself (push fields such as
    the default score). Reconciled in one pass per chunk (not record by record); each plan gets
    ``agreed_extra``, the canonical values both sides agree on once the write succeeds, and
    ``sf_before`` (the record's values before, for the change log)."""
    for chunk in chunked(plans, CHUNK):
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
            plan["lg_id"] = created[plan["pair"]]["id"]
        attach_before(chunk, pairs, rctx)


class _SalesforceWork:
    """The Salesforce writes still to do, streamed from the run folder in chunks; records whose
    lead was created from them a moment ago get the link back (and Lead Gen & CRM's defaults)."""

    def __init__(self, rt: TaskRuntime, done: set[str]):
        from crm_sync.domains.people.plan import reconcile_context

        self.ctx, self.specs, self.done = rt.run, rt.specs, done
        self.rctx = reconcile_context(rt)
        self.created = DiskIndex(self.ctx.scratch("load/lg_created.db"))
        self.created.put_many(
            (r["pair"], r)
            for r in ResultLog(self.ctx.folder, "lg").rows()
            if r["op"] == "create" and r["success"] and r.get("id")
        )

    def todo(self, sobject: str | None = None, op: str | None = None) -> Iterator[dict[str, Any]]:
        for chunk in chunked(_plans(self.ctx), CHUNK):
            chunk = [
                p
                for p in chunk
                if p["pair"] not in self.done
                and not p.get("sf_rejected")
                and (sobject is None or p["sf_object"] == sobject)
            ]
            linking = [
                p
                for p in chunk
                if p.get("sf_id")
                and self.specs[p["sf_object"]].record_link
                and p["pair"] in self.created
            ]
            if linking and op != "create":  # link-backs are updates
                _link_back(linking, self.created.get_many(p["pair"] for p in linking), self.rctx)
            for p in chunk:
                if p.get("sf_op") and (op is None or p["sf_op"] == op):
                    yield p

    def close(self) -> None:
        self.created.close()


def load_salesforce(rt: TaskRuntime) -> dict[str, Any]:
    """Creates (upserts on the record link) and updates, per object, streamed from the run
    folder in chunks."""
    ctx, sf = rt.run, rt.salesforce
    results = ResultLog(ctx.folder, "sf")
    changes = ChangeLog(rt.store, ctx, SALESFORCE, prefix="sf", link_domain=DOMAIN)
    work = _SalesforceWork(rt, results.done())
    counts: Counter = Counter(skipped_already_done=len(work.done))
    try:
        if ctx.dry_run:
            for p in work.todo():
                counts[f"would_{p['sf_op']}_{p['sf_object']}"] += 1
            log.info("load salesforce (dry run): nothing written; would %s", dict(counts))
            return {"counts": dict(counts)}
        try:
            _write_all(sf, rt.specs, work, (results, changes), counts)
        except BudgetExhaustedError as exc:
            # Stop writing cleanly: what was written is recorded; the rest is deferred to the
            # next run (the watermark does not advance, so it is planned again).
            log.warning("load salesforce: %s", exc)
            written = results.done()
            counts["deferred_by_budget"] = sum(1 for p in work.todo() if p["pair"] not in written)
            return {"counts": dict(counts), "budget_exhausted": str(exc)}
    finally:
        work.close()
    log.info(
        "load salesforce: %s api_calls=%d",
        " ".join(f"{k}={v}" for k, v in sorted(counts.items())),
        sf.api_calls,
    )
    return {"counts": dict(counts)}


def sf_batch_size(total: int, sf: SalesforceClient) -> int:
    """Records per batch for ``total`` writes of one object and operation. Up to the client's
    Bulk threshold, one batch per sObject Collections call: as many calls as letting the client
    chunk, but results are recorded call by call, so a stop (API budget, crash) loses nothing
    that was written. Above it, batches the client sends as Bulk API 2.0 jobs (a batch no larger
    than the threshold would not be one: 2,000-record batches used to cost 10 calls each)."""
    if total > sf.bulk_threshold:
        return max(SF_BULK_BATCH, sf.bulk_threshold + 1)
    return sf.collection_size


def _write_all(
    sf: SalesforceClient,
    specs: dict[str, ObjectSpec],
    work: _SalesforceWork,
    logs: tuple[ResultLog, ChangeLog],
    counts: Counter,
) -> None:
    results, changes = logs
    for sobject, spec in specs.items():
        for op in ("create", "update"):
            total = sum(1 for _ in work.todo(sobject, op))
            for batch in chunked(work.todo(sobject, op), sf_batch_size(total, sf)):
                changes.sending(batch)
                rows = _write_batch(sf, spec, op, batch)
                for r in rows:
                    counts[f"{op}_{sobject}_{'ok' if r['success'] else 'failed'}"] += 1
                changes.log(batch, rows, obj=sobject)
                results.append(rows)


def _create_plain(
    sf: SalesforceClient, sobject: str, payloads: list[dict[str, Any]]
) -> list[WriteResult]:
    """Creates without the record link (a spec that maps none): the answer to a create may be
    lost after Salesforce applied it, and a blind retry would make the person twice. The records
    whose answer was lost are looked up by email; the ones found are taken, the others created
    once more (a second lost answer fails the task: its retry looks them up again)."""
    try:
        return sf.create(sobject, payloads)
    except AmbiguousWriteError as exc:
        answers = list(exc.results)
    lost = [a.index for a in answers if a.error_code == AMBIGUOUS_WRITE]
    emails = sorted({str(payloads[i].get("Email") or "").strip().lower() for i in lost} - {""})
    found: dict[str, list[str]] = {}
    for r in (
        sf.query_by_values(sobject, ["Id", "Email"], "Email", emails, where="IsDeleted = false")
        if emails
        else []
    ):
        found.setdefault(str(r.get("Email") or "").strip().lower(), []).append(r["Id"])
    again = []
    for i in lost:
        hits = found.get(str(payloads[i].get("Email") or "").strip().lower(), [])
        if len(hits) == 1:
            answers[i] = WriteResult(i, True, id=hits[0], created=False)
        else:
            again.append(i)
    for i, res in zip(
        again, sf.create(sobject, [payloads[i] for i in again]) if again else [], strict=True
    ):
        answers[i] = WriteResult(i, res.success, id=res.id, created=res.created, errors=res.errors)
    return answers


def _write_batch(
    sf: SalesforceClient, spec: ObjectSpec, op: str, batch: list[dict[str, Any]]
) -> list[ResultRow]:
    sobject = spec.salesforce_object
    payloads = [p["sf_payload"] for p in batch]
    if op == "create":
        if spec.record_link:
            answers = sf.upsert(sobject, spec.record_link.id_field, payloads)
        else:
            answers = _create_plain(sf, sobject, payloads)
    else:
        answers = sf.update(sobject, payloads)
    rows = []
    for plan, res in zip(batch, answers, strict=True):
        row = result_row(
            plan["pair"], "salesforce", op, res, agreed_extra=plan.get("agreed_extra") or {}
        )
        if op == "update" and row["success"] and not row["id"]:
            row["id"] = plan["sf_payload"].get("Id")
        rows.append(row)
    return rows
