"""Benchmark of the Salesforce sandbox and the project's SalesforceClient (not a test).

Starts a fresh sandbox as a real process, then measures, printing one line per step:

1. seeding N records (default 1,000,000) through the admin fast path;
2. a SystemModstamp-window query over them (``SalesforceClient.query_window``);
3. reading 100k records: ``SalesforceClient.query`` (lazy), then every Lead with its sync
   fields through a streamed Bulk API 2.0 query (``SalesforceClient.bulk_export``), then 100k
   with ``sf.query_all`` (materialised; last, as it leaves the process big);
4. 10k upserts through sObject Collections;
5. 100k upserts through Bulk API 2.0.

``--latency-ms 150 --latency-spread-ms 50`` makes the sandbox add 150 ms ± 50 to every API call
(after seeding), as a remote org would.

Figures: wall time, throughput, API calls (and per record, from the org's own counts), peak
RSS of this process and of the sandbox process during the step (Linux ``VmHWM``, reset before
each step through ``/proc/<pid>/clear_refs``).

Run: ``.venv/bin/python bench/bench_salesforce.py [--records 1000000] [--json out.json]
[--latency-ms 150 --latency-spread-ms 50]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]

import requests  # noqa: E402

from sandbox.process import start_sandbox  # noqa: E402


def _reset_peak(pid: int) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class Bench:
    def __init__(self, sandbox: Any):
        self.sandbox = sandbox
        self.admin = requests.Session()
        self.admin.trust_env = False
        self.rows: list[dict[str, Any]] = []

    def admin_call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = self.admin.request(
            method,
            f"{self.sandbox.base_url}/__sandbox__{path}",
            json=body,
            verify=str(self.sandbox.ca_file),
            timeout=900,
        )
        resp.raise_for_status()
        return resp.json()

    def step(self, name: str, records: int | None, fn: Any) -> Any:
        """Run ``fn`` once and print its figures; ``records=None`` counts ``len(result)``."""
        self.admin_call("POST", "/calls/reset")
        for pid in (os.getpid(), self.sandbox.proc.pid):
            _reset_peak(pid)
        started = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - started
        calls = self.admin_call("GET", "/calls")["total"]
        if records is None:
            records = len(result)
        row = {
            "step": name,
            "records": records,
            "seconds": round(seconds, 3),
            "records_per_s": round(records / seconds) if seconds else None,
            "api_calls": calls,
            "calls_per_1k_records": round(calls * 1000 / records, 3) if records else None,
            "bench_peak_rss_mb": _peak_mb(os.getpid()),
            "sandbox_peak_rss_mb": _peak_mb(self.sandbox.proc.pid),
        }
        self.rows.append(row)
        print(
            f"{name:<42} {records:>9,} rec {seconds:>8.2f} s {row['records_per_s'] or 0:>9,} rec/s "
            f"{calls:>6} calls ({row['calls_per_1k_records']} /1k rec)  "
            f"peak RSS bench {row['bench_peak_rss_mb']} MB, sandbox {row['sandbox_peak_rss_mb']} MB",
            flush=True,
        )
        return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--records", type=int, default=1_000_000, help="records to seed (default 1,000,000)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="mean added latency per API call"
    )
    parser.add_argument(
        "--latency-spread-ms", type=float, default=0.0, help="latency varies by +/- this much"
    )
    args = parser.parse_args()
    if args.latency_spread_ms > args.latency_ms:
        parser.error("--latency-spread-ms cannot exceed --latency-ms")

    work = Path(tempfile.mkdtemp(prefix="bench-salesforce-"))
    os.environ.setdefault("AIRFLOW_HOME", str(work / "airflow"))
    sandbox = start_sandbox("sandbox.salesforce", work / "org", scheme="https")
    os.environ["REQUESTS_CA_BUNDLE"] = str(sandbox.ca_file)
    os.environ["AIRFLOW_CONN_SALESFORCE_DEFAULT"] = json.dumps(
        {
            "conn_type": "salesforce",
            "login": "integration@sandbox.example",
            "password": "sandbox-password",
            "extra": {"security_token": "SANDBOXTOKEN", "domain": f"127.0.0.1:{sandbox.port}#"},
        }
    )
    from crm_sync.clients.salesforce import SalesforceClient

    bench = Bench(sandbox)
    try:
        print(
            f"sandbox {sandbox.base_url}, data dir {sandbox.data_dir}, python {sys.version.split()[0]}"
        )
        end = "2026-11-27T00:00:00Z"
        seeded = bench.step(
            f"seed {args.records:,} records (admin fast path)",
            args.records,
            lambda: bench.admin_call(
                "POST", "/seed", {"n": args.records, "seed": 42, "end_at": end}
            ),
        )
        print(
            f"    created per object: {seeded['created']}; db size {(sandbox.data_dir / 'salesforce.db').stat().st_size / 1e6:.0f} MB"
        )

        if args.latency_ms:
            # X +/- Y is the sandbox's base X - Y plus a uniform jitter of 2Y.
            bench.admin_call(
                "POST",
                "/faults",
                {
                    "latency_ms": args.latency_ms - args.latency_spread_ms,
                    "latency_jitter_ms": 2 * args.latency_spread_ms,
                },
            )
            print(f"    latency {args.latency_ms:g} ms +/- {args.latency_spread_ms:g} per call")
        client = SalesforceClient.from_connection("salesforce_default", bulk_poll_wait=0.1)
        client.describe("Lead")
        window_end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
        window_start = window_end - dt.timedelta(days=1)
        rows = bench.step(
            "SystemModstamp window (1 day) over the seed",
            None,
            lambda: list(
                client.query_window(
                    "Lead", ["Id", "Email", "LastName", "SystemModstamp"], window_start, window_end
                )
            ),
        )
        print(f"    window returned {len(rows):,} leads")

        sf = client._sf
        n_read = min(100_000, sf.query("SELECT COUNT() FROM Lead")["totalSize"])
        soql = f"SELECT Id, FirstName, LastName, Email, Company, SystemModstamp FROM Lead LIMIT {n_read}"
        count = bench.step(
            f"query {n_read:,} Leads, SalesforceClient.query (lazy)",
            n_read,
            lambda: sum(1 for _ in client.query(soql)),
        )
        assert count == n_read, count
        export_fields = [
            "Id", "FirstName", "LastName", "Email", "Company", "Title", "Phone", "Status",
            "LeadSource", "OwnerId", "IsConverted", "ConvertedContactId", "LeadGen_Id__c",
            "LeadGen_URL__c", "LeadGen_Score__c", "Product_Interest__c", "Customer_Tier__c",
            "IsDeleted", "SystemModstamp",
        ]  # fmt: skip
        n_leads = sf.query("SELECT COUNT() FROM Lead")["totalSize"]
        exported = bench.step(
            f"export all {n_leads:,} Leads, 19 fields, bulk_export (streamed)",
            n_leads,
            lambda: sum(1 for _ in client.bulk_export("Lead", export_fields, page_size=10_000)),
        )
        assert exported == n_leads, exported

        result = bench.step(
            f"query_all {n_read:,} Leads, simple-salesforce (list)",
            n_read,
            lambda: sf.query_all(soql),
        )
        assert result["totalSize"] == n_read
        del result

        contacts = [
            r["LeadGen_Id__c"]
            for r in client.query(
                "SELECT LeadGen_Id__c FROM Contact WHERE LeadGen_Id__c != null LIMIT 5000"
            )
        ]
        coll_records = [{"LeadGen_Id__c": lg, "Title": "Bench updated"} for lg in contacts]
        coll_records += [
            {
                "LeadGen_Id__c": f"bench-c-{i}",
                "LastName": f"Bench{i}",
                "Email": f"bench{i}@example.com",
            }
            for i in range(10_000 - len(coll_records))
        ]
        coll_client = SalesforceClient(sf, bulk_threshold=10_000)
        res = bench.step("upsert 10k Contacts, sObject Collections", len(coll_records),
                         lambda: coll_client.upsert("Contact", "LeadGen_Id__c", coll_records))  # fmt: skip
        print(
            f"    {sum(r.success for r in res):,} ok, {sum(bool(r.created) for r in res):,} created"
        )

        leads = [
            r["LeadGen_Id__c"]
            for r in client.query(
                "SELECT LeadGen_Id__c FROM Lead WHERE LeadGen_Id__c != null AND IsConverted = false LIMIT 50000"
            )
        ]
        bulk_records = [
            {"LeadGen_Id__c": lg, "Title": "Bench updated", "LeadGen_Score__c": 77} for lg in leads
        ]
        bulk_records += [
            {
                "LeadGen_Id__c": f"bench-l-{i}",
                "LastName": f"Bulk{i}",
                "Company": "Bench Co",
                "Email": f"bulk{i}@example.com",
            }
            for i in range(100_000 - len(bulk_records))
        ]
        res = bench.step("upsert 100k Leads, Bulk API 2.0", len(bulk_records),
                         lambda: client.upsert("Lead", "LeadGen_Id__c", bulk_records))  # fmt: skip
        print(
            f"    {sum(r.success for r in res):,} ok, {sum(bool(r.created) for r in res):,} created"
        )
    finally:
        sandbox.stop()
    if args.json:
        args.json.write_text(json.dumps(bench.rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
