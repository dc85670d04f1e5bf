"""Resync chosen records now (issue 17): ``record_ids`` on sync_leads_contacts syncs exactly the
records named (Lead Gen & CRM ids, Salesforce ids, emails), whatever the window, and leaves the
watermark where it was."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.e2e.helpers import (
    H,
    freeze,
    lg_get,
    lg_lead,
    run_dag,
    sf_create,
    sf_find,
    sf_get,
    sf_patch,
    state_store,
)

pytestmark = pytest.mark.e2e

PEOPLE = "sync_leads_contacts"


def test_record_ids_sync_exactly_the_chosen_records(fresh, dags) -> None:
    freeze(fresh, 40)
    a = sf_create(fresh, "Lead", LastName="A", Company="A Co", Email="a@example.com")
    c = sf_create(fresh, "Lead", LastName="C", Company="C Co", Email="c@example.com")
    b = lg_lead(fresh, emailAddress="b@example.com", lastName="B", companyName="B Co")
    first = run_dag(dags, PEOPLE, H + timedelta(minutes=1), now=True)
    assert first.state == "success", first.task_states
    links = state_store().links_by_sf("person", [a, c])
    lead_a, lead_c = links[a][0].lg_id, links[c][0].lg_id
    b_sf = state_store().links_by_lg("person", [b])[b].sf_id
    watermark = state_store().get_watermark(PEOPLE, "people")

    # an hour later: edits on four records, and a new lead; only three are chosen
    freeze(fresh, -50)
    sf_patch(fresh, "Lead", a, Title="Chosen by Salesforce id")
    sf_patch(fresh, "Lead", c, Title="Not chosen")
    fresh.lg.post(f"leads/{b}", {"fields": {"title": "Chosen by lead id"}})
    d = lg_lead(fresh, emailAddress="d@example.com", lastName="D", companyName="D Co")
    e = lg_lead(fresh, emailAddress="e@example.com", lastName="E", companyName="E Co")
    chosen = {"record_ids": [a, b, "D@Example.com"]}
    out = run_dag(dags, PEOPLE, H + timedelta(minutes=55), chosen, now=True)
    assert out.state == "success", out.task_states
    assert out.report["run_kind"] == "targeted"
    assert lg_get(fresh, lead_a)["title"] == "Chosen by Salesforce id"
    assert sf_get(fresh, "Lead", b_sf)["Title"] == "Chosen by lead id"
    assert len(sf_find(fresh, "Lead", "d@example.com")) == 1
    # the others wait for their run
    assert lg_get(fresh, lead_c).get("title") in (None, "")
    assert sf_find(fresh, "Lead", "e@example.com") == []
    assert out.report["salesforce"] == {"updated": 1, "created": 1}
    assert out.report["leadgen"] == {"updated": 1}
    assert state_store().get_watermark(PEOPLE, "people") == watermark

    # the next run from the watermark syncs the rest, and nothing chosen twice
    rest = run_dag(dags, PEOPLE, H + timedelta(minutes=58), now=True)
    assert rest.state == "success", rest.task_states
    assert lg_get(fresh, lead_c)["title"] == "Not chosen"
    assert len(sf_find(fresh, "Lead", "e@example.com")) == 1
    assert len(sf_find(fresh, "Lead", "d@example.com")) == 1
    assert rest.report["salesforce"] == {"created": 1}
    assert rest.report["leadgen"] == {"updated": 1}
    assert e and d


def test_record_ids_that_are_not_ids_or_emails_fail_the_run_before_any_read(
    fresh, dags, caplog
) -> None:
    out = run_dag(
        dags,
        PEOPLE,
        H,
        {"record_ids": ["00Q000000000001AAA", "not an id", "12ab"]},
        now=True,
    )
    assert out.state == "failed"
    assert out.task_states["prepare"] == "failed"
    assert "not an id" in caplog.text and "12ab" in caplog.text
    assert fresh.lg.get("calls")["by_method"].get("getLeads", 0) == 0
