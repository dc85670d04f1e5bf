"""Peak memory of the people DAG's ``validate`` and ``record`` stages against the size of the run
(not a test; issue 16: "peak RSS <= 1 GiB in every task at every size").

For each n it fabricates the run folder a full resync of n people leaves before the stage (the
plans, and for ``record`` the validated plans and both sides' write results appended batch by
batch as the load stages append them), with a SQLite state store holding the run's row and a
quarantine from earlier runs, then runs the real stage (``crm_sync.tasks.run_stage``) in a
process of its own, as an Airflow worker would, and prints its peak RSS (``VmHWM``) and time.
The child imports Airflow, pandas and Great Expectations before the stage starts (what every
task pays, about 320 MiB), so the figure is comparable with ``bench_scale.py``'s.

The mix of plans per 100 (a full resync: most people exist on one side only):
35 Lead Gen & CRM leads new to Salesforce (a create there), 35 Salesforce people new to Lead
Gen & CRM (a create there), 24 paired by email (an update on each side), 3 with an address the
gate refuses, 1 refused by Salesforce at write time, 2 already in sync (no write). One in 100
keys was in the quarantine before the run.

Usage:
  .venv/bin/python bench/bench_record_memory.py                      # n = 10k, 100k (--sizes 10000,100000,300000 --million for more)
  .venv/bin/python bench/bench_record_memory.py --sizes 10000,50000 --stage record
  .venv/bin/python bench/bench_record_memory.py --million            # adds n = 1M (slow)
Uses throw-away folders under the system's temporary directory; touches nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "sync_leads_contacts"
RUN_ID = "manual__bench_record_memory"
WINDOW = (datetime(2026, 11, 20, 9, tzinfo=UTC), datetime(2026, 11, 20, 10, tzinfo=UTC))
SF_BATCH, LG_BATCH = 2000, 500  # results appended per batch, as the loads append them
FIRST = ["Austin", "Maria", "Chen", "Olu", "Priya", "Jonas", "Aiko", "Sam"]
LAST = ["Müller", "Garcia", "Nguyen", "Okafor", "Patel", "Berg", "Sato", "Lee"]


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "CRM_SYNC_HOME": str(home / "crm_sync"),
        "CRM_SYNC_REQUIRE_BACKUP": "false",
        "AIRFLOW_CONN_SYNC_STATE": f"sqlite:///{home / 'state.db'}",
        "GX_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]),
    }


# -- the fabricated run ---------------------------------------------------------------------------


def _person(i: int) -> dict[str, Any]:
    first, last = FIRST[i % len(FIRST)], LAST[(i // 8) % len(LAST)]
    return {
        "first": first,
        "last": last,
        "email": f"{first.lower()}.{i}@lakeside{i % 97}.example",
        "title": "Marketing Manager",
        "phone": f"+1 215-555-{i % 10000:04d}",
        "street": f"{i % 9000} Maple Way",
        "city": "Portland",
        "state": "OR",
        "zip": f"{97000 + i % 999}",
        "country": "United States",
    }


def _sf_payload(p: dict[str, Any], lg_id: str | None) -> dict[str, Any]:
    out = {
        "FirstName": p["first"],
        "LastName": p["last"],
        "Email": p["email"],
        "Title": p["title"],
        "Phone": p["phone"],
        "MailingStreet": p["street"],
        "MailingCity": p["city"],
        "MailingState": p["state"],
        "MailingPostalCode": p["zip"],
        "MailingCountry": p["country"],
        "HasOptedOutOfEmail": False,
        "OwnerId": "0055e0000000005AAA",
    }
    if lg_id:
        out["LeadGen_Id__c"] = lg_id
    return out


def _lg_payload(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "firstName": p["first"],
        "lastName": p["last"],
        "emailAddress": p["email"],
        "title": p["title"],
        "phoneNumber": p["phone"],
        "street": p["street"],
        "city": p["city"],
        "state": p["state"],
        "zipcode": p["zip"],
        "country": p["country"],
        "isUnsubscribed": "0",
        "ownerID": "313361052",
    }


def _agreed(p: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in _lg_payload(p).items() if k != "ownerID"}


def _plan(i: int) -> tuple[dict[str, Any], str]:
    """Plan ``i`` (before validate) and its kind (see the module docstring)."""
    p, slot = _person(i), i % 100
    lg_id, sf_id = str(718_000_000_000 + i), f"0035e{i:013d}AAA"
    base: dict[str, Any] = {
        "sf_op": None,
        "sf_payload": {},
        "sf_fields": [],
        "lg_op": None,
        "lg_payload": {},
        "lg_fields": [],
        "agreed_now": {},
        "agreed_if_sf": {},
        "agreed_if_lg": {},
        "conflicts": [],
        "events": [],
        "link_change": None,
        "sf_record": None,
    }
    if slot < 35 or 94 <= slot < 98:  # new in Salesforce (94-96: a bad address; 97: refused)
        kind = "sf_new" if slot < 94 else ("bad_email" if slot < 97 else "sf_refused")
        if kind == "bad_email":
            p["email"] = f"{p['first'].lower()}..{i}@@lakeside.example"
        plan = {**base, "pair": f"lg:{lg_id}", "lg_id": lg_id, "sf_id": None}
        plan.update(sf_object="Contact", match="new", sf_op="create")
        plan["sf_payload"] = _sf_payload(p, lg_id)
        plan["sf_fields"] = sorted(_agreed(p))
        plan["agreed_if_sf"] = _agreed(p)
        if i % 7 == 0:
            plan["events"] = [{"event": "owner_unmapped_lg", "detail": "owner 313361055"}]
        return plan, kind
    if slot < 70:  # new in Lead Gen & CRM
        plan = {**base, "pair": f"sf:{sf_id}", "lg_id": None, "sf_id": sf_id}
        plan.update(sf_object="Contact", match="new", lg_op="create")
        plan["lg_payload"] = {**_lg_payload(p), "leadStatus": "contact"}
        plan["lg_fields"] = sorted(_agreed(p))
        plan["agreed_if_lg"] = _agreed(p)
        plan["sf_record"] = {"Id": sf_id, **_sf_payload(p, None), "IsDeleted": False}
        return plan, "lg_new"
    if slot < 94:  # paired by email, a field to write each way
        plan = {**base, "pair": f"lg:{lg_id}", "lg_id": lg_id, "sf_id": sf_id}
        plan.update(sf_object="Contact", match="email", sf_op="update", lg_op="update")
        plan["sf_payload"] = {"Id": sf_id, "Title": "VP Marketing", "LeadGen_Id__c": lg_id}
        plan["lg_payload"] = {"id": lg_id, "phoneNumber": p["phone"]}
        plan["agreed_now"] = {k: v for k, v in _agreed(p).items() if k not in ("title",)}
        plan["agreed_if_sf"] = {"title": "VP Marketing"}
        plan["agreed_if_lg"] = {"phoneNumber": p["phone"]}
        return plan, "email"
    plan = {**base, "pair": f"lg:{lg_id}", "lg_id": lg_id, "sf_id": sf_id}
    plan.update(sf_object="Contact", match="link")
    return plan, "in_sync"


def _sf_result(plan: dict[str, Any], kind: str, i: int) -> dict[str, Any]:
    refused = kind == "sf_refused"
    return {
        "pair": plan["pair"],
        "target": "salesforce",
        "kind": None,
        "op": plan["sf_op"],
        "success": not refused,
        "id": None if refused else (plan["sf_id"] or f"0035e{i:013d}BBB"),
        "created": None if refused else plan["sf_op"] == "create",
        "unchanged": False,
        "error_code": "FIELD_CUSTOM_VALIDATION_EXCEPTION" if refused else None,
        "error_message": "Phone must be in E.164 format" if refused else "",
        "error_fields": ["Phone"] if refused else [],
        "agreed_extra": {},
    }


def _lg_result(plan: dict[str, Any], i: int) -> dict[str, Any]:
    create = plan["lg_op"] == "create"
    new_id = str(719_000_000_000 + i)
    row = {
        "pair": plan["pair"],
        "target": "leadgen",
        "kind": None,
        "op": plan["lg_op"],
        "success": True,
        "id": new_id if create else None,
        "created": True if create else None,
        "unchanged": False,
        "error_code": None,
        "error_message": "",
        "error_fields": [],
    }
    if create:  # the lead as the API answered it (the load keeps it for the change log)
        row["record"] = {
            "id": new_id,
            **plan["lg_payload"],
            "active": "1",
            "isContact": "1",
            "createTimestamp": "2026-11-20 09:20:00",
            "updateTimestamp": "2026-11-20 09:20:00",
        }
    return row


def _validated(plan: dict[str, Any], kind: str) -> dict[str, Any]:
    out = dict(plan)
    if out["sf_op"]:
        out["sf_rejected"] = (
            [
                {
                    "target": "salesforce",
                    "check": "email_format",
                    "field": "Email",
                    "value": plan["sf_payload"]["Email"],
                    "message": "field Email must be one valid email address [check email_format]",
                    "category": "format",
                }
            ]
            if kind == "bad_email"
            else []
        )
    if out["lg_op"]:
        out["lg_rejected"] = []
    return out


def _plans(n: int) -> Iterator[tuple[int, dict[str, Any], str]]:
    for i in range(n):
        plan, kind = _plan(i)
        yield i, plan, kind


def fabricate(n: int, stage: str) -> None:
    """The run folder (and state store) ``stage`` finds in a full resync of ``n`` people (runs
    in a child process with the bench environment)."""
    from crm_sync.pipeline.context import RunContext
    from crm_sync.pipeline.files import chunked
    from crm_sync.runtime import shared_store

    ctx = context()
    folder, store = ctx.folder, shared_store("sync_state")
    store.start_run(
        DAG_ID,
        RUN_ID,
        window_start=WINDOW[0],
        window_end=WINDOW[1],
        dry_run=False,
        full_resync=True,
    )
    assert isinstance(ctx, RunContext)
    folder.write_json("schema.json", sandbox_schema().to_dict())
    folder.write_json("owners.json", {})
    if stage == "validate":
        folder.write_jsonl("plans/plans.jsonl", (plan for _, plan, _ in _plans(n)))
        return
    folder.write_json("validation.json", {"checks": {}, "top_failures": {}, "counts": {}})
    folder.write_jsonl("plans/validated.jsonl", (_validated(p, k) for _, p, k in _plans(n)))
    prior: list[dict[str, Any]] = []
    for batch in chunked(_plans(n), SF_BATCH):
        rows = [_sf_result(p, k, i) for i, p, k in batch if p["sf_op"] and k != "bad_email"]
        folder.append_jsonl("results/sf.jsonl", rows)
        prior.extend(_prior_entry(p) for i, p, _ in batch if i % 100 == 50)
    for batch in chunked(_plans(n), LG_BATCH * 4):
        rows = [_lg_result(p, i) for i, p, _ in batch if p["lg_op"]]
        for part in chunked(rows, LG_BATCH):
            folder.append_jsonl("results/lg.jsonl", part)
    for part in chunked(prior, 2000):
        store.quarantine_many(part)


def _prior_entry(plan: dict[str, Any]) -> dict[str, Any]:
    """A quarantine row an earlier run left for this plan's source record."""
    return {
        "dag_id": DAG_ID,
        "domain": "person",
        "direction": "sf_to_lg",
        "record_key": f"sf:{plan['sf_id']}",
        "target_object": "Lead",
        "lg_id": None,
        "sf_id": plan["sf_id"],
        "category": "format",
        "check": "email_format",
        "field": "emailAddress",
        "error_code": None,
        "message": "an earlier run refused it",
        "payload": plan["lg_payload"],
        "run_id": "manual__earlier",
        "max_attempts": 5,
    }


def context() -> Any:
    from crm_sync.pipeline.context import RunContext

    return RunContext(
        dag_id=DAG_ID,
        run_id=RUN_ID,
        domain="person",
        window_start=WINDOW[0],
        window_end=WINDOW[1],
        full_resync=True,
        run_type="manual",
        run_kind="now",
        max_reject_rate=1.0,
    )


def sandbox_schema() -> Any:
    """Describe of the sandbox org's objects and the sandbox account's lead fields, in process
    (the unit tests' schema)."""
    from tests.sandbox_schema import sandbox_live_schema

    return sandbox_live_schema()


# -- the stage, in a process of its own -------------------------------------------------------------


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def run_stage_child(stage: str, out: Path) -> None:
    # What every task imports (a worker pays it in every task process), before the stage.
    import great_expectations  # noqa: F401
    import pandas  # noqa: F401
    import simple_salesforce  # noqa: F401

    import crm_sync.tasks  # noqa: F401
    from crm_sync.tasks import run_stage

    base = peak_rss_mib()
    t = time.perf_counter()
    result = run_stage(DAG_ID, stage, {"ctx": context().to_dict(), "summary": {}}, {})
    seconds = time.perf_counter() - t
    brief = {k: result.get(k) for k in ("rows", "counts", "links", "quarantined")}
    out.write_text(
        json.dumps(
            {"seconds": seconds, "peak_rss_mib": peak_rss_mib(), "imports_mib": base, **brief},
            default=str,
        )
    )


def child(args: list[str], env: dict[str, str], log: Path) -> None:
    """Run this file with ``args`` in a new process; its log goes to ``log`` (shown on failure)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    with log.open("a") as fh:
        done = subprocess.run(cmd, env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    if done.returncode:
        print(log.read_text()[-4000:])
        raise SystemExit(f"{args[0]} failed (exit {done.returncode}); log: {log}")


def measure(n: int, stage: str, keep: bool) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix=f"bench_record_memory_{stage}_{n}_"))
    env = _env(home)
    try:
        t = time.perf_counter()
        child(["--child-fabricate", stage, "--n", str(n)], env, home / "log.txt")
        made = time.perf_counter() - t
        out = home / "out.json"
        child(["--child-stage", stage, "--out", str(out)], env, home / "log.txt")
        figures = json.loads(out.read_text())
        figures["fabricate_seconds"] = made
        return figures
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"  kept {home}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--million", action="store_true", help="add n = 1,000,000")
    ap.add_argument("--stage", choices=("record", "validate", "both"), default="both")
    ap.add_argument("--keep", action="store_true", help="keep each run's folder")
    ap.add_argument("--json", help="write the figures here too")
    ap.add_argument("--child-fabricate", help=argparse.SUPPRESS)
    ap.add_argument("--child-stage", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
    if a.child_fabricate:
        return fabricate(a.n, a.child_fabricate)
    if a.child_stage:
        return run_stage_child(a.child_stage, Path(a.out))
    sizes = [int(s) for s in a.sizes.split(",") if s] + ([1_000_000] if a.million else [])
    stages = ("validate", "record") if a.stage == "both" else (a.stage,)
    print(f"{'stage':<9} {'n plans':>10} {'peak RSS':>10} {'imports':>9} {'stage s':>9}")
    figures = []
    for stage in stages:
        for n in sizes:
            f = measure(n, stage, a.keep)
            figures.append({"stage": stage, "n": n, **f})
            print(
                f"{stage:<9} {n:>10,} {f['peak_rss_mib']:>6.0f} MiB {f['imports_mib']:>5.0f} MiB "
                f"{f['seconds']:>9.1f}",
                flush=True,
            )
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
