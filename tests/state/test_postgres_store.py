"""The sync state store on both databases it supports: SQLite (one machine) and PostgreSQL (the
cluster, docker-compose.yaml). Every test runs on each; the PostgreSQL server is a private one
started from Debian's packages by scripts/ensure_services.sh, with a new empty database per test.

Migrations are checked from an empty database, one revision at a time, and the result must match
the models exactly; and from revision 0001 with data in it to head: 0002 adds a partial unique
index (one active link per Salesforce record), a column (``held_items.last_run_id``) and a table
(``leases``), 0003 widens ``runs.status``, and the rows already there must come through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from crm_sync.state.store import MIGRATIONS_DIR, SyncStore
from tests.cluster.helpers import new_database, postgres_server

T0 = datetime(2026, 11, 27, 9, tzinfo=UTC)


@pytest.fixture(scope="session")
def pg_port() -> Iterator[int]:
    """A private PostgreSQL server for the session (loopback, free port)."""
    with postgres_server("crm_sync_state_pg_") as port:
        yield port


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.unit),
        pytest.param("postgresql", marks=[pytest.mark.cluster, pytest.mark.postgres]),
    ]
)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    with new_database(request.getfixturevalue("pg_port")) as url:
        yield url


@pytest.fixture
def store(empty_url: str) -> Iterator[SyncStore]:
    s = SyncStore(empty_url)
    yield s
    s.dispose()


def _alembic(conn):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


def _upgrade(engine: Engine, revision: str) -> str | None:
    """Upgrade to ``revision`` as SyncStore.migrate does; the revision the database is at."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    with engine.begin() as conn:
        command.upgrade(_alembic(conn), revision)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": "crm_sync_alembic_version"})
        return ctx.get_current_revision()


def test_migrations_step_by_step_from_an_empty_database(empty_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from crm_sync.state.models import Base

    engine = create_engine(empty_url)
    assert inspect(engine).get_table_names() == []
    revisions = list(reversed(list(ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions())))
    assert [r.revision for r in revisions] == ["0001", "0002", "0003", "0004", "0005", "0006"]
    assert revisions[0].down_revision is None
    for rev in revisions:  # each revision from the one before it (the first from nothing)
        assert _upgrade(engine, rev.revision) == rev.revision
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # the version table is Alembic's own, not a model
    assert [d for d in diffs if "crm_sync_alembic_version" not in str(d)] == []
    engine.dispose()
    # opening the store on the migrated database changes nothing and fails nothing
    SyncStore(empty_url).dispose()


def _rows_at_0001(engine: Engine) -> None:
    """What a store at revision 0001 holds: links (two active memberships on one opportunity,
    a deleted link and an active one to the same Salesforce record), a held item."""
    now = datetime(2026, 11, 20, 9)
    link = (
        "INSERT INTO links (domain, lg_id, sf_object, sf_id, status, synced_values, created_at,"
        " updated_at) VALUES (:domain, :lg, :obj, :sf, :status, '{}', :now, :now)"
    )
    with engine.begin() as conn:
        for domain, lg, obj, sf, status in [
            ("person", "11", "Lead", "00Q000000000001", "deleted"),
            ("person", "12", "Lead", "00Q000000000001", "active"),
            ("person", "13", "Contact", "003000000000001", "active"),
            ("membership", "m1", "OpportunityContactRole", "006000000000001", "active"),
            ("membership", "m2", "OpportunityContactRole", "006000000000001", "active"),
        ]:
            conn.execute(
                text(link),
                {"domain": domain, "lg": lg, "obj": obj, "sf": sf, "status": status, "now": now},
            )
        conn.execute(
            text(
                "INSERT INTO runs (dag_id, run_id, status, dry_run, full_resync, started_at,"
                " sf_api_calls, lg_api_calls, report) VALUES ('sync_leads_contacts', 'r0',"
                " 'running', false, false, :now, 3, 1, '{}')"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO held_items (dag_id, kind, item_key, payload, reason, status,"
                " attempts, first_seen, last_seen) VALUES ('sync_engagement_activities',"
                " 'event', 'e1', '{\"x\": 1}', 'lead not linked', 'held', 2, :now, :now)"
            ),
            {"now": now},
        )


def test_a_store_at_0001_with_data_upgrades_to_head_keeping_every_row(empty_url: str) -> None:
    engine = create_engine(empty_url)
    assert _upgrade(engine, "0001") == "0001"
    _rows_at_0001(engine)
    assert "leases" not in inspect(engine).get_table_names()

    store = SyncStore(empty_url)  # opening it migrates, as a task does after a deployment
    assert _upgrade(engine, "head") == "0006"
    assert {"leases", "links", "held_items"} <= set(inspect(engine).get_table_names())
    assert "uq_links_active_sf_record" in {i["name"] for i in inspect(engine).get_indexes("links")}
    # the rows came through
    assert store.count_links("person") == 2 and store.count_links("membership") == 2
    [held] = store.held("sync_engagement_activities", "event")
    assert (held.item_key, held.attempts, held.payload, held.last_run_id) == (
        "e1",
        2,
        {"x": 1},
        None,
    )
    # the new column works: a retried run does not count a second attempt
    for _ in range(2):
        store.hold("sync_engagement_activities", "event", "e1", payload={}, reason="r", run_id="r9")
    assert store.held("sync_engagement_activities", "event")[0].attempts == 3
    # the run in progress can end above the threshold (a status longer than 0001 allowed)
    assert store.get_run("sync_leads_contacts", "r0").sf_api_calls == 3
    store.finish_run("sync_leads_contacts", "r0", status="threshold_exceeded", report={})
    assert store.get_run("sync_leads_contacts", "r0").status == "threshold_exceeded"
    # the new table works
    assert store.acquire_lease("sync_leads_contacts", "r1", timedelta(hours=2)) is None
    assert store.acquire_lease("sync_leads_contacts", "r2", timedelta(hours=2)) == "r1"
    # the new index holds: a second active person link to one record is refused by the database
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO links (domain, lg_id, sf_object, sf_id, status, synced_values,"
                " created_at, updated_at) VALUES ('person', '14', 'Lead', '00Q000000000001',"
                " 'active', '{}', :now, :now)"
            ),
            {"now": datetime(2026, 11, 20, 10)},
        )
    store.dispose()
    engine.dispose()


def test_opening_migrates_and_is_idempotent(empty_url: str) -> None:
    first = SyncStore(empty_url)
    first.migrate()
    second = SyncStore(empty_url)
    assert {"links", "link_events", "runs", "watermarks", "quarantine", "held_items"} <= set(
        inspect(second.engine).get_table_names()
    )
    assert ":airflow@" not in repr(second)  # the password never shows
    first.dispose()
    second.dispose()


def test_links_and_their_history(store: SyncStore) -> None:
    values = {"firstName": "Zoë", "score": 12.5, "tags": ["a", "b"], "blank": None}
    store.upsert_link("person", "11", "Lead", "00QA", synced_values=values, run_id="r1")
    store.upsert_link(
        "person",
        "11",
        "Contact",
        "003A",
        synced_values={"title": "CTO"},
        run_id="r2",
        event="converted",
    )
    assert (
        store.add_links(
            "person",
            [
                {
                    "lg_id": "12",
                    "sf_object": "Lead",
                    "sf_id": "00QB",
                    "synced_values": {"x": "1"},
                    "event": "created",
                },
                {
                    "lg_id": "11",
                    "sf_object": "Lead",
                    "sf_id": "00QZ",
                    "event": "created",
                },  # taken: not stolen
            ],
            "r3",
        )
        == 1
    )
    links = store.links_by_lg("person", ["11", "12", "nope"])
    assert (links["11"].sf_object, links["11"].sf_id) == ("Contact", "003A")
    assert links["11"].synced_values == {**values, "title": "CTO"}
    assert store.update_synced_values("person", {"12": {"x": "2"}}, "r4") == 1
    assert store.links_by_sf("person", ["00QB"])["00QB"][0].synced_values == {"x": "2"}
    assert store.count_links("person") == 2
    store.set_link_status("person", "12", "deleted", event="deactivated", run_id="r5")
    assert [lk.lg_id for lk in store.all_links("person")] == ["11"]
    assert store.links_by_sf("person", ["00QB"], active_only=True) == {}
    store.delete_link("person", "11", run_id="r6")
    assert store.count_links("person", status=None) == 1
    assert [
        (e.event, e.old_sf_id, e.new_sf_id) for e in store.link_events("person", lg_id="11")
    ] == [
        ("created", None, "00QA"),
        ("converted", "00QA", "003A"),
        ("removed", "003A", None),
    ]
    assert [e.event for e in store.link_events(sf_id="00QB")] == ["created", "deactivated"]


def test_batch_is_all_or_nothing(store: SyncStore) -> None:
    with pytest.raises(RuntimeError), store.batch():
        store.upsert_link("person", "1", "Lead", "00QA")
        store.upsert_link("person", "2", "Lead", "00QB")
        raise RuntimeError("task killed half way")
    assert store.count_links("person", status=None) == 0
    with store.batch():
        store.upsert_link("person", "1", "Lead", "00QA")
        store.upsert_link("person", "2", "Lead", "00QB")
    assert store.count_links("person") == 2


def test_runs_watermarks_and_windows(store: SyncStore) -> None:
    store.start_run(
        "d",
        "r1",
        window_start=T0,
        window_end=T0 + timedelta(hours=1),
        dry_run=False,
        full_resync=False,
    )
    store.start_run(
        "d",
        "r1",
        window_start=T0,
        window_end=T0 + timedelta(hours=1),
        dry_run=False,
        full_resync=True,
    )  # task retry
    store.add_run_calls("d", "r1", sf=3, lg=2)
    store.add_run_calls("d", "r1", sf=4)
    run = store.get_run("d", "r1")
    assert (run.status, run.full_resync, run.sf_api_calls, run.lg_api_calls) == (
        "running",
        True,
        7,
        2,
    )
    assert store.sf_calls_since(T0 - timedelta(days=3650)) == 7
    assert not store.window_done("d", T0, T0 + timedelta(hours=1))
    store.finish_run(
        "d",
        "r1",
        status="success",
        report={"writes": {"Lead": 3}, "note": "ünïcode"},
        sf_api_calls=9,
    )
    assert store.window_done("d", T0 + timedelta(minutes=5), T0 + timedelta(hours=1))
    assert store.get_run("d", "r1").report == {"writes": {"Lead": 3}, "note": "ünïcode"}
    assert [r.run_id for r in store.recent_runs("d")] == ["r1"]
    assert store.recent_runs("other") == []

    assert store.get_watermark("d", "people") is None
    store.advance_watermark("d", "people", T0 + timedelta(hours=1), "r1")
    store.advance_watermark("d", "people", T0 - timedelta(hours=5), "backfill")  # never backwards
    got = store.get_watermark("d", "people")
    assert got == T0 + timedelta(hours=1) and got.tzinfo is not None
    assert store.covered_until("d") == T0 + timedelta(hours=1)


@pytest.mark.parametrize(
    "status", ["success", "failed", "threshold_exceeded", "budget_exhausted", "dry_run"]
)
def test_a_run_ends_with_any_status_the_sync_gives_it(store: SyncStore, status: str) -> None:
    store.start_run("d", "r1", window_start=T0, window_end=T0, dry_run=False, full_resync=False)
    store.finish_run("d", "r1", status=status, report={"rows": {}})
    assert store.get_run("d", "r1").status == status


def _quarantine(store: SyncStore, run_id: str, key: str = "lg:1", max_attempts: int = 3):
    return store.quarantine(
        dag_id="d",
        domain="person",
        direction="lg_to_sf",
        record_key=key,
        target_object="Lead",
        lg_id=key.split(":")[1],
        sf_id=None,
        category="format",
        check="email_format",
        field="Email",
        error_code=None,
        message="bad email",
        payload={"Email": "x@ü"},
        run_id=run_id,
        max_attempts=max_attempts,
    )


def test_quarantine(store: SyncStore) -> None:
    assert _quarantine(store, "r1").attempts == 1
    assert _quarantine(store, "r1").attempts == 1  # a task retry is not a new attempt
    _quarantine(store, "r2")
    parked = _quarantine(store, "r3")
    assert (parked.attempts, parked.status) == (3, "parked")
    _quarantine(store, "r3", key="lg:2")
    assert store.retry_keys("d", "lg_to_sf") == ["lg:2"]
    assert sorted(store.retry_keys("d", "lg_to_sf", include_parked=True)) == ["lg:1", "lg:2"]
    assert store.mark_for_retry([parked.id]) == 1
    assert sorted(store.retry_keys("d", "lg_to_sf")) == ["lg:1", "lg:2"]
    assert [q.payload for q in store.quarantined("d", category="format")] == [{"Email": "x@ü"}] * 2
    assert store.resolve_quarantine("d", "lg_to_sf", ["lg:1", "lg:1"], "r4") == 1
    assert [q.record_key for q in store.quarantined("d")] == ["lg:2"]
    assert store.quarantined("d", statuses=("resolved",))[0].resolved_at is not None


def test_held_items_and_purge(store: SyncStore) -> None:
    store.hold("d", "event", "e1", payload={"x": 1}, reason="lead not linked", waiting_for="lg:5")
    store.hold("d", "event", "e1", payload={"x": 2}, reason="lead not linked", waiting_for="lg:5")
    store.hold("d", "event", "e2", payload={}, reason="lead not linked")
    [first, _] = store.held("d", "event")
    assert (first.attempts, first.payload, first.waiting_for) == (2, {"x": 2}, "lg:5")
    assert store.release("d", "event", ["e1"], status="delivered", reason="linked") == 1
    assert [h.item_key for h in store.held("d", "event")] == ["e2"]
    assert [h.reason for h in store.held("d", "event", status="delivered")] == ["linked"]
    store.purge_old(timedelta(days=30))  # nothing is old yet
    assert len(store.held("d", "event", status="delivered")) == 1
    store.purge_old(timedelta(seconds=-60))  # everything finished is "old"
    assert store.held("d", "event", status="delivered") == []
    assert [h.item_key for h in store.held("d", "event")] == ["e2"]  # still waiting: kept


def test_a_miss_keeps_an_address_of_any_length(store: SyncStore) -> None:
    """Lead Gen & CRM holds whatever address was typed (a 400-character one is quarantined on
    its way to Salesforce, then retried every hour): recording its miss must not fail the match
    on a store that enforces lengths (PostgreSQL)."""
    long_email = "x" * 390 + "@example.com"
    now = datetime.now(UTC)
    assert store.record_lookups("person", ["1"], {"1": long_email}, now) == 1
    assert store.misses_since("person", ["1"], now - timedelta(seconds=1)) == {"1": long_email}
