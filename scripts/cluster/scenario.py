"""The cluster scenario: seed, trigger the three DAGs and a three-hour backfill at once, wait, check
every run, which worker ran which task, and the data in both sandboxes.

Times: ``H`` is the start of the current hour. The three DAGs are triggered for the last complete
hour (logical date ``H - 1 h``, the interval the scheduler would create itself, so it does not add
a scheduled run of its own) with ``full_resync`` — the initial load of a new installation. The
backfill covers ``[H - 4 h, H - 1 h)``, three hourly runs of ``sync_leads_contacts``, each with
changes of its own made by the seed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scripts.cluster.api import wait_for
from scripts.cluster.settings import ROOT, S3_BUCKET, node_address
from scripts.cluster.stack import DAG_IDS, Cluster

PEOPLE_DAG = "sync_leads_contacts"
BACKFILL_HOURS = 3
TERMINAL = {"success", "failed"}


@dataclass
class RunResult:
    dag_id: str
    run_id: str
    run_type: str
    state: str
    data_interval_start: str | None
    tasks: int = 0


@dataclass
class Outcome:
    """What the scenario saw; ``ok`` only when every run succeeded, every worker ran tasks (and
    wrote their logs in its own folder) and every data check passed."""

    runs: list[RunResult] = field(default_factory=list)
    tasks_by_worker: dict[str, int] = field(default_factory=dict)
    log_files_by_worker: dict[str, int] = field(default_factory=dict)
    remote_log_ok: bool = False
    seeded: dict[str, Any] = field(default_factory=dict)
    verify: dict[str, Any] = field(default_factory=dict)
    verifier: str = ""
    run_storage: str = ""
    run_files: dict[str, int] = field(default_factory=dict)
    local_run_files: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        out = [f"{r.dag_id} {r.run_id}: {r.state}" for r in self.runs if r.state != "success"]
        if len(self.runs) != len(DAG_IDS) + BACKFILL_HOURS:
            out.append(f"expected {len(DAG_IDS) + BACKFILL_HOURS} runs, saw {len(self.runs)}")
        out += [f"{w} ran no task" for w, n in self.tasks_by_worker.items() if n == 0]
        out += [f"{w} wrote no task log" for w, n in self.log_files_by_worker.items() if n == 0]
        if not self.remote_log_ok:
            out.append("the api-server could not show a task log from each worker")
        if not self.verify.get("ok"):
            out.append("data checks failed")
        out += [
            f"{d}: no run files in {self.run_storage}" for d in DAG_IDS if not self.run_files.get(d)
        ]
        if self.local_run_files:
            out.append(f"run files on a process's own disk: {self.local_run_files[:3]}")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "problems": self.problems}


def _child_json(c: Cluster, argv: list[str], log_name: str) -> tuple[int, dict[str, Any]]:
    """Run Python with the control plane's environment (plus the plugins folder on the path, as
    Airflow's own processes have it); its last stdout line is JSON, its stderr goes to a log."""
    log = c.layout.logs / log_name
    env = c.env()
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(ROOT / "plugins")])
    with open(log, "ab") as err:
        proc = subprocess.run(
            [sys.executable, *argv], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=err
        )
    lines = proc.stdout.decode(errors="replace").strip().splitlines()
    try:
        return proc.returncode, json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        return proc.returncode, {"output": lines[-20:], "log": str(log)}


def seed(c: Cluster, hour: datetime, people: int) -> dict[str, Any]:
    rc, out = _child_json(
        c,
        ["-m", "scripts.cluster.data", "seed", "--hour", hour.isoformat(), "--people", str(people)],
        "seed.log",
    )
    if rc != 0 or "expect" not in out:
        raise RuntimeError(f"seeding failed: {out}; see {c.layout.logs / 'seed.log'}")
    return out


def trigger(c: Cluster, hour: datetime) -> tuple[list[tuple[str, str]], datetime]:
    """Three manual runs and one backfill, all queued before any DAG is unpaused (so the
    scheduler cannot add its own run for the same hour in between)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    logical = hour - timedelta(hours=1)
    ours = []
    for dag_id in DAG_IDS:
        run_id = f"cluster__{stamp}"
        c.api.trigger(dag_id, run_id, logical, hour, {"full_resync": True})
        ours.append((dag_id, run_id))
    first = hour - timedelta(hours=BACKFILL_HOURS + 1)
    last = hour - timedelta(hours=2)  # inclusive: logical dates H-4, H-3, H-2
    c.api.backfill(PEOPLE_DAG, first, last, max_active_runs=BACKFILL_HOURS)
    for dag_id in DAG_IDS:
        c.api.set_paused(dag_id, False)
    return ours, first


def _our_runs(c: Cluster, manual: list[tuple[str, str]], first: datetime) -> list[dict[str, Any]]:
    wanted = set(manual)
    out = []
    for dag_id in DAG_IDS:
        for r in c.api.runs(dag_id):
            is_backfill = (
                r["run_type"] == "backfill"
                and dag_id == PEOPLE_DAG
                and datetime.fromisoformat(r["logical_date"]) >= first
            )
            if (dag_id, r["dag_run_id"]) in wanted or is_backfill:
                out.append(r)
    return out


def wait_for_runs(
    c: Cluster, manual: list[tuple[str, str]], first: datetime, timeout: float
) -> list[dict[str, Any]]:
    expected = len(manual) + BACKFILL_HOURS

    def done() -> list[dict[str, Any]] | None:
        dead = c.supervisor.dead()
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited during the run; see {c.layout.logs}")
        runs = _our_runs(c, manual, first)
        if len(runs) == expected and all(r["state"] in TERMINAL for r in runs):
            return runs
        return None

    return wait_for("every DAG run to finish", done, timeout, interval=3)


def collect(c: Cluster, runs: list[dict[str, Any]], outcome: Outcome) -> None:
    """Run states, who ran each task instance (the host it reported), whose folder holds its
    log, and for each worker one task log read back through the api-server."""
    hosts: Counter[str] = Counter()
    samples: dict[str, tuple[str, str, str, int]] = {}
    for r in runs:
        tis = c.api.task_instances(r["dag_id"], r["dag_run_id"])
        outcome.runs.append(
            RunResult(
                r["dag_id"],
                r["dag_run_id"],
                r["run_type"],
                r["state"],
                r.get("data_interval_start"),
                len(tis),
            )
        )
        for ti in tis:
            if ti.get("hostname"):
                hosts[ti["hostname"]] += 1
                if ti["state"] == "success":
                    samples.setdefault(
                        ti["hostname"],
                        (r["dag_id"], r["dag_run_id"], ti["task_id"], ti["try_number"]),
                    )
    readable = []
    for n in range(1, c.workers + 1):
        name, address = f"worker-{n}", node_address(n)
        outcome.tasks_by_worker[name] = hosts.get(address, 0)
        logs = c.layout.worker_home(n) / "logs"
        outcome.log_files_by_worker[name] = sum(1 for _ in logs.rglob("attempt=*.log"))
        if address in samples:
            readable.append(_log_served_by(c, address, samples[address]))
    outcome.remote_log_ok = bool(readable) and all(readable)


def _log_served_by(c: Cluster, address: str, ti: tuple[str, str, str, int]) -> bool:
    """The api-server read the task's log from the log server of the worker at ``address``,
    and it holds the task's own lines."""
    events = c.api.task_log(*ti)
    source = f"http://{address}:{c.ports.worker_logs}/log/"
    from_worker = any(
        str(e.get("event", "")).startswith(source) for e in events if isinstance(e, dict)
    )
    task_lines = [e for e in events if isinstance(e, dict) and e.get("timestamp")]
    return from_worker and bool(task_lines)


def find_run_files(c: Cluster, outcome: Outcome) -> None:
    """Where the runs' files are: how many per DAG in the run storage (read from the S3 server
    with boto3, or from the shared folder), and any under a process's own CRM_SYNC_HOME, where
    none may be when the run storage is the bucket."""
    outcome.run_storage = c.env()["CRM_SYNC_RUN_STORAGE"]
    per_dag: Counter[str] = Counter()
    if c.object_store is not None:
        for key in c.object_store.keys(S3_BUCKET, "runs/"):
            per_dag[key.split("/")[1]] += 1
        homes = {Path(c.env(worker=n)["CRM_SYNC_HOME"]) for n in (None, *range(1, c.workers + 1))}
        outcome.local_run_files = [
            str(p) for home in sorted(homes) for p in (home / "runs").rglob("*") if p.is_file()
        ]
    else:
        runs = c.layout.shared_sync_home / "runs"
        for p in runs.rglob("*"):
            if p.is_file():
                per_dag[p.relative_to(runs).parts[0]] += 1
    outcome.run_files = dict(per_dag)


def verify(c: Cluster, expect: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``python -m crm_sync.verify`` when the library has it — run with no arguments and the
    cluster's connections in its environment; exit code 0 means consistent, a JSON last line is
    kept as the details — else the cluster's own checks (scripts/cluster/data.py)."""
    if importlib.util.find_spec("crm_sync.verify") is not None:
        rc, out = _child_json(c, ["-m", "crm_sync.verify"], "verify.log")
        return "crm_sync.verify", {**out, "ok": rc == 0}
    path = c.layout.root / "expect.json"
    path.write_text(json.dumps(expect))
    _, out = _child_json(
        c, ["-m", "scripts.cluster.data", "verify", "--expect", str(path)], "verify.log"
    )
    return "scripts.cluster.data verify", out


def run(c: Cluster, *, people: int, timeout: float) -> Outcome:
    """The whole scenario on a started cluster."""
    outcome = Outcome()
    t0 = time.monotonic()
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    outcome.seeded = seed(c, hour, people)
    outcome.seconds["seed"] = time.monotonic() - t0
    manual, first = trigger(c, hour)
    t1 = time.monotonic()
    runs = wait_for_runs(c, manual, first, timeout)
    outcome.seconds["runs"] = time.monotonic() - t1
    collect(c, runs, outcome)
    find_run_files(c, outcome)
    outcome.verifier, outcome.verify = verify(c, outcome.seeded["expect"])
    outcome.seconds["total"] = time.monotonic() - t0
    return outcome


def summary(outcome: Outcome) -> list[str]:
    lines = ["runs:"]
    for r in sorted(outcome.runs, key=lambda r: (r.dag_id, r.data_interval_start or "")):
        lines.append(
            f"  {r.dag_id:<28} {r.run_type:<9} {r.data_interval_start or '':<26} {r.state:<8} {r.tasks} tasks"
        )
    lines.append(
        "workers: "
        + ", ".join(
            f"{w} ran {n} task instances ({outcome.log_files_by_worker.get(w, 0)} log files in its own folder)"
            for w, n in outcome.tasks_by_worker.items()
        )
    )
    lines.append(
        f"task logs through the api-server from each worker: {'yes' if outcome.remote_log_ok else 'NO'}"
    )
    lines.append(
        f"run files in {outcome.run_storage}: "
        + ", ".join(f"{d} {n}" for d, n in sorted(outcome.run_files.items()))
        + f"; on the processes' own disks: {len(outcome.local_run_files)}"
    )
    lines.append(f"data checks ({outcome.verifier}):")
    for name, check in (outcome.verify.get("checks") or {}).items():
        detail = {k: v for k, v in check.items() if k != "ok"}
        lines.append(
            f"  {'ok  ' if check.get('ok') else 'FAIL'} {name}  {json.dumps(detail)[:160]}"
        )
    secs = outcome.seconds
    lines.append(
        f"seed {secs.get('seed', 0):.0f} s, runs {secs.get('runs', 0):.0f} s, scenario {secs.get('total', 0):.0f} s"
    )
    lines += [f"PROBLEM: {p}" for p in outcome.problems]
    return lines


def write(outcome: Outcome, path: Path) -> None:
    path.write_text(json.dumps(outcome.as_dict(), indent=2, default=str))
