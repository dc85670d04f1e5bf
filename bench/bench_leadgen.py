"""Benchmark of the Lead Gen & CRM sandbox and client (not a test: it prints figures).

    .venv/bin/python bench/bench_leadgen.py [--leads 1000000] [--read 100000] [--write 10000]

Starts its own sandbox in a temporary directory (removed afterwards) and measures:

1. seeding ``--leads`` leads through the admin API (wall time, sandbox peak RSS, file size);
2. getLeadsDateRange over that table: one 500-row page of a one-day window, and a whole
   one-hour window read through the client;
3. reading ``--read`` leads through ``LeadGenClient.get_leads`` at the API's real limit of 10
   calls/s, and again with both limiters off (throughput, calls, calls per record, peak Python
   memory of the reading process);
4. writing ``--write`` new leads with ``create_leads`` (throughput, calls per record).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]

from crm_sync.clients.leadgen import LeadGenClient  # noqa: E402
from sandbox.process import start_sandbox  # noqa: E402

NOW = "2026-11-27 09:00:00"


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def read_through_client(client: LeadGenClient, count: int) -> tuple[float, int]:
    """Read ``count`` leads without keeping them; returns (seconds, peak traced bytes)."""
    tracemalloc.start()
    started = time.perf_counter()
    n = sum(1 for _ in itertools.islice(client.get_leads(), count))
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == count, f"read {n} leads, expected {count}"
    return elapsed, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--read", type=int, default=100_000)
    parser.add_argument("--write", type=int, default=10_000)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-leadgen-"))
    sandbox = start_sandbox("sandbox.leadgen", data_dir)
    admin = requests.Session()
    base = sandbox.base_url
    api = f"{base}/pubapi/v1.2/"

    def post(path: str, body: dict) -> dict:
        resp = admin.post(f"{base}/__sandbox__{path}", json=body, timeout=1800)
        resp.raise_for_status()
        return resp.json()

    try:
        post("/clock", {"now": NOW})
        print(
            f"Lead Gen & CRM sandbox benchmark (python {sys.version.split()[0]}, sandbox on {base})"
        )
        print()

        started = time.perf_counter()
        seeded = post("/seed", {"leads": args.leads, "seed": 42})
        seed_wall = time.perf_counter() - started
        db_mb = sum(p.stat().st_size for p in data_dir.glob("leadgen.sqlite3*")) / 2**20
        print(f"seed {args.leads:,} leads: {seed_wall:.1f} s wall ({seeded['elapsed_seconds']:.1f} s in the sandbox), "
              f"{args.leads / seed_wall:,.0f} leads/s, {seeded['events']:,} activity events, "
              f"database {db_mb:,.0f} MiB, sandbox peak RSS {peak_rss_mb(sandbox.proc.pid):,.0f} MiB")  # fmt: skip

        client = LeadGenClient(api, "SANDBOXACCOUNT", "SANDBOXSECRET", max_per_second=0)
        post("/config", {"per_second_limit": 0})
        end = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
        day = (end - timedelta(days=30), end - timedelta(days=29))
        timings = []
        for _ in range(5):
            t0 = time.perf_counter()
            client.call(
                "getLeadsDateRange",
                {"startDate": day[0].strftime("%Y-%m-%d %H:%M:%S"), "endDate": day[1].strftime("%Y-%m-%d %H:%M:%S"),
                 "timestamp": "update", "limit": 500, "offset": 0},
            )  # fmt: skip
            timings.append(time.perf_counter() - t0)
        print(f"getLeadsDateRange, one-day window, first page of 500: median {statistics.median(timings) * 1000:.0f} ms "
              f"(best {min(timings) * 1000:.0f} ms, 5 calls, HTTP round trip included)")  # fmt: skip
        hour = (end - timedelta(days=10), end - timedelta(days=10) + timedelta(hours=1))
        before = client.api_calls
        t0 = time.perf_counter()
        window = sum(1 for _ in client.get_leads_date_range(*hour))
        took = time.perf_counter() - t0
        print(f"getLeadsDateRange, one-hour window read to the end: {window:,} leads in {client.api_calls - before} calls, "
              f"{took * 1000:.0f} ms")  # fmt: skip

        # Each phase starts with an empty per-second window: the server counts every client of
        # the account, so calls left over from the previous phase would trip 107.
        post("/calls/reset", {})
        post("/config", {"per_second_limit": 10})
        limited = LeadGenClient(
            api, "SANDBOXACCOUNT", "SANDBOXSECRET"
        )  # production settings: 10 calls/s
        elapsed, peak = read_through_client(limited, args.read)
        calls = limited.calls["getLeads"]
        print(f"read {args.read:,} leads via get_leads at 10 calls/s: {elapsed:.1f} s, {args.read / elapsed:,.0f} leads/s, "
              f"{calls} calls, {calls / args.read:.4f} calls/record, peak Python memory {peak / 2**20:.1f} MiB")  # fmt: skip

        post("/config", {"per_second_limit": 0})
        unlimited = LeadGenClient(api, "SANDBOXACCOUNT", "SANDBOXSECRET", max_per_second=0)
        elapsed, peak = read_through_client(unlimited, args.read)
        calls = unlimited.calls["getLeads"]
        print(f"read {args.read:,} leads via get_leads, limiters off: {elapsed:.1f} s, {args.read / elapsed:,.0f} leads/s, "
              f"{calls} calls, {elapsed / calls * 1000:.0f} ms/call, peak Python memory {peak / 2**20:.1f} MiB")  # fmt: skip

        post("/calls/reset", {})
        post("/config", {"per_second_limit": 10})
        writer = LeadGenClient(api, "SANDBOXACCOUNT", "SANDBOXSECRET")
        objs = ({"emailAddress": f"bench{i}@bench.example", "firstName": "Bench", "lastName": str(i),
                 "companyName": "Bench Co", "leadStatus": "open"} for i in range(args.write))  # fmt: skip
        t0 = time.perf_counter()
        results = writer.create_leads(objs)
        elapsed = time.perf_counter() - t0
        ok = sum(r.success for r in results)
        calls = writer.calls["createLeads"]
        assert writer.retries == 0, "the client's limiter should have avoided every 107"
        print(f"write {args.write:,} leads via create_leads at 10 calls/s: {elapsed:.1f} s, {args.write / elapsed:,.0f} leads/s, "
              f"{calls} calls, {calls / args.write:.4f} calls/record, {ok:,} succeeded")  # fmt: skip
        updates = [{"id": r.id, "title": "Benchmarked"} for r in results]
        t0 = time.perf_counter()
        updated = writer.update_leads(updates)
        elapsed = time.perf_counter() - t0
        print(f"update {len(updates):,} leads via update_leads (updateLeadsV2): {elapsed:.1f} s, "
              f"{len(updates) / elapsed:,.0f} leads/s, {sum(r.success for r in updated):,} succeeded")  # fmt: skip
    finally:
        sandbox.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
