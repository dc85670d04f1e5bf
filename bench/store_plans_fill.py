"""The org-sized sync state of bench/bench_store_plans.py: bulk Core inserts (``INSERT ...
SELECT`` over ``generate_series``, server side) into a migrated PostgreSQL state store, then
VACUUM ANALYZE. Shapes follow what the pipeline writes (crm_sync.state.models): ids as Lead Gen & CRM
and Salesforce give them, statuses in the proportions a long-lived org accumulates, times spread
over the retention period (30 days) or, for runs, over the hours the DAGs ran.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, text

PEOPLE = "sync_leads_contacts"
OPPS = "sync_opportunities"
ENGAGEMENT = "sync_engagement_activities"
DAGS = (PEOPLE, OPPS, ENGAGEMENT)
STREAMS = {PEOPLE: "people", OPPS: "opportunities", ENGAGEMENT: "engagement"}
SCOPES = ("schema:salesforce:00D000000000001", "schema:leadgen:100001")
LG_BASE = {"person": 10_000_000, "opportunity": 30_000_000, "account": 40_000_000}
LG_BASE |= {"membership": 50_000_000, "activity": 60_000_000}
SF_PREFIX = {"opportunity": "006", "account": "001", "membership": "006", "activity": "00T"}


@dataclass(frozen=True)
class Sizes:
    """How many rows of each table (links per domain; the rest as the brief asks)."""

    links: int = 1_000_000
    quarantine: int = 50_000
    runs: int = 10_000
    held: int = 20_000
    changes: int = 200_000
    misses: int = 20_000
    cache: int = 400
    holds: int = 200

    def domains(self) -> dict[str, int]:
        """Links per domain: people, and the other DAGs' in proportion."""
        n = self.links
        return {
            "person": n,
            "opportunity": n // 5,
            "account": n // 20,
            "membership": n * 3 // 10,
            "activity": n // 2,
        }


def sf_id_sql(domain: str, g: str) -> str:
    """SQL of the Salesforce id of row ``g`` (leads 00Q, contacts 003: a third converted)."""
    if domain == "person":
        return f"CASE WHEN {g} % 3 = 0 THEN '003' ELSE '00Q' END || lpad(({g})::text, 15, '0')"
    return f"'{SF_PREFIX[domain]}' || lpad(({g})::text, 15, '0')"


def sf_id(domain: str, g: int) -> str:
    """The Salesforce id :func:`sf_id_sql` gives row ``g`` of ``domain``."""
    if domain == "person":
        return ("003" if g % 3 == 0 else "00Q") + f"{g:015d}"
    return SF_PREFIX[domain] + f"{g:015d}"


def _links(conn, sizes: Sizes, now: datetime) -> None:
    opps = sizes.domains()["opportunity"]
    for domain, n in sizes.domains().items():
        # memberships: one to three per opportunity (sf_id is the opportunity's)
        g_sf = f"(g % {opps} + 1)" if domain == "membership" else "g"
        obj = {"person": "CASE WHEN g % 3 = 0 THEN 'Contact' ELSE 'Lead' END"}.get(
            domain, f"'{domain.title()}'"
        )
        conn.execute(
            text(
                f"""
INSERT INTO links (domain, lg_id, sf_object, sf_id, status, synced_values, created_at,
                   updated_at, last_run_id)
SELECT :domain, (:base + g)::text, {obj}, {sf_id_sql(domain, g_sf)},
       CASE WHEN g % 50 = 0 THEN 'superseded' WHEN g % 97 = 0 THEN 'deleted' ELSE 'active' END,
       json_build_object('emailAddress', 'p' || g || '@example.com', 'firstName', 'First' || g,
                         'lastName', 'Last' || g, 'title', 'Director of things',
                         'phoneNumber', '+1 555 ' || lpad(g::text, 7, '0'),
                         'companyName', 'Company ' || (g % 50000), 'leadStatus', 'open'),
       :now - (g % 500000) * interval '1 minute', :now - (g % 43200) * interval '1 minute',
       'scheduled__2026-11-01T00:00:00+00:00'
FROM generate_series(1, :n) g"""
            ),
            {"domain": domain, "base": LG_BASE[domain], "now": now, "n": n},
        )


def _runs(conn, sizes: Sizes, now: datetime) -> None:
    """Hourly runs of the three DAGs, newest an hour ago; a few failed, dry, full resyncs."""
    conn.execute(
        text(
            """
INSERT INTO runs (dag_id, run_id, window_start, window_end, status, dry_run, full_resync,
                  started_at, finished_at, sf_api_calls, lg_api_calls, report, message)
SELECT d.dag, 'scheduled__' || to_char(w.we - interval '1 hour', 'YYYY-MM-DD"T"HH24:MI:SS')
              || '+00:00',
       w.we - interval '1 hour', w.we,
       CASE WHEN g % 100 = 0 THEN 'failed' WHEN g % 100 = 1 THEN 'threshold_exceeded'
            WHEN g % 1000 = 7 THEN 'budget_exhausted' ELSE 'success' END,
       g % 200 = 5, g % 1000 = 7, w.we + interval '5 minutes', w.we + interval '9 minutes',
       20 + g % 50, 10 + g % 30,
       json_build_object('stages', json_build_object('extract', g, 'match', g, 'load', g),
                         'note', repeat('x', 600)),
       NULL
FROM generate_series(1, :n) g,
     LATERAL (SELECT (ARRAY[:d0, :d1, :d2])[g % 3 + 1] AS dag) d,
     LATERAL (SELECT date_trunc('hour', CAST(:now AS timestamp))
                     - (g / 3) * interval '1 hour' AS we) w"""
        ),
        {"n": sizes.runs, "now": now, "d0": DAGS[0], "d1": DAGS[1], "d2": DAGS[2]},
    )


def _quarantine(conn, sizes: Sizes, now: datetime) -> None:
    """Rows of three DAGs: 70 % resolved, 20 % open, 5 % parked, 5 % marked for retry; 2 % of
    them refused for a schema reason (the codes the schema cache looks for)."""
    conn.execute(
        text(
            """
INSERT INTO quarantine (dag_id, domain, direction, record_key, target_object, lg_id, sf_id,
                        category, "check", field, error_code, message, payload, attempts, status,
                        first_run_id, last_run_id, first_seen, last_seen, resolved_at)
SELECT q.dag, q.dom, q.dir, q.key, 'Lead', (:base + g)::text, '00Q' || lpad(g::text, 15, '0'),
       'validation rule', 'required', 'LastName',
       CASE WHEN g % 100 = 0 THEN 'INVALID_FIELD' WHEN g % 100 = 50 THEN '205'
            ELSE (ARRAY['REQUIRED_FIELD_MISSING', 'INVALID_EMAIL_ADDRESS', 'DUPLICATES_DETECTED',
                        'FIELD_CUSTOM_VALIDATION_EXCEPTION', NULL])[g % 5 + 1] END,
       'Required fields are missing: [LastName]', json_build_object('id', g, 'x', repeat('y', 200)),
       1 + g % 5, s.st, 'scheduled__2026-11-01T00:00:00+00:00',
       'scheduled__2026-12-01T00:00:00+00:00',
       t.seen - interval '3 days', t.seen, CASE WHEN s.st = 'resolved' THEN t.seen END
FROM generate_series(1, :n) g,
     LATERAL (SELECT CASE WHEN g % 10 < 7 THEN 'resolved' WHEN g % 10 < 9 THEN 'open'
                          WHEN g % 20 = 9 THEN 'parked' ELSE 'retry' END AS st) s,
     LATERAL (SELECT CAST(:now AS timestamp) - (g % 47000) * interval '1 minute' AS seen) t,
     LATERAL (SELECT
        (ARRAY[:d0, :d0, :d1, :d2])[g % 4 + 1] AS dag,
        CASE WHEN g % 4 = 2 THEN 'opportunity' WHEN g % 4 = 3 THEN 'engagement'
             ELSE 'person' END AS dom,
        CASE WHEN g % 4 IN (1, 2) THEN 'sf_to_lg' ELSE 'lg_to_sf' END AS dir,
        CASE WHEN g % 4 = 0 THEN 'lg:' || (:base + g)
             WHEN g % 4 = 1 THEN 'sf:00Q' || lpad(g::text, 15, '0')
             WHEN g % 4 = 2 THEN 'sf:006' || lpad(g::text, 15, '0')
             ELSE 'evt:' || (:base + g) || ':email_open:' || g END AS key) q"""
        ),
        {"n": sizes.quarantine, "now": now, "base": LG_BASE["person"]}
        | {"d0": DAGS[0], "d1": DAGS[1], "d2": DAGS[2]},
    )


def _held(conn, sizes: Sizes, now: datetime) -> None:
    """Contact roles (opportunities) and events (engagement): 30 % still held (for less than
    the 7 days after which the record stage lets them go), the rest finished over 30 days."""
    conn.execute(
        text(
            """
INSERT INTO held_items (dag_id, kind, item_key, waiting_for, payload, reason, status, attempts,
                        first_seen, last_seen, last_run_id)
SELECT CASE WHEN g % 2 = 0 THEN :opps ELSE :eng END,
       CASE WHEN g % 2 = 0 THEN 'contact_role' ELSE 'event' END,
       CASE WHEN g % 2 = 0 THEN '00K' || lpad(g::text, 15, '0')
            ELSE 'evt:' || (:base + g) || ':email_open:' || g END,
       'person:' || (:base + g), json_build_object('id', g, 'x', repeat('z', 300)),
       'waiting for the link of its person',
       CASE WHEN g % 10 < 3 THEN 'held' WHEN g % 10 < 8 THEN 'delivered'
            WHEN g % 10 = 8 THEN 'dropped' ELSE 'expired' END,
       1 + g % 20,
       CAST(:now AS timestamp) - (g % CASE WHEN g % 10 < 3 THEN 10000 ELSE 43200 END)
                                 * interval '1 minute',
       CAST(:now AS timestamp) - (g % 1440) * interval '1 minute',
       'scheduled__2026-12-01T00:00:00+00:00'
FROM generate_series(1, :n) g"""
        ),
        {"n": sizes.held, "now": now, "base": LG_BASE["person"], "opps": OPPS, "eng": ENGAGEMENT},
    )


def _changes(conn, sizes: Sizes, now: datetime) -> None:
    """The change log of the people and opportunities runs of the retention period (30 days),
    spread evenly over them (the record stage purges older entries)."""
    conn.execute(
        text(
            """
WITH r AS (
  SELECT dag_id, run_id, started_at, row_number() OVER (ORDER BY started_at DESC) AS k
  FROM runs WHERE dag_id IN (:d0, :d1)
    AND started_at >= CAST(:now AS timestamp) - interval '30 days'),
per AS (SELECT ceil(CAST(:n AS numeric) / count(*))::int AS per FROM r)
INSERT INTO change_log (dag_id, run_id, system, object, record_id, field, kind, before, after,
                        meta, at)
SELECT r.dag_id, r.run_id, CASE WHEN e % 2 = 0 THEN 'salesforce' ELSE 'leadgen' END,
       CASE WHEN e % 2 = 0 THEN 'Lead' ELSE 'lead' END,
       CASE WHEN e % 2 = 0 THEN '00Q' || lpad((r.k * 1000 + e)::text, 15, '0')
            ELSE (:base + r.k * 1000 + e)::text END,
       (ARRAY['Title', 'Phone', 'Email', 'Company'])[e % 4 + 1], 'update',
       to_json('old value ' || e), to_json('new value ' || e),
       json_build_object('domain', 'person', 'lg_id', (:base + e)::text, 'key', 'title'),
       r.started_at + e * interval '1 second'
FROM r, per, generate_series(1, per.per) e
ORDER BY r.k, e
LIMIT :n"""
        ),
        {"n": sizes.changes, "now": now, "base": LG_BASE["person"], "d0": PEOPLE, "d1": OPPS},
    )


def _small(conn, sizes: Sizes, now: datetime) -> None:
    """Misses (checked over the last 3 hours: each run prunes those older than its window),
    cache entries, undo holds and watermarks."""
    base = LG_BASE["person"] + sizes.links  # leads with no link yet
    conn.execute(
        text(
            """
INSERT INTO match_misses (domain, lg_id, email, checked_at)
SELECT 'person', (:base + g)::text, 'nobody' || g || '@example.com',
       CAST(:now AS timestamp) - (g % 180) * interval '1 minute'
FROM generate_series(1, :n) g"""
        ),
        {"n": sizes.misses, "now": now, "base": base},
    )
    conn.execute(
        text(
            """
INSERT INTO cache_entries (key, scope, value, stored_at)
SELECT s.scope || ':describe:Object' || g, s.scope, json_build_object('fields', repeat('f', 2000)),
       CAST(:now AS timestamp) - (s.i * 90 + g % 30) * interval '1 minute'
FROM generate_series(1, :per) g,
     LATERAL (SELECT i, CASE WHEN i < 2 THEN (ARRAY[:s0, :s1])[i + 1]
                             ELSE 'schema:old:' || i END AS scope
              FROM generate_series(0, 7) i) s"""
        ),
        {"per": max(1, sizes.cache // 8), "now": now, "s0": SCOPES[0], "s1": SCOPES[1]},
    )
    conn.execute(
        text(
            """
INSERT INTO undo_holds (domain, lg_id, key, leadgen, salesforce, run_id, at)
SELECT 'person', (:base + g * 37)::text, 'title', to_json('a'::text), to_json('b'::text),
       'manual__2026-12-01T00:00:00+00:00', CAST(:now AS timestamp)
FROM generate_series(1, :n) g"""
        ),
        {"n": sizes.holds, "now": now, "base": LG_BASE["person"]},
    )
    for dag, stream in STREAMS.items():
        conn.execute(
            text(
                "INSERT INTO watermarks (dag_id, stream, high_water, run_id, updated_at) "
                "VALUES (:d, :s, date_trunc('hour', CAST(:now AS timestamp)), 'x', :now)"
            ),
            {"d": dag, "s": stream, "now": now},
        )


def fill(engine: Engine, sizes: Sizes, now: datetime) -> dict[str, float]:
    """Fill every table, then VACUUM ANALYZE; seconds per step."""
    took: dict[str, float] = {}
    steps = (_links, _runs, _quarantine, _held, _changes, _small)
    for step in steps:
        t = time.perf_counter()
        with engine.begin() as conn:
            step(conn, sizes, now)
        took[step.__name__.strip("_")] = time.perf_counter() - t
    t = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # VACUUM too: the visibility map autovacuum keeps in a long-lived database (index-only
        # scans depend on it), set now rather than whenever autovacuum gets to it mid-run
        conn.exec_driver_sql("VACUUM ANALYZE")
    took["analyze"] = time.perf_counter() - t
    return took


def table_rows(engine: Engine) -> dict[str, tuple[int, int]]:
    """Rows per table as the planner knows them (after ANALYZE), and its size on disk with its
    indexes (MiB)."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT relname, reltuples::bigint, pg_total_relation_size(c.oid) / 1048576 "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r'"
        )
        return {name: (int(n), int(mib)) for name, n, mib in rows}


def indexes(engine: Engine) -> list[str]:
    """The names of the indexes of the state store's tables (primary keys included)."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename != 'crm_sync_alembic_version'"
        )
        return [name for (name,) in rows]
