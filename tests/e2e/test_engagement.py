"""sync_engagement_activities end to end: real DAG runs (dag.test()) against both sandboxes.

Every test links its leads by running sync_leads_contacts for the same hour first (the
engagement DAG's sensor waits for exactly that), records marketing events through the Lead Gen &
CRM admin API backdated into the hour, runs the engagement DAG and reads the Tasks back from
Salesforce.
"""

from __future__ import annotations

import math
import shutil
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.e2e.helpers import H, freeze, lg_at, run_dag, sf_patch, state_store

pytestmark = pytest.mark.e2e

DAG = "sync_engagement_activities"
PEOPLE = "sync_leads_contacts"
H2 = H + timedelta(hours=1)
H3 = H + timedelta(hours=2)
TASK_FIELDS = [
    "Id",
    "WhoId",
    "OwnerId",
    "Subject",
    "ActivityDate",
    "Status",
    "IsClosed",
    "Type",
    "TaskSubtype",
    "Description",
    "LeadGen_Event_Id__c",
]


def import_leads(fresh, n: int, prefix: str = "p") -> list[str]:
    """``n`` leads through the Import Tool (no syncable event of their own); their ids."""
    rows = [
        {
            "emailAddress": f"{prefix}{i}@example.com",
            "firstName": "Pat",
            "lastName": f"{prefix.title()}{i}",
            "companyName": "Engage Inc",
        }
        for i in range(n)
    ]
    out = fresh.lg.post("import", {"leads": rows})["results"]
    assert all(r["success"] for r in out), out[:3]
    return [str(r["leadID"]) for r in out]


def nonzero(counters: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counters.items() if v}


def sync_people(dags, hour: datetime = H, **conf: Any) -> None:
    out = run_dag(dags, PEOPLE, hour, conf)
    assert out.state == "success", out.task_states


def sync_engagement(dags, hour: datetime = H, **conf: Any):
    out = run_dag(dags, DAG, hour, conf)
    assert out.state == "success", out.task_states
    return out


def link_of(lead_id: str):
    return state_store().links_by_lg("person", [lead_id])[lead_id]


def tasks(where_field: str = "WhoId", values: list[str] | None = None) -> list[dict]:
    from crm_sync.runtime import salesforce_client

    sf = salesforce_client()
    if values is None:
        return list(sf.query("SELECT " + ", ".join(TASK_FIELDS) + " FROM Task"))
    return list(sf.query_by_values("Task", TASK_FIELDS, where_field, values))


def send_email(fresh, lead_ids: list[str], subject: str, at: str) -> str:
    out = fresh.lg.post(
        "emails/send", {"subject": subject, "leadIDs": [int(i) for i in lead_ids], "_at": at}
    )
    return str(out["emailJobID"])


def click(fresh, lead_id: str, job: str, url: str, at: str) -> str:
    body = {"leadID": int(lead_id), "emailJobID": int(job), "url": url, "_at": at}
    return str(fresh.lg.post("emails/click", body)["eventID"])


def sf_writes(fresh) -> dict[str, int]:
    kinds = fresh.sf.get("calls")["by_kind"]
    return {k: v for k, v in kinds.items() if k in ("collections", "bulk2", "sobject")}


def salesperson(fresh, username: str) -> str:
    [user] = [u for u in fresh.sf.get("users")["users"] if u["Username"] == username]
    return user["Id"]


def test_one_event_of_each_type_becomes_one_task_with_subject_date_who_and_owner(
    fresh, dags
) -> None:
    freeze(fresh, 55)
    [lead] = import_leads(fresh, 1, "each")
    sync_people(dags)
    link = link_of(lead)
    sam = salesperson(fresh, "sam.seller@sandbox.example")
    sf_patch(fresh, "Lead", link.sf_id, {"OwnerId": sam})  # a salesperson takes the lead over
    form = fresh.lg.post(
        "forms/submit",
        {
            "emailAddress": "each0@example.com",
            "formName": "Webinar signup",
            "url": "https://www.example.com/webinar?utm=x",
            "_at": lg_at(50),
        },
    )
    job = send_email(fresh, [lead], "November news", lg_at(45))
    fresh.lg.post("emails/open", {"leadID": int(lead), "emailJobID": int(job), "_at": lg_at(40)})
    click(fresh, lead, job, "https://www.example.com/pricing", lg_at(35))
    fresh.lg.post(
        "page-visits",
        {"leadID": int(lead), "url": "https://www.example.com/pricing/", "_at": lg_at(30)},
    )

    dry = sync_engagement(dags, dry_run=True)
    assert dry.report["status"] == "dry_run"
    assert dry.report["salesforce"]["would_create"] == 5
    assert tasks("WhoId", [link.sf_id]) == []

    out = sync_engagement(dags)
    by_type = out.report["by_type"]
    for etype in ("form_submission", "email_send", "email_open", "email_click", "page_visit"):
        assert by_type[etype]["extracted"] == 1, (etype, by_type)
        assert by_type[etype]["created"] == 1, (etype, by_type)
    got = {t["Subject"]: t for t in tasks("WhoId", [link.sf_id])}
    assert set(got) == {
        "Form submitted: Webinar signup",
        "Marketing email sent: November news",
        "Marketing email opened: November news",
        "Marketing email link clicked: November news",
        "Visited page: www.example.com/pricing",
    }
    for t in got.values():
        assert t["WhoId"] == link.sf_id
        assert t["OwnerId"] == sam  # the Salesforce record's owner, read at sync time
        assert t["ActivityDate"] == "2026-11-20"
        assert t["Status"] == "Completed" and t["IsClosed"] is True
    form_task = got["Form submitted: Webinar signup"]
    assert form_task["LeadGen_Event_Id__c"] == f"LG-EVT-{form['eventID']}"
    assert "Form page: https://www.example.com/webinar?utm=x" in form_task["Description"]
    assert f"at {lg_at(50)} UTC" in form_task["Description"]
    click_task = got["Marketing email link clicked: November news"]
    assert click_task["LeadGen_Event_Id__c"] == f"LG-CLICK-{lead}-{job}"
    assert click_task["Type"] == "Email"
    assert out.report["api_calls"]["salesforce"] > 0
    # the change log holds the five Tasks the run created (what an undo may remove); the dry
    # run's holds nothing
    from crm_sync.state.changes import ChangeFilter

    store = state_store()
    logged = list(store.iter_changes(ChangeFilter(DAG, out.run_id)))
    assert sorted((c.system, c.object, c.kind, c.record_id) for c in logged) == sorted(
        ("salesforce", "Task", "create", t["Id"]) for t in got.values()
    )
    assert list(store.iter_changes(ChangeFilter(DAG, dry.run_id))) == []


def test_a_disabled_event_type_syncs_nothing(fresh, dags, tmp_path, monkeypatch) -> None:
    from tests.e2e.conftest import REPO_MAPPINGS

    mappings = tmp_path / "mappings"
    shutil.copytree(REPO_MAPPINGS, mappings)
    spec = mappings / "engagement.yaml"
    text = spec.read_text()
    marker = "  email_open:\n    enabled: true\n"
    assert marker in text
    spec.write_text(text.replace(marker, "  email_open:\n    enabled: false\n"))
    monkeypatch.setenv("CRM_SYNC_MAPPINGS_DIR", str(mappings))
    freeze(fresh, 55)
    [lead] = import_leads(fresh, 1, "off")
    sync_people(dags)
    job = send_email(fresh, [lead], "Spring sale", lg_at(45))
    fresh.lg.post("emails/open", {"leadID": int(lead), "emailJobID": int(job), "_at": lg_at(40)})
    out = sync_engagement(dags)
    assert "email_open" not in out.report["by_type"]
    assert "email_open" not in out.report["extracted"]
    assert out.report["by_type"]["email_send"]["created"] == 1
    subjects = [t["Subject"] for t in tasks("WhoId", [link_of(lead).sf_id])]
    assert subjects == ["Marketing email sent: Spring sale"]


def test_rerun_and_overlapping_window_create_no_duplicates(fresh, dags) -> None:
    freeze(fresh, 55)
    leads = import_leads(fresh, 2, "dup")
    sync_people(dags)
    send_email(fresh, leads, "Weekly digest", lg_at(30))  # one send event per lead
    # 3 minutes before the hour ends: inside the next run's 5-minute lookback as well.
    visit = fresh.lg.post(
        "page-visits", {"leadID": int(leads[0]), "url": "https://x.example/a", "_at": lg_at(3)}
    )
    first = sync_engagement(dags)
    assert first.report["salesforce"]["created"] == 3
    fresh.sf.post("calls/reset")
    again = sync_engagement(dags)
    assert again.report["salesforce"].get("created", 0) == 0
    assert again.report["salesforce"]["already_present"] == 3
    assert sf_writes(fresh) == {}
    freeze(fresh, 50, H2)
    sync_people(dags, H2)
    fresh.sf.post("calls/reset")
    overlap = sync_engagement(dags, H2)
    assert overlap.report["extracted"]["page_visit"] == 1  # the same event, read again
    assert overlap.report["salesforce"] == {"already_present": 1}
    assert sf_writes(fresh) == {}
    who = {link_of(lead).sf_id: lead for lead in leads}
    got = sorted((who[t["WhoId"]], t["Subject"]) for t in tasks())
    assert got == sorted(
        [
            (leads[0], "Marketing email sent: Weekly digest"),
            (leads[1], "Marketing email sent: Weekly digest"),
            (leads[0], "Visited page: x.example/a"),
        ]
    )
    assert f"LG-EVT-{visit['eventID']}" in {t["LeadGen_Event_Id__c"] for t in tasks()}


def test_three_clicks_on_one_email_make_one_task_even_across_runs(fresh, dags) -> None:
    freeze(fresh, 55)
    [lead] = import_leads(fresh, 1, "clicky")
    sync_people(dags)
    job = send_email(fresh, [lead], "Product launch", lg_at(50))
    first = click(fresh, lead, job, "https://x.example/launch", lg_at(40))
    click(fresh, lead, job, "https://x.example/pricing", lg_at(30))
    click(fresh, lead, job, "https://x.example/launch", lg_at(20))
    out = sync_engagement(dags)
    assert nonzero(out.report["by_type"]["email_click"]) == {
        "extracted": 3,
        "created": 1,
        "not_first_click": 2,
    }
    # another click on the same email, an hour later: still the one Task
    freeze(fresh, 50, H2)
    sync_people(dags, H2)
    click(fresh, lead, job, "https://x.example/buy", lg_at(30, H2))
    later = sync_engagement(dags, H2)
    assert later.report["by_type"]["email_click"]["already_present"] == 1
    clicks = [t for t in tasks("WhoId", [link_of(lead).sf_id]) if "clicked" in t["Subject"]]
    assert len(clicks) == 1
    assert f"event {first}," in clicks[0]["Description"]  # the first click stands for all
    assert "Link URL: https://x.example/launch" in clicks[0]["Description"]


def test_event_of_a_lead_linked_only_in_the_next_run_is_held_then_delivered(fresh, dags) -> None:
    freeze(fresh, 55)
    # No company: Salesforce requires one on a Lead, so the people sync quarantines this lead
    # instead of linking it.
    out = fresh.lg.post(
        "import", {"leads": [{"emailAddress": "late@example.com", "lastName": "Late"}]}
    )
    lead = str(out["results"][0]["leadID"])
    sync_people(dags, max_reject_rate=1.0)
    assert state_store().links_by_lg("person", [lead]) == {}
    visit = fresh.lg.post(
        "page-visits", {"leadID": int(lead), "url": "https://x.example/late", "_at": lg_at(30)}
    )
    first = sync_engagement(dags)
    assert nonzero(first.report["by_type"]["page_visit"]) == {"extracted": 1, "held": 1}
    [held] = state_store().held(DAG, kind="event")
    assert held.item_key == str(visit["eventID"])
    assert tasks() == []
    # the marketer fixes the lead in the next hour; the people sync links it
    freeze(fresh, 50, H2)
    fresh.lg.post(f"leads/{lead}", {"fields": {"companyName": "Late Ltd"}})
    sync_people(dags, H2)
    second = sync_engagement(dags, H2)
    # extracted 0: it came from the hold, not from the window
    assert second.report["by_type"]["page_visit"] == {
        "extracted": 0,
        "created": 1,
        "already_present": 0,
        "held": 0,
        "dropped": 0,
        "delivered_from_hold": 1,
    }
    assert state_store().held(DAG, kind="event") == []
    assert state_store().held(DAG, kind="event", status="delivered")[0].item_key == held.item_key
    [task] = tasks()
    assert task["WhoId"] == link_of(lead).sf_id
    assert task["ActivityDate"] == "2026-11-20"


def test_event_of_a_deleted_salesforce_record_is_dropped_with_a_reason(fresh, dags) -> None:
    freeze(fresh, 55)
    [lead] = import_leads(fresh, 1, "gone")
    sync_people(dags)
    sf_id = link_of(lead).sf_id
    freeze(fresh, 50, H2)
    fresh.sf.post("actions/delete", {"ids": [sf_id]})
    sync_people(dags, H2)
    assert link_of(lead).status == "deleted"
    fresh.lg.post(
        "page-visits", {"leadID": int(lead), "url": "https://x.example/bye", "_at": lg_at(30, H2)}
    )
    out = sync_engagement(dags, H2)
    assert nonzero(out.report["by_type"]["page_visit"]) == {"extracted": 1, "dropped": 1}
    [reason] = out.report["event_examples"]["dropped"]
    assert f"Salesforce Lead {sf_id}" in reason and "deleted" in reason
    assert tasks() == []


@pytest.mark.store_independent
def test_ten_thousand_events_go_through_bulk_within_the_call_bound(fresh, dags) -> None:
    people, sends = 250, 40
    events = people * sends
    # The test connection allows 50 calls/s (conftest); let the sandbox account agree, so paging
    # 10,000 events does not spend the test's time in 107 back-offs.
    fresh.lg.post("config", {"per_second_limit": 50})
    freeze(fresh, 58)
    leads = import_leads(fresh, people, "bulk")
    sync_people(dags)
    for i in range(sends):
        send_email(fresh, leads, f"Newsletter {i}", lg_at(50 - i))
    fresh.sf.post("calls/reset")
    out = sync_engagement(dags)
    assert nonzero(out.report["by_type"]["email_send"]) == {"extracted": events, "created": events}
    calls = fresh.sf.get("calls")["by_kind"]
    keys = {t["LeadGen_Event_Id__c"] for t in tasks()}
    assert len(keys) == events and all(k.startswith("LG-EVT-") for k in keys)
    # The bound the batching promises (docs/engagement.md): 3 describes (Task, Lead, Contact),
    # 1 active-user query, owner reads of 300 ids per query, existence reads of as many keys
    # per query as keep the URL-encoded query within the request-URI limit (15,000 bytes of
    # keys counted here: %27key%27%2C each), one Bulk API 2.0 job per 10,000 Tasks (create,
    # upload, close, poll, 3 result reads) and no sObject Collections call at all above the
    # bulk threshold.
    longest = max(len(k) for k in keys) + 9  # %27 twice and %2C ("-" is sent as it is)
    existence = math.ceil(events / (15_000 // longest))
    owners = math.ceil(people / 300)
    assert calls.get("collections", 0) == 0
    assert calls.get("sobject", 0) == 0
    assert calls["bulk2"] <= 8
    assert calls["query"] + calls.get("query_more", 0) <= 1 + owners + existence
    assert sum(calls.values()) <= 3 + 1 + owners + existence + 8, calls
    # the run report counts what the org counted
    assert out.report["api_calls"]["salesforce"] == sum(calls.values())
    assert out.report["api_calls_by_kind"]["salesforce"]["bulk2"] == calls["bulk2"]
    # the same hour again: every Task is found, nothing is written, only the reads are spent
    fresh.sf.post("calls/reset")
    again = sync_engagement(dags)
    assert nonzero(again.report["by_type"]["email_send"]) == {
        "extracted": events,
        "already_present": events,
    }
    calls = fresh.sf.get("calls")["by_kind"]
    assert sf_writes(fresh) == {}
    assert sum(calls.values()) <= 3 + 1 + owners + existence, calls


def test_a_task_the_gate_rejects_is_quarantined_then_retried_once_the_spec_is_fixed(
    fresh, dags, tmp_path, monkeypatch
) -> None:
    from tests.e2e.conftest import REPO_MAPPINGS

    mappings = tmp_path / "mappings"
    shutil.copytree(REPO_MAPPINGS, mappings)
    spec = mappings / "engagement.yaml"
    good = spec.read_text()
    assert 'subject: "Visited page: {page}"' in good
    spec.write_text(good.replace('subject: "Visited page: {page}"', 'subject: "Visited {url}"'))
    monkeypatch.setenv("CRM_SYNC_MAPPINGS_DIR", str(mappings))
    freeze(fresh, 55)
    [lead] = import_leads(fresh, 1, "gate")
    sync_people(dags)
    send_email(fresh, [lead], "Tips", lg_at(40))
    url = "https://x.example/" + "a" * 300  # the subject would pass Salesforce's 255 characters
    visit = fresh.lg.post("page-visits", {"leadID": int(lead), "url": url, "_at": lg_at(30)})
    out = run_dag(dags, DAG, H)
    # 1 of 2 Tasks rejected is above the 5 % limit: the run turns red, the good Task is loaded
    assert out.state == "failed" and out.task_states["record"] == "failed"
    assert out.report["status"] == "threshold_exceeded"
    assert nonzero(out.report["by_type"]["page_visit"]) == {"extracted": 1, "rejected": 1}
    assert nonzero(out.report["by_type"]["email_send"]) == {"extracted": 1, "created": 1}
    [q] = state_store().quarantined(DAG)
    assert (q.lg_id, q.category, q.check, q.field) == (lead, "length", "max_length", "Subject")
    assert q.payload["event"]["id"] == str(visit["eventID"])
    assert [t["Subject"] for t in tasks()] == ["Marketing email sent: Tips"]
    # next hour, spec not fixed yet: the event is retried and refused again. It was already in
    # the quarantine, so it is not a new rejection and the run is not turned red by it.
    freeze(fresh, 50, H2)
    sync_people(dags, H2)
    again = sync_engagement(dags, H2)
    assert again.report["status"] == "success"
    assert (again.report["rejected_rows"], again.report["still_quarantined_rows"]) == (0, 1)
    [q] = state_store().quarantined(DAG)
    assert q.attempts == 2
    # the spec is fixed; the next run retries the quarantined event without it being re-read
    spec.write_text(good)
    freeze(fresh, 50, H3)
    sync_people(dags, H3)
    fixed = sync_engagement(dags, H3)
    assert nonzero(fixed.report["by_type"]["page_visit"]) == {"created": 1}
    assert fixed.report["quarantine_resolved"] == 1
    assert state_store().quarantined(DAG) == []
    page = ("x.example/" + "a" * 300)[:99] + "…"  # the page name is cut to 100 characters
    assert {t["Subject"] for t in tasks()} == {
        "Marketing email sent: Tips",
        f"Visited page: {page}",
    }
