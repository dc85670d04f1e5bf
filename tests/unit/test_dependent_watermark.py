"""A DAG that depends on another never moves its watermark past what that one synced (issue 15,
found by tests/chaos/test_fault_storm.py).

The storm's people run failed (Salesforce's allocation spent during its load) while a lead was
converted; the opportunities run triggered right after ("now" runs do not wait for the people
sync) met the new Contact's Account before the Contact was linked, skipped it, and moved its
watermark past the conversion. The next runs never met that Account again: crm_sync.verify
reported it as ``account_missing``. Now the opportunities watermark stops where the people sync
stopped, so the next run reads the conversion again, once the Contact is linked.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from crm_sync.definitions import SF_TO_LG
from crm_sync.pipeline.apply import record_run
from crm_sync.state.store import SyncStore

pytestmark = pytest.mark.unit

PEOPLE, OPPS = "sync_leads_contacts", "sync_opportunities"


@pytest.fixture
def store(tmp_state_url: str) -> SyncStore:
    return SyncStore(tmp_state_url)


def record(make_ctx: Any, store: SyncStore, run_id: str, **kw: Any) -> Any:
    ctx = make_ctx(OPPS, run_id=run_id, run_kind="now", run_type="manual")
    store.start_run(OPPS, run_id, window_start=ctx.window_start, window_end=ctx.window_end,
                    dry_run=False, full_resync=False)  # fmt: skip
    record_run(
        ctx,
        store,
        stream="opportunities",
        directions=(SF_TO_LG,),
        summaries={},
        walk=lambda tally, changes: None,
        extracted={},
        **kw,
    )
    return ctx


def test_the_watermark_stops_where_the_upstream_dag_stopped(make_ctx, store) -> None:
    ctx = make_ctx(OPPS)
    behind = ctx.window_end - timedelta(minutes=40)
    store.advance_watermark(PEOPLE, "people", behind, "people run that failed after this")
    record(make_ctx, store, "r1", upstream=PEOPLE)
    assert store.get_watermark(OPPS, "opportunities") == behind
    # once the people sync has caught up, the next run covers up to its own end
    store.advance_watermark(PEOPLE, "people", ctx.window_end + timedelta(hours=1), "caught up")
    record(make_ctx, store, "r2", upstream=PEOPLE)
    assert store.get_watermark(OPPS, "opportunities") == ctx.window_end


def test_without_an_upstream_or_its_watermark_the_window_end_counts(make_ctx, store) -> None:
    ctx = record(make_ctx, store, "r1", upstream=PEOPLE)  # the people sync never ran
    assert store.get_watermark(OPPS, "opportunities") == ctx.window_end
    store.advance_watermark(PEOPLE, "people", ctx.window_start, "people")
    record(make_ctx, store, "r2")  # a DAG that depends on nothing
    assert store.get_watermark(OPPS, "opportunities") == ctx.window_end
