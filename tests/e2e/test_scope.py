"""Scope filters end to end (issue 17): records outside a spec's scope stay on their side; a
linked record that leaves scope stops syncing, is never deleted, and syncs again when it is back;
the run report counts both."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.e2e.helpers import (
    H,
    freeze,
    lg_client,
    lg_get,
    lg_lead,
    mappings_copy,
    run_dag,
    sf_create,
    sf_find,
    sf_get,
    sf_patch,
    state_store,
    write_calls,
)

pytestmark = pytest.mark.e2e

PEOPLE = "sync_leads_contacts"
H2, H3 = H + timedelta(hours=1), H + timedelta(hours=2)
SCOPE = """scope:
  salesforce:
    where:
      - {field: LeadSource, op: in, values: [Web]}
  leadgen:
    where:
      - {field: leadStatus, op: ne, value: qualified}
fields:
"""


def scoped_leads(tmp_path, monkeypatch) -> None:
    mappings_copy(tmp_path, monkeypatch, "leads.yaml", "fields:\n", SCOPE)


def lg_by_email(email: str) -> list[dict]:
    return list(lg_client().get_leads_by_emails([email]))


def test_records_outside_scope_are_never_created_on_the_other_side(
    fresh, dags, tmp_path, monkeypatch
) -> None:
    scoped_leads(tmp_path, monkeypatch)
    freeze(fresh, 40)
    lg_lead(fresh, emailAddress="in.lg@example.com", lastName="In", companyName="In Co")
    lg_lead(
        fresh,
        emailAddress="out.lg@example.com",
        lastName="Out",
        companyName="Out Co",
        leadStatus="qualified",
    )
    sf_create(
        fresh, "Lead", LastName="Web", Company="W", Email="in.sf@example.com", LeadSource="Web"
    )
    sf_create(
        fresh, "Lead", LastName="Call", Company="C", Email="out.sf@example.com",
        LeadSource="Phone Inquiry",
    )  # fmt: skip
    out = run_dag(dags, PEOPLE, H)
    assert out.state == "success", out.task_states
    assert len(sf_find(fresh, "Lead", "in.lg@example.com")) == 1
    assert sf_find(fresh, "Lead", "out.lg@example.com") == []
    assert len(lg_by_email("in.sf@example.com")) == 1
    assert lg_by_email("out.sf@example.com") == []
    assert out.report["events"]["out_of_scope"] == 2
    assert out.report["salesforce"]["created"] == 1 and out.report["leadgen"]["created"] == 1

    # the same records again: still nothing for them, and nothing at all is written
    from tests.e2e.helpers import reset_calls

    reset_calls(fresh)
    again = run_dag(dags, PEOPLE, H, {"full_resync": True})
    assert again.state == "success", again.task_states
    assert write_calls(fresh) == {"salesforce": {}, "leadgen": {}}
    assert sf_find(fresh, "Lead", "out.lg@example.com") == []


def test_a_linked_record_that_leaves_scope_stops_syncing_and_resumes_when_back(
    fresh, dags, tmp_path, monkeypatch
) -> None:
    scoped_leads(tmp_path, monkeypatch)
    freeze(fresh, 40)
    sf_id = sf_create(
        fresh, "Lead", LastName="Web", Company="W", Email="moves@example.com", LeadSource="Web"
    )
    assert run_dag(dags, PEOPLE, H).state == "success"
    link = state_store().links_by_sf("person", [sf_id])[sf_id][0]
    lead = link.lg_id

    # the rep moves the lead out of scope and edits it; the marketer edits the lead too
    freeze(fresh, 40, H2)
    sf_patch(fresh, "Lead", sf_id, LeadSource="Phone Inquiry", Title="Left scope")
    fresh.lg.post(f"leads/{lead}", {"fields": {"phoneNumber": "+1 555 0100"}})
    out = run_dag(dags, PEOPLE, H2)
    assert out.state == "success", out.task_states
    assert out.report["events"]["left_scope"] == 1
    assert lg_get(fresh, lead).get("title") in (None, "")  # not synced
    assert sf_get(fresh, "Lead", sf_id).get("Phone") in (None, "")  # nor the other way
    assert lg_get(fresh, lead)["active"] in (1, "1", True)  # never deleted or deactivated
    kept = state_store().links_by_sf("person", [sf_id])[sf_id][0]
    assert (kept.lg_id, kept.status) == (lead, "active")

    # back in scope: both edits made meanwhile sync
    freeze(fresh, 40, H3)
    sf_patch(fresh, "Lead", sf_id, LeadSource="Web")
    back = run_dag(dags, PEOPLE, H3)
    assert back.state == "success", back.task_states
    assert back.report["events"].get("left_scope", 0) == 0
    assert lg_get(fresh, lead)["title"] == "Left scope"
    assert sf_get(fresh, "Lead", sf_id)["Phone"] == "+1 555 0100"
