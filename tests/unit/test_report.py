"""Run-report summaries (demo, alerts)."""

from __future__ import annotations

import pytest

from crm_sync.report import summarize, writes

pytestmark = pytest.mark.unit

PEOPLE = {
    "dag_id": "sync_leads_contacts",
    "status": "success",
    "window": {"start": "s", "end": "e", "caught_up_from": "c"},
    "extracted": {"lead": 3, "lead_retried": 1},
    "salesforce": {"created": 2, "updated": 1, "would_create": 9, "rejected_by_gate": 1},
    "leadgen": {"updated": 2, "deactivated": 2, "unchanged": 4},
    "links": {"created": 2},
    "unchanged": 5,
    "quarantined": 1,
    "quarantine_examples": [{"category": "format", "message": "bad email"}],
    "events": {"converted": 1},
    "api_calls": {"salesforce": 7, "leadgen": 3},
}


def test_writes_counts_each_write_once() -> None:
    # 2 + 1 in Salesforce, 2 updates in Lead Gen & CRM (the deactivations are among them)
    assert writes(PEOPLE) == 5
    assert (
        writes({"opportunities": {"created": 2, "unchanged": 3}, "memberships": {"deleted": 1}})
        == 3
    )
    assert writes({"salesforce": {"would_create": 4}}) == 0


def test_summary_lines() -> None:
    lines = summarize(PEOPLE)
    assert lines[0].startswith("sync_leads_contacts  window [s, e)  status success")
    assert "  caught up from c (an earlier run had failed)" in lines
    assert "  extracted: lead 3" in lines
    assert any(line.startswith("  quarantined: 1 rows") for line in lines)
    assert lines[-1] == "  API calls: Salesforce 7, Lead Gen & CRM 3"
