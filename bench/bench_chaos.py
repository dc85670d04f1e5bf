"""Longer chaos runs (not a test): the fault storm and the kill -9 scenarios of tests/chaos on a
bigger world and more storm hours, with their figures printed.

The scenarios are the CI tests themselves (``tests/chaos``), run by pytest in a subprocess with
bigger sizes (``CHAOS_PEOPLE`` people seeded on each side, ``CHAOS_STORM_HOURS`` hours under
faults); each test appends its figures to a JSON Lines file, printed here.

Usage: .venv/bin/python bench/bench_chaos.py [--people 1000] [--storm-hours 6] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=1000, help="people seeded on each side")
    ap.add_argument("--storm-hours", type=int, default=6, help="hours under faults")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    figures_file = Path(tempfile.mkdtemp(prefix="bench_chaos_")) / "figures.jsonl"
    env = {
        **os.environ,
        "CHAOS_PEOPLE": str(args.people),
        "CHAOS_STORM_HOURS": str(args.storm_hours),
        "CHAOS_FIGURES": str(figures_file),
    }
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/chaos", "-m", "chaos", "-q"],
        cwd=ROOT,
        env=env,
        check=False,
    )
    seconds = round(time.perf_counter() - started)
    scenarios = [json.loads(line) for line in figures_file.read_text().splitlines() if line]
    print(f"\nchaos: {args.people} people per side, {args.storm_hours} storm hours, {seconds} s")
    for figures in scenarios:
        print(f"\n== {figures.pop('scenario')}")
        for key, value in figures.items():
            print(f"  {key}: {json.dumps(value, sort_keys=True)}")
    if args.json:
        Path(args.json).write_text(json.dumps(scenarios, indent=2, sort_keys=True))
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
