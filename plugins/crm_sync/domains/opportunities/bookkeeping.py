"""What a successful write of the opportunities load means for the state store: the links of
created records (the API has no external id for opportunities, accounts or opportunity leads, so
the link is how a later run knows the record exists), synced values, deleted and removed links.

Pure counts (:func:`link_counts`, kept in the result row for the run report) are separate from
the store writes (:class:`Bookkeeper`), because the load appends a batch's results *before* it
records the batch's links: a task that dies between the two finds the writes in its results on
retry (and never writes them again) and records the links then (:meth:`Bookkeeper.replay`).
Every store write here is idempotent for the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crm_sync.domains.opportunities.rules import (
    DOMAIN_ACCOUNT,
    DOMAIN_MEMBERSHIP,
    DOMAIN_OPPORTUNITY,
    KIND_ACCOUNT,
    KIND_MEMBERSHIP,
    KIND_OPPORTUNITY,
    LINK_DOMAIN,
    REF_ACCOUNT,
    SF_OBJECT,
    active_links,
    lg_id,
)
from crm_sync.pipeline.files import chunked
from crm_sync.pipeline.results import ResultRow

if TYPE_CHECKING:
    from crm_sync.pipeline.context import RunContext
    from crm_sync.state.store import SyncStore

Plan = dict[str, Any]
REPLAY_CHUNK = 2000


def link_counts(plan: Plan) -> dict[str, int]:
    """The link changes a successful write of ``plan`` makes (for the run report)."""
    kind, op = plan["kind"], plan["lg_op"]
    if kind == KIND_MEMBERSHIP:
        return {"membership_created" if op == "create" else "membership_removed": 1}
    domain = LINK_DOMAIN[kind]
    if op == "create":
        return {f"{domain}_created": 1}
    if op == "delete":
        return {
            f"{domain}_deleted": 1,
            "membership_removed": len(plan.get("memberships_drop") or []),
        }
    return {}


def _membership_values(plan: Plan) -> dict[str, Any]:
    """What a membership link remembers: its opportunity, lead, contact and roles."""
    return {
        "opportunity": lg_id(plan["lg_payload"]["opportunityID"]),
        "lead": lg_id(plan["lead_lg"]),
        "contact": plan["contact_sf"],
        "roles": plan.get("roles") or [],
    }


def agreed(plan: Plan) -> dict[str, Any]:
    """The values both sides hold once ``plan``'s write succeeded."""
    return {**(plan.get("agreed_now") or {}), **(plan.get("agreed_if_lg") or {})}


@dataclass
class Bookkeeper:
    ctx: RunContext
    store: SyncStore

    def record(self, plans: Iterable[Plan], rows: Iterable[ResultRow]) -> None:
        """The state changes of a batch's successful writes, in one transaction."""
        done = [(p, r) for p, r in zip(plans, rows, strict=True) if r["success"]]
        with self.store.batch():
            self.apply_all(done)

    def replay(self, plans: dict[str, Plan], rows: Iterable[ResultRow]) -> int:
        """Record again the state changes of writes an earlier attempt of this task made (its
        results are on disk; its links may not be). Idempotent; returns how many.

        The plans come from disk, without the references that attempt resolved while it
        wrote (the account of a new opportunity, the opportunity of a new membership: see
        load.py); they are resolved again from the links, accounts first, then opportunities,
        then memberships, the order of the writes."""
        done = [(plans[r["pair"]], r) for r in rows if r["success"] and r["pair"] in plans]
        with self.store.batch():
            for kind in (KIND_ACCOUNT, KIND_OPPORTUNITY, KIND_MEMBERSHIP):
                group = [(p, r) for p, r in done if p["kind"] == kind]
                self._resolve([p for p, _ in group])
                self.apply_all(group)
        return len(done)

    def _resolve(self, plans: list[Plan]) -> None:
        """Set the references a write resolved at load time, from the active links."""
        accounts = {p["account_deferred"] for p in plans if p.get("account_deferred")}
        for sf_id, link in active_links(self.store, DOMAIN_ACCOUNT, accounts).items():
            for p in plans:
                if p.get("account_deferred") == sf_id:
                    p["lg_payload"][REF_ACCOUNT] = link.lg_id
                    p.setdefault("agreed_if_lg", {})[REF_ACCOUNT] = link.lg_id
        members = [p for p in plans if p["kind"] == KIND_MEMBERSHIP and p["lg_op"] == "create"]
        unresolved = {
            p["opportunity_sf"] for p in members if not p["lg_payload"].get("opportunityID")
        }
        opportunities = active_links(self.store, DOMAIN_OPPORTUNITY, unresolved)
        for p in members:
            link = opportunities.get(p["opportunity_sf"])
            if link is not None and not p["lg_payload"].get("opportunityID"):
                p["lg_payload"]["opportunityID"] = link.lg_id

    def apply_all(self, done: list[tuple[Plan, ResultRow]]) -> None:
        """Apply successful writes: the links of created records and the synced values of
        updated ones in bulk (a few statements per batch, not a few per record); re-created
        records and deletions one by one (they change existing links)."""
        creates: dict[str, list[dict[str, Any]]] = {}
        updates: dict[str, dict[str, Any]] = {}
        for plan, row in done:
            kind, op = plan["kind"], plan["lg_op"]
            if op == "create" and not (plan.get("link_change") or {}).get("old_lg_id"):
                creates.setdefault(LINK_DOMAIN[kind], []).append(self._new_link(plan, row))
            elif op == "update" and kind != KIND_MEMBERSHIP:
                updates.setdefault(LINK_DOMAIN[kind], {})[plan["lg_id"]] = agreed(plan)
            else:
                self.apply(plan, row)
        for domain, links in creates.items():
            self.store.put_links(domain, links, self.ctx.run_id)
        for domain, values in updates.items():
            self.store.update_synced_values(domain, values, self.ctx.run_id)

    @staticmethod
    def _new_link(plan: Plan, row: ResultRow) -> dict[str, Any]:
        """The link a successful create makes (a record or a membership)."""
        if plan["kind"] == KIND_MEMBERSHIP:
            return {
                "lg_id": str(row["id"]),
                "sf_object": "Opportunity",
                "sf_id": plan["opportunity_sf"],
                "synced_values": _membership_values(plan),
                "event": "created",
                "detail": f"contact {plan['contact_sf']} on opportunity {plan['opportunity_sf']}",
            }
        return {
            "lg_id": str(row["id"]),
            "sf_object": SF_OBJECT[plan["kind"]],
            "sf_id": plan["sf_id"],
            "synced_values": agreed(plan),
            "event": "created",
        }

    def replay_stream(self, plans: Iterable[Plan], latest: Mapping[str, ResultRow]) -> int:
        """:meth:`replay` for plans streamed from the run folder and the latest result of each
        pair (an on-disk index): one transaction per chunk of plans."""
        n = 0
        for chunk in chunked(plans, REPLAY_CHUNK):
            found = [(p, latest.get(p["pair"])) for p in chunk if p["pair"] in latest]
            n += self.replay({p["pair"]: p for p, _ in found}, [r for _, r in found if r])
        return n

    def apply(self, plan: Plan, row: ResultRow) -> None:
        kind, op = plan["kind"], plan["lg_op"]
        if kind == KIND_MEMBERSHIP:
            (self._membership_created if op == "create" else self._membership_deleted)(plan, row)
        elif op == "create":
            self._created(plan, row)
        elif op == "update":
            self.store.update_synced_values(
                LINK_DOMAIN[kind], {plan["lg_id"]: agreed(plan)}, self.ctx.run_id
            )
        else:
            self._deleted(plan)

    def _created(self, plan: Plan, row: ResultRow) -> None:
        domain, run_id = LINK_DOMAIN[plan["kind"]], self.ctx.run_id
        change = plan.get("link_change") or {}
        if change.get("old_lg_id"):
            self.store.set_link_status(
                domain,
                change["old_lg_id"],
                "superseded",
                event=change["kind"],
                run_id=run_id,
                detail=f"replaced by {row['id']}",
            )
        self.store.upsert_link(
            domain,
            str(row["id"]),
            SF_OBJECT[plan["kind"]],
            plan["sf_id"],
            synced_values=agreed(plan),
            run_id=run_id,
            event="created",
        )

    def _deleted(self, plan: Plan) -> None:
        run_id = self.ctx.run_id
        self.store.set_link_status(
            LINK_DOMAIN[plan["kind"]],
            plan["lg_id"],
            "deleted",
            event="deleted",
            run_id=run_id,
            detail=f"{plan['sf_id']} deleted in Salesforce",
        )
        for mid in plan.get("memberships_drop") or []:
            self.store.delete_link(DOMAIN_MEMBERSHIP, mid, run_id=run_id)

    def _membership_created(self, plan: Plan, row: ResultRow) -> None:
        self.store.put_links(DOMAIN_MEMBERSHIP, [self._new_link(plan, row)], self.ctx.run_id)

    def _membership_deleted(self, plan: Plan, row: ResultRow) -> None:
        self.store.delete_link(DOMAIN_MEMBERSHIP, plan["lg_id"], run_id=self.ctx.run_id)
