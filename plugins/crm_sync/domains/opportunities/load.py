"""Load (Lead Gen & CRM only): accounts, then opportunities (their accounts resolved), then
memberships (their opportunities resolved), in the order of :data:`STEPS`.

The API has no external id for opportunities, accounts or opportunity leads, so a create is
recorded as a link right after its batch: a retried load skips what is done and never creates a
record twice. A membership create refused with 301 already exists (an earlier attempt wrote it
and could not record it): it is adopted, not failed.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crm_sync.domains.opportunities.rules import (
    DOMAIN_ACCOUNT,
    DOMAIN_MEMBERSHIP,
    DOMAIN_OPPORTUNITY,
    KIND_ACCOUNT,
    KIND_MEMBERSHIP,
    KIND_OPPORTUNITY,
    LG_BATCH,
    LINK_DOMAIN,
    REF_ACCOUNT,
    SF_OBJECT,
    active_links,
    lg_id,
)
from crm_sync.pipeline.files import chunked
from crm_sync.pipeline.results import ResultLog, ResultRow, outcome_row, result_row

if TYPE_CHECKING:
    from crm_sync.clients.leadgen import LeadGenClient
    from crm_sync.pipeline.context import RunContext
    from crm_sync.state.store import SyncStore
    from crm_sync.tasks import TaskRuntime

log = logging.getLogger(__name__)

Plan = dict[str, Any]
After = Callable[[Plan, ResultRow], None]


@dataclass
class Loader:
    ctx: RunContext
    lg: LeadGenClient
    store: SyncStore
    results: ResultLog
    done: set[str]
    counts: Counter = field(default_factory=Counter)
    notes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def write(self, plans: list[Plan], method: str, after: After) -> None:
        """Write ``plans`` in batches with the client's ``method``; after each batch, record the
        state and the results."""
        call = getattr(self.lg, method)
        todo = [p for p in plans if p["pair"] not in self.done]
        for batch in chunked(todo, LG_BATCH):
            args = [p["lg_id"] if p["lg_op"] == "delete" else p["lg_payload"] for p in batch]
            rows = []
            for plan, res in zip(batch, call(args), strict=True):
                row = result_row(
                    plan["pair"],
                    "leadgen",
                    plan["lg_op"],
                    res,
                    kind=plan["kind"],
                    events=self.notes.get(plan["pair"], []),
                )
                if not res.success and res.error_code == "404" and plan["lg_op"] == "delete":
                    row.update(success=True, error_code=None, error_message="")
                    row["already_gone"] = True  # type: ignore[typeddict-unknown-key]
                if row["success"]:
                    after(plan, row)
                rows.append(row)
                outcome = "ok" if row["success"] else "failed"
                self.counts[f"{plan['kind']}_{plan['lg_op']}_{outcome}"] += 1
            self.results.append(rows)

    # -- after-write bookkeeping (links and synced values) ------------------------------------
    @staticmethod
    def _agreed(plan: Plan) -> dict[str, Any]:
        return {**(plan.get("agreed_now") or {}), **(plan.get("agreed_if_lg") or {})}

    def created(self, kind: str) -> After:
        domain = LINK_DOMAIN[kind]

        def after(plan: Plan, row: ResultRow) -> None:
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
                SF_OBJECT[kind],
                plan["sf_id"],
                synced_values=self._agreed(plan),
                run_id=self.ctx.run_id,
                event="created",
            )
            row["links"] = {f"{domain}_created": 1}  # type: ignore[typeddict-unknown-key]

        return after

    def updated(self, kind: str) -> After:
        domain = LINK_DOMAIN[kind]

        def after(plan: Plan, row: ResultRow) -> None:
            self.store.update_synced_values(
                domain, {plan["lg_id"]: self._agreed(plan)}, self.ctx.run_id
            )

        return after

    def deleted(self, kind: str) -> After:
        domain = LINK_DOMAIN[kind]

        def after(plan: Plan, row: ResultRow) -> None:
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
            row["links"] = {  # type: ignore[typeddict-unknown-key]
                f"{domain}_deleted": 1,
                "membership_removed": len(plan.get("memberships_drop") or []),
            }

        return after

    def membership_created(self, plan: Plan, row: ResultRow) -> None:
        self.store.upsert_link(
            DOMAIN_MEMBERSHIP,
            str(row["id"]),
            "Opportunity",
            plan["opportunity_sf"],
            synced_values={
                "opportunity": lg_id(plan["lg_payload"]["opportunityID"]),
                "lead": lg_id(plan["lead_lg"]),
                "contact": plan["contact_sf"],
                "roles": plan.get("roles") or [],
            },
            run_id=self.ctx.run_id,
            event="created",
            detail=f"contact {plan['contact_sf']} on opportunity {plan['opportunity_sf']}",
        )
        row["links"] = {"membership_created": 1}  # type: ignore[typeddict-unknown-key]

    def membership_deleted(self, plan: Plan, row: ResultRow) -> None:
        self.store.delete_link(DOMAIN_MEMBERSHIP, plan["lg_id"], run_id=self.ctx.run_id)
        row["links"] = {"membership_removed": 1}  # type: ignore[typeddict-unknown-key]

    def adopt_duplicates(self, plans: list[Plan]) -> None:
        """A membership create refused with 301 already exists (an earlier attempt wrote it and
        could not record it): find its id and link it instead of failing."""
        rows = list(self.results.rows())
        ok = {r["pair"] for r in rows if r["success"]}
        dup = {
            r["pair"]
            for r in rows
            if r["kind"] == KIND_MEMBERSHIP and r["op"] == "create" and r["error_code"] == "301"
        } - ok
        by_opp: dict[str, list[Plan]] = defaultdict(list)
        for p in plans:
            if p["pair"] in dup:
                by_opp[lg_id(p["lg_payload"]["opportunityID"])].append(p)
        fixed: list[ResultRow] = []
        for opp_id, group in by_opp.items():
            existing = {
                lg_id(r.get("leadID")): lg_id(r.get("id"))
                for r in self.lg.get_opportunity_leads({"opportunityID": opp_id})
            }
            for p in group:
                found = existing.get(lg_id(p["lead_lg"]))
                if found:
                    row = outcome_row(
                        p["pair"], "leadgen", "create", id=found, kind=KIND_MEMBERSHIP, adopted=True
                    )
                    self.membership_created(p, row)
                    fixed.append(row)
        self.results.append(fixed)  # later rows win when the record stage reads the results


def _resolve_accounts(ld: Loader, plans: list[Plan]) -> None:
    """Opportunities whose account was created by this load get its id now. An account that
    could not be written (it is in the quarantine) is left off: its reference is not recorded as
    synced, so it is set on the opportunity's next change."""
    deferred = [p for p in plans if p["kind"] == KIND_OPPORTUNITY and p.get("account_deferred")]
    accounts = active_links(ld.store, DOMAIN_ACCOUNT, {p["account_deferred"] for p in deferred})
    skipped = []
    for p in deferred:
        acc = accounts.get(p["account_deferred"])
        if acc is not None:
            p["lg_payload"][REF_ACCOUNT] = acc.lg_id
            p.setdefault("agreed_if_lg", {})[REF_ACCOUNT] = acc.lg_id
            continue
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
    ld.results.append(
        [
            outcome_row(
                p["pair"],
                "leadgen",
                "update",
                id=p["lg_id"],
                kind=p["kind"],
                unchanged=True,
                events=ld.notes[p["pair"]],
            )
            for p in skipped
        ]
    )
    ld.done |= {p["pair"] for p in skipped}


def _ready_memberships(ld: Loader, creates: list[Plan]) -> list[Plan]:
    """Membership creates whose opportunity exists now; one whose opportunity could not be
    written waits for it (recomputed when the opportunity is retried)."""
    unresolved = {p["opportunity_sf"] for p in creates if not p["lg_payload"].get("opportunityID")}
    opps = active_links(ld.store, DOMAIN_OPPORTUNITY, unresolved) if unresolved else {}
    ready = []
    for p in creates:
        if not p["lg_payload"].get("opportunityID"):
            link = opps.get(p["opportunity_sf"])
            if link is None:
                ld.counts["membership_waiting_for_opportunity"] += 1
                continue
            p["lg_payload"]["opportunityID"] = link.lg_id
        ready.append(p)
    return ready


# The write order: (kind, op, client method, bookkeeping after each successful write).
STEPS: tuple[tuple[str, str, str, Callable[[Loader, str], After]], ...] = (
    (KIND_ACCOUNT, "create", "create_accounts", Loader.created),
    (KIND_ACCOUNT, "update", "update_accounts", Loader.updated),
    (KIND_ACCOUNT, "delete", "delete_accounts", Loader.deleted),
    (KIND_OPPORTUNITY, "create", "create_opportunities", Loader.created),
    (KIND_OPPORTUNITY, "update", "update_opportunities", Loader.updated),
    (KIND_OPPORTUNITY, "delete", "delete_opportunities", Loader.deleted),
)


def load(rt: TaskRuntime) -> dict[str, Any]:
    """Write the validated plans (see the module docstring); results go to ``results/lg``."""
    ctx, lg, store = rt.run, rt.leadgen, rt.store
    results = ResultLog(ctx.folder, "lg")
    done = results.done(success_only=True)
    plans = [
        p
        for p in ctx.folder.read_jsonl("plans/validated.jsonl")
        if p.get("lg_op") and not p.get("lg_rejected")
    ]
    if ctx.dry_run:
        counts = Counter(f"would_{p['lg_op']}_{p['kind']}" for p in plans)
        log.info("load leadgen (dry run): nothing written; would %s", dict(counts))
        return {"counts": dict(counts)}
    ld = Loader(ctx, lg, store, results, done)
    ld.counts["skipped_already_done"] = len(done)

    def of(kind: str, op: str) -> list[Plan]:
        return [p for p in plans if p["kind"] == kind and p["lg_op"] == op]

    for kind, op, method, after in STEPS:
        if (kind, op) == (KIND_OPPORTUNITY, "create"):
            _resolve_accounts(ld, plans)  # accounts created above are linked now
        ld.write(of(kind, op), method, after(ld, kind))
    ready = _ready_memberships(ld, of(KIND_MEMBERSHIP, "create"))
    ld.write(of(KIND_MEMBERSHIP, "delete"), "delete_opportunity_leads", ld.membership_deleted)
    ld.write(ready, "create_opportunity_leads", ld.membership_created)
    ld.adopt_duplicates(ready)
    # agreements without a write (values that already matched) refresh the synced values
    for kind in (KIND_ACCOUNT, KIND_OPPORTUNITY):
        agreed = {
            p["lg_id"]: p["agreed_now"]
            for p in ctx.folder.read_jsonl("plans/validated.jsonl")
            if p["kind"] == kind and not p.get("lg_op") and p.get("agreed_now") and p.get("lg_id")
        }
        store.update_synced_values(LINK_DOMAIN[kind], agreed, ctx.run_id)
    log.info(
        "load leadgen: %s api_calls=%d",
        " ".join(f"{k}={v}" for k, v in sorted(ld.counts.items())),
        lg.api_calls,
    )
    return {"counts": dict(ld.counts)}
