"""Engagement: exactly one Task per synced event of a linked lead."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crm_sync.verify import engagement
from tests.unit import test_verify_fakes as fk
from tests.unit.test_verify_fakes import store_fixture  # noqa: F401 (the store fixture)

pytestmark = pytest.mark.unit


L1, L2 = fk.sf_id("00Q", 1), fk.sf_id("00Q", 2)
SINCE, UNTIL = fk.utc("2026-11-20T09:00:00"), fk.utc("2026-11-20T10:00:00")
DAG = "sync_engagement_activities"


def ev(eid: str, lead: str = "1", source: str = "pageVisit", at: str = "2026-11-20 09:30:00", **d):
    data = {"url": "https://x.example/p", **d}
    return {
        "id": eid,
        "leadID": lead,
        "eventSource": source,
        "createTimestamp": at,
        "eventData": data,
    }


def task(key: str, n: int, deleted: bool = False) -> dict:
    return {"Id": fk.sf_id("00T", n), "LeadGen_Event_Id__c": key, "IsDeleted": deleted}


def check(store, events, tasks, **kw):
    sf = fk.FakeSalesforce(Task=tasks)
    lg = fk.FakeLeadGen(events=events)
    src = fk.sources(sf, lg, store)
    out = [(v.kind, v.leadgen, v.salesforce) for v in engagement.task_checks(src, **kw)]
    return out, src


def test_each_event_with_exactly_one_task_is_clean(store) -> None:
    fk.link(store, "1", L1)
    out, src = check(
        store,
        [ev("100"), ev("101", source="formSubmit", formName="Demo")],
        [task("LG-EVT-100", 1), task("lg-evt-101", 2)],  # the key compares case-insensitively
        since=SINCE,
        until=UNTIL,
    )
    assert out == []
    assert src.read["leadgen_events"] == 2


def test_event_without_a_task_is_missing(store) -> None:
    fk.link(store, "1", L1)
    out, _ = check(store, [ev("100")], [], since=SINCE, until=UNTIL)
    assert out == [("task_missing", ("1", "100"), (L1,))]


def test_a_task_a_rep_deleted_still_counts_and_events_outside_the_range_are_ignored(store) -> None:
    fk.link(store, "1", L1)
    events = [ev("100"), ev("101", at="2026-11-20 10:00:00"), ev("102", at="2026-11-20 08:59:59")]
    out, _ = check(store, events, [task("LG-EVT-100", 1, deleted=True)], since=SINCE, until=UNTIL)
    assert out == []


def test_held_quarantined_unlinked_and_deleted_leads_explain_a_missing_task(store) -> None:
    fk.link(store, "1", L1)
    fk.link(store, "3", L2, status="deleted")
    store.hold(DAG, "event", "100", payload={}, reason="waiting")
    store.hold(DAG, "event", "101", payload={}, reason="x")
    store.release(DAG, "event", ["101"], status="dropped")
    fk.quarantine(store, DAG, "evt:LG-EVT-102", domain="engagement")
    events = [ev("100"), ev("101"), ev("102"), ev("103", lead="2"), ev("104", lead="3")]
    out, _ = check(store, events, [], since=SINCE, until=UNTIL)
    assert out == []


def test_a_delivered_held_item_does_not_explain_a_missing_task(store) -> None:
    fk.link(store, "1", L1)
    store.hold(DAG, "event", "100", payload={}, reason="waiting")
    store.release(DAG, "event", ["100"], status="delivered")
    out, _ = check(store, [ev("100")], [], since=SINCE, until=UNTIL)
    assert out == [("task_missing", ("1", "100"), (L1,))]


def test_two_tasks_for_one_event_are_a_duplicate(store) -> None:
    out, _ = check(
        store, [ev("100")], [task("LG-EVT-100", 1), task("LG-EVT-100", 2)], since=SINCE, until=UNTIL
    )
    assert out == [("task_duplicate", ("1", "100"), (fk.sf_id("00T", 1), fk.sf_id("00T", 2)))]


def test_clicks_of_one_email_share_one_task(store) -> None:
    fk.link(store, "1", L1)
    clicks = [
        ev("100", source="emailClick", emailJobID="42", at="2026-11-20 09:10:00"),
        ev("101", source="emailClick", emailJobID="42", at="2026-11-20 09:20:00"),
    ]
    out, _ = check(store, clicks, [task("LG-CLICK-1-42", 1)], since=SINCE, until=UNTIL)
    assert out == []
    out, _ = check(store, clicks, [], since=SINCE, until=UNTIL)
    assert out == [("task_missing", ("1", "100", "101"), (L1,))]


def test_range_defaults_to_the_day_before_the_engagement_watermark(store) -> None:
    fk.link(store, "1", L1)
    store.advance_watermark(DAG, "engagement", UNTIL, "r")
    events = [ev("100", at="2026-11-19 10:00:00"), ev("101", at="2026-11-19 09:59:59")]
    out, src = check(store, events, [])
    assert out == [("task_missing", ("1", "100"), (L1,))]
    assert "[2026-11-19T10:00:00+00:00, 2026-11-20T10:00:00+00:00)" in src.notes[0]
    out, _ = check(store, events, [], since=timedelta(hours=25))
    assert [o[1] for o in out] == [("1", "101"), ("1", "100")]  # oldest first


def test_without_any_synced_window_the_check_says_so_and_reads_nothing(store) -> None:
    out, src = check(store, [ev("100")], [])
    assert out == []
    assert "has not synced a window yet" in src.notes[0]
    assert src.lg.calls["getEvents"] == 0


def test_after_backfills_only_the_range_ends_at_the_latest_successful_window(store) -> None:
    """Backfills never move the watermark; the check still covers what they synced, and a
    failed or dry run's window does not count."""
    fk.link(store, "1", L1)
    for run_id, end, status, dry in (
        ("ok", UNTIL, "success", False),
        ("dry", UNTIL + timedelta(hours=5), "success", True),
        ("failed", UNTIL + timedelta(hours=9), "failed", False),
    ):
        store.start_run(
            DAG,
            run_id,
            window_start=end - timedelta(hours=1),
            window_end=end,
            dry_run=dry,
            full_resync=False,
        )
        store.finish_run(DAG, run_id, status=status, report={})
    out, src = check(store, [ev("100", at="2026-11-20 09:30:00")], [])
    assert out == [("task_missing", ("1", "100"), (L1,))]
    assert "[2026-11-19T10:00:00+00:00, 2026-11-20T10:00:00+00:00)" in src.notes[0]
