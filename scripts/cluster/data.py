"""The cluster scenario's data: seed both sandboxes, then check what the sync did by reading them.

Run as a child process with a cluster process's environment (its Airflow connections reach the
sandboxes), each command printing one JSON object:

  python -m scripts.cluster.data seed --hour 2026-11-27T10:00:00+00:00 --people 300
  python -m scripts.cluster.data verify --expect expectations.json

``seed`` resets both sandboxes and loads people as of five hours before ``--hour``, about a quarter of
them on both sides by email, then makes changes inside the three hours the backfill covers (titles
edited in Salesforce, leads from a form in Lead Gen & CRM) and prints what they should become.
``verify`` reads both systems directly (not the state store) and prints each check's outcome;
``python -m crm_sync.verify`` replaces it once it exists (see scripts/cluster/scenario.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "plugins")]

BACKFILL_TITLE = "Head of Cluster Operations"
PEOPLE_DAG = "sync_leads_contacts"


class Admin:
    """The ``/__sandbox__/`` admin API of one sandbox (seeding and the frozen clock only)."""

    def __init__(self, base_url: str, verify: str | bool = True):
        self.base = f"{base_url.rstrip('/')}/__sandbox__"
        self.verify = verify

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        r = requests.request(
            method, f"{self.base}/{path}", json=body, verify=self.verify, timeout=600
        )
        r.raise_for_status()
        return r.json() if r.content else None


def _sandboxes() -> tuple[Admin, Admin]:
    """Both admin APIs, found from the same Airflow connections the DAGs use."""
    import os

    sf_conn = json.loads(os.environ["AIRFLOW_CONN_SALESFORCE_DEFAULT"])
    lg_conn = json.loads(os.environ["AIRFLOW_CONN_LEADGEN_DEFAULT"])
    sf_host = sf_conn["extra"]["domain"].rstrip("#")
    lg_base = lg_conn["host"].split("/pubapi/")[0]
    return Admin(f"https://{sf_host}", os.environ["REQUESTS_CA_BUNDLE"]), Admin(lg_base)


def _freeze(sf: Admin, lg: Admin, at: datetime | None) -> None:
    sf.call("POST", "clock", {"now": at.strftime("%Y-%m-%dT%H:%M:%SZ") if at else None})
    lg.call("POST", "clock", {"now": at.strftime("%Y-%m-%d %H:%M:%S") if at else None})


def seed(hour: datetime, people: int) -> dict[str, Any]:
    """Reset, seed as of ``hour - 5 h`` (no defective rows), change things in the backfill hours."""
    from crm_sync.runtime import salesforce_client

    sf, lg = _sandboxes()
    sf.call("POST", "reset")
    lg.call("POST", "reset")
    seeded_at = hour - timedelta(hours=5)
    _freeze(sf, lg, seeded_at)
    counts = {"Account": people // 8, "Contact": people * 3 // 8, "Lead": people // 2}
    counts.update({"Opportunity": people // 10, "OpportunityContactRole": people // 8})
    sf_out = sf.call(
        "POST",
        "seed",
        {
            "counts": counts,
            "seed": 7,
            "defects": False,
            "end_at": seeded_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "days": 30,
        },
    )
    lg_out = lg.call(
        "POST",
        "seed",
        {"leads": people, "seed": 7, "defects": False, "activity_leads": people // 5},
    )
    client = salesforce_client()
    people_sf = list(
        client.query(
            "SELECT Id, FirstName, LastName, Email FROM Contact WHERE Email != null ORDER BY Id"
        )
    )
    # About a quarter of the Salesforce contacts were imported into Lead Gen & CRM too (same
    # email): the first sync must pair them, not duplicate them.
    overlap = people_sf[: len(people_sf) // 4]
    lg.call(
        "POST",
        "import",
        {
            "leads": [
                {
                    "emailAddress": r["Email"],
                    "firstName": r["FirstName"] or "",
                    "lastName": r["LastName"] or "",
                }
                for r in overlap
            ]
        },
    )
    expect = _backfill_hour_changes(sf, lg, client, hour)
    _freeze(sf, lg, None)
    return {
        "salesforce": sf_out.get("created", {}),
        "leadgen_leads": lg_out.get("leads"),
        "overlap": len(overlap),
        "expect": expect,
    }


def _backfill_hour_changes(sf: Admin, lg: Admin, client: Any, hour: datetime) -> dict[str, Any]:
    """Changes inside the backfilled hours [hour-4h, hour-1h), so each backfill run has work of
    its own: lead titles edited in Salesforce, then leads from a form in Lead Gen & CRM."""
    _freeze(sf, lg, hour - timedelta(hours=4) + timedelta(minutes=20))
    edited = list(
        client.query("SELECT Id FROM Lead WHERE IsConverted = false ORDER BY Id DESC LIMIT 3")
    )
    for row in edited:
        sf.call("PATCH", f"records/Lead/{row['Id']}", {"Title": BACKFILL_TITLE})
    _freeze(sf, lg, hour - timedelta(hours=3) + timedelta(minutes=20))
    forms = [f"cluster.form{i}@cluster.example" for i in range(3)]
    for i, email in enumerate(forms):
        fields = {"firstName": "Form", "lastName": f"Lead{i}", "companyName": "Cluster Corp"}
        lg.call(
            "POST",
            "forms/submit",
            {"emailAddress": email, "formName": "Cluster signup", "fields": fields},
        )
    return {"sf_titles": {r["Id"]: BACKFILL_TITLE for r in edited}, "form_emails": forms}


def _people_sf(client: Any) -> list[dict[str, Any]]:
    rows = list(
        client.query("SELECT Id, Email, Title, LeadGen_Id__c FROM Lead WHERE IsConverted = false")
    )
    rows += list(client.query("SELECT Id, Email, Title, LeadGen_Id__c FROM Contact"))
    return rows


def verify(expect: dict[str, Any]) -> dict[str, Any]:
    """Every check reads both sandboxes through their APIs; a check is ``{"ok": bool, ...}``.

    Nothing is lost: each person of either side is either linked to its counterpart (read from
    the sandboxes) or in the sync's quarantine with a reason (the state store), and the
    quarantined share stays under the DAG's default ``max_reject_rate`` (5 %)."""
    from crm_sync.runtime import leadgen_client, open_store, salesforce_client

    sf, lg = salesforce_client(), leadgen_client()
    leads = {str(r["id"]): r for r in lg.get_leads({})}
    people = _people_sf(sf)
    quarantined = {q.record_key for q in open_store().quarantined(PEOPLE_DAG)}
    checks = _people_checks(leads, people, quarantined)
    by_email = {str(r["Email"]).lower(): r for r in people if r.get("Email")}
    lg_by_email = {str(r.get("emailAddress") or "").lower(): r for r in leads.values()}
    want_titles = expect.get("sf_titles", {})
    titles = {
        r["Id"]: (lg_by_email.get(str(r["Email"]).lower()) or {}).get("title")
        for r in people
        if r["Id"] in want_titles
    }
    checks["backfilled Salesforce edits reached Lead Gen & CRM"] = {
        "ok": len(titles) == len(want_titles)
        and all(titles[k] == v for k, v in want_titles.items()),
        "titles": titles,
    }
    forms = {e: (by_email.get(e) or {}).get("Id") for e in expect.get("form_emails", [])}
    checks["backfilled form leads reached Salesforce"] = {
        "ok": all(forms.values()),
        "records": forms,
    }
    checks.update(_pipeline_checks(sf, lg))
    return {"ok": all(c["ok"] for c in checks.values()), "checks": checks}


def _people_checks(
    leads: dict[str, dict[str, Any]], people: list[dict[str, Any]], quarantined: set[str]
) -> dict[str, dict[str, Any]]:
    linked_lg = {str(r["LeadGen_Id__c"]) for r in people if r.get("LeadGen_Id__c")}
    unlinked_lg = sorted(set(leads) - linked_lg)
    lost_lg = [i for i in unlinked_lg if f"lg:{i}" not in quarantined]
    # A Salesforce person is synced when its record-link field names an existing lead (a value
    # that names none was there before the sync, e.g. written by another integration).
    unlinked_sf = [r["Id"] for r in people if str(r.get("LeadGen_Id__c") or "") not in leads]
    lost_sf = [i for i in unlinked_sf if f"sf:{i}" not in quarantined]
    total = len(leads) + len(people)
    held = len(unlinked_lg) + len(unlinked_sf) - len(lost_lg) - len(lost_sf)
    return {
        "every lead is linked to a Salesforce record or quarantined": {
            "ok": not lost_lg,
            "leads": len(leads),
            "quarantined": len(unlinked_lg) - len(lost_lg),
            "lost": lost_lg[:10],
        },
        "every Salesforce person is linked to a lead or quarantined": {
            "ok": not lost_sf,
            "people": len(people),
            "quarantined": len(unlinked_sf) - len(lost_sf),
            "lost": lost_sf[:10],
        },
        "quarantined people stay under 5 %": {
            "ok": total > 0 and held <= 0.05 * total,
            "share": round(held / max(total, 1), 4),
        },
    }


def _pipeline_checks(sf: Any, lg: Any) -> dict[str, dict[str, Any]]:
    """Opportunities (Salesforce -> Lead Gen & CRM) and engagement Tasks (the other way)."""
    sf_opps = list(sf.query("SELECT Id FROM Opportunity"))
    lg_opps = list(lg.get_opportunities({}))
    tasks = [
        r["LeadGen_Event_Id__c"]
        for r in sf.query("SELECT LeadGen_Event_Id__c FROM Task WHERE LeadGen_Event_Id__c != null")
    ]
    return {
        "every Salesforce opportunity is in Lead Gen & CRM": {
            "ok": len(lg_opps) == len(sf_opps) > 0,
            "salesforce": len(sf_opps),
            "leadgen": len(lg_opps),
        },
        "marketing events became Salesforce Tasks, each once": {
            "ok": len(tasks) > 0 and len(set(tasks)) == len(tasks),
            "tasks": len(tasks),
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--hour", required=True, type=datetime.fromisoformat)
    s.add_argument("--people", type=int, default=300)
    v = sub.add_parser("verify")
    v.add_argument("--expect", required=True, type=Path)
    args = ap.parse_args()
    if args.cmd == "seed":
        out = seed(args.hour.astimezone(UTC), args.people)
    else:
        out = verify(json.loads(args.expect.read_text()))
    print(json.dumps(out, default=str))
    return 0 if out.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
