"""One task of a sync DAG run in its own process, for ``bench_scale.py`` (not a test).

Airflow 3 runs every task in its own supervised process; ``dag.test()`` runs them all in one, so
its peak RSS says nothing about one task. This runner does what a worker does for one task —
``crm_sync.tasks.run_prepare`` with the run's Airflow context, or ``run_stage`` with the
prepared context and the upstream summaries — and writes the task's return value, the time the
task itself took (imports excluded) and its peak RSS (VmHWM) to a JSON file.

Usage (by bench_scale.py): python bench/scale_runner.py JOB.json OUT.json
JOB: {"dag_id", "task", "prepared"?, "summaries"?, "context"?}; context (prepare only):
{"params", "run_id", "run_type", "logical_date", "run_after", "data_interval_start",
"data_interval_end"}.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def airflow_context(ctx: dict[str, Any]) -> dict[str, Any]:
    """The parts of Airflow's task context that ``run_prepare`` reads."""
    dag_run = SimpleNamespace(
        run_id=ctx["run_id"],
        run_type=ctx["run_type"],
        logical_date=_dt(ctx.get("logical_date")),
        run_after=_dt(ctx.get("run_after")),
    )
    return {
        "params": ctx["params"],
        "run_id": ctx["run_id"],
        "dag_run": dag_run,
        "logical_date": dag_run.logical_date,
        "data_interval_start": _dt(ctx.get("data_interval_start")),
        "data_interval_end": _dt(ctx.get("data_interval_end")),
    }


def run(job: dict[str, Any]) -> dict[str, Any]:
    from crm_sync.tasks import run_prepare, run_stage

    dag_id, task = job["dag_id"], job["task"]
    if task == "prepare":
        return run_prepare(dag_id, airflow_context(job["context"]))
    return run_stage(dag_id, task, job["prepared"], job.get("summaries"))


def main() -> int:
    job_path, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
    t0 = time.perf_counter()
    # What every task imports sooner or later (a worker pays it once per task process): timed
    # apart, so a stage's seconds are its work, which is what grows with the org. Airflow's SDK
    # (and its settings) is loaded before a worker runs any task code: the task runner is part
    # of it; here the first connection lookup would import it inside the task's seconds.
    import airflow.sdk  # noqa: F401
    import great_expectations  # noqa: F401
    import pandas  # noqa: F401
    import simple_salesforce  # noqa: F401

    import crm_sync.tasks  # noqa: F401

    job = json.loads(job_path.read_text())
    out: dict[str, Any] = {"import_seconds": round(time.perf_counter() - t0, 2)}
    t1 = time.perf_counter()
    status = 0
    try:
        out["result"] = run(job)
        out["state"] = "success"
    except Exception as exc:  # the parent reports it; Airflow's skip is not a failure
        skipped = type(exc).__name__ == "AirflowSkipException"
        out["state"] = "skipped" if skipped else "failed"
        out["error"] = f"{type(exc).__name__}: {exc}"
        if not skipped:
            out["traceback"] = traceback.format_exc()
            status = 1
    out["seconds"] = round(time.perf_counter() - t1, 3)
    out["peak_rss_mib"] = peak_rss_mib()
    out_path.write_text(json.dumps(out, default=str))
    return status


def peak_rss_mib() -> float | None:
    """This process's peak resident set (VmHWM). Unlike ``ru_maxrss``, which a child inherits
    from the process that forked it, VmHWM belongs to the memory of this program only (exec
    starts it afresh)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


if __name__ == "__main__":
    sys.exit(main())
