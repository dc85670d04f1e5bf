"""sync_leads_contacts end to end: real DAG runs (dag.test()) against both sandboxes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import APP_BASE_URL, run_dag, state_store

pytestmark = pytest.mark.e2e

DAG = "sync_leads_contacts"
# Each test works in the hour 09:00-10:00 of this day; the run for it has logical date 10:00.
H = datetime(2026, 11, 20, 10, tzinfo=UTC)


def at(minutes_before_h: int, hour: datetime = H) -> str:
    return (hour - timedelta(minutes=minutes_before_h)).strftime("%Y-%m-%dT%H:%M:%SZ")


def lg_at(minutes_before_h: int, hour: datetime = H) -> str:
    return (hour - timedelta(minutes=minutes_before_h)).strftime("%Y-%m-%d %H:%M:%S")


def freeze(fresh, minutes_before_h: int, hour: datetime = H) -> None:
    """Freeze both sandbox clocks inside the test hour, so writes land in its window."""
    fresh.sf.post("clock", {"now": at(minutes_before_h, hour)})
    fresh.lg.post("clock", {"now": lg_at(minutes_before_h, hour)})


def lg_lead(fresh, **fields) -> str:
    """Create a lead as the marketer would (form fill), return its id."""
    email = fields.pop("emailAddress")
    out = fresh.lg.post(
        "forms/submit", {"emailAddress": email, "formName": "Contact Us", "fields": fields}
    )
    return str(out["leadID"])


def lg_get(fresh, lead_id: str) -> dict:
    return fresh.lg.get(f"leads/{lead_id}")


def sf_create(fresh, sobject: str, **fields) -> str:
    return fresh.sf.post(f"records/{sobject}", fields)["id"]


def sf_get(fresh, sobject: str, sf_id: str) -> dict:
    return fresh.sf.get(f"records/{sobject}/{sf_id}")


def sf_find(fresh, sobject: str, email: str) -> list[dict]:
    from crm_sync.runtime import salesforce_client

    return list(
        salesforce_client().query_by_values(
            sobject, ["Id", "Email", "LeadGen_Id__c"], "Email", [email]
        )
    )


def write_calls(fresh) -> dict:
    """Write calls made to each sandbox since the last reset of its counters."""
    sf = fresh.sf.get("calls")["by_kind"]
    lg = fresh.lg.get("calls")["by_method"]
    sf_writes = {
        k: v
        for k, v in sf.items()
        if k in ("collections", "sobject_write", "bulk2", "composite", "sobject")
    }
    lg_writes = {k: v for k, v in lg.items() if k.startswith(("create", "update", "delete"))}
    return {"salesforce": sf_writes, "leadgen": lg_writes}


def reset_calls(fresh) -> None:
    fresh.sf.post("calls/reset")
    fresh.lg.post("calls/reset")


def test_new_records_flow_both_ways_with_record_link(fresh, dags) -> None:
    freeze(fresh, 40)
    lead_id = lg_lead(
        fresh,
        emailAddress="ann.lee@example.com",
        firstName="Ann",
        lastName="Lee",
        companyName="Acme",
        title="CTO",
    )
    contact_id = sf_create(
        fresh,
        "Contact",
        FirstName="Bob",
        LastName="Stone",
        Email="Bob.Stone@Example.com",
        Title="VP",
    )
    out = run_dag(dags, DAG, H)
    assert out.state == "success", out.task_states
    report = out.report
    assert report["salesforce"]["created"] == 1
    assert report["leadgen"]["created"] == 1

    [sf_lead] = sf_find(fresh, "Lead", "ann.lee@example.com")
    rec = sf_get(fresh, "Lead", sf_lead["Id"])
    assert rec["LastName"] == "Lee" and rec["Company"] == "Acme" and rec["Title"] == "CTO"
    assert rec["LeadGen_Id__c"] == lead_id
    assert rec["LeadGen_URL__c"] == f"{APP_BASE_URL}/Contacts/View/{lead_id}"

    links = state_store().all_links("person")
    by_sf = {lk.sf_id: lk for lk in links}
    assert by_sf[sf_lead["Id"]].lg_id == lead_id
    contact_link = by_sf[contact_id]
    lg_contact = lg_get(fresh, contact_link.lg_id)
    assert lg_contact["emailAddress"] == "bob.stone@example.com"
    assert lg_contact["leadStatus"] == "contact" and lg_contact["title"] == "VP"
    sf_contact = sf_get(fresh, "Contact", contact_id)
    assert sf_contact["LeadGen_Id__c"] == contact_link.lg_id
    assert sf_contact["LeadGen_URL__c"] == f"{APP_BASE_URL}/Contacts/View/{contact_link.lg_id}"


def test_idle_rerun_writes_nothing(fresh, dags) -> None:
    freeze(fresh, 40)
    lg_lead(
        fresh,
        emailAddress="idle@example.com",
        firstName="Ida",
        lastName="Le",
        companyName="Idle Co",
    )
    sf_create(fresh, "Contact", LastName="Quiet", Email="quiet@example.com")
    first = run_dag(dags, DAG, H)
    assert first.state == "success", first.task_states
    reset_calls(fresh)
    second = run_dag(dags, DAG, H)
    assert second.state == "success", second.task_states
    assert write_calls(fresh) == {"salesforce": {}, "leadgen": {}}
    assert second.report["planned_rows"] == 0
    assert second.report["unchanged"] == second.report["pairs"] == 2
