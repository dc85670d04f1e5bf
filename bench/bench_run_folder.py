"""Benchmark of the run folder (not a test: it prints figures).

    .venv/bin/python bench/bench_run_folder.py [--rows 100000] [--parts 100] [--no-s3]

For a local ``file://`` root and for the local S3 server (moto, started here on a free loopback
port, through an Airflow connection as on `make cluster`), measures with rows shaped like a plan
row (about 400 bytes of JSON):

1. ``write_jsonl`` of ``--rows`` rows from a generator, then ``read_jsonl`` of them;
2. ``append_jsonl`` of the same rows in ``--parts`` parts (a load's result log), then reading
   them back;

each with wall time, rows per second and, in a second pass, the peak Python memory of the step
(tracemalloc; the batches handed to ``append_jsonl`` are built beforehand and not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench_run_folder_af_"))

from crm_sync.pipeline.files import RunFolder  # noqa: E402


def plan_row(i: int) -> dict[str, Any]:
    return {
        "pair": f"lg:{700000000 + i}",
        "sf_op": "update",
        "sf_payload": {"Id": f"00Q5e00000{i:08d}", "Title": "Head of Data", "Phone": "+1 555 0100"},
        "sf_rejected": None,
        "lg_op": None,
        "lg_payload": None,
        "lg_rejected": None,
        "events": ["conflict"] if i % 50 == 0 else [],
        "lg": {"id": str(700000000 + i), "emailAddress": f"person{i}@example.com", "x": "y" * 120},
    }


def measure(label: str, rows: int, step: Callable[[], Any], reset: Callable[[], Any]) -> None:
    """Time ``step``, then run it again under tracemalloc (which slows Python down several
    times) for its peak memory."""
    reset()
    t0 = time.perf_counter()
    step()
    seconds = time.perf_counter() - t0
    reset()
    tracemalloc.start()
    step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"  {label:<30} {seconds:6.2f} s  {rows / seconds:9,.0f} rows/s"
        f"  peak {peak / 2**20:5.1f} MiB"
    )


def run(folder: RunFolder, rows: int, parts: int) -> None:
    size = rows // parts
    batches = [[plan_row(p * size + i) for i in range(size)] for p in range(parts)]

    def write() -> None:
        folder.write_jsonl("plans/plans.jsonl", (plan_row(i) for i in range(rows)))

    def read(name: str) -> Callable[[], None]:
        def step() -> None:
            for _ in folder.read_jsonl(name):
                pass

        return step

    def appends() -> None:
        for batch in batches:
            folder.append_jsonl("results/sf.jsonl", batch)

    def nothing() -> None:
        pass

    measure("write_jsonl", rows, write, nothing)
    measure("read_jsonl", rows, read("plans/plans.jsonl"), nothing)
    measure(f"append_jsonl x {parts} parts", rows, appends, folder.clear)
    measure(f"read_jsonl of {parts} parts", rows, read("results/sf.jsonl"), nothing)
    assert sum(1 for _ in folder.read_jsonl("results/sf.jsonl")) == size * parts
    folder.clear()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--parts", type=int, default=100)
    ap.add_argument("--no-s3", action="store_true", help="local folder only")
    args = ap.parse_args()
    size = len(json.dumps(plan_row(0), separators=(",", ":")))
    print(
        f"run folder: {args.rows:,} rows of about {size} bytes ({args.rows * size / 2**20:.0f} MiB)"
    )

    tmp = Path(tempfile.mkdtemp(prefix="bench_run_folder_"))
    try:
        print("file:// (local folder)")
        run(RunFolder((tmp / "runs" / "dag" / "run").as_uri()), args.rows, args.parts)
        if not args.no_s3:
            from scripts.cluster.services import ObjectStore
            from scripts.cluster.settings import S3_BUCKET, free_port, s3_connection

            store = ObjectStore(tmp / "s3", free_port())
            store.start()
            try:
                os.environ["AIRFLOW_CONN_BENCH_RUNS"] = json.dumps(s3_connection(store.port))
                print(f"s3:// (moto on {store.endpoint}, one process, loopback)")
                run(RunFolder(f"s3://bench_runs@{S3_BUCKET}/runs/dag/run"), args.rows, args.parts)
            finally:
                store.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
