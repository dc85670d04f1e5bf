"""Migration 0004 (lookup indexes, cache entries) and the query plans of the lookups stages make,
on SQLite and on PostgreSQL (the private server of tests/state/test_postgres_store.py).

Each lookup a stage makes must be answered through an index: on SQLite its EXPLAIN QUERY PLAN
names one; on PostgreSQL, with sequential scans switched off, its EXPLAIN uses one (a tiny table
would otherwise be scanned whatever indexes exist)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, inspect, text

from crm_sync.state.store import MIGRATIONS_DIR, SyncStore
from tests.state.test_postgres_store import empty_url, pg_port  # noqa: F401  (fixtures)

T0 = datetime(2026, 11, 27, 9, tzinfo=UTC)
NEW_INDEXES = {
    "cache_entries": {"ix_cache_scope_stored"},
    "runs": {"ix_runs_started", "ix_runs_dag_window_end"},
    "links": {"ix_links_domain_status"},
    "quarantine": {"ix_quarantine_retry", "ix_quarantine_error_seen"},
    "held_items": {"ix_held_kind_status"},
}


def _upgrade(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    engine = create_engine(url)
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    engine.dispose()


def _downgrade(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    engine = create_engine(url)
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
    engine.dispose()


def _indexes(url: str) -> dict[str, set[str]]:
    engine = create_engine(url)
    insp = inspect(engine)
    out = {"tables": set(insp.get_table_names())}
    out.update(
        {t: {i["name"] for i in insp.get_indexes(t)} for t in NEW_INDEXES if t in out["tables"]}
    )
    engine.dispose()
    return out


def test_0004_upgrades_a_0003_database_keeping_its_rows_and_downgrades(empty_url: str) -> None:  # noqa: F811
    _upgrade(empty_url, "0003")
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO links (domain, lg_id, sf_object, sf_id, status, synced_values, "
                "created_at, updated_at) VALUES ('person', '1', 'Lead', '00Q1', 'active', '{}', "
                ":t, :t)"
            ),
            {"t": T0.replace(tzinfo=None)},
        )
    engine.dispose()
    before = _indexes(empty_url)
    assert "cache_entries" not in before["tables"]
    assert all(not (before.get(t, set()) & NEW_INDEXES[t]) for t in NEW_INDEXES)
    store = SyncStore(empty_url)  # opening migrates to the newest revision
    after = _indexes(empty_url)
    assert all(NEW_INDEXES[t] <= after[t] for t in NEW_INDEXES)
    assert "cache_entries" in after["tables"]
    assert store.links_by_lg("person", ["1"])["1"].sf_id == "00Q1"
    store.cache_put("schema:sf:x", {"describe:Lead": {"fields": []}})
    assert store.cache_fresh("schema:sf:x", T0) == {"describe:Lead": {"fields": []}}
    store.dispose()
    _downgrade(empty_url, "0003")
    again = _indexes(empty_url)
    assert "cache_entries" not in again["tables"]
    assert all(not (again.get(t, set()) & NEW_INDEXES[t]) for t in NEW_INDEXES)


def _fill(store: SyncStore) -> None:
    """A few rows in every table the lookups read (plans need tables with statistics)."""
    store.add_links(
        "person",
        [
            {"lg_id": str(i), "sf_object": "Lead", "sf_id": f"00Q{i:015d}", "event": "created"}
            for i in range(200)
        ],
        "r0",
    )
    # other domains and kinds, so that one domain's or kind's rows are a small share
    store.put_links(
        "opportunity",
        [
            {"lg_id": str(i), "sf_object": "Opportunity", "sf_id": f"006{i:015d}"}
            for i in range(3000)
        ],
        "r0",
    )
    for i in range(300):
        store.hold(
            "d", "contact_role" if i % 10 else "event", f"k{i}", payload={}, reason="waiting"
        )
    store.quarantine_many(
        [
            {
                "dag_id": "d",
                "domain": "person",
                "direction": "lg_to_sf" if i % 2 else "sf_to_lg",
                "record_key": f"lg:{i}",
                "target_object": "Lead",
                "lg_id": str(i),
                "sf_id": None,
                "category": "rejected_by_target",
                "check": "write",
                "field": None,
                "error_code": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing",
                "payload": {},
                "run_id": "r0",
                "max_attempts": 5,
            }
            for i in range(200)
        ]
    )
    for i in range(20):
        store.start_run(
            "sync_leads_contacts",
            f"r{i}",
            window_start=T0 + timedelta(hours=i),
            window_end=T0 + timedelta(hours=i + 1),
            dry_run=False,
            full_resync=False,
        )


# The lookups stages make, in SQLAlchemy Core text form (the store's own queries, parameters
# inlined), and the index each must use.
LOOKUPS = {
    "links by lead (match, record)": (
        "SELECT * FROM links WHERE domain = 'person' AND lg_id IN ('1', '2')",
        "uq_links_domain_lg_id",
    ),
    "links by Salesforce record (match, extract)": (
        "SELECT * FROM links WHERE domain = 'person' AND sf_id IN ('00Q000000000000001')",
        "ix_links_domain_sf_id",
    ),
    "links of a domain and status (record, verify)": (
        "SELECT * FROM links WHERE domain = 'person' AND status = 'active' ORDER BY id",
        # any index leading with the domain will do (PostgreSQL picks by cost)
        ("ix_links_domain_status", "uq_links_domain_lg_id", "ix_links_domain_sf_id"),
    ),
    "quarantine keys to retry (extract)": (
        "SELECT record_key FROM quarantine WHERE dag_id = 'd' AND direction = 'lg_to_sf' "
        "AND status IN ('open', 'retry')",
        "ix_quarantine_retry",
    ),
    "quarantine rows of records (record)": (
        "SELECT * FROM quarantine WHERE dag_id = 'd' AND direction = 'lg_to_sf' "
        "AND record_key IN ('lg:1')",
        "uq_quarantine_record",
    ),
    "latest schema refusal (prepare)": (
        "SELECT max(last_seen) FROM quarantine WHERE error_code IN ('INVALID_FIELD', '205')",
        "ix_quarantine_error_seen",
    ),
    "held items waiting (extract, record)": (
        "SELECT * FROM held_items WHERE dag_id = 'd' AND kind = 'event' AND status = 'held' "
        "ORDER BY id",
        "ix_held_kind_status",
    ),
    "API calls of the last 24 h (every task: budget)": (
        "SELECT sum(sf_api_calls) FROM runs WHERE started_at >= '2026-11-27 00:00:00'",
        "ix_runs_started",
    ),
    "has a DAG covered this window (sensor)": (
        "SELECT id FROM runs WHERE dag_id = 'sync_leads_contacts' AND status IN ('success') "
        "AND dry_run = false AND window_start <= '2026-11-27 10:00:00' "
        "AND window_end >= '2026-11-27 11:00:00' LIMIT 1",
        "ix_runs_dag_window_end",
    ),
    "cached schemas (prepare)": (
        "SELECT key, value FROM cache_entries WHERE scope = 'schema:sf:x' "
        "AND stored_at > '2026-11-27 00:00:00'",
        "ix_cache_scope_stored",
    ),
}


# SQLite names the index of a UNIQUE constraint itself.
SQLITE_NAMES = {
    "uq_links_domain_lg_id": "sqlite_autoindex_links_1",
    "uq_quarantine_record": "sqlite_autoindex_quarantine_1",
}


def explain(store: SyncStore, sql: str) -> str:
    with store.engine.begin() as conn:
        if store.engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").fetchall()
            return "\n".join(str(r[-1]) for r in rows)
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        return "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}").fetchall())


@pytest.mark.parametrize("name", sorted(LOOKUPS))
def test_every_stage_lookup_is_answered_through_an_index(empty_url: str, name: str) -> None:  # noqa: F811
    store = SyncStore(empty_url)
    try:
        _fill(store)
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")  # the planner sees how selective each index is
        sql, wanted = LOOKUPS[name]
        indexes = (wanted,) if isinstance(wanted, str) else wanted
        if store.engine.dialect.name == "sqlite":
            sql = sql.replace("dry_run = false", "dry_run = 0")
            indexes = tuple(SQLITE_NAMES.get(i, i) for i in indexes)
        plan = explain(store, sql)
        assert any(i in plan for i in indexes), f"{name}: {plan}"
        assert "Seq Scan" not in plan and "SCAN " not in plan.replace("SCAN CONSTANT", ""), plan
    finally:
        store.dispose()
