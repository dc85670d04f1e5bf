"""Benchmark (not a test): the PostgreSQL query plan of every state-store lookup a stage makes.

Starts a private PostgreSQL server (as tests/cluster/helpers.py does), opens a ``SyncStore`` on a
new database (migrations run on open), fills it with an org-sized state (bench/store_plans_fill.py:
``--links`` person links plus opportunity, account, membership and activity links in proportion,
50k quarantine rows, 10k runs, 20k held items, 200k change-log rows, 20k match misses, cache
entries, undo holds, watermarks), runs VACUUM ANALYZE, then calls the store methods the stages call with
realistic arguments (500 ids, the real DAG ids) and captures every statement they send with a
``before_cursor_execute`` event. Each captured SELECT / UPDATE / DELETE is run again under
``EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT)`` with the same parameters (once cold, three times
warm: the median warm time is kept), each in a transaction that is rolled back; the methods
themselves run in rolled-back transactions too, so every plan sees the same state.

Prints one row per statement (store method, calling stages, scan nodes with their index, rows,
execution time) as a Markdown table; flags every Seq Scan over a table of more than 10k rows and
explains it again with the index that would serve it (created in the rolled-back transaction:
a what-if, no migration) or with sequential scans off; lists the indexes no lookup used; then
the plans (``--plans hot``: the hottest lookups', ``all``: every one).

Usage: .venv/bin/python bench/bench_store_plans.py [--links 1000000] [--plans all|hot|none]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT), str(ROOT / "bench")]

import store_plans_fill as fillmod  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from crm_sync.state.store import SyncStore  # noqa: E402

SEQ_FLAG_ROWS = 10_000
# A flagged Seq Scan is explained again with the index that would serve it, created in the
# rolled-back transaction (no migration: a what-if), or, when the index exists already and the
# planner chose not to use it, with sequential scans off.
WHAT_IF = {
    ("purge_old", "quarantine"): "CREATE INDEX ix_whatif ON quarantine (status, resolved_at)",
    ("purge_old", "held_items"): "CREATE INDEX ix_whatif ON held_items (last_seen)",
}
NO_SEQSCAN = "SET LOCAL enable_seqscan = off"
SCAN = re.compile(
    r"(Parallel )?(Seq Scan|Index Only Scan|Index Scan(?: Backward)?|Bitmap Heap Scan|"
    r"Bitmap Index Scan)(?: using (\S+))? on (\S+)"
)
EXEC_MS = re.compile(r"Execution Time: ([\d.]+) ms")


class RolledBackStore(SyncStore):
    """A SyncStore whose every session runs in a transaction that is rolled back (writes are
    flushed, so their statements are sent and captured, then undone)."""

    @contextmanager
    def session(self) -> Iterator[Session]:
        if self._batch is not None:
            yield self._batch
            return
        with self.engine.connect() as conn:
            trans = conn.begin()
            s = Session(bind=conn, expire_on_commit=False)
            try:
                yield s
                s.flush()
            finally:
                s.close()
                trans.rollback()


@dataclass
class Statement:
    method: str
    stages: str
    sql: str
    params: Any
    plan: list[str] = field(default_factory=list)
    ms: float = 0.0
    repeats: int = 1
    alt: str = ""  # a flagged Seq Scan: the plan and time with enable_seqscan off


class Capture:
    """Every statement sent while ``on`` (with its parameters: the first set of an
    executemany)."""

    def __init__(self, engine: Any):
        self.on = False
        self.label = ("", "")
        self.rows: list[Statement] = []
        event.listen(engine, "before_cursor_execute", self._hook)

    def _hook(self, _conn, _cursor, statement, parameters, _context, executemany) -> None:
        if not self.on:
            return
        many = executemany and isinstance(parameters, (list, tuple)) and parameters
        params = parameters[0] if many else parameters
        self.rows.append(Statement(*self.label, statement, params))

    def call(self, method: str, stages: str, fn: Callable[[], Any]) -> None:
        self.label, self.on = (method, stages), True
        try:
            out = fn()
            if hasattr(out, "__next__"):  # a generator: its first batch
                next(out, None)
                out.close()
        finally:
            self.on = False


@dataclass(frozen=True)
class Args:
    """Realistic arguments: ids that exist (and some that do not), the real DAG ids."""

    lg: list[str]
    sf: list[str]
    opp_sf: list[str]
    acct_lg: list[str]
    role_keys: list[str]
    miss_lg: list[str]
    now: Any


def make_args(sizes: fillmod.Sizes, now: Any, rnd: random.Random) -> Args:
    n = sizes.links
    base = fillmod.LG_BASE["person"]
    picks = rnd.sample(range(1, n + 1), 450)
    lg = [str(base + g) for g in picks] + [str(base + n + 100_000 + i) for i in range(50)]
    sf = [fillmod.sf_id("person", g) for g in rnd.sample(range(1, n + 1), 500)]
    opps = sizes.domains()["opportunity"]
    opp_sf = [fillmod.sf_id("opportunity", g) for g in rnd.sample(range(1, opps + 1), 500)]
    acct_lg = [str(fillmod.LG_BASE["account"] + g) for g in rnd.sample(range(1, n // 20), 200)]
    role_keys = [f"00K{g:015d}" for g in rnd.sample(range(2, sizes.held, 2), 200)]
    miss_base = base + n
    miss_lg = [str(miss_base + g) for g in rnd.sample(range(1, sizes.misses + 1), 250)]
    miss_lg += [str(base + g) for g in picks[:250]]
    return Args(lg, sf, opp_sf, acct_lg, role_keys, miss_lg, now)


@dataclass(frozen=True)
class Ctx:
    """What the calls need: the store, the arguments, a run of each DAG and its window."""

    st: SyncStore
    a: Args
    run: str
    opps_run: str
    ws: Any
    we: Any


Lookup = tuple[str, str, Callable[[], Any]]
PEOPLE, OPPS, ENG = fillmod.PEOPLE, fillmod.OPPS, fillmod.ENGAGEMENT


def prepare_lookups(c: Ctx) -> list[Lookup]:
    from crm_sync.clients.results import SCHEMA_ERROR_CODES

    st, now = c.st, c.a.now
    return [
        ("resync_unfinished", "prepare (all DAGs)", lambda: st.resync_unfinished(PEOPLE)),
        ("get_watermark", "prepare (all DAGs)", lambda: st.get_watermark(PEOPLE, "people")),
        (
            "start_run",
            "prepare (all DAGs); undo",
            lambda: st.start_run(
                PEOPLE,
                "scheduled__bench",
                window_start=c.ws,
                window_end=c.we,
                dry_run=False,
                full_resync=False,
            ),
        ),
        (
            "sf_calls_since",
            "every task with a Salesforce client (budget guard); prepare; record; health",
            lambda: st.sf_calls_since(now - timedelta(hours=24)),
        ),
        (
            "lg_calls_since",
            "every task with a Lead Gen & CRM client; prepare; opportunities load_leadgen",
            lambda: st.lg_calls_since(now - timedelta(hours=24)),
        ),
        ("last_refusal", "prepare (schema cache)", lambda: st.last_refusal(SCHEMA_ERROR_CODES)),
        (
            "cache_fresh",
            "prepare (schema cache)",
            lambda: st.cache_fresh(fillmod.SCOPES[0], now - timedelta(minutes=60)),
        ),
        (
            "acquire_lease",
            "every exclusive task (on entry)",
            lambda: st.acquire_lease(OPPS, c.opps_run, timedelta(hours=2)),
        ),
        (
            "window_done",
            "opportunities, engagement: sensor",
            lambda: st.window_done(PEOPLE, c.ws, c.we),
        ),
        (
            "covered_until",
            "sensor; record (opportunities, engagement)",
            lambda: st.covered_until(PEOPLE),
        ),
    ]


def extract_match_lookups(c: Ctx) -> list[Lookup]:
    st, a = c.st, c.a
    floor = a.now - timedelta(minutes=115)
    return [
        (
            "retry_keys",
            "people extract_leadgen, extract_salesforce; opportunities extract",
            lambda: st.retry_keys(PEOPLE, "lg_to_sf"),
        ),
        (
            "retry_keys(include_parked)",
            "record (prior keys, all DAGs); verify",
            lambda: st.retry_keys(OPPS, "sf_to_lg", include_parked=True),
        ),
        ("held", "opportunities extract, record; verify", lambda: st.held(OPPS, "contact_role")),
        ("held(event)", "engagement extract", lambda: st.held(ENG, kind="event")),
        (
            "quarantined",
            "engagement extract",
            lambda: st.quarantined(ENG, statuses=("open", "retry"), direction="lg_to_sf"),
        ),
        (
            "links_by_lg",
            "people match, load_leadgen; engagement plan; opportunities load_leadgen; verify",
            lambda: st.links_by_lg("person", a.lg),
        ),
        (
            "links_by_sf",
            "people match; opportunities match",
            lambda: st.links_by_sf("person", a.sf),
        ),
        (
            "links_by_sf(active_only)",
            "people match, record (add_links); opportunities extract, match, load_leadgen",
            lambda: st.links_by_sf("person", a.sf, active_only=True),
        ),
        (
            "links_by_sf(membership)",
            "opportunities match",
            lambda: st.links_by_sf("membership", a.opp_sf, active_only=True),
        ),
        ("misses_since", "people match", lambda: st.misses_since("person", a.miss_lg, floor)),
        ("prune_misses", "people match", lambda: st.prune_misses("person", floor)),
        (
            "record_lookups",
            "people match",
            lambda: st.record_lookups(
                "person", a.miss_lg, {i: f"{i}@example.com" for i in a.miss_lg[:100]}, a.now
            ),
        ),
        ("has_undo_holds", "people reconcile", lambda: st.has_undo_holds("person")),
        ("undo_holds", "people reconcile", lambda: st.undo_holds("person", a.lg)),
    ]


def _writes(a: Args, run: str) -> tuple[list[dict], list[dict], list[str], list[dict]]:
    """What the load and record stages write: 200 change-log entries, 50 new links, 200
    quarantine keys and rows."""
    entries = [
        {"dag_id": PEOPLE, "run_id": run, "system": "salesforce", "object": "Lead",
         "record_id": sf, "field": "Title", "kind": "update", "before": "a", "after": "b",
         "meta": {}}
        for sf in a.sf[:200]
    ]  # fmt: skip
    new = [
        {"lg_id": str(99_000_000 + i), "sf_object": "Lead", "sf_id": f"00Q9{i:014d}",
         "synced_values": {"title": "x"}}
        for i in range(50)
    ]  # fmt: skip
    keys = [f"lg:{i}" for i in a.lg[:200]]
    quar = [
        {"dag_id": PEOPLE, "domain": "person", "direction": "lg_to_sf", "record_key": k,
         "target_object": "Lead", "lg_id": k[3:], "sf_id": None, "category": "format",
         "check": "email", "field": "Email", "error_code": None, "message": "bad",
         "payload": {}, "run_id": run, "max_attempts": 5}
        for k in keys
    ]  # fmt: skip
    return entries, new, keys, quar


def load_record_lookups(c: Ctx) -> list[Lookup]:
    st, a, run = c.st, c.a, c.run
    entries, new, keys, quar = _writes(a, run)
    return [
        (
            "recent_runs(dag, 20)",
            "opportunities load_leadgen; health",
            lambda: st.recent_runs(OPPS, limit=20),
        ),
        (
            "log_changes",
            "people load_leadgen, load_salesforce; opportunities load_leadgen; engagement load; undo",
            lambda: st.log_changes(entries),
        ),
        (
            "update_synced_values",
            "people record; opportunities load_leadgen; undo",
            lambda: st.update_synced_values("person", {i: {"title": "x"} for i in a.lg}, run),
        ),
        ("add_links", "people record", lambda: st.add_links("person", new, run)),
        ("quarantine_many", "record (all DAGs)", lambda: st.quarantine_many(quar)),
        (
            "resolve_quarantine",
            "record (all DAGs)",
            lambda: st.resolve_quarantine(PEOPLE, "lg_to_sf", keys, run),
        ),
        (
            "expire_held",
            "record (opportunities, engagement)",
            lambda: st.expire_held(OPPS, "contact_role", timedelta(days=7), "expired"),
        ),
        (
            "release",
            "record (opportunities, engagement)",
            lambda: st.release(OPPS, "contact_role", a.role_keys, status="delivered"),
        ),
        (
            "hold",
            "record (opportunities, engagement)",
            lambda: st.hold(
                OPPS, "contact_role", a.role_keys[0], payload={}, reason="r", run_id=run
            ),
        ),
        (
            "upsert_link",
            "opportunities load_leadgen",
            lambda: st.upsert_link("account", a.acct_lg[0], "Account", "001X", run_id=run),
        ),
        (
            "set_link_status",
            "opportunities load_leadgen; undo",
            lambda: st.set_link_status(
                "account", a.acct_lg[1], "deleted", event="deleted", run_id=run
            ),
        ),
        (
            "release_holds",
            "people record",
            lambda: st.release_holds("person", a.lg[0], ["title"]),
        ),
        (
            "add_run_calls",
            "every task (on exit)",
            lambda: st.add_run_calls(PEOPLE, run, sf=3, lg=2),
        ),
        (
            "finish_run",
            "record (all DAGs); undo",
            lambda: st.finish_run(PEOPLE, run, status="success", report={"n": 1}),
        ),
        (
            "advance_watermark",
            "record (all DAGs)",
            lambda: st.advance_watermark(PEOPLE, "people", c.we, run, covered_from=c.ws),
        ),
        ("purge_old", "record (all DAGs)", lambda: st.purge_old(timedelta(days=30))),
        ("purge_changes", "record (all DAGs)", lambda: st.purge_changes(timedelta(days=30))),
    ]


def reader_lookups(c: Ctx) -> list[Lookup]:
    from crm_sync.state.changes import ChangeFilter

    st, run = c.st, c.run
    flt = ChangeFilter(PEOPLE, run)
    return [
        ("get_run", "alerts; undo; health", lambda: st.get_run(PEOPLE, run)),
        ("recent_runs(all, 50)", "health", lambda: st.recent_runs(None, limit=50)),
        ("synced_until", "verify", lambda: st.synced_until(ENG, "engagement")),
        ("count_changes", "health (a run's changes)", lambda: st.count_changes(flt)),
        (
            "change_page",
            "health (a run's changes)",
            lambda: st.change_page(flt, limit=50, offset=0),
        ),
        ("change_summary", "health (a run's changes)", lambda: st.change_summary(PEOPLE, run)),
        ("iter_changes", "undo", lambda: st.iter_changes(flt)),
        ("iter_links", "verify (every link)", lambda: st.iter_links()),
        ("iter_quarantine", "verify (every row)", lambda: st.iter_quarantine()),
        ("count_links", "(no caller)", lambda: st.count_links("person")),
        ("mark_for_retry", "health", lambda: st.mark_for_retry(range(1, 51))),
    ]


def explain(engine: Any, stmt: Statement, setup: tuple[str, ...] = ()) -> tuple[list[str], float]:
    """EXPLAIN ANALYZE ``stmt`` once cold, then three times warm, each in a transaction rolled
    back: the last warm plan and the median warm execution time. ``setup``: statements run first
    in the same transaction (an index that does not exist, ``enable_seqscan`` off)."""
    plan: list[str] = []
    times: list[float] = []
    for _ in range(4):
        with engine.connect() as conn:
            trans = conn.begin()
            for sql in setup:
                conn.exec_driver_sql(sql)
            sql = "EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) " + stmt.sql
            plan = [r[0] for r in conn.exec_driver_sql(sql, stmt.params or None)]
            trans.rollback()
        m = EXEC_MS.search("\n".join(plan))
        times.append(float(m.group(1)) if m else float("nan"))
    return plan, sorted(times[1:])[1]


def summary(stmt: Statement, rows: dict[str, tuple[int, int]]) -> tuple[str, list[str]]:
    """The plan's scan nodes (``Index Scan ix on table``) and its flags."""
    nodes, flags = [], []
    for line in stmt.plan:
        m = SCAN.search(line)
        if not m:
            continue
        kind, index, table = m.group(2), m.group(3), m.group(4)
        nodes.append(f"{kind} {index} on {table}" if index else f"{kind} on {table}")
        if kind == "Seq Scan" and rows.get(table, (0, 0))[0] > SEQ_FLAG_ROWS:
            flags.append(f"SEQ SCAN on {table} ({rows[table][0]:,} rows)")
    top = stmt.plan[0].split("  (")[0].strip() if stmt.plan else "?"
    if not nodes:
        nodes.append(top)
    return "; ".join(dict.fromkeys(nodes)), flags


def verb(sql: str) -> str:
    return sql.lstrip().split(None, 1)[0].upper()


HOT = {
    "links_by_lg", "links_by_sf", "links_by_sf(active_only)", "misses_since", "undo_holds",
    "update_synced_values", "log_changes", "quarantine_many", "sf_calls_since", "retry_keys",
}  # fmt: skip


def measure(store: RolledBackStore, c: Ctx, rows: dict[str, tuple[int, int]]) -> list[Statement]:
    """Call every lookup, capture its statements, EXPLAIN the SELECTs, UPDATEs and DELETEs."""
    cap = Capture(store.engine)
    for group in (prepare_lookups, extract_match_lookups, load_record_lookups, reader_lookups):
        for method, stages, fn in group(c):
            cap.call(method, stages, fn)
    explained: list[Statement] = []
    for stmt in cap.rows:
        if verb(stmt.sql) not in ("SELECT", "UPDATE", "DELETE", "WITH"):
            continue
        last = explained[-1] if explained else None
        if last and _shape(last) == _shape(stmt):
            last.repeats += 1  # the ORM's per-row UPDATEs of one flush: the first stands for all
            continue
        stmt.plan, stmt.ms = explain(store.engine, stmt)
        if summary(stmt, rows)[1]:
            what_if = WHAT_IF.get((stmt.method, _tables(stmt.sql)))
            setup = (what_if, "ANALYZE " + _tables(stmt.sql)) if what_if else (NO_SEQSCAN,)
            plan, ms = explain(store.engine, stmt, setup)
            nodes = summary(Statement("", "", "", None, plan), rows)[0]
            stmt.alt = f"with {what_if or NO_SEQSCAN}: {nodes}, {ms:.3f} ms"
        explained.append(stmt)
    return explained


def report(stmts: list[Statement], rows: dict[str, tuple[int, int]], plans: str) -> int:
    """The table, the flags and the plans asked for; how many Seq Scans were flagged."""
    print("| store method | stage(s) | statement | plan (scan nodes, index) | rows | ms |")
    print("|---|---|---|---|---:|---:|")
    flagged: list[str] = []
    for s in stmts:
        nodes, flags = summary(s, rows)
        what = f"{verb(s.sql)} {_tables(s.sql)}" + (f" (×{s.repeats})" if s.repeats > 1 else "")
        mark = " **(flag)**" if flags else ""
        print(f"| {s.method} | {s.stages} | {what} | {nodes}{mark} | {_rows(s)} | {s.ms:.3f} |")
        alt = f"; {s.alt}" if s.alt else ""
        flagged += [f"{s.method}: {f}, {s.ms:.3f} ms{alt}" for f in flags]
    print()
    print(f"Seq Scans over tables of more than {SEQ_FLAG_ROWS:,} rows: {len(flagged)}")
    for f in flagged:
        print(f"  FLAG {f}")
    if plans != "none":
        for s in stmts:
            if plans == "all" or s.method in HOT:
                print(f"\n-- {s.method} [{s.stages}]\n{_short_sql(s.sql)}")
                print("\n".join(re.sub(r"'\{[^}]{100,}\}'", "'{...}'", ln) for ln in s.plan))
    return len(flagged)


def _indexes_used(stmts: list[Statement]) -> set[str]:
    """Every index a plan scans (a Bitmap Index Scan names it after ``on``)."""
    found = (SCAN.search(ln) for s in stmts for ln in s.plan)
    return {m.group(3) or m.group(4) for m in found if m and "Seq" not in m.group(2)}


def _shape(stmt: Statement) -> tuple[str, str, str, str]:
    """What makes two statements the same lookup: method, verb, tables and WHERE clause (the
    ORM's UPDATEs of one flush differ only in the columns they set)."""
    where = stmt.sql.rsplit(" WHERE ", 1)[-1]
    return stmt.method, verb(stmt.sql), _tables(stmt.sql), where


def _rows(stmt: Statement) -> str:
    """Rows the plan's top node returned (an UPDATE or DELETE: the rows its scan found)."""
    lines = [ln for ln in stmt.plan if "actual time=" in ln]
    if lines and lines[0].startswith(("Update on", "Delete on")) and len(lines) > 1:
        lines = lines[1:]
    m = re.search(r"actual time=\S+ rows=(\d+)", lines[0]) if lines else None
    return m.group(1) if m else "?"


def _tables(sql: str) -> str:
    found = re.findall(r"(?:FROM|UPDATE|INTO|JOIN)\s+(\w+)", sql)
    return ", ".join(dict.fromkeys(found))


def _short_sql(sql: str) -> str:
    """The statement with long IN lists cut (500 placeholders say little)."""
    flat = " ".join(sql.split())
    return re.sub(r"IN \((?:%\([^)]+\)s, ){3,}%\([^)]+\)s\)", "IN (...)", flat)


def current_runs(store: SyncStore) -> tuple[str, str]:
    """The newest people run with changes, and the newest opportunities run."""
    with store.engine.connect() as conn:
        run = conn.exec_driver_sql(
            "SELECT run_id FROM change_log WHERE dag_id = %(d)s ORDER BY at DESC LIMIT 1",
            {"d": PEOPLE},
        ).scalar_one()
        opps = conn.exec_driver_sql(
            "SELECT run_id FROM runs WHERE dag_id = %(d)s ORDER BY started_at DESC LIMIT 1",
            {"d": OPPS},
        ).scalar_one()
    return run, opps


def run_bench(url: str, sizes: fillmod.Sizes, plans: str) -> int:
    from crm_sync.state.store import utcnow

    t0 = time.perf_counter()
    store = RolledBackStore(url)  # migrations run on open
    naive_now = utcnow()
    took = fillmod.fill(store.engine, sizes, naive_now)
    rows = fillmod.table_rows(store.engine)
    print(f"fill: {', '.join(f'{k} {v:.1f} s' for k, v in took.items())}")
    sized = (f"{k} {n:,} ({mib:,} MiB)" for k, (n, mib) in sorted(rows.items()) if n)
    print(f"rows (size with indexes): {', '.join(sized)}\n")
    from crm_sync.state.store import from_db

    now = from_db(naive_now)
    we = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    run, opps_run = current_runs(store)
    args = make_args(sizes, now, random.Random(16))
    c = Ctx(store, args, run, opps_run, we - timedelta(hours=1), we)
    t = time.perf_counter()
    stmts = measure(store, c, rows)
    n = report(stmts, rows, plans)
    unused = sorted(set(fillmod.indexes(store.engine)) - _indexes_used(stmts))
    print(f"\nindexes no lookup above used: {', '.join(unused) or 'none'}")
    print(
        f"\nlookups + EXPLAIN: {time.perf_counter() - t:.1f} s; total {time.perf_counter() - t0:.1f} s"
    )
    store.dispose()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--links", type=int, default=100_000, help="person links (the others in proportion)"
    )
    ap.add_argument("--plans", choices=("all", "hot", "none"), default="hot")
    ap.add_argument("--url", help="an empty PostgreSQL database to use instead of a private server")
    opts = ap.parse_args()
    sizes = fillmod.Sizes(links=opts.links)
    if opts.url:
        run_bench(opts.url, sizes, opts.plans)
        return
    from tests.cluster.helpers import new_database, postgres_server

    with postgres_server("crm_sync_plans_pg_") as port, new_database(port, "plans") as url:
        run_bench(url, sizes, opts.plans)


if __name__ == "__main__":
    main()
