"""The Lead Gen & CRM daily budget and an initial load spread over days: the client is held to
``CRM_SYNC_LG_API_BUDGET``, the opportunities load stops between batches with its progress and
ETA, and the next runs continue the full resync (only once half a day's budget is free),
writing only what the stopped run did not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from crm_sync.budget import Budget, current_lg_budget, eta, guard
from crm_sync.clients.results import WriteResult
from crm_sync.errors import BudgetExhaustedError
from crm_sync.state.store import SyncStore

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_state_url: str) -> SyncStore:
    s = SyncStore(tmp_state_url)
    yield s
    s.dispose()


def test_the_leadgen_client_refuses_calls_past_its_allowance_before_sending() -> None:
    from crm_sync.clients.leadgen import LeadGenClient

    client = LeadGenClient("http://127.0.0.1:9/pubapi/v1.2/", "ACCT", "SECRET", max_retries=3)
    guard(client, Budget(cap=100, used=100, retry_stop_share=0.75, system="Lead Gen & CRM"))
    assert client.max_retries == 0  # past the retry-stop share
    with pytest.raises(BudgetExhaustedError, match="Lead Gen & CRM API budget reached"):
        client.get_fields()  # port 9 would refuse the connection: the guard refused first


def test_the_leadgen_budget_counts_every_dag_s_calls_of_the_last_24_hours(
    store: SyncStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_SYNC_LG_API_BUDGET", "1000")
    for i, dag in enumerate(("sync_leads_contacts", "sync_opportunities")):
        store.start_run(
            dag, f"r{i}", window_start=None, window_end=None, dry_run=False, full_resync=False
        )
        store.add_run_calls(dag, f"r{i}", sf=5, lg=300)
    b = current_lg_budget(store)
    assert (b.cap, b.used, b.remaining) == (1000, 600, 400)
    later = current_lg_budget(store, now=datetime.now(UTC) + timedelta(hours=25))
    assert later.used == 0


def test_eta_of_the_rest_at_the_day_s_budget() -> None:
    budget = Budget(cap=40_000, used=40_000, retry_stop_share=0.75)
    assert eta(1_000_000, 0.004, budget) == {
        "remaining": 1_000_000,
        "calls_needed": 4000,
        "calls_per_day": 40_000,
        "eta_days": 0.1,
        "eta_hours": 2.4,
    }
    assert eta(25_000_000, 0.004, budget)["eta_days"] == 2.5


def _context(store: SyncStore, **params: Any):
    from crm_sync.pipeline.prepare import build_context

    hour = datetime(2026, 11, 27, 10, tzinfo=UTC)
    return build_context(
        dag_id="sync_opportunities",
        run_id=f"scheduled__{len(store.recent_runs())}",
        domain="opportunity",
        interval_start=hour - timedelta(hours=1),
        interval_end=hour,
        run_after=hour,
        run_type="scheduled",
        has_logical_date=True,
        params=params,
        store=store,
        stream="opportunities",
        conn_ids={},
    )


def test_a_full_resync_stopped_by_the_budget_is_continued_by_the_next_runs(
    store: SyncStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crm_sync.pipeline.prepare import wait_for_allowance

    monkeypatch.setenv("CRM_SYNC_LG_API_BUDGET", "1000")
    assert not _context(store).full_resync
    first = _context(store, full_resync=True)
    store.start_run(
        first.dag_id,
        first.run_id,
        window_start=first.window_start,
        window_end=first.window_end,
        dry_run=False,
        full_resync=True,
    )
    store.add_run_calls(first.dag_id, first.run_id, lg=900)
    store.finish_run(first.dag_id, first.run_id, status="budget_exhausted", report={})
    nxt = _context(store)  # a scheduled run, full_resync not asked for
    assert nxt.full_resync and nxt.options["resync_continued"]
    assert not _context(store, dry_run=True).full_resync  # a dry run continues nothing
    # only 100 of 1,000 calls free: the continuation waits, spending nothing, and stays pending
    with pytest.raises(
        BudgetExhaustedError, match="goes on when half of the Lead Gen & CRM budget"
    ):
        wait_for_allowance(nxt, store)
    assert store.get_run(nxt.dag_id, nxt.run_id).full_resync
    store.finish_run(nxt.dag_id, nxt.run_id, status="budget_exhausted", report={})
    assert _context(store).full_resync
    # a day later the budget is free: the continuation runs and, once it succeeds, it is over
    monkeypatch.setenv("CRM_SYNC_LG_API_BUDGET", "10000")
    done = _context(store)
    wait_for_allowance(done, store)
    store.start_run(
        done.dag_id,
        done.run_id,
        window_start=done.window_start,
        window_end=done.window_end,
        dry_run=False,
        full_resync=True,
    )
    store.finish_run(done.dag_id, done.run_id, status="success", report={})
    assert not _context(store).full_resync


class BudgetedLeadGen:
    """Creates accounts until its allowance of calls is used, then refuses like the guard."""

    def __init__(self, allowance: int):
        self.allowance = allowance
        self.api_calls = 0
        self.created: list[dict[str, Any]] = []

    def create_accounts(self, objs: list[dict[str, Any]]) -> list[WriteResult]:
        if self.api_calls >= self.allowance:
            raise BudgetExhaustedError("Lead Gen & CRM API budget reached: 1 of 1 calls")
        self.api_calls += 1
        out = []
        for i, o in enumerate(objs):
            self.created.append(o)
            out.append(WriteResult(i, True, id=str(5000 + len(self.created)), created=True))
        return out


def _account_plans(n: int) -> list[dict[str, Any]]:
    return [
        {
            "pair": f"acc:001{i:015d}",
            "kind": "account",
            "lg_op": "create",
            "sf_id": f"001{i:015d}",
            "lg_id": None,
            "lg_payload": {"accountName": f"Account {i}"},
            "agreed_if_lg": {"name": f"Account {i}"},
        }
        for i in range(n)
    ]


def test_the_opportunities_load_stops_between_batches_and_the_next_load_writes_only_the_rest(
    make_ctx, store: SyncStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crm_sync.domains.opportunities.load import load

    monkeypatch.setenv("CRM_SYNC_LG_API_BUDGET", "40000")
    ctx = make_ctx("sync_opportunities")
    ctx.folder.write_jsonl("plans/validated.jsonl", _account_plans(1200))
    lg = BudgetedLeadGen(allowance=1)
    out = load(SimpleNamespace(run=ctx, leadgen=lg, store=store))
    assert out["budget_exhausted"].startswith("Lead Gen & CRM API budget reached")
    assert out["counts"]["account_create_ok"] == 500 and out["counts"]["deferred_by_budget"] == 700
    assert out["progress"] == {
        "written": 500,
        "remaining": 700,
        "calls_needed": 2,  # 1 call per 500 records, at this run's pace
        "calls_per_day": 40_000,
        "eta_days": 0.0,
        "eta_hours": 0.0,
    }
    assert store.count_links("account") == 500  # what was written is linked at once
    # the task (or the next day's run) again: the first batch is not written twice
    lg.allowance = 10
    again = load(SimpleNamespace(run=ctx, leadgen=lg, store=store))
    assert again["counts"]["skipped_already_done"] == 500
    assert again["counts"]["account_create_ok"] == 700 and "budget_exhausted" not in again
    assert len(lg.created) == 1200 and store.count_links("account") == 1200
