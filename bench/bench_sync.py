"""Benchmark of the sync itself (not a test): sync_leads_contacts end to end on seeded sandboxes.

Measures, for an initial load (full_resync) and an hourly incremental run:
throughput (records/s), API calls per record on each side, and peak memory of the process that
runs the DAG (dag.test runs every task in this process, so its peak RSS bounds a worker's).

Usage: .venv/bin/python bench/bench_sync.py [--people 10000]
Runs in a temporary AIRFLOW_HOME with its own sandboxes; touches nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=10_000, help="people seeded on each side")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench_sync_"))
    os.environ.update(
        AIRFLOW_HOME=str(home / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        CRM_SYNC_HOME=str(home / "crm_sync"),
        CRM_SYNC_SF_API_BUDGET="1000000",
        SANDBOX_DIR=str(home / "sandbox"),
        SF_SANDBOX_PORT=str(_free_port()),
        LG_SANDBOX_PORT=str(_free_port()),
        GX_ANALYTICS_ENABLED="false",
    )
    sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "plugins"), str(ROOT)]
    import local
    from demo import quiet

    local.AIRFLOW_HOME = home / "airflow"
    local.ensure_airflow_home()
    loc = local.start_sandboxes()
    figures: dict[str, object] = {"people_per_side": args.people}
    try:
        hour = local.hour_floor(datetime.now(UTC))
        t = time.perf_counter()
        local.seed(loc, at=hour - timedelta(hours=3), people=args.people)
        figures["seed_seconds"] = round(time.perf_counter() - t, 1)
        from airflow.dag_processing.dagbag import DagBag

        with quiet(home / "airflow.log"):
            dag = DagBag(dag_folder=str(ROOT / "dags")).dags["sync_leads_contacts"]
        for task in dag.tasks:
            task.retry_delay = timedelta(0)

        def run(label: str, logical: datetime, **conf: object) -> None:
            from crm_sync.runtime import shared_store

            loc.sf_admin("POST", "calls/reset")
            loc.lg_admin("POST", "calls/reset")
            t = time.perf_counter()
            with quiet(home / "airflow.log"):
                dr = dag.test(
                    logical_date=logical, run_conf={"full_resync": False, "dry_run": False, **conf}
                )
            seconds = time.perf_counter() - t
            report = shared_store("sync_state").get_run("sync_leads_contacts", dr.run_id).report
            sf_calls = loc.sf_admin("GET", "calls")["total"]
            lg_calls = loc.lg_admin("GET", "calls")["total"]
            records = sum(v for k, v in report["extracted"].items() if not k.endswith("_retried"))
            figures[label] = {
                "state": str(getattr(dr.state, "value", dr.state)),
                "records_extracted": records,
                "pairs": report["pairs"],
                "seconds": round(seconds, 1),
                "records_per_second": round(records / seconds, 1),
                "salesforce_calls": sf_calls,
                "leadgen_calls": lg_calls,
                "salesforce_calls_per_record": round(sf_calls / max(records, 1), 4),
                "leadgen_calls_per_record": round(lg_calls / max(records, 1), 4),
                "salesforce_writes": report["salesforce"],
                "leadgen_writes": report["leadgen"],
            }
            print(f"{label}: {json.dumps(figures[label])}", flush=True)

        local.freeze(loc, hour - timedelta(minutes=90))
        run("initial_load_full_resync", hour - timedelta(hours=1), full_resync=True)
        # an hour of changes: 2 % of the people edited on each side
        from crm_sync.runtime import shared_store

        links = shared_store("sync_state").all_links("person")[: max(2, args.people // 50)]
        local.freeze(loc, hour - timedelta(minutes=30))
        for i, lk in enumerate(links):
            if i % 2:
                loc.lg_admin("POST", f"leads/{lk.lg_id}", {"fields": {"title": f"Title {i}"}})
            else:
                loc.sf_admin("PATCH", f"records/{lk.sf_object}/{lk.sf_id}", {"Title": f"Title {i}"})
        local.freeze(loc, hour - timedelta(minutes=10))
        run("hourly_incremental", hour)
        run("idle_rerun", hour)
        figures["peak_rss_mib"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        )
        print(f"peak RSS of the process running the DAG: {figures['peak_rss_mib']} MiB", flush=True)
    finally:
        loc.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
