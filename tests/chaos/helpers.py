"""Helpers of the chaos tests: a seeded world, a busy hour of edits on both sides, fault storms
on both sandboxes, the invariant checker as a subprocess, and the write-log audit that proves
no record was created twice.
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PEOPLE, OPPS, ENGAGE = "sync_leads_contacts", "sync_opportunities", "sync_engagement_activities"
DAGS = (PEOPLE, OPPS, ENGAGE)
# The first synced hour ends here; the world is seeded three hours before it.
H0 = datetime(2026, 11, 20, 6, tzinfo=UTC)
# People seeded on each side (CI size; bench/bench_chaos.py runs bigger worlds).
PEOPLE_SEEDED = int(os.environ.get("CHAOS_PEOPLE") or 240)

SF_TS = "%Y-%m-%dT%H:%M:%SZ"
LG_TS = "%Y-%m-%d %H:%M:%S"


@dataclass
class World:
    """What the seed made: ids to edit later, and counts for the figures."""

    seeded_at: datetime
    lg_leads: list[int]
    lg_inactive: list[int]
    sf_people: dict[str, int]
    lg_defects: list[dict[str, Any]]
    sf_defects: dict[str, int]
    events: int
    overlap: int
    edits: Counter = field(default_factory=Counter)


def freeze(fresh: Any, moment: datetime) -> None:
    """Freeze both sandbox clocks at ``moment``: what happens now is stamped then."""
    fresh.sf.post("clock", {"now": moment.strftime(SF_TS)})
    fresh.lg.post("clock", {"now": moment.strftime(LG_TS)})


def seed_world(fresh: Any, *, people: int = PEOPLE_SEEDED, at: datetime | None = None) -> World:
    """A few hundred people on each side, a fifth of Salesforce's also in Lead Gen & CRM (same
    email), accounts and opportunities with contact roles, a year of marketing activity for
    half the leads, and the seeds' defective rows (bad emails, missing names, too long values,
    stale picklist values, inactive owners) on both sides."""
    at = at or H0 - timedelta(hours=3)
    freeze(fresh, at)
    sf = fresh.sf.post(
        "seed",
        {
            "counts": {
                "Account": people // 8,
                "Contact": people * 3 // 8,
                "Lead": people // 2,
                "Opportunity": people // 8,
                "OpportunityContactRole": people // 6,
            },
            "seed": 15,
            "defects": True,
            "end_at": at.strftime(SF_TS),
            "days": 120,
        },
    )
    lg = fresh.lg.post(
        "seed",
        {
            "leads": people,
            "seed": 15,
            "defects": True,
            "activity_leads": people // 2,
            "inactive": 3,
        },
    )
    from tests.e2e.helpers import sf_client

    client = sf_client()
    picked = [
        r
        for sobject in ("Lead", "Contact")
        for r in client.query(
            f"SELECT Email, FirstName, LastName FROM {sobject} WHERE Email != null "
            f"ORDER BY Id LIMIT {people // 10}"
        )
    ]
    rows = [
        {"emailAddress": r["Email"], "firstName": r["FirstName"] or "", "lastName": r["LastName"]}
        for r in picked
    ]
    imported = fresh.lg.post("import", {"leads": rows})["results"]
    first, last = int(lg["first_lead_id"]), int(lg["last_lead_id"])
    return World(
        seeded_at=at,
        lg_leads=list(range(first, last + 1)),
        lg_inactive=[int(i) for i in lg.get("inactive_ids", [])],
        sf_people={k: v for k, v in sf["created"].items() if k in ("Lead", "Contact")},
        lg_defects=lg.get("defects", []),
        sf_defects=sf.get("defects", {}),
        events=int(lg["events"]),
        overlap=sum(1 for r in imported if r.get("success")),
    )


# -- a busy hour -----------------------------------------------------------------------------


def _live_ids(sobject: str, where: str = "") -> list[str]:
    from tests.e2e.helpers import sf_client

    soql = f"SELECT Id FROM {sobject}{f' WHERE {where}' if where else ''} ORDER BY Id"
    return [r["Id"] for r in sf_client().query(soql)]


def busy_hour(fresh: Any, world: World, hour: datetime, rng: random.Random) -> None:
    """An hour of ordinary work before the run that ends at ``hour``: marketers edit leads, new
    people fill forms, an email goes out and is opened and clicked, pages are visited; reps edit
    Leads and Contacts, add contacts and an opportunity with contact roles, move stages, convert
    a lead and delete one. Every change is stamped 50 minutes before ``hour``."""
    freeze(fresh, hour - timedelta(minutes=50))
    edits = world.edits
    lg = fresh.lg
    untouchable = {int(d["id"]) for d in world.lg_defects} | set(world.lg_inactive)
    active = [i for i in world.lg_leads if i not in untouchable]
    for lead in rng.sample(active, 8):
        lg.post(f"leads/{lead}", {"fields": {"title": f"Title {hour:%H}-{lead % 97}"}})
        edits["lg_lead_edits"] += 1
    for lead in rng.sample(active, 2):
        lg.post(f"leads/{lead}/score", {"leadScore": rng.randrange(1, 100)})
        edits["lg_score_changes"] += 1
    for n in range(3):
        email = f"chaos.{hour:%d%H}.{n}@storm.example"
        lg.post(
            "forms/submit",
            {
                "emailAddress": email,
                "formName": "Contact Us",
                "fields": {"firstName": "Storm", "lastName": f"Form{n}", "companyName": "Gale"},
            },
        )
        edits["lg_form_fills"] += 1
    recipients = rng.sample(active, 12)
    job = lg.post("emails/send", {"subject": f"News {hour:%H}", "leadIDs": recipients})
    edits["lg_email_sends"] += len(recipients)
    for lead in recipients[:4]:
        lg.post("emails/open", {"leadID": lead, "emailJobID": job["emailJobID"]})
        lg.post(
            "emails/click",
            {"leadID": lead, "emailJobID": job["emailJobID"], "url": "https://x.example/p"},
        )
        edits["lg_opens_clicks"] += 2
    for lead in rng.sample(active, 3):
        lg.post("page-visits", {"leadID": lead, "url": f"https://x.example/{hour:%H}"})
        edits["lg_page_visits"] += 1
    _rep_work(fresh, hour, rng, edits)


def _rep_work(fresh: Any, hour: datetime, rng: random.Random, edits: Counter) -> None:
    sf = fresh.sf
    leads = _live_ids("Lead", "IsConverted = false")
    contacts = _live_ids("Contact")
    for sobject, ids in (("Lead", leads), ("Contact", contacts)):
        for sf_id in rng.sample(ids, 3):
            _patch(fresh, sobject, sf_id, {"Title": f"Rep title {hour:%H}"})
            edits["sf_person_edits"] += 1
    for sf_id in rng.sample(contacts, 2):
        _patch(fresh, "Contact", sf_id, {"Description": f"Met at {hour:%H}:00"})
        edits["sf_person_edits"] += 1
    accounts = _live_ids("Account")
    account = rng.choice(accounts)
    new_contacts = [
        sf.post(
            "records/Contact",
            {
                "FirstName": "Rep",
                "LastName": f"New{hour:%H}{n}",
                "Email": f"rep.{hour:%d%H}.{n}@storm.example",
                "AccountId": account,
            },
        )["id"]
        for n in range(2)
    ]
    edits["sf_new_contacts"] += 2
    opp = sf.post(
        "records/Opportunity",
        {
            "Name": f"Storm deal {hour:%d %H}",
            "StageName": "Prospecting",
            "CloseDate": "2026-12-31",
            "Amount": 1000 + hour.hour,
            "AccountId": account,
        },
    )["id"]
    for i, contact in enumerate(new_contacts):
        sf.post(
            "records/OpportunityContactRole",
            {"OpportunityId": opp, "ContactId": contact, "IsPrimary": i == 0},
        )
    edits["sf_new_opportunities"] += 1
    for opp_id in rng.sample(_live_ids("Opportunity", "IsClosed = false"), 2):
        _patch(fresh, "Opportunity", opp_id, {"StageName": "Negotiation/Review"})
        edits["sf_stage_changes"] += 1
    convert, delete = rng.sample(leads, 2)
    sf.post("actions/convert-lead", {"leadId": convert, "doNotCreateOpportunity": True})
    sf.post("actions/delete", {"ids": [delete]})
    edits["sf_conversions"] += 1
    edits["sf_deletions"] += 1


def _patch(fresh: Any, sobject: str, sf_id: str, fields: dict[str, Any]) -> None:
    from tests.e2e.helpers import sf_patch

    sf_patch(fresh, sobject, sf_id, fields)


# -- faults ----------------------------------------------------------------------------------

SF_CALL_FAULTS = (
    "SERVER_UNAVAILABLE,UNABLE_TO_LOCK_ROW,DROP,DROP_AFTER,INVALID_SESSION_ID,CONCURRENT_LIMIT"
)
SF_RECORD_FAULTS = "UNABLE_TO_LOCK_ROW,API_TEMPORARILY_UNAVAILABLE"
LG_FAULTS = ["999", "drop", "drop_after", "500", "107"]


class Storm:
    """Random faults on both sandboxes, switched on and off around the DAG runs (the test's own
    setup reads are not part of the storm), with what each sandbox injected added up (turning
    Salesforce's faults off resets its counters)."""

    def __init__(self, fresh: Any, rate: float):
        self.fresh, self.rate = fresh, rate
        self.injected: dict[str, Counter] = {"salesforce": Counter(), "leadgen": Counter()}

    def on(self, seed: int, rate: float | None = None) -> None:
        """Faults at ``rate`` (default: the storm's) of the calls of both APIs (and of
        Salesforce records)."""
        rate = self.rate if rate is None else rate
        self.fresh.sf.post(
            "faults",
            {
                "rate": rate,
                "kinds": SF_CALL_FAULTS,
                "record_rate": rate,
                "record_kinds": SF_RECORD_FAULTS,
                "seed": seed,
            },
        )
        self.fresh.lg.post(
            "config", {"fault_rate": rate, "fault_kinds": LG_FAULTS, "fault_seed": seed}
        )

    def off(self) -> None:
        """Every fault off, deterministic rules too; what was injected is kept in ``injected``."""
        sf = self.fresh.sf.get("faults").get("injected", {})
        self.injected["salesforce"].update(sf)
        self.fresh.sf.delete("faults")
        self.fresh.lg.post("config", {"fault_rate": 0.0})
        self.fresh.lg.delete("faults")
        rejected = self.fresh.lg.get("calls").get("rejected", {})
        lg = {k.split(":", 1)[1]: v for k, v in rejected.items() if k.startswith("fault:")}
        self.injected["leadgen"] = Counter(lg)  # Lead Gen & CRM keeps counting until a reset

    def pending(self) -> list[dict[str, Any]]:
        """Deterministic faults not injected yet (a round's should all have been hit)."""
        return self.fresh.sf.get("faults")["rules"] + self.fresh.lg.get("faults")["pending"]

    def sf_rule(self, **rule: Any) -> None:
        self.fresh.sf.post("faults/rules", rule)

    def lg_rule(self, method: str, fault: str, count: int = 1) -> None:
        self.fresh.lg.post("faults", {"method": method, "fault": fault, "count": count})


def airflow_retries(dag_id: str, run_id: str) -> int:
    """Task retries Airflow made in a run (from its metadata database)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tries = session.query(TaskInstance.try_number).filter(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
        )
        return sum(max(0, n - 1) for (n,) in tries)


# -- the checks ------------------------------------------------------------------------------


def verify(world: World, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """``python -m crm_sync.verify --json`` in its own process, over every event since the
    seed's history began (the default looks at the last 24 hours only)."""
    since = (world.seeded_at - timedelta(days=401)).strftime("%Y-%m-%dT%H:%M:%S")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "plugins"), str(REPO)])
    command = [sys.executable, "-m", "crm_sync.verify", "--json", "--since", since, *args]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    return done.returncode, [json.loads(x) for x in done.stdout.splitlines() if x], done.stderr


def report_figures(name: str, figures: dict[str, Any]) -> None:
    """Log a scenario's figures; with ``CHAOS_FIGURES`` set, also append them to that JSON
    Lines file (how docs/reliability.md's figures are collected)."""
    logging.getLogger(__name__).info("%s: %s", name, figures)
    path = os.environ.get("CHAOS_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"scenario": name, **figures}, default=str) + "\n")


def violations(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in lines if "summary" not in v]


# What each Lead Gen & CRM create makes, and the link domain that must know every one of them.
LG_CREATES = {
    "createLeads": "person",
    "createAccounts": "account",
    "createOpportunities": "opportunity",
    "createOpportunityLeads": "membership",
}


def double_writes(fresh: Any) -> dict[str, Any]:
    """Audit both write logs: every record the sync created exists once.

    Salesforce: each Lead/Contact the API created carries a record-link id no other created
    record carries, each Task an event key no other created Task carries. Lead Gen & CRM: every
    lead, account, opportunity and opportunity lead the API created is the Lead Gen & CRM side
    of exactly one link in the state store (an object created twice leaves one unlinked), and no
    deal stage name was created twice. Returns the counts and every problem found."""
    from tests.e2e.helpers import sf_client, state_store

    problems: list[str] = []
    created: dict[str, int] = {}
    log = fresh.sf.get("writes", entries=1, op="created")
    by_object: dict[str, list[str]] = {}
    for entry in log["entries"]:
        by_object.setdefault(entry["object"], []).append(entry["id"])
    keys = {"Lead": "LeadGen_Id__c", "Contact": "LeadGen_Id__c", "Task": "LeadGen_Event_Id__c"}
    client = sf_client()
    for sobject, ids in by_object.items():
        created[f"salesforce.{sobject}"] = len(ids)
        key = keys.get(sobject)
        if key is None:
            problems.append(f"the sync created {len(ids)} Salesforce {sobject} record(s)")
            continue
        rows = client.query_by_values(sobject, ["Id", key], "Id", ids, include_deleted=True)
        values = Counter(str(r[key] or "").lower() for r in rows)
        problems += [f"{sobject} {key}={v!r} created {n} times" for v, n in values.items() if n > 1]
    store = state_store()
    lg_log = fresh.lg.get("writes", entries=1)
    lg_ids: dict[str, list[str]] = {}
    for entry in lg_log["entries"]:
        lg_ids.setdefault(entry["method"], []).append(entry["id"])
    for method, domain in LG_CREATES.items():
        ids = lg_ids.get(method, [])
        created[f"leadgen.{method}"] = len(ids)
        linked = {link.lg_id for link in store.all_links(domain, status=None)}
        problems += [
            f"{method} made {i}, which no {domain} link knows" for i in ids if i not in linked
        ]
        problems += [f"{method} made {i} twice" for i, n in Counter(ids).items() if n > 1]
    stages = [s["dealStageName"] for s in _lg_client().get_deal_stages()]
    problems += [f"deal stage {n!r} exists {k} times" for n, k in Counter(stages).items() if k > 1]
    created["leadgen.createDealStages"] = len(lg_ids.get("createDealStages", []))
    return {"created": created, "problems": problems}


def _lg_client() -> Any:
    from tests.e2e.helpers import lg_client

    return lg_client()
