"""Benchmark of the scope filter and the record_ids parser (not a test: it prints figures).

    .venv/bin/python bench/bench_scope.py [--records 200000]

Pure, in process, no sandbox. Measures:

1. ``in_scope`` over ``--records`` leads as getLeads returns them (all text), with a scope of
   three conditions (picklist not_in, number gt, custom text contains) and a list of members:
   records per second;
2. ``scope_mask`` over the same leads as a DataFrame: rows per second;
3. ``compile_soql`` of a ten-condition Salesforce scope: microseconds per call;
4. ``parse_record_ids`` of 1,000 mixed entries (ids of both systems, emails) in one text:
   milliseconds per call.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]

import pandas as pd  # noqa: E402

from crm_sync.clients.salesforce.util import to_18  # noqa: E402
from crm_sync.mapping.schema import LiveSchema  # noqa: E402
from crm_sync.mapping.scope import compile_soql  # noqa: E402
from crm_sync.pipeline.record_ids import parse_record_ids  # noqa: E402
from crm_sync.pipeline.scope import bind_scope, in_scope, scope_mask  # noqa: E402
from sandbox.leadgen.catalog import FIELDS_BY_RELATIONSHIP  # noqa: E402
from sandbox.salesforce.schema import default_objects  # noqa: E402
from tests.unit.scope_fixtures import person_spec  # noqa: E402

TIER = "customer_tier_5f1a2b3c4d5e7"


def schema() -> LiveSchema:
    s = LiveSchema()
    s.add_salesforce_describe("Lead", default_objects()["Lead"].describe("59.0"))
    s.add_leadgen_fields(
        [
            {"relationship": rel, "systemName": f.name, "dataType": f.data_type, "isCustom": "1"}
            for rel, fields in FIELDS_BY_RELATIONSHIP.items()
            for f in fields
        ]
        + [{"relationship": "lead", "systemName": TIER, "dataType": "string", "isCustom": "1"}]
    )
    return s


def timed(fn, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    n = ap.parse_args().records
    rng = random.Random(17)
    live = schema()
    lg_spec = person_spec(
        leadgen={
            "where": [
                {"field": "leadStatus", "op": "not_in", "values": ["unqualified"]},
                {"field": "leadScore", "op": "gt", "value": 10},
                {"field": TIER, "op": "contains", "value": "ol"},
            ],
            "lists": [1],
        }
    )
    leads = [
        {
            "id": str(i),
            "leadStatus": rng.choice(["open", "qualified", "unqualified", "contact"]),
            "leadScore": str(rng.randint(0, 40)),
            TIER: rng.choice(["Gold", "Silver", "", "Bronze"]),
        }
        for i in range(n)
    ]
    members = {str(i) for i in range(0, n, 2)}
    scope = bind_scope(lg_spec, "leadgen", live, members=members)
    kept = 0

    def run_in_scope() -> None:
        nonlocal kept
        kept = sum(1 for lead in leads if in_scope(scope, lead))

    seconds = timed(run_in_scope)
    print(
        f"in_scope      {n:,} leads: {seconds:.2f} s, {n / seconds:,.0f} records/s ({kept:,} kept)"
    )
    frame = pd.DataFrame(leads)
    seconds = timed(lambda: scope_mask(scope, frame))
    print(f"scope_mask    {n:,} rows:  {seconds:.2f} s, {n / seconds:,.0f} rows/s")

    sf_spec = person_spec(
        salesforce={
            "where": [
                {"field": "LeadSource", "op": "in", "values": ["Web", "Partner Referral"]},
                {"field": "Country", "op": "not_blank"},
                {"field": "City", "op": "contains", "value": "O'Brien 50%"},
                {"field": "NumberOfEmployees", "op": "gte", "value": 50},
                {"field": "AnnualRevenue", "op": "lt", "value": 1e7},
                {"field": "CreatedDate", "op": "gte", "value": date(2024, 1, 1)},
                {"field": "HasOptedOutOfEmail", "op": "eq", "value": False},
                {"field": "Rating", "op": "ne", "value": "Cold"},
                {"field": "Status", "op": "not_in", "values": ["Closed - Not Converted"]},
                {"field": "Title", "op": "blank"},
            ]
        }
    )
    seconds = timed(lambda: compile_soql(sf_spec.scope, "Lead", live), repeat=2000)
    print(f"compile_soql  10 conditions: {seconds * 1e6:.0f} µs per call")

    entries = []
    for i in range(1000):
        kind = i % 3
        if kind == 0:
            entries.append(str(100_000 + i))
        elif kind == 1:
            entries.append(to_18(f"00Q5e{i:010d}"))
        else:
            entries.append(f"Person.{i}@Example.com")
    text = "\n".join(entries)
    seconds = timed(lambda: parse_record_ids(text), repeat=20)
    print(f"record_ids    1,000 entries: {seconds * 1000:.1f} ms per parse")


if __name__ == "__main__":
    main()
