"""`make cluster`: a real multi-worker Airflow 3 cluster on this machine, without Docker.

Starts, all from the project's own files and on free loopback ports, under .cluster/:
PostgreSQL (metadata DB `airflow` and sync state DB `sync_state`) and Redis from Debian's packages
(scripts/ensure_services.sh), both sandboxes, the api-server, scheduler, dag-processor and
triggerer with CeleryExecutor, and two Celery workers, each in its own folder with its own
AIRFLOW_HOME and CRM_SYNC_HOME (they share the DAGs and the code, as an image would give them, and
the backup folder; run files go through a local S3 server: RUN_STORAGE in
scripts/cluster/settings.py).

Then it seeds the sandboxes, triggers the three sync DAGs and a three-hour backfill of
sync_leads_contacts at once, waits, checks that every run succeeded, that both workers ran tasks,
and the data in both sandboxes, prints a summary (also in .cluster/summary.json) and stops
everything. `--keep-running` leaves it up for a person to look at the UI (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from scripts.cluster import scenario  # noqa: E402
from scripts.cluster.services import say  # noqa: E402
from scripts.cluster.settings import RUN_STORAGE, RUN_STORAGE_CHOICES  # noqa: E402
from scripts.cluster.stack import Cluster  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--dir", type=Path, default=ROOT / ".cluster", help="where everything lives (emptied first)"
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--people", type=int, default=300, help="people seeded on each side")
    ap.add_argument("--run-storage", choices=RUN_STORAGE_CHOICES, default=RUN_STORAGE)
    ap.add_argument("--timeout", type=float, default=900, help="seconds to wait for the runs")
    ap.add_argument(
        "--keep-running", action="store_true", help="leave the cluster up (Ctrl-C stops it)"
    )
    ap.add_argument(
        "--no-scenario", action="store_true", help="only start the cluster (implies --keep-running)"
    )
    return ap.parse_args(argv)


def hold(c: Cluster) -> None:
    stop = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    say(f"-- running: UI {c.api.base_url} (admin / admin); Browse -> Sync health. Ctrl-C stops it.")
    while not stop:
        dead = c.supervisor.dead()
        if dead:
            say(f"   {', '.join(dead)} exited; see {c.layout.logs}")
            return
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()
    say(
        f"== cluster in {args.dir}: CeleryExecutor, {args.workers} workers, run storage {args.run_storage}"
    )
    with Cluster(args.dir, workers=args.workers, run_storage=args.run_storage) as c:
        say("-- starting")
        c.start()
        say(
            f"   Airflow {c.api.base_url} up after {time.monotonic() - t0:.0f} s; logs in {c.layout.logs}"
        )
        ok = True
        if not args.no_scenario:
            say(f"-- scenario: seed {args.people} people, trigger 3 DAGs + a 3-hour backfill, wait")
            outcome = scenario.run(c, people=args.people, timeout=args.timeout)
            scenario.write(outcome, c.layout.root / "summary.json")
            for line in scenario.summary(outcome):
                say("   " + line)
            ok = outcome.ok
        if args.keep_running or args.no_scenario:
            hold(c)
        say("-- stopping")
    say(f"== {'OK' if ok else 'FAILED'} in {time.monotonic() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
