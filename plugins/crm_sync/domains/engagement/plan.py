"""Plan: each event's fate, and the Task of each event to deliver -> ``plans/plans.jsonl``.

* one event per task key: the first click per lead and email send (the others are
  ``superseded``), and each event once even when the window, the hold and the quarantine all
  bring it;
* lead not linked yet -> **hold**; its link marked deleted -> **drop** with the reason; linked
  record not found in Salesforce (deleted or merged since the last people run) -> **hold** until
  sync_leads_contacts updates the link;
* otherwise **deliver**: WhoId from the link (a converted Lead's Contact), OwnerId read from that
  record.

Two passes over the events (the first finds each email's first click), the second in chunks of
:data:`PLAN_CHUNK`, so memory holds the run's first-click keys and one chunk's people (the people
already looked up wait on disk), not its events.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from crm_sync.clients.salesforce import to_18
from crm_sync.domains.engagement.events import (
    build_task,
    event_order,
    first_click_orders,
    pick_owner,
    task_key,
    valid_ts,
)
from crm_sync.domains.engagement.rules import (
    DELIVER,
    DROP,
    HOLD,
    PERSON_DOMAIN,
    PLAN_CHUNK,
    SUPERSEDED,
    TASK,
)
from crm_sync.domains.engagement.spec import run_schema, run_spec
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.files import DiskIndex

if TYPE_CHECKING:
    from crm_sync.clients.salesforce import SalesforceClient
    from crm_sync.state.store import SyncStore
    from crm_sync.tasks import TaskRuntime

log = logging.getLogger(__name__)

Row = dict[str, Any]
SKIP: Row = {}  # an event this run leaves alone, without a plan row


def candidates(ctx: RunContext) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """Every event of this run once, with where it came from (``window``, ``held``, ``retry``).

    The window's events stream from their file (``getEvents`` pages in id order, so each comes
    once); held and quarantined events are few and are merged in from memory.
    """
    side: dict[str, dict[str, Any]] = {}
    side_origins: dict[str, set[str]] = defaultdict(set)
    for origin in ("held", "retry"):
        for ev in ctx.folder.read_jsonl(f"events/{origin}.jsonl"):
            side.setdefault(ev["id"], ev)
            side_origins[ev["id"]].add(origin)
    seen: set[str] = set()
    for ev in ctx.folder.read_jsonl("events/extracted.jsonl"):
        if ev["id"] in side:
            seen.add(ev["id"])
        yield ev, sorted({"window"} | side_origins.get(ev["id"], set()))
    for eid, ev in side.items():
        if eid not in seen:
            yield ev, sorted(side_origins[eid])


class People:
    """Person links and the linked Salesforce records (owner, conversion) of the run's leads,
    looked up once per run: a chunk of events asks only for the leads and records not seen
    before. What was looked up waits in task-local on-disk indexes, so memory holds one chunk's
    people whatever the size of the run (:attr:`links` and :attr:`records` are the chunk's)."""

    FIELDS = {
        "Lead": ["Id", "OwnerId", "IsConverted", "ConvertedContactId"],
        "Contact": ["Id", "OwnerId"],
    }

    def __init__(self, sf: Callable[[], SalesforceClient], store: SyncStore, ctx: RunContext):
        self._sf = sf  # the client, opened (a login) by the first chunk that needs a record
        self.store = store
        self._links = DiskIndex(ctx.scratch("plan/links.db"))  # lead id -> link ({}: none)
        self._records = DiskIndex(ctx.scratch("plan/records.db"))  # 18-char id -> record ({})
        self.links: dict[str, dict[str, Any]] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.looked_up = 0

    def load(self, lead_ids: Iterable[str]) -> None:
        """Make :attr:`links` and :attr:`records` those of ``lead_ids``."""
        ids = list(dict.fromkeys(i for i in lead_ids if i))
        known = self._links.get_many(ids)
        new = [i for i in ids if i not in known]
        if new:
            found = self.store.links_by_lg(PERSON_DOMAIN, new)
            fresh = {
                i: {k: getattr(found[i], k) for k in ("status", "sf_object", "sf_id")}
                if i in found
                else {}
                for i in new
            }
            self._links.put_many(fresh.items())
            known.update(fresh)
            self.looked_up += len(new)
        self.links = {i: link for i, link in known.items() if link}
        wanted: dict[str, set[str]] = {"Lead": set(), "Contact": set()}
        for link in self.links.values():
            if link["status"] == "active" and link["sf_object"] in wanted:
                wanted[link["sf_object"]].add(to_18(link["sf_id"]))
        self.records = {}
        self._query("Lead", wanted["Lead"])
        converted = {
            to_18(r["ConvertedContactId"])
            for r in self.records.values()
            if r.get("IsConverted") and r.get("ConvertedContactId")
        }
        self._query("Contact", wanted["Contact"] | converted)

    def _query(self, sobject: str, ids: set[str]) -> None:
        known = self._records.get_many(ids)
        todo = sorted(ids - set(known))
        if todo:
            got = {
                to_18(r["Id"]): r
                for r in self._sf().query_by_values(sobject, self.FIELDS[sobject], "Id", todo)
            }
            fresh = {i: got.get(i, {}) for i in todo}
            self._records.put_many(fresh.items())
            known.update(fresh)
        self.records.update({i: r for i, r in known.items() if r})

    def record(self, sf_id: str | None) -> dict[str, Any] | None:
        return self.records.get(to_18(sf_id)) if sf_id else None

    def close(self) -> None:
        self._links.close()
        self._records.close()


class Planner:
    """Decides each event's fate (see the module docstring) and builds its Task."""

    def __init__(self, rt: TaskRuntime):
        ctx = rt.run
        self.ctx = ctx
        self.spec = run_spec(ctx)
        schema = run_schema(ctx)
        self.active_users = set((ctx.folder.read_json("users.json", {}) or {}).get("active", []))
        completed = schema.sf(TASK, "CompletedDateTime")
        self.set_completed_at = bool(completed and completed.createable)
        self.enabled = set(self.spec.enabled_types())
        self.firsts = first_click_orders(
            ev for ev, _ in candidates(ctx) if ev["type"] in self.enabled
        )
        self.people = People(lambda: rt.salesforce, rt.store, ctx)
        self.counts: Counter = Counter()
        self.seen = 0

    def row(self, ev: Row, origins: list[str], outcome: str, reason: str = "", **extra: Any) -> Row:
        self.counts[f"{ev['type']}:{outcome}"] += 1
        return {
            "key": task_key(ev),
            "pair": task_key(ev),
            "type": ev["type"],
            "event": ev,
            "lead_id": ev.get("lead_id") or None,
            "origins": origins,
            "outcome": outcome,
            "reason": reason,
            **extra,
        }

    def decide(self, ev: Row, origins: list[str]) -> Row:
        """The fate of an event whose lead is known: by its link and its Salesforce record."""
        lead = ev["lead_id"]
        link = self.people.links.get(lead)
        if link is None:
            return self.row(
                ev, origins, HOLD, f"lead {lead} is not linked to a Salesforce Lead or Contact yet"
            )
        status, sf_object, sf_id = link["status"], link["sf_object"], link["sf_id"]
        if status == "deleted":
            reason = f"the Salesforce {sf_object} {sf_id} of lead {lead} was deleted"
            return self.row(ev, origins, DROP, reason, sf_object=sf_object)
        if status != "active":
            return self.row(ev, origins, HOLD, f"the link of lead {lead} is {status}")
        rec = self.people.record(sf_id)
        who_object = sf_object
        if rec is not None and rec.get("IsConverted"):
            rec = self.people.record(rec.get("ConvertedContactId"))
            who_object = "Contact"
        if rec is None:
            return self.row(
                ev,
                origins,
                HOLD,
                f"Salesforce {sf_object} {sf_id} of lead {lead} was not found "
                "(deleted or merged); waiting for sync_leads_contacts to update the link",
            )
        owner = pick_owner(rec, self.active_users)
        task = build_task(
            ev, self.spec, who_id=rec["Id"], owner_id=owner, set_completed_at=self.set_completed_at
        )
        return self.row(
            ev,
            origins,
            DELIVER,
            sf_object=who_object,
            who_id=rec["Id"],
            owner_fallback=None if owner else (rec.get("OwnerId") or "(none)"),
            sf_op="upsert",
            sf_payload=task,
        )

    def screen(self, ev: Row, origins: list[str]) -> Row | None:
        """The fate of an event decided without its lead's link (None: look the link up;
        :data:`SKIP`: no plan row at all)."""
        if ev["type"] not in self.enabled:
            # A held event of a type switched off is let go; a quarantined one stays put.
            if "held" in origins:
                return self.row(
                    ev, origins, DROP, f"{ev['type']} is switched off in engagement.yaml"
                )
            return SKIP
        first = self.firsts.get(task_key(ev)) if ev["type"] == "email_click" else None
        if first is not None and first != event_order(ev):
            return self.row(
                ev,
                origins,
                SUPERSEDED,
                f"not the first click of lead {ev['lead_id']} on email send "
                f"{ev['data'].get('emailJobID')}: event {first[2]} stands for it",
            )
        if not ev.get("lead_id"):
            return self.row(ev, origins, DROP, "the event names no lead")
        if not valid_ts(ev.get("at")):
            return self.row(
                ev, origins, DROP, f"the event has no valid timestamp ({ev.get('at')!r})"
            )
        return None

    def plans(self) -> Iterator[Row]:
        pending: list[tuple[Row, list[str]]] = []

        def flush() -> Iterator[Row]:
            self.people.load(ev["lead_id"] for ev, _ in pending)
            for ev, origins in pending:
                yield self.decide(ev, origins)
            pending.clear()

        for ev, origins in candidates(self.ctx):
            self.seen += 1
            screened = self.screen(ev, origins)
            if screened is None:
                pending.append((ev, origins))
                if len(pending) >= PLAN_CHUNK:
                    yield from flush()
            elif screened is not SKIP:
                yield screened
        yield from flush()


def plan(rt: TaskRuntime) -> dict[str, Any]:
    """Decide each event's fate and build its Task -> ``plans/plans.jsonl``."""
    p = Planner(rt)
    try:
        rt.run.folder.write_jsonl("plans/plans.jsonl", p.plans())
    finally:
        p.people.close()
    by_outcome = Counter(k.split(":")[1] for k in p.counts.elements())
    log.info(
        "plan engagement: events=%d deliver=%d hold=%d drop=%d superseded=%d links=%d sf_api_calls=%d",
        p.seen,
        by_outcome[DELIVER],
        by_outcome[HOLD],
        by_outcome[DROP],
        by_outcome[SUPERSEDED],
        p.people.looked_up,
        rt.calls().get("sf_api_calls", 0),
    )
    return {"counts": dict(p.counts)}
