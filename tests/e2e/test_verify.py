"""crm_sync.verify end to end: the three real DAGs sync seeded sandboxes, the checker (run as
``python -m crm_sync.verify``, a subprocess) finds nothing; then the data is broken six ways
through the sandboxes' admin APIs, the Lead Gen & CRM API, a direct write into the Salesforce
sandbox's database and the state store, and the checker reports each break, with exit code 1,
without writing anything anywhere.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import run_dag, state_store

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
H = datetime(2026, 11, 20, 10, tzinfo=UTC)  # the runs for 09:00-10:00 have logical date 10:00
DAGS = ("sync_leads_contacts", "sync_opportunities", "sync_engagement_activities")
SF_WRITE_KINDS = ("collections", "bulk2", "sobject")


def at(minutes_before: int, fmt: str) -> str:
    return (H - timedelta(minutes=minutes_before)).strftime(fmt)


def sf_create(fresh, sobject: str, **fields: Any) -> str:
    return fresh.sf.post(f"records/{sobject}", fields)["id"]


def seed(fresh) -> dict[str, Any]:
    """Two marketing leads in Lead Gen & CRM (sent one email each), and in Salesforce an account
    with two contacts on an opportunity; all inside the hour that ends at H."""
    moment = H - timedelta(minutes=50)
    fresh.sf.post("clock", {"now": moment.strftime("%Y-%m-%dT%H:%M:%SZ")})
    fresh.lg.post("clock", {"now": moment.strftime("%Y-%m-%d %H:%M:%S")})
    rows = [
        {
            "emailAddress": f"lead{i}@verify.example",
            "firstName": "Lee",
            "lastName": f"Lead{i}",
            "companyName": "Verify Corp",
        }
        for i in range(2)
    ]
    leads = [str(r["leadID"]) for r in fresh.lg.post("import", {"leads": rows})["results"]]
    send = {
        "subject": "Welcome",
        "leadIDs": [int(i) for i in leads],
        "_at": at(45, "%Y-%m-%d %H:%M:%S"),
    }
    events = fresh.lg.post("emails/send", send)["eventIDs"]
    account = sf_create(fresh, "Account", Name="Verify Corp")
    contacts = [
        sf_create(
            fresh,
            "Contact",
            FirstName="Cam",
            LastName=f"Contact{i}",
            Email=f"contact{i}@verify.example",
            Description="Decision maker",  # a pull field: Salesforce owns it
            AccountId=account,
        )
        for i in range(2)
    ]
    opp = sf_create(
        fresh,
        "Opportunity",
        Name="Verify deal",
        StageName="Prospecting",
        CloseDate="2026-12-31",
        AccountId=account,
    )
    for i, c in enumerate(contacts):
        sf_create(fresh, "OpportunityContactRole", OpportunityId=opp, ContactId=c, IsPrimary=i == 0)
    return {"leads": leads, "events": [str(e) for e in events], "contacts": contacts, "opp": opp}


def verify(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    """``python -m crm_sync.verify --json ARGS`` in a subprocess with this test's connections."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)])}
    proc = subprocess.run(
        [sys.executable, "-m", "crm_sync.verify", "--json", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    return proc.returncode, lines, proc.stderr


def counters(fresh) -> dict[str, dict[str, int]]:
    sf = fresh.sf.get("calls")["by_kind"]
    lg = fresh.lg.get("calls")["by_method"]
    return {"salesforce": dict(sf), "leadgen": dict(lg)}


def writes(c: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {
        "salesforce": {k: v for k, v in c["salesforce"].items() if k in SF_WRITE_KINDS},
        "leadgen": {
            k: v for k, v in c["leadgen"].items() if k.startswith(("create", "update", "delete"))
        },
    }


def dump(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        return list(conn.iterdump())


def found(lines: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [v for v in lines if v.get("kind") == kind]


def break_everything(fresh, seeded: dict[str, Any]) -> dict[str, Any]:
    """The six breaks of the brief; returns the ids each one involves."""
    store = state_store()
    lead_a, lead_b = seeded["leads"]
    link_a = store.links_by_lg("person", [lead_a])[lead_a]
    link_b = store.links_by_lg("person", [lead_b])[lead_b]
    contact_lead = store.links_by_sf("person", [seeded["contacts"][0]])[seeded["contacts"][0]][0]
    # 1. a second Salesforce record carrying lead A's record-link id (a cloned record)
    clone = sf_create(
        fresh, "Contact", LastName="Clone", Email="clone@verify.example", LeadGen_Id__c=lead_a
    )
    # 2. a pull field edited in Lead Gen & CRM only
    fresh.lg.post(f"leads/{contact_lead.lg_id}", {"fields": {"description": "edited in Lead Gen"}})
    # 3. a second Task for lead A's email send: the key is unique in the org, so the second copy
    #    is written straight into the sandbox's database, as a broken import would leave it
    key = f"LG-EVT-{seeded['events'][0]}"
    task = sf_create(fresh, "Task", Subject="copy", WhoId=link_a.sf_id, Status="Completed")
    db = sqlite3.connect(fresh.sf_proc.data_dir / "salesforce.db", timeout=30)
    with db:
        db.execute('UPDATE sf_Task SET "LeadGen_Event_Id__c" = ? WHERE "Id" = ?', (key, task))
    db.close()
    # 4. the linked opportunity deleted in Lead Gen & CRM
    [opp_link] = store.links_by_sf("opportunity", [seeded["opp"]], active_only=True)[seeded["opp"]]
    from crm_sync.runtime import leadgen_client

    assert leadgen_client().delete_opportunities([opp_link.lg_id])[0].success
    # 5. a second active link to lead B's Salesforce record (the database refuses it since
    # revision 0002; a store written by an older version or another tool may still hold one)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX uq_links_active_sf_record")
    store.upsert_link("person", "999999999", link_b.sf_object, link_b.sf_id, run_id="test")
    # 6. a quarantine row without a reason
    store.quarantine(
        dag_id="sync_leads_contacts",
        domain="person",
        direction="lg_to_sf",
        record_key="lg:0",
        target_object="Lead",
        lg_id="0",
        sf_id=None,
        category="",
        check="",
        field=None,
        error_code=None,
        message="",
        payload={},
        run_id="test",
        max_attempts=5,
    )
    return {
        "lead_a": lead_a,
        "sf_a": link_a.sf_id,
        "clone": clone,
        "key": key,
        "task": task,
        "contact_lead": contact_lead.lg_id,
        "contact": seeded["contacts"][0],
        "opp_lg": opp_link.lg_id,
        "lead_b": lead_b,
        "sf_b": link_b.sf_id,
    }


def test_clean_after_the_dags_then_every_break_is_reported_and_nothing_is_written(
    fresh, dags, tmp_path
) -> None:
    seeded = seed(fresh)
    for dag_id in DAGS:
        out = run_dag(dags, dag_id, H)
        assert out.state == "success", (dag_id, out.task_states)

    code, lines, err = verify()
    assert code == 0, (lines, err)
    summary = lines[-1]["summary"]
    assert summary["violations"] == 0
    assert summary["read"]["leadgen_leads"] == 4  # two marketing leads, two from the contacts
    assert summary["read"]["salesforce_tasks"] == 2  # one per email send

    ids = break_everything(fresh, seeded)
    before, store_before = counters(fresh), dump(tmp_path / "state.db")
    code, lines, err = verify()
    after = counters(fresh)
    assert code == 1, err

    [dup] = found(lines, "duplicate_record_link")
    assert dup["leadgen"] == [ids["lead_a"]] and set(dup["salesforce"]) == {
        ids["sf_a"],
        ids["clone"],
    }
    [field] = found(lines, "field_mismatch")
    assert (field["leadgen"], field["salesforce"], field["field"]) == (
        [ids["contact_lead"]],
        [ids["contact"]],
        "description",
    )
    assert "'edited in Lead Gen' vs Salesforce 'Decision maker'" in field["why"]
    [twice] = found(lines, "task_duplicate")
    assert ids["task"] in twice["salesforce"] and ids["key"] in twice["why"]
    [opp] = found(lines, "opportunity_missing")
    assert (opp["leadgen"], opp["salesforce"]) == ([ids["opp_lg"]], [seeded["opp"]])
    [double] = found(lines, "double_link")
    assert double["leadgen"] == sorted([ids["lead_b"], "999999999"])
    assert double["salesforce"] == [ids["sf_b"]]
    [reason] = found(lines, "quarantine_without_reason")
    assert reason["leadgen"] == ["0"] and "has no message, check, category" in reason["why"]
    # Lead Gen & CRM removes an opportunity's leads with it: both memberships are gone too.
    assert len(found(lines, "membership_missing")) == 2
    assert lines[-1]["summary"]["by_kind"] == {
        "duplicate_record_link": 1,
        "double_link": 1,
        "field_mismatch": 1,
        "task_duplicate": 1,
        "opportunity_missing": 1,
        "membership_missing": 2,
        "quarantine_without_reason": 1,
    }

    # Read-only: the checker read both systems, wrote to neither, and left the store as it was.
    assert writes(after) == writes(before)
    assert sum(after["salesforce"].values()) > sum(before["salesforce"].values())
    assert after["leadgen"].get("getLeads", 0) > before["leadgen"].get("getLeads", 0)
    assert dump(tmp_path / "state.db") == store_before


def test_refused_credentials_are_a_checker_error(fresh, monkeypatch) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_SALESFORCE_DEFAULT"])
    conn["password"] = "wrong-password-123"
    monkeypatch.setenv("AIRFLOW_CONN_SF_WRONG", json.dumps(conn))
    state_store()  # an (empty) store exists: the connection is what fails
    code, lines, err = verify("--salesforce-conn", "sf_wrong")
    assert (code, lines) == (2, [])
    assert "AuthError" in err and "sf_wrong" in err
    assert "wrong-password-123" not in err
