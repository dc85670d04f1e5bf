"""State store: migrations, links and their history, watermarks, quarantine, held items."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from crm_sync.state.store import SyncStore

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_state_url: str) -> SyncStore:
    s = SyncStore(tmp_state_url)
    yield s
    s.dispose()


def test_migrations_create_tables_and_are_idempotent(tmp_state_url: str) -> None:
    s = SyncStore(tmp_state_url)
    s.migrate()  # second time: nothing to do, no error
    names = set(inspect(s.engine).get_table_names())
    assert {
        "links",
        "link_events",
        "runs",
        "watermarks",
        "quarantine",
        "held_items",
        "crm_sync_alembic_version",
    } <= names
    assert "sqlite" in repr(s) and "password" not in repr(s)


def test_link_lifecycle_keeps_history(store: SyncStore) -> None:
    store.upsert_link(
        "person", "11", "Lead", "00QA", synced_values={"firstName": "Ann"}, run_id="r1"
    )
    store.upsert_link(
        "person",
        "11",
        "Contact",
        "003A",
        synced_values={"title": "CTO"},
        run_id="r2",
        event="converted",
    )
    link = store.links_by_lg("person", ["11"])["11"]
    assert (link.sf_object, link.sf_id, link.status) == ("Contact", "003A", "active")
    assert link.synced_values == {"firstName": "Ann", "title": "CTO"}
    store.set_link_status("person", "11", "deleted", event="deactivated", run_id="r3")
    events = [(e.event, e.old_sf_id, e.new_sf_id) for e in store.link_events("person", lg_id="11")]
    assert events == [
        ("created", None, "00QA"),
        ("converted", "00QA", "003A"),
        ("deactivated", "003A", "003A"),
    ]
    assert store.count_links("person") == 0
    assert store.count_links("person", status=None) == 1
    assert store.links_by_sf("person", ["003A"])["003A"][0].lg_id == "11"
    assert store.links_by_sf("person", ["003A"], active_only=True) == {}


def test_relink_can_replace_synced_values(store: SyncStore) -> None:
    store.upsert_link("person", "1", "Lead", "00QA", synced_values={"a": "1"})
    store.upsert_link(
        "person",
        "1",
        "Lead",
        "00QB",
        synced_values={"b": "2"},
        event="relinked",
        merge_values=False,
    )
    assert store.links_by_lg("person", ["1"])["1"].synced_values == {"b": "2"}


def test_update_synced_values_merges(store: SyncStore) -> None:
    store.upsert_link("person", "1", "Lead", "00QA", synced_values={"a": "1", "b": "x"})
    assert store.update_synced_values("person", {"1": {"b": "2"}, "missing": {"c": "3"}}, "r") == 1
    assert store.links_by_lg("person", ["1"])["1"].synced_values == {"a": "1", "b": "2"}


def test_watermark_never_moves_backwards(store: SyncStore) -> None:
    t1 = datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert store.get_watermark("d", "s") is None
    store.advance_watermark("d", "s", t1, "r1")
    store.advance_watermark("d", "s", t1 - timedelta(hours=5), "backfill")
    assert store.get_watermark("d", "s") == t1
    assert store.covered_until("d") == t1


def test_runs_and_window_done(store: SyncStore) -> None:
    s, e = datetime(2026, 11, 27, 9, tzinfo=UTC), datetime(2026, 11, 27, 10, tzinfo=UTC)
    store.start_run("d", "r1", window_start=s, window_end=e, dry_run=False, full_resync=False)
    assert not store.window_done("d", s, e)
    store.finish_run("d", "r1", status="success", report={"x": 1}, sf_api_calls=7)
    assert store.window_done("d", s + timedelta(minutes=5), e)
    assert store.get_run("d", "r1").report == {"x": 1}
    assert store.sf_calls_since(datetime(2026, 1, 1, tzinfo=UTC)) == 7


def _q(store: SyncStore, run_id: str, **kw):
    args = dict(
        dag_id="d",
        domain="person",
        direction="lg_to_sf",
        record_key="lg:1",
        target_object="Lead",
        lg_id="1",
        sf_id=None,
        category="format",
        check="email_format",
        field="Email",
        error_code=None,
        message="bad email",
        payload={"Email": "x"},
        run_id=run_id,
        max_attempts=3,
    )
    args.update(kw)
    return store.quarantine(**args)


def test_quarantine_counts_attempts_per_run_then_parks(store: SyncStore) -> None:
    assert _q(store, "r1").attempts == 1
    assert _q(store, "r1").attempts == 1  # task retry within the same run is not a new attempt
    assert _q(store, "r2").status == "open"
    item = _q(store, "r3")
    assert (item.attempts, item.status) == (3, "parked")
    assert store.retry_keys("d", "lg_to_sf") == []
    assert store.retry_keys("d", "lg_to_sf", include_parked=True) == ["lg:1"]
    assert store.mark_for_retry([item.id]) == 1
    assert store.retry_keys("d", "lg_to_sf") == ["lg:1"]
    assert store.resolve_quarantine("d", "lg_to_sf", ["lg:1"], "r4") == 1
    assert store.quarantined("d") == []


def test_held_items(store: SyncStore) -> None:
    store.hold("d", "event", "e1", payload={"x": 1}, reason="lead not linked", waiting_for="lg:5")
    store.hold("d", "event", "e1", payload={"x": 2}, reason="lead not linked", waiting_for="lg:5")
    [item] = store.held("d", "event")
    assert (item.attempts, item.payload) == (2, {"x": 2})
    assert store.release("d", "event", ["e1"], status="delivered") == 1
    assert store.held("d", "event") == []


def test_add_links_inserts_in_bulk_and_falls_back_for_existing(store: SyncStore) -> None:
    store.upsert_link("person", "1", "Lead", "00QA", synced_values={"a": "1"})
    rows = [
        {
            "lg_id": "1",
            "sf_object": "Lead",
            "sf_id": "00QA",
            "synced_values": {"b": "2"},
            "event": "paired_by_email",
        },
        {
            "lg_id": "2",
            "sf_object": "Lead",
            "sf_id": "00QB",
            "synced_values": {"c": "3"},
            "event": "created",
        },
    ]
    assert store.add_links("person", rows, "r1") == 2
    links = store.links_by_lg("person", ["1", "2"])
    assert (links["1"].sf_id, links["1"].synced_values) == ("00QA", {"a": "1", "b": "2"})
    assert (links["2"].sf_id, links["2"].status, links["2"].synced_values) == (
        "00QB",
        "active",
        {"c": "3"},
    )
    assert [e.event for e in store.link_events("person", lg_id="2")] == ["created"]
    assert [e.event for e in store.link_events("person", lg_id="1")] == [
        "created",
        "paired_by_email",
    ]


def test_add_links_never_steals_a_link(store: SyncStore) -> None:
    store.upsert_link("person", "1", "Lead", "00QA")
    rows = [
        {
            "lg_id": "1",
            "sf_object": "Contact",
            "sf_id": "003X",
            "event": "created",
        },  # another record
        {"lg_id": "2", "sf_object": "Lead", "sf_id": "00QB", "event": "created"},
        {"lg_id": "2", "sf_object": "Lead", "sf_id": "00QC", "event": "created"},  # same lead twice
    ]
    assert store.add_links("person", rows, "r1") == 1
    links = store.links_by_lg("person", ["1", "2"])
    assert (links["1"].sf_id, links["2"].sf_id) == ("00QA", "00QB")


def test_purge_old_drops_only_resolved_and_finished_items_past_retention(store: SyncStore) -> None:
    from sqlalchemy import update

    from crm_sync.state.models import HeldItem, QuarantineItem

    _q(store, "r1", record_key="lg:1")
    _q(store, "r1", record_key="lg:2")
    store.resolve_quarantine("d", "lg_to_sf", ["lg:1"], "r2")
    store.hold("d", "event", "e1", payload={}, reason="waiting")
    store.hold("d", "event", "e2", payload={}, reason="waiting")
    store.release("d", "event", ["e1"], status="delivered")
    old = datetime(2026, 1, 1)
    with store.session() as s:
        s.execute(update(QuarantineItem).values(resolved_at=old))
        s.execute(update(HeldItem).values(last_seen=old))
    store.purge_old(timedelta(days=30))
    assert [
        q.record_key for q in store.quarantined("d", statuses=("open", "parked", "resolved"))
    ] == ["lg:2"]
    assert [h.item_key for h in store.held("d", "event")] == ["e2"]
    assert store.held("d", "event", status="delivered") == []
