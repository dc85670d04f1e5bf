"""Figures of one DAG run for ``bench_scale.py``: time per stage, records/s, API calls against
the lower bound and a per-record sync, the API latency floor, peak RSS per task."""

from __future__ import annotations

import math
from typing import Any

SF_MEAN_LATENCY = 0.150  # seconds per call, as injected
LG_MEAN_LATENCY = 0.250
# What one call can carry at most (the API's own caps; docs/benchmarks.md, "Lower bound").
LG_OBJECTS = 500  # objects per write, ids per where-list, rows per page
LG_RANGE_PAGE = 5000  # getLeadsDateRange pages
SF_PAGE = 2000  # rows per query page, ids per collections retrieve
SF_COLLECTION = 200  # records per sObject Collections write
SF_BULK_JOB = 5  # calls of the smallest Bulk API 2.0 job: create, upload, close, poll, results


def _sum_extracted(report: dict[str, Any]) -> int:
    ex = report.get("extracted") or {}
    return sum(v for k, v in ex.items() if isinstance(v, int) and not k.endswith("_retried"))


def run_figures(raw: dict[str, Any], *, people: int, latency: bool) -> dict[str, Any]:
    report = raw["report"] or {}
    stages = {}
    for name, out in raw["tasks"].items():
        res = out.get("result") or {}
        summary = res.get("summary", res) if name == "prepare" else res
        stages[name] = {
            "state": out.get("state"),
            "seconds": out.get("seconds"),
            "wall": out.get("wall"),
            "rss_mib": out.get("rss_mib"),
            "sf_calls": summary.get("sf_api_calls", 0),
            "lg_calls": summary.get("lg_api_calls", 0),
        }
    seconds = sum(s["seconds"] or 0 for s in stages.values())
    sf_calls, lg_calls = raw["sf_calls"]["total"], raw["lg_calls"]["total"]
    records = _sum_extracted(report)
    floor = sf_calls * SF_MEAN_LATENCY + lg_calls * LG_MEAN_LATENCY if latency else 0.0
    bound = BOUNDS[raw["dag_id"]](raw)
    lb = {side: sum(bound[side].values()) for side in ("leadgen", "salesforce")}
    per_record = sum(bound["per_record"].values())
    return {
        "lower_bound": lb,
        "lower_bound_parts": bound,
        "calls_over_bound": {
            "salesforce": round(sf_calls / lb["salesforce"], 2) if lb["salesforce"] else None,
            "leadgen": round(lg_calls / lb["leadgen"], 2) if lb["leadgen"] else None,
        },
        "per_record_calls": per_record,
        "fewer_than_per_record": round(per_record / (sf_calls + lg_calls), 1)
        if sf_calls + lg_calls
        else None,
        "dag_id": raw["dag_id"],
        "status": raw["status"],
        "stages": stages,
        "seconds": round(seconds, 1),
        "latency_floor_seconds": round(floor, 1),
        "beyond_floor_seconds": round(seconds - floor, 1),
        "records": records,
        "records_per_second": round(records / seconds, 1) if seconds else None,
        "sf_calls": sf_calls,
        "lg_calls": lg_calls,
        "sf_by_kind": raw["sf_calls"].get("by_kind"),
        "lg_by_method": raw["lg_calls"].get("by_method"),
        "peak_rss_mib": max((s["rss_mib"] or 0) for s in stages.values()),
        "report_extracted": report.get("extracted"),
        "report_sides": {"salesforce": report.get("salesforce"), "leadgen": report.get("leadgen")},
    }


def ceil_div(n: int, d: int) -> int:
    return math.ceil(n / d) if n > 0 else 0


def sf_write_bound(n: int) -> int:
    """The fewest calls that write ``n`` records of one object and operation."""
    return min(ceil_div(n, SF_COLLECTION), SF_BULK_JOB)


def _writes(
    counts: dict[str, int], *, strip: tuple[str, ...] = ("_ok", "_failed")
) -> dict[str, int]:
    """Load counters (``create_Lead_ok``...) -> records attempted per operation and object."""
    out: dict[str, int] = {}
    for key, n in counts.items():
        for suffix in strip:
            if key.endswith(suffix):
                op = key[: -len(suffix)]
                out[op] = out.get(op, 0) + n
    return out


def _summ(raw: dict[str, Any], task: str) -> dict[str, Any]:
    out = (raw["tasks"].get(task) or {}).get("result") or {}
    return out.get("summary", out) if task == "prepare" else out


def people_bound(raw: dict[str, Any]) -> dict[str, Any]:
    """Lower bound of the people DAG's calls for the work its run did (see docs/benchmarks.md)."""
    full = bool((_summ(raw, "prepare").get("window_start") or "").startswith("2000-"))
    lg_ex = _summ(raw, "extract_leadgen").get("extracted", {})
    sf_ex = _summ(raw, "extract_salesforce").get("extracted", {})
    match = _summ(raw, "match").get("counts", {})
    pairs = int(_summ(raw, "match").get("pairs", 0))
    lg_read = int(lg_ex.get("lead", 0))
    sf_read = {o: int(sf_ex.get(o, 0)) for o in ("Lead", "Contact")}
    lg_need = (
        pairs
        - int(match.get("new_from_salesforce", 0))
        - int(match.get("duplicate_in_salesforce", 0))
    )
    sf_need = pairs - int(match.get("new_from_leadgen", 0))
    lg = {
        "read_changes": max(1, ceil_div(lg_read, LG_OBJECTS if full else LG_RANGE_PAGE)),
        "read_retries": ceil_div(int(lg_ex.get("lead_retried", 0)), LG_OBJECTS),
        "counterparts": ceil_div(max(0, lg_need - lg_read), LG_OBJECTS),
        "owners": 1,
    }
    for op, n in _writes(_summ(raw, "load_leadgen").get("counts", {})).items():
        lg[f"write_{op}"] = ceil_div(n, LG_OBJECTS)
        if op == "update":
            lg["read_back"] = ceil_div(n, LG_OBJECTS)
    sf = {f"read_{o}": max(1, ceil_div(n, SF_PAGE)) for o, n in sf_read.items()}
    sf["read_retries"] = ceil_div(sum(int(sf_ex.get(f"{o}_retried", 0)) for o in sf_read), SF_PAGE)
    sf["counterparts"] = ceil_div(max(0, sf_need - sum(sf_read.values())), SF_PAGE)
    sf["owners"] = 1
    for op, n in _writes(_summ(raw, "load_salesforce").get("counts", {})).items():
        sf[f"write_{op}"] = sf_write_bound(n)
    return {
        "leadgen": lg,
        "salesforce": sf,
        "per_record": {"leadgen": 2 * sum(sf_read.values()), "salesforce": 2 * lg_read},
    }


def opportunities_bound(raw: dict[str, Any]) -> dict[str, Any]:
    ex = _summ(raw, "extract").get("extracted", {})
    full = bool((_summ(raw, "prepare").get("window_start") or "").startswith("2000-"))
    match = _summ(raw, "match")
    sf = {
        "read_Opportunity": max(1, ceil_div(int(ex.get("Opportunity", 0)), SF_PAGE)),
        "read_Account": max(1, ceil_div(int(ex.get("Account", 0)), SF_PAGE)),
        "read_Contact": max(1, ceil_div(int(ex.get("Contact", 0)), SF_PAGE)),
        "read_roles": ceil_div(int(ex.get("roles_in_run", 0)), SF_PAGE),
        "owners": 1,
    }
    if not full:
        sf["read_OpportunityContactRole"] = max(
            1, ceil_div(int(ex.get("OpportunityContactRole", 0)), SF_PAGE)
        )
    held = sum(int(v) for k, v in ex.items() if k.startswith("held_"))
    sf["read_held"] = ceil_div(held, SF_PAGE)
    lg = {
        "lookup_opportunities": ceil_div(
            int(match.get("opportunities", {}).get("linked", 0)), LG_OBJECTS
        ),
        "lookup_accounts": ceil_div(int(match.get("accounts", {}).get("linked", 0)), LG_OBJECTS),
        "owners_and_stages": 2,
    }
    counts = _summ(raw, "load_leadgen").get("counts", {})
    for op, n in _writes(counts, strip=("_ok", "_failed")).items():
        lg[f"write_{op}"] = ceil_div(n, LG_OBJECTS)
        if op.endswith("_update"):
            lg[f"read_back_{op}"] = ceil_div(n, LG_OBJECTS)
    records = (
        int(ex.get("opportunities_in_run", 0))
        + int(ex.get("accounts_in_run", 0))
        + int(ex.get("roles_in_run", 0))
    )
    return {
        "leadgen": lg,
        "salesforce": sf,
        "per_record": {"leadgen": 2 * records, "salesforce": 0},
    }


def engagement_bound(raw: dict[str, Any]) -> dict[str, Any]:
    ex = _summ(raw, "extract")
    events = sum(int(v) for v in (ex.get("extracted") or {}).values())
    plan = _summ(raw, "plan").get("counts", {})
    deliver = sum(int(v) for k, v in plan.items() if k.endswith(":deliver"))
    people = deliver + sum(int(v) for k, v in plan.items() if k.endswith(":hold"))
    load = _summ(raw, "load").get("counts", {})
    created = int(load.get("created", 0)) + int(load.get("failed", 0))
    lg = {"read_events": max(1, ceil_div(events, LG_OBJECTS))}
    sf = {
        "owners": 1,
        "people": ceil_div(people, SF_PAGE),
        "existing_tasks": ceil_div(deliver, SF_PAGE),
        "write_upsert": sf_write_bound(created),
    }
    return {"leadgen": lg, "salesforce": sf, "per_record": {"leadgen": 0, "salesforce": 2 * events}}


BOUNDS = {
    "sync_leads_contacts": people_bound,
    "sync_opportunities": opportunities_bound,
    "sync_engagement_activities": engagement_bound,
}


def print_run(scenario: str, f: dict[str, Any]) -> None:
    print(
        f"{scenario:8s} {f['dag_id']:28s} {f['status']:18s} {f['seconds']:8.1f} s "
        f"(floor {f['latency_floor_seconds']:.1f} s) records={f['records']:,} "
        f"sf={f['sf_calls']} lg={f['lg_calls']} peak_rss={f['peak_rss_mib']} MiB",
        flush=True,
    )
    print(
        f"    lower bound sf={f['lower_bound']['salesforce']} lg={f['lower_bound']['leadgen']} "
        f"(x{f['calls_over_bound']['salesforce']} / x{f['calls_over_bound']['leadgen']}); "
        f"per-record sync {f['per_record_calls']:,} calls ({f['fewer_than_per_record']}x more)",
        flush=True,
    )
    for name, s in f["stages"].items():
        print(
            f"    {name:18s} {s['state']:8s} {s['seconds'] or 0:8.2f} s (process {s['wall']:.1f} s) "
            f"rss={s['rss_mib']:7.1f} MiB sf={s['sf_calls']} lg={s['lg_calls']}",
            flush=True,
        )
    print(f"    sf by kind: {f['sf_by_kind']}\n    lg by method: {f['lg_by_method']}", flush=True)


def print_summary(figures: dict[str, Any]) -> None:
    print("\nsummary")
    for key, f in figures["runs"].items():
        print(
            f"  {key:45s} {f['seconds']:8.1f} s sf={f['sf_calls']:6d} lg={f['lg_calls']:6d} "
            f"rss={f['peak_rss_mib']:.0f} MiB"
        )
