"""Salesforce calls of the people DAG for a small fixed scenario (issue 16: calls near the lower
bound, asserted as counts, never as time): a full resync answers its first-pairing lookups from
its own extract, and a quarantined lead retried every hour is looked up once, not every hour."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest

from tests.e2e.helpers import H, freeze, lg_lead, reset_calls, run_dag, sf_create, state_store

pytestmark = pytest.mark.e2e

DAG = "sync_leads_contacts"


def _match_counts(caplog: pytest.LogCaptureFixture) -> dict[str, int]:
    """The counts of the last ``match:`` log line (a count not logged is 0)."""
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("match: pairs=")]
    assert lines, "the match stage logs one line per run"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1])}


def _queries(fresh) -> int:
    calls = fresh.sf.get("calls")["by_kind"]
    return calls.get("query", 0) + calls.get("query_more", 0)


def test_lookups_are_answered_by_the_run_s_reads_and_a_miss_is_not_asked_twice(
    fresh, dags, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="crm_sync")
    freeze(fresh, 50)
    for i in range(4):  # in Salesforce already: paired by email, not created twice
        sf_create(fresh, "Lead", LastName=f"Known{i}", Company="Known Co", Email=f"k{i}@ex.org")
    known = [
        lg_lead(fresh, emailAddress=f"K{i}@ex.org", lastName=f"Known{i}", companyName="Known Co")
        for i in range(4)
    ]
    new = [
        lg_lead(fresh, emailAddress=f"n{i}@ex.org", lastName=f"New{i}", companyName="New Co")
        for i in range(12)
    ]
    bad = [  # no last name: quarantined on the way to Salesforce, retried every run
        lg_lead(fresh, emailAddress=f"b{i}@ex.org", firstName="No", companyName="Bad Co")
        for i in range(3)
    ]

    # 1. the initial load: a full resync reads every live Lead and Contact, so its extract
    #    answers every first-pairing lookup (0 lookup queries; before: 4 per 500 leads)
    reset_calls(fresh)
    caplog.clear()
    out = run_dag(dags, DAG, H, conf={"full_resync": True, "max_reject_rate": 0.5}, now=True)
    assert out.state == "success", out.task_states
    counts = _match_counts(caplog)
    assert counts.get("lookups_queried", 0) == 0
    assert counts["lookups_answered_locally"] == len(known) + len(new) + len(bad)
    assert counts["matched_email"] == len(known)
    assert out.report["salesforce"]["created"] == len(new)
    links = state_store().links_by_lg("person", known + new)
    assert len(links) == len(known) + len(new)
    assert {q.lg_id for q in state_store().quarantined(DAG)} == set(bad)
    initial_queries = _queries(fresh)

    # 2. the next hour retries the quarantined leads: asked once (one IN list per object and
    #    lookup field: record link, email), and the miss is recorded
    freeze(fresh, 30, H + timedelta(hours=1))
    reset_calls(fresh)
    caplog.clear()
    out = run_dag(dags, DAG, H + timedelta(hours=1), conf={"max_reject_rate": 0.9}, now=True)
    assert out.state == "success", out.task_states
    counts = _match_counts(caplog)
    assert counts["lookups_queried"] == len(bad)
    retry_hour = _queries(fresh)

    # 3. and the hour after: the window reads every change since the miss, so no lookup; a
    #    Salesforce record that gained a retried lead's email meanwhile is still found, since
    #    it is in the window (or in its tail, which a local answer reads)
    freeze(fresh, 30, H + timedelta(hours=2))
    late = sf_create(fresh, "Contact", LastName="Late", Email="b0@ex.org")
    reset_calls(fresh)
    caplog.clear()
    out = run_dag(dags, DAG, H + timedelta(hours=2), conf={"max_reject_rate": 0.9}, now=True)
    assert out.state == "success", out.task_states
    counts = _match_counts(caplog)
    assert counts.get("lookups_queried", 0) == 0
    assert counts["lookups_answered_locally"] == len(bad)
    assert counts["matched_email"] == 1
    assert state_store().links_by_lg("person", [bad[0]])[bad[0]].sf_id == late
    # hour 2: 4 lookup queries (Lead and Contact, by record link and by email); hour 3: none,
    # but the tail past the window (one query per object) that a local answer reads
    assert retry_hour - _queries(fresh) == 4 - 2
    assert initial_queries > 0
