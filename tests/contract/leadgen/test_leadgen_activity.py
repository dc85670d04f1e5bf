"""Lifecycle (deactivate, reactivate) and marketing activity: events, timeline, email, lists."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_sync.clients.leadgen import parse_event_data

pytestmark = pytest.mark.contract

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _lead(client, email: str, **fields) -> str:
    result = client.create_leads([{"emailAddress": email, **fields}])[0]
    assert result.success, result.error_message
    return result.id


def test_form_fill_creates_a_new_lead_and_records_an_event(client, admin):
    admin.freeze("2026-11-27 09:10:00")
    answer = admin.post(
        "/forms/submit",
        {
            "emailAddress": "new@example.com",
            "formName": "Request a Demo",
            "fields": {"firstName": "Nia"},
        },
    )
    assert answer["created"] is True and answer["reactivated"] is False
    lead = client.get_lead(answer["leadID"])
    assert (lead["firstName"], lead["createTimestamp"]) == ("Nia", "2026-11-27 09:10:00")
    [event] = list(client.get_events(T0))
    assert event["id"] == answer["eventID"] and event["leadID"] == answer["leadID"]
    assert (event["eventSource"], event["whatType"], event["eventName"]) == (
        "formSubmit",
        "form",
        "Filled out the form Request a Demo",
    )
    assert parse_event_data(event["eventData"]) == {
        "formID": int(answer["formID"]),
        "formName": "Request a Demo",
    }


def test_deactivated_lead_is_reactivated_by_a_form_fill(client, admin):
    admin.freeze("2026-11-27 09:00:00")
    lead_id = _lead(client, "churn@example.com")
    admin.freeze("2026-11-27 10:00:00")
    assert client.update_leads([{"id": lead_id, "active": "0"}])[0].success
    assert (
        client.get_lead(lead_id)["updateTimestamp"] == "2026-11-27 10:00:00"
    )  # deactivation is a write
    assert list(client.get_leads()) == []
    admin.freeze("2026-11-27 11:00:00")
    answer = admin.post(
        "/forms/submit", {"emailAddress": "churn@example.com", "formName": "Contact Us"}
    )
    assert answer == {**answer, "leadID": lead_id, "created": False, "reactivated": True}
    lead = client.get_lead(lead_id)
    assert (lead["active"], lead["updateTimestamp"]) == ("1", "2026-11-27 11:00:00")
    assert [row["id"] for row in client.get_leads()] == [lead_id]


def test_deactivated_lead_is_reactivated_by_a_re_import(client, admin):
    lead_id = _lead(client, "back@example.com", firstName="Old")
    client.update_leads([{"id": lead_id, "active": 0}])
    answer = admin.post(
        "/import",
        {
            "leads": [
                {"emailAddress": "back@example.com", "firstName": "New"},
                {"emailAddress": "fresh@example.com"},
            ]
        },
    )
    assert [(r["created"], r["reactivated"]) for r in answer["results"]] == [
        (False, True),
        (True, False),
    ]
    assert (
        client.get_lead(lead_id)["active"] == "1" and client.get_lead(lead_id)["firstName"] == "New"
    )
    sources = [e["eventSource"] for e in client.get_events(datetime(2000, 1, 1, tzinfo=UTC))]
    assert sources == ["leadCreation", "leadCreation"]


def test_events_have_stable_ids_and_window_by_create_timestamp(client, admin):
    lead_id = _lead(client, "events@example.com")
    job = admin.post(
        "/emails/send", {"subject": "Hello", "leadIDs": [lead_id], "_at": "2026-11-27 08:00:00"}
    )
    admin.post(
        "/emails/open",
        {"leadID": lead_id, "emailJobID": job["emailJobID"], "_at": "2026-11-27 09:00:00"},
    )
    for minute in (1, 2, 3):  # the same lead clicks three times
        admin.post(
            "/emails/click",
            {
                "leadID": lead_id,
                "emailJobID": job["emailJobID"],
                "url": f"https://x.example/{minute}",
                "_at": f"2026-11-27 09:0{minute}:00",
            },
        )
    admin.post(
        "/page-visits",
        {"leadID": lead_id, "url": "https://x.example/pricing", "_at": "2026-11-27 10:00:00"},
    )

    everything = list(client.get_events(datetime(2026, 11, 27, 8, 0, tzinfo=UTC)))
    assert [e["eventSource"] for e in everything] == [
        "emailSent",
        "emailOpened",
        "emailClick",
        "emailClick",
        "emailClick",
        "pageVisit",
    ]
    ids = [int(e["id"]) for e in everything]
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert everything[0]["id"] == job["eventIDs"][0]
    data = parse_event_data(everything[2]["eventData"])
    assert data == {
        "emailID": int(job["emailID"]),
        "emailJobID": int(job["emailJobID"]),
        "subject": "Hello",
        "url": "https://x.example/1",
    }

    # since is inclusive, until is inclusive; reading twice gives the same ids (stable identity)
    window = list(
        client.get_events(
            datetime(2026, 11, 27, 9, 0, tzinfo=UTC), datetime(2026, 11, 27, 9, 2, tzinfo=UTC)
        )
    )
    assert [e["eventSource"] for e in window] == ["emailOpened", "emailClick", "emailClick"]
    again = list(
        client.get_events(
            datetime(2026, 11, 27, 9, 0, tzinfo=UTC), datetime(2026, 11, 27, 9, 2, tzinfo=UTC)
        )
    )
    assert [e["id"] for e in again] == [e["id"] for e in window]
    only_clicks = list(
        client.get_events(
            datetime(2026, 11, 27, tzinfo=UTC), event_source="emailClick", lead_id=lead_id
        )
    )
    assert len(only_clicks) == 3
    # first click per lead and email: what the sync keeps
    first_click = min(
        (e for e in everything if e["eventSource"] == "emailClick"),
        key=lambda e: (e["createTimestamp"], int(e["id"])),
    )
    assert parse_event_data(first_click["eventData"])["url"] == "https://x.example/1"


def test_events_page_with_limit_offset(client, admin):
    admin.seed(300, activity_leads=300, seed=3)
    total = admin.get("/stats")["events"]
    assert total > 500
    events = list(client.get_events(datetime(2000, 1, 1, tzinfo=UTC)))
    assert len(events) == total and len({e["id"] for e in events}) == total
    assert client.calls["getEvents"] == total // 500 + 1


def test_timeline_has_the_same_activity_without_ids(client, admin):
    lead_id = _lead(client, "tl@example.com")
    admin.post(
        "/forms/submit",
        {"emailAddress": "tl@example.com", "formName": "Contact Us", "_at": "2026-11-01 10:00:00"},
    )
    admin.post(
        "/page-visits",
        {"leadID": lead_id, "url": "https://x.example/", "_at": "2026-11-01 09:00:00"},
    )
    timeline = client.get_lead_timeline(lead_id)
    assert all(
        set(row) == {"whoID", "whatType", "eventSource", "eventName", "createTimestamp"}
        for row in timeline
    )
    assert sorted((r["eventSource"], r["createTimestamp"]) for r in timeline) == sorted(
        (e["eventSource"], e["createTimestamp"])
        for e in client.get_events(datetime(2000, 1, 1, tzinfo=UTC), lead_id=lead_id)
    )


def test_email_listing_jobs_and_email_events_agree_with_events(client, admin):
    a, b = _lead(client, "a@example.com"), _lead(client, "b@example.com")
    job = admin.post(
        "/emails/send", {"subject": "Launch", "leadIDs": [a, b], "_at": "2026-11-27 08:00:00"}
    )
    admin.post(
        "/emails/open", {"leadID": a, "emailJobID": job["emailJobID"], "_at": "2026-11-27 08:30:00"}
    )
    admin.post(
        "/emails/click",
        {
            "leadID": a,
            "emailJobID": job["emailJobID"],
            "url": "https://x.example/",
            "_at": "2026-11-27 08:31:00",
        },
    )

    raw = client.call("getEmailListing", {"where": {}})
    assert set(raw) == {"getAllemailListings", "hasMore"} and raw["hasMore"] is False
    assert [e["subject"] for e in client.get_email_listing()] == ["Launch"]
    assert list(client.call("getEmailJobs", {})) == ["getAllgetEmailJobss"]
    [email_job] = client.get_email_jobs()
    assert (email_job["id"], email_job["sendCount"], email_job["emailID"]) == (
        job["emailJobID"],
        "2",
        job["emailID"],
    )
    sends = client.get_email_events(job["emailJobID"], "sends")
    assert sorted(r["leadID"] for r in sends) == sorted([a, b])
    [open_row] = client.get_email_events(job["emailJobID"], "opens")
    assert open_row == {
        "leadID": a, "emailID": job["emailID"], "emailJobID": job["emailJobID"],
        "createDate": "2026/11/27 08:30", "emailAddress": "a@example.com",
    }  # fmt: skip
    assert len(client.get_email_events(job["emailJobID"], "clicks")) == 1


def test_lists_and_members(client, admin):
    ids = [_lead(client, f"m{i}@example.com") for i in range(3)]
    created = admin.post("/lists", {"name": "VIP", "leadIDs": ids[:2]})
    [active] = client.get_active_lists()
    assert (active["id"], active["name"], active["memberCount"]) == (created["listID"], "VIP", "2")
    raw = client.call("getListMembers", {"where": {"id": created["listID"]}})
    assert set(raw) == {"getWherelistMemberGets", "hasMore"}
    assert [m["leadID"] for m in client.get_list_members(created["listID"])] == ids[:2]


def test_marketer_edits_and_scores_bump_update_timestamp(client, admin):
    lead_id = _lead(client, "edit@example.com")
    admin.post(f"/leads/{lead_id}", {"fields": {"title": "VP"}, "_at": "2026-11-20 12:00:00"})
    assert client.get_lead(lead_id)["updateTimestamp"] == "2026-11-20 12:00:00"
    admin.post(f"/leads/{lead_id}/score", {"leadScore": 77, "_at": "2026-11-21 12:00:00"})
    lead = client.get_lead(lead_id)
    assert (lead["title"], lead["leadScore"], lead["updateTimestamp"]) == (
        "VP",
        "77",
        "2026-11-21 12:00:00",
    )
    refused = admin.post(f"/leads/{lead_id}", {"fields": {"leadStatus": "bogus"}}, expect=400)
    assert refused["api_error"]["code"] == 217


def test_clock_freezes_accepts_iso_and_unfreezes(admin, client):
    assert admin.post("/clock", {"now": "2026-11-27T09:10:00Z"}) == {
        "now": "2026-11-27 09:10:00",
        "frozen": True,
    }
    lead_id = _lead(client, "clock@example.com")
    assert client.get_lead(lead_id)["createTimestamp"] == "2026-11-27 09:10:00"
    assert admin.post("/clock", {"advance_seconds": 90})["now"] == "2026-11-27 09:11:30"
    assert admin.post("/clock", {"now": None})["frozen"] is False


def test_seed_is_reproducible_and_realistic(client, admin):
    admin.freeze("2026-11-27 09:10:00")
    first = admin.seed(200, seed=11, inactive=2)
    leads_a = list(client.get_leads())
    events_a = list(client.get_events(datetime(2000, 1, 1, tzinfo=UTC)))
    admin.reset()
    admin.freeze("2026-11-27 09:10:00")
    second = admin.seed(200, seed=11, inactive=2)
    assert first == {**second, "elapsed_seconds": first["elapsed_seconds"]}
    assert list(client.get_leads()) == leads_a
    assert list(client.get_events(datetime(2000, 1, 1, tzinfo=UTC))) == events_a
    assert len(leads_a) == 198  # two seeded inactive leads are hidden
    statuses = {lead["leadStatus"] for lead in leads_a}
    assert {"unqualified", "contact", "customer"} <= statuses
    owners = {lead["ownerID"] for lead in leads_a}
    assert first["inactive_user"] in owners  # some leads belong to the inactive user
    assert {e["eventSource"] for e in events_a} == {
        "formSubmit",
        "emailSent",
        "emailOpened",
        "emailClick",
        "pageVisit",
    }


def test_defective_rows_only_when_asked(client, admin):
    clean = admin.seed(20, activity_leads=0)
    assert clean["defects"] == []
    dirty = admin.seed(5, activity_leads=0, defects=True)
    kinds = {d["defect"] for d in dirty["defects"]}
    assert kinds == {
        "malformed_email",
        "missing_last_name",
        "missing_company",
        "too_long",
        "bad_picklist",
    }
    by_id = {
        lead["id"]: lead for lead in client.get_leads_by_ids([d["id"] for d in dirty["defects"]])
    }
    for defect in dirty["defects"]:
        lead = by_id[defect["id"]]
        if defect["defect"] == "bad_picklist":
            assert lead["product_interest_5f1a2b3c4d5e6"] == "Widgets"
        if defect["defect"] == "missing_last_name":
            assert lead["lastName"] is None
        if defect["defect"] == "too_long":
            assert len(lead["firstName"]) > 50 or len(lead["companyName"]) > 100
