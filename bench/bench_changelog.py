"""Benchmark of the change log (not a test): what logging a run's writes adds to the people sync.

Measures, for N people whose Salesforce record gets a two-field update:
* ``attach_before`` (the plan stage reads the before values of every update: one extra
  canonicalization of the updated records), per 2,000-pair chunk as the plan stage runs it;
* ``ChangeLog.log`` (one read of the batch's logged rows, one insert) per load batch of 200
  (sObject Collections) and 2,000 (Bulk), and again for a retried batch (nothing new);
* reading the run's changes back (``iter_changes``), as an undo does.

Usage: .venv/bin/python bench/bench_changelog.py [--people 20000]
Uses a throw-away SQLite state store; touches nothing else.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=20_000)
    n = ap.parse_args().people

    from crm_sync.pipeline.changelog import ChangeLog, attach_before
    from crm_sync.pipeline.context import RunContext
    from crm_sync.pipeline.reconcile import reconcile
    from crm_sync.state.changes import ChangeFilter
    from crm_sync.state.store import SyncStore
    from tests.unit.test_reconcile import LAST, ctx, lg_rec, pair, sf_rec

    home = Path(tempfile.mkdtemp(prefix="bench_changelog_"))
    rctx = ctx()
    pairs = []
    for i in range(n):
        p = pair(
            lg_rec(id=str(i), title="Chief", phoneNumber="2"),
            sf_rec(Id=f"00Q{i:015d}", LeadGen_Id__c=str(i), Title="VP", Phone="1"),
            last={**LAST, "title": "VP", "phoneNumber": "1"},
        )
        p["pair"] = f"lg:{i}"
        p["link"]["lg_id"] = str(i)
        pairs.append(p)
    plans, t_reconcile, t_before = [], 0.0, 0.0
    for start in range(0, n, 2000):
        chunk = pairs[start : start + 2000]
        t = time.perf_counter()
        planned = [p.to_dict() for p in reconcile(chunk, rctx)]
        t_reconcile += time.perf_counter() - t
        t = time.perf_counter()
        attach_before(planned, chunk, rctx)
        t_before += time.perf_counter() - t
        plans.extend(planned)
    print(f"people={n} updates={sum(1 for p in plans if p['sf_op'] == 'update')}")
    print(
        f"reconcile: {t_reconcile:.2f} s; attach_before: {t_before:.2f} s (+{t_before / t_reconcile:.0%})"
    )

    store = SyncStore(f"sqlite:///{home / 'state.db'}")
    for size in (200, 2000):
        run = RunContext(
            dag_id="sync_leads_contacts",
            run_id=f"bench{size}",
            domain="person",
            window_start=datetime(2026, 11, 20, 9, tzinfo=UTC),
            window_end=datetime(2026, 11, 20, 10, tzinfo=UTC),
        )
        log = ChangeLog(store, run, "salesforce", prefix="sf", link_domain="person")
        batches = [plans[i : i + size] for i in range(0, n, size)]
        t = time.perf_counter()
        entries = 0
        for batch in batches:
            rows = [
                {"pair": p["pair"], "op": "update", "success": True, "id": p["sf_id"]}
                for p in batch
            ]
            entries += log.log(batch, rows, obj="Lead")
        took = time.perf_counter() - t
        print(
            f"log, batches of {size}: {entries} entries in {took:.2f} s "
            f"({took / len(batches) * 1000:.1f} ms per batch, {entries / took:,.0f} entries/s)"
        )
        if size == 2000:
            t = time.perf_counter()
            again = sum(
                log.log(
                    b,
                    [
                        {"pair": p["pair"], "op": "update", "success": True, "id": p["sf_id"]}
                        for p in b
                    ],
                    obj="Lead2000",
                )
                for b in batches
            )
            print(
                f"retried batches of {size}: {again} new entries in {time.perf_counter() - t:.2f} s"
            )
    t = time.perf_counter()
    read = sum(1 for _ in store.iter_changes(ChangeFilter("sync_leads_contacts", "bench2000")))
    print(f"iter_changes: {read} entries in {time.perf_counter() - t:.2f} s")
    store.dispose()


if __name__ == "__main__":
    main()
