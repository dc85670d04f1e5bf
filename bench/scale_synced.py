"""The synced start of ``bench_scale.py`` (``--start synced``; not a test): the state an initial
load and its catch-up run would leave, built directly and fast instead of by running them.

1. Lead Gen & CRM: the sandbox's fast seed (``people`` leads, no defective rows, no marketing
   history, none inactive), stamped before the first hour the bench syncs.
2. Salesforce: one Lead or Contact per lead (``rules.target_object``: a lead in contact status is
   a Contact), with the payload the people DAG's reconcile stage plans for a lead that has no
   Salesforce record yet (``reconcile`` itself: mapped values, the owner fallback, the record
   link id and URL), inserted through the sandbox's admin API as the integration user.
3. The state store: one active ``person`` link per pair whose ``synced_values`` are the plan's
   ``agreed_if_sf`` (what the record stage stores after that create succeeded), bulk-inserted
   with SQLAlchemy Core in chunks; the people and engagement watermarks at ``high_water``; the
   schemas of Lead, Contact and Task in the schema cache (as the catch-up's prepare leaves them).

Opportunities, accounts and contact roles are not built (the opportunities DAG is left out of a
synced-start bench), and neither is a marketing history (nothing for engagement to catch up).
Everything is read and written in chunks of :data:`CHUNK` leads, so the bench process stays small.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

import requests

log = logging.getLogger(__name__)

CHUNK = 20_000
SYNCED_RUN_ID = "bench_synced_start"
SF_INTEGRATION_USER = "integration@sandbox.example"


def _chunks(rows: Iterable[Any], n: int) -> Iterator[list[Any]]:
    it = iter(rows)
    while chunk := list(islice(it, n)):
        yield chunk


def reconcile_context(sf: Any, lg: Any, store: Any) -> Any:
    """What the people DAG's prepare builds (specs checked against the live schemas, owner
    map, app URL), through the library's own functions; the schemas it reads are kept in the
    schema cache, as a prepare keeps them."""
    from crm_sync.domains.people.plan import new_lead_fields
    from crm_sync.domains.people.rules import SPEC_NAMES
    from crm_sync.pipeline.prepare import (
        check_specs,
        load_specs,
        read_live_schema,
        resolve_owners,
        schema_cache,
    )
    from crm_sync.pipeline.reconcile import ReconcileContext
    from crm_sync.runtime import app_base_url

    specs = load_specs(SPEC_NAMES)
    cache = schema_cache(store, sf, lg)
    schema = read_live_schema(specs, sf, lg, ("Task",))
    check_specs(specs, schema)
    cache.keep(sf, lg)
    return ReconcileContext(
        specs=specs,
        schema=schema,
        owners=resolve_owners(sf, lg),
        app_base_url=app_base_url(),
        create_defaults=new_lead_fields,
    )


def plan_chunk(leads: list[dict[str, Any]], rctx: Any) -> list[Any]:
    """The people DAG's plans for leads with no Salesforce record and no link (``match`` new)."""
    from crm_sync.domains.people.pairs import make_pair
    from crm_sync.domains.people.rules import target_object
    from crm_sync.pipeline.reconcile import reconcile

    pairs = [
        make_pair(
            f"lg:{rec['id']}", lg=rec, sf=None, sf_object=target_object(rec), link=None, match="new"
        )
        for rec in leads
    ]
    return reconcile(pairs, rctx)


def creatable(plan: Any) -> bool:
    """The plan creates a Salesforce record that passes the validate stage's email rule (the
    seed's few non-ASCII addresses would be quarantined by a real load, not linked)."""
    import re

    from crm_sync.pipeline.validate import EMAIL_RE

    email = plan.sf_payload.get("Email")
    return plan.sf_op == "create" and (email is None or re.match(EMAIL_RE, email) is not None)


def write_chunk(loc: Any, plans: list[Any], at: datetime, store: Any) -> int:
    """Create the chunk's Salesforce records, then their links (one Core ``executemany``)."""
    from sqlalchemy import insert

    from crm_sync.domains.people.rules import DOMAIN
    from crm_sync.state._common import utcnow
    from crm_sync.state.models import Link

    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for sobject in ("Lead", "Contact"):
        group = [p for p in plans if p.sf_object == sobject and creatable(p)]
        if not group:
            continue
        body = {"records": [p.sf_payload for p in group], "_at": stamp, "_as": SF_INTEGRATION_USER}
        try:
            out = loc.sf_admin("POST", f"records/{sobject}", body)
        except requests.HTTPError as exc:  # the sandbox says which record and why
            raise SystemExit(
                f"synced start: {sobject} create refused: {exc.response.text}"
            ) from exc
        for plan, sf_id in zip(group, out["ids"], strict=True):
            rows.append(
                {
                    "domain": DOMAIN,
                    "lg_id": str(plan.lg_id),
                    "sf_object": sobject,
                    "sf_id": sf_id,
                    "status": "active",
                    "synced_values": dict(plan.agreed_if_sf),
                    "created_at": now,
                    "updated_at": now,
                    "last_run_id": SYNCED_RUN_ID,
                }
            )
    with store.engine.begin() as conn:
        conn.execute(insert(Link), rows)
    return len(rows)


def seed_synced(loc: Any, *, people: int, at: datetime, high_water: datetime) -> dict[str, Any]:
    """Both sandboxes reset and seeded as of ``at``, every lead paired with a Salesforce record
    holding the same mapped values, the links and watermarks in the store. Returns counts."""
    import local

    from crm_sync.runtime import leadgen_client, salesforce_client, shared_store

    t0 = time.perf_counter()
    loc.sf_admin("POST", "reset")
    loc.lg_admin("POST", "reset")
    local.freeze(loc, at)
    limits = loc.lg_admin("GET", "config")
    # The seed's own reads are not the sync's: no call limits while building the state.
    loc.lg_admin("POST", "config", {"per_second_limit": 0, "daily_limit": 0})
    lg_seed = loc.lg_admin(
        "POST",
        "seed",
        {"leads": people, "seed": 42, "defects": False, "activity_leads": 0, "inactive": 0},
    )
    t_lg = time.perf_counter() - t0
    sf, lg, store = salesforce_client(), leadgen_client(), shared_store("sync_state")
    rctx = reconcile_context(sf, lg, store)
    counts = {"Lead": 0, "Contact": 0, "links": 0, "not_created": 0}
    leads = lg.get_leads_date_range(at - timedelta(days=3650), at, timestamp="update")
    spent = {"read": 0.0, "plan": 0.0, "write": 0.0}  # seconds per phase, over all chunks
    t = time.perf_counter()
    for chunk in _chunks(leads, CHUNK):
        spent["read"] += time.perf_counter() - t
        t = time.perf_counter()
        plans = plan_chunk(chunk, rctx)
        spent["plan"] += time.perf_counter() - t
        counts["not_created"] += sum(1 for p in plans if not creatable(p))
        t = time.perf_counter()
        counts["links"] += write_chunk(loc, plans, at, store)
        spent["write"] += time.perf_counter() - t
        for p in plans:
            counts[p.sf_object] += creatable(p)
        log.info("synced start: %d links", counts["links"])
        t = time.perf_counter()
    for dag_id, stream in (
        ("sync_leads_contacts", "people"),
        ("sync_engagement_activities", "engagement"),
    ):
        store.advance_watermark(dag_id, stream, high_water, SYNCED_RUN_ID)
    loc.lg_admin(
        "POST",
        "config",
        {"per_second_limit": limits["per_second_limit"], "daily_limit": limits["daily_limit"]},
    )
    check = check_sample(sf, rctx, store)
    return {
        "leadgen_leads": lg_seed.get("leads"),
        "salesforce": {"Lead": counts["Lead"], "Contact": counts["Contact"]},
        "links": counts["links"],
        "leads_not_linked": counts["not_created"],
        "leadgen_seed_seconds": round(t_lg, 1),
        "phase_seconds": {k: round(v, 1) for k, v in spent.items()},
        "sample_check": check,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def check_sample(sf: Any, rctx: Any, store: Any, n: int = 2000) -> dict[str, Any]:
    """Read ``n`` linked Salesforce records back and compare their canonical values (the
    library's ``canonicalize_salesforce``) with the links' ``synced_values``: the fields that
    differ are what a first sync of an edited record would write besides the edit."""
    import pandas as pd
    from sqlalchemy import select

    from crm_sync.domains.people.rules import sf_fields
    from crm_sync.pipeline.transform import canonicalize_salesforce
    from crm_sync.state.models import Link

    with store.session() as s:
        links = list(s.execute(select(Link.sf_object, Link.sf_id, Link.synced_values).limit(n)))
    differ: dict[str, int] = {}
    for sobject, spec in rctx.specs.items():
        mine = {lk.sf_id: lk.synced_values for lk in links if lk.sf_object == sobject}
        if not mine:
            continue
        recs = list(sf.query_by_values(sobject, sf_fields(spec), "Id", list(mine)))
        frame = canonicalize_salesforce(pd.DataFrame(recs), spec, rctx.schema)
        for sf_id, synced in mine.items():
            row = frame.loc[sf_id]
            for r in spec.synced_fields:
                if r.direction.writes_salesforce and row[r.key] != synced.get(r.key):
                    differ[f"{sobject}.{r.key}"] = differ.get(f"{sobject}.{r.key}", 0) + 1
    return {"records": len(links), "fields_differing": differ}
