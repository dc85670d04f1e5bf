"""Benchmark of the three sync DAGs at org scale (not a test): issue 16's figures.

For an org of ``--people`` people per side (with proportional accounts, opportunities, contact
roles and marketing events) it runs, against both sandboxes started as processes with realistic
latency injected (Salesforce 150 ms +- 50 per call, Lead Gen & CRM 250 ms +- 100 and its 10
calls/s limit):

1. the initial load: each DAG once with ``full_resync`` (a "sync now" run, as a new installation
   does), people first;
2. an hourly run: 1 % of the people edited on each side, 1 % of the opportunities edited in
   Salesforce, an email sent to 0.5 % of the leads (and opened by half of them), then the
   scheduled run of that hour of each DAG;
3. an idle hour: the scheduled run of the next hour, nothing changed.

Every task runs in its own process (``bench/scale_runner.py``, as an Airflow 3 worker runs each
task), so the peak RSS printed per task is that task's own. Each run prints its wall time per
stage, records/s, the API calls on each side against the lower bound for that work (see
``bench/scale_figures.py``), the calls a per-record sync would need, and the peak RSS.

Usage:
  .venv/bin/python bench/bench_scale.py                        # 10,000 people per side
  .venv/bin/python bench/bench_scale.py --people 100000 --json out.json
  .venv/bin/python bench/bench_scale.py --scale 1m              # opt-in; synced start
  .venv/bin/python bench/bench_scale.py --people 10000 --start synced --changes 1000
  --start synced builds the state an initial load and its catch-up leave instead of running
  them (bench/scale_synced.py: people and engagement; the opportunities DAG is left out);
  --changes N edits N people per side in the hourly run (default 1 %), --then-changes N adds
  one more such hour after the idle one.
  --no-latency to run without injected latency (figures for the sync's own work only).
Runs in a temporary home with its own sandboxes; touches nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "scripts"), str(ROOT / "plugins"), str(ROOT)]

from scale_figures import print_run, print_summary, run_figures  # noqa: E402

DAGS = ("sync_leads_contacts", "sync_opportunities", "sync_engagement_activities")
# The synced start builds no opportunities, accounts or contact roles (bench/scale_synced.py).
SYNCED_DAGS = ("sync_leads_contacts", "sync_engagement_activities")
SCALES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}
# Injected latency: base + uniform(0, jitter) ms, i.e. mean +- jitter/2.
SF_LATENCY = (100, 100)  # 150 ms +- 50
LG_LATENCY = (150, 200)  # 250 ms +- 100


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_env(home: Path) -> None:
    os.environ.update(
        AIRFLOW_HOME=str(home / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        CRM_SYNC_HOME=str(home / "crm_sync"),
        CRM_SYNC_SF_API_BUDGET="1000000",
        # The backup before the first write is measured by bench/ of the backup (docs/backup.md);
        # here it would add two full exports to the initial load's figures.
        CRM_SYNC_REQUIRE_BACKUP="false",
        AIRFLOW_CONN_SYNC_STATE=f"sqlite:///{home / 'state.db'}",
        SANDBOX_DIR=str(home / "sandbox"),
        SF_SANDBOX_PORT=str(_free_port()),
        LG_SANDBOX_PORT=str(_free_port()),
        GX_ANALYTICS_ENABLED="false",
        PYTHONPATH=os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]),
    )


def set_latency(loc: Any, on: bool) -> None:
    sf, lg = (SF_LATENCY, LG_LATENCY) if on else ((0, 0), (0, 0))
    loc.sf_admin("POST", "faults", {"latency_ms": sf[0], "latency_jitter_ms": sf[1], "seed": 16})
    loc.lg_admin("POST", "config", {"latency_ms": lg[0], "latency_jitter_ms": lg[1]})


class Ticker:
    """Both sandbox clocks frozen at ``start`` and moved on one second per second while a
    scenario runs: records written by a run get distinct modification times, as in a real org
    (a clock frozen for a whole initial load would stamp a million writes with one second),
    and each scenario stays inside its hour."""

    def __init__(self, loc: Any, start: datetime):
        self.loc, self.start = loc, start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def __enter__(self) -> Ticker:
        import local

        local.freeze(self.loc, self.start)
        self._thread.start()
        return self

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            for admin in (self.loc.sf_admin, self.loc.lg_admin):
                try:
                    admin("POST", "clock", {"advance_seconds": 1})
                except Exception:  # a missed tick only slows the clock down
                    pass

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class TaskRunner:
    """Runs one DAG run task by task, each task in its own process (see scale_runner.py)."""

    def __init__(self, home: Path, loc: Any, memory_limit_mib: int = 0):
        self.home, self.loc = home, loc
        self.memory_limit = memory_limit_mib * 1024 * 1024
        self.logs = home / "task-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        from crm_sync.dag_defaults import sync_params

        self.defaults = {k: p.value for k, p in sync_params().items()}

    def _limit_memory(self) -> None:
        """In the task's process: an address-space cap, so a task that would grow without
        bound fails with MemoryError instead of taking the machine's memory from others."""
        if self.memory_limit:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (self.memory_limit, self.memory_limit))

    def task(self, name: str, job: dict[str, Any]) -> dict[str, Any]:
        import subprocess

        job_file = self.logs / f"{name}.job.json"
        out_file = self.logs / f"{name}.out.json"
        job_file.write_text(json.dumps(job, default=str))
        out_file.unlink(missing_ok=True)
        t = time.perf_counter()
        with (self.logs / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "bench" / "scale_runner.py"),
                    str(job_file),
                    str(out_file),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self._limit_memory,
            )
            proc.wait()
        wall = time.perf_counter() - t
        out = json.loads(out_file.read_text()) if out_file.exists() else {"state": "crashed"}
        out.update(wall=round(wall, 2), rss_mib=out.get("peak_rss_mib") or 0.0)
        if out["state"] not in ("success", "skipped"):
            print(f"   ! {name}: {out.get('error') or out['state']} (log {self.logs / name}.log)")
        return out

    def run_dag(
        self, dag_id: str, run_id: str, *, kind: str, start: datetime, end: datetime, **conf: Any
    ) -> dict[str, Any]:
        """One run of ``dag_id`` (``kind``: scheduled, or now = Trigger without a date)."""
        from crm_sync.definitions import get_definition
        from crm_sync.runtime import close_stores, shared_store

        self.loc.sf_admin("POST", "calls/reset")
        self.loc.lg_admin("POST", "calls/reset")
        context = {
            "params": {**self.defaults, **conf},
            "run_id": run_id,
            "run_type": "scheduled" if kind == "scheduled" else "manual",
            "logical_date": start.isoformat() if kind == "scheduled" else None,
            "run_after": end.isoformat(),
            "data_interval_start": start.isoformat(),
            "data_interval_end": end.isoformat(),
        }
        tasks: dict[str, dict[str, Any]] = {}
        base = f"{run_id}.{dag_id}"
        prepared = self.task(
            f"{base}.prepare", {"dag_id": dag_id, "task": "prepare", "context": context}
        )
        tasks["prepare"] = prepared
        summaries: dict[str, Any] = {}
        for stage in list(get_definition(dag_id).stages)[1:]:
            if prepared.get("state") != "success":
                break
            job = {"dag_id": dag_id, "task": stage, "prepared": prepared["result"]}
            if stage == "record":
                job["summaries"] = summaries
            out = self.task(f"{base}.{stage}", job)
            tasks[stage] = out
            summaries[stage] = out.get("result") or {}
            if out["state"] != "success":
                break
        close_stores()
        row = shared_store("sync_state").get_run(dag_id, run_id)
        return {
            "dag_id": dag_id,
            "run_id": run_id,
            "status": row.status if row else "missing",
            "report": row.report if row else {},
            "tasks": tasks,
            "sf_calls": self.loc.sf_admin("GET", "calls"),
            "lg_calls": self.loc.lg_admin("GET", "calls"),
        }


def hour_of_changes(loc: Any, changes: int, at: datetime, tag: str = "") -> dict[str, int]:
    """``changes`` linked people edited on each side (1 % of the org by default), 1 % of the
    opportunities edited in Salesforce, an email sent to half as many leads and opened by half
    of them."""
    import local

    from crm_sync.runtime import shared_store

    store = shared_store("sync_state")
    n = max(2, changes)
    n_mail = max(2, changes // 2)
    n_opp = max(1, store.count_links("opportunity") // 100)
    links = _first_links(store, "person", 2 * n + n_mail)
    lg_side, sf_side = links[0 : 2 * n : 2], links[1 : 2 * n : 2]
    local.freeze(loc, at)
    stamp = local.lg_ts(at)
    # (the Import Tool edits many leads per admin call; Salesforce edits are one PATCH each)
    loc.lg_admin(
        "POST",
        "import",
        {
            "leads": [
                {"emailAddress": e, "title": f"Title {tag}{i}"}
                for i, e in enumerate(_lg_emails(loc, [lk.lg_id for lk in lg_side]))
            ],
            "_at": stamp,
        },
    )

    def sf_edit(item: tuple[int, Any]) -> None:
        i, lk = item
        loc.sf_admin("PATCH", f"records/{lk.sf_object}/{lk.sf_id}", {"Title": f"Title {tag}{i}"})

    opps = [lk.sf_id for lk in _first_links(store, "opportunity", n_opp)]

    def opp_edit(item: tuple[int, str]) -> None:
        i, sid = item
        loc.sf_admin("PATCH", f"records/Opportunity/{sid}", {"Amount": 1000 + i + len(tag)})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(sf_edit, enumerate(sf_side)))
        list(pool.map(opp_edit, enumerate(opps)))
    recipients = [lk.lg_id for lk in links[2 * n : 2 * n + n_mail]]
    sent = loc.lg_admin(
        "POST", "emails/send", {"subject": "Scale bench", "leadIDs": recipients, "_at": stamp}
    )
    for lead in recipients[::2]:
        loc.lg_admin(
            "POST", "emails/open", {"leadID": lead, "emailJobID": sent["emailJobID"], "_at": stamp}
        )
    return {
        "lg_people_edited": len(lg_side),
        "sf_people_edited": len(sf_side),
        "opportunities_edited": len(opps),
        "emails_sent": len(recipients),
        "emails_opened": len(recipients[::2]),
    }


def _first_links(store: Any, domain: str, n: int) -> list[Any]:
    """The first ``n`` active links of ``domain`` (ids only: the bench process stays small,
    since every task process it starts would count its memory as theirs)."""
    from sqlalchemy import select

    from crm_sync.state.models import Link

    q = (
        select(Link.lg_id, Link.sf_object, Link.sf_id)
        .where(Link.domain == domain, Link.status == "active")
        .order_by(Link.id)
        .limit(n)
    )
    with store.session() as s:
        return list(s.execute(q))


def _lg_emails(loc: Any, lead_ids: list[str]) -> list[str]:
    """Email addresses of leads (the Import Tool edits by email, many leads per admin call)."""
    from crm_sync.runtime import leadgen_client

    lg = leadgen_client()
    return [r["emailAddress"] for r in lg.get_leads_by_ids(lead_ids, fields=["emailAddress"])]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=10_000, help="people seeded on each side")
    ap.add_argument("--scale", choices=sorted(SCALES), help="shorthand for --people")
    ap.add_argument("--no-latency", dest="latency", action="store_false")
    ap.add_argument(
        "--start",
        choices=("initial", "synced"),
        help="initial: run the initial load and its catch-up; synced: build the state they "
        "would leave directly (bench/scale_synced.py; people and engagement only). Default: "
        "synced for --scale 1m, initial otherwise",
    )
    ap.add_argument(
        "--changes", type=int, help="people edited on each side in the hourly run (default 1 %%)"
    )
    ap.add_argument(
        "--then-changes",
        type=int,
        help="after the idle hour, one more hour with this many people edited on each side "
        "(run 'hourly2'): two change sizes from one seed",
    )
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home")
    ap.add_argument(
        "--task-memory-limit-mib",
        type=int,
        default=6144,
        help="address-space cap of each task process (0: none); the target is 1 GiB of RSS",
    )
    args = ap.parse_args()
    args.people = SCALES[args.scale] if args.scale else args.people
    args.start = args.start or ("synced" if args.people >= SCALES["1m"] else "initial")
    args.changes = args.changes if args.changes is not None else args.people // 100
    return args


def start_sandboxes(home: Path) -> Any:
    """Both sandboxes as processes in the temporary home; the connections that reach them."""
    import local

    from sandbox.process import start_sandbox

    local.SANDBOX_DIR = home / "sandbox"
    local.SF_PORT = int(os.environ["SF_SANDBOX_PORT"])
    local.LG_PORT = int(os.environ["LG_SANDBOX_PORT"])
    sf = start_sandbox(
        "sandbox.salesforce", local.SANDBOX_DIR / "salesforce", port=local.SF_PORT, scheme="https"
    )
    lg = start_sandbox("sandbox.leadgen", local.SANDBOX_DIR / "leadgen", port=local.LG_PORT)
    loc = local.Local(
        sf, lg, sf.base_url, lg.base_url, local.SANDBOX_DIR / "salesforce" / "cert.pem"
    )
    os.environ.update(local.connection_env())
    return loc


def seed_org(loc: Any, start: str, people: int, hour: datetime) -> dict[str, Any]:
    """The org as of H-6h: raw (``initial``: the load is measured) or already synced up to
    H-1h (``synced``: bench/scale_synced.py)."""
    import local

    h = timedelta(hours=1)
    if start == "synced":
        from scale_synced import seed_synced

        return seed_synced(loc, people=people, at=hour - 6 * h, high_water=hour - h)
    return local.seed(loc, at=hour - 6 * h, people=people, activity_leads=max(400, people // 20))


def main() -> None:
    args = parse_args()
    people = args.people
    home = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    setup_env(home)
    import local

    loc = start_sandboxes(home)
    figures: dict[str, Any] = {
        "people_per_side": people,
        "latency": args.latency,
        "start": args.start,
        "changes_per_side": args.changes,
        "runs": {},
    }
    dags = DAGS if args.start == "initial" else SYNCED_DAGS
    h = timedelta(hours=1)
    m = timedelta(minutes=1)
    try:
        hour = local.hour_floor(datetime.now(UTC))
        t = time.perf_counter()
        figures["seed"] = seed_org(loc, args.start, people, hour)
        figures["seed_seconds"] = round(time.perf_counter() - t, 1)
        print(
            f"seeded {people:,} people per side in {figures['seed_seconds']} s: {figures['seed']}"
        )
        figures["preflight"] = preflight(loc)
        set_latency(loc, args.latency)
        runner = TaskRunner(home, loc, args.task_memory_limit_mib)

        def scenario(
            name: str, kind: str, start: datetime, end: datetime, clock: datetime, **conf: Any
        ) -> None:
            with Ticker(loc, clock):
                for dag_id in dags:
                    raw = runner.run_dag(
                        dag_id, f"bench_{name}", kind=kind, start=start, end=end, **conf
                    )
                    figs = run_figures(raw, people=people, latency=args.latency)
                    figures["runs"][f"{name}:{dag_id}"] = {**figs, "raw": raw}
                    print_run(name, figs)

        if args.start == "initial":
            # A "sync now" with full_resync at H-5h (what a new installation does first) ...
            scenario("initial", "now", hour - 6 * h, hour - 5 * h, hour - 5 * h, full_resync=True)
            # ... the scheduled run that catches up from it: it reads back every record the
            # initial load wrote (their modification times are after its watermark) ...
            scenario("catchup", "scheduled", hour - 2 * h, hour - h, hour - 100 * m)
        # (synced: the state those two leave, watermarks at H-1h, built by seed_synced)
        # ... an hour of changes at H-40m, synced by the scheduled run of [H-1h, H) ...
        figures["changes"] = hour_of_changes(loc, args.changes, hour - 40 * m)
        scenario("hourly", "scheduled", hour - h, hour, hour - 35 * m)
        # ... and the next hour, with no change at all.
        scenario("idle", "scheduled", hour, hour + h, hour + 30 * m)
        if args.then_changes:
            figures["changes2"] = hour_of_changes(loc, args.then_changes, hour + 80 * m, "b")
            scenario("hourly2", "scheduled", hour + h, hour + 2 * h, hour + 85 * m)
        print_summary(figures)
    finally:
        loc.stop()
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
        if not args.keep:
            import shutil

            shutil.rmtree(home, ignore_errors=True)


def preflight(loc: Any) -> dict[str, Any]:
    """The preflight, once, before the first run (its calls are not the sync's)."""
    from crm_sync.preflight import check_and_record
    from crm_sync.preflight.cli import open_clients
    from crm_sync.runtime import DEFAULT_CONN_IDS

    loc.sf_admin("POST", "calls/reset")
    loc.lg_admin("POST", "calls/reset")
    sf, lg, errors = open_clients(dict(DEFAULT_CONN_IDS))
    report = check_and_record(sf, lg, conn_ids=DEFAULT_CONN_IDS, errors=errors)
    if not report.ok:
        raise SystemExit(report.text())
    return {
        "sf_calls": loc.sf_admin("GET", "calls")["total"],
        "lg_calls": loc.lg_admin("GET", "calls")["total"],
    }


if __name__ == "__main__":
    main()
