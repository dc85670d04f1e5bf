"""A retried opportunities load after its task process was killed (issue 15, both found by
tests/chaos/test_kill9.py):

* killed after its last batch, before it could report success: the retry replays the links of
  what the killed attempt wrote, from plans read from disk, which hold no reference that attempt
  resolved while it wrote (a membership of an opportunity created in the same load has no
  ``opportunityID``, an opportunity whose account was created in the same load no
  ``accountID``). Replayed as they were, every membership link of the run got a blank
  opportunity, and the invariant checker found every one of those contact roles missing;
* killed while a create was in flight (the server applied it, the answer never came back): no
  result was on disk, so the retry created the 29 accounts again. A create is now marked in the
  results before it is sent; the retry looks the marked records up first.
"""

from __future__ import annotations

from typing import Any

import pytest

from crm_sync.clients.results import WriteResult
from crm_sync.state.store import SyncStore

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_state_url: str) -> SyncStore:
    return SyncStore(tmp_state_url)


def _plans() -> list[dict[str, Any]]:
    """An account, its new opportunity and a new membership, as plans/validated.jsonl has them."""
    return [
        {
            "pair": "acc:001A",
            "kind": "account",
            "lg_op": "create",
            "sf_id": "001A",
            "lg_payload": {"accountName": "Acme"},
            "agreed_if_lg": {"name": "Acme"},
        },
        {
            "pair": "opp:006A",
            "kind": "opportunity",
            "lg_op": "create",
            "sf_id": "006A",
            "account_deferred": "001A",
            "lg_payload": {"opportunityName": "Deal"},
            "agreed_if_lg": {"name": "Deal"},
        },
        {
            "pair": "mem:006A:71",
            "kind": "membership",
            "lg_op": "create",
            "opportunity_sf": "006A",
            "lead_lg": "71",
            "contact_sf": "003C",
            "roles": ["00KR"],
            "lg_payload": {"opportunityID": None, "leadID": "71"},
        },
    ]


def _rows() -> list[dict[str, Any]]:
    """What the killed attempt's results file says it created (ids 501, 601, 701)."""
    return [
        {"pair": "acc:001A", "success": True, "id": "501"},
        {"pair": "opp:006A", "success": True, "id": "601"},
        {"pair": "mem:006A:71", "success": True, "id": "701"},
    ]


def test_a_replayed_membership_names_the_opportunity_created_in_the_same_load(
    make_ctx, store
) -> None:
    from crm_sync.domains.opportunities.bookkeeping import Bookkeeper

    books = Bookkeeper(make_ctx("sync_opportunities"), store)
    # the retry reads its plans from disk and replays every success of the killed attempt,
    # links of the earlier batches already recorded or not
    assert books.replay({p["pair"]: p for p in _plans()}, _rows()) == 3
    assert books.replay({p["pair"]: p for p in _plans()}, _rows()) == 3  # idempotent

    [membership] = store.links_by_sf("membership", ["006A"], active_only=True)["006A"]
    assert membership.lg_id == "701"
    assert membership.synced_values["opportunity"] == "601"
    assert membership.synced_values["lead"] == "71"
    [opportunity] = store.links_by_sf("opportunity", ["006A"], active_only=True)["006A"]
    assert opportunity.synced_values["accountID"] == "501"


class Killed(BaseException):
    """The task process dying mid-call: nothing after it runs, nothing catches it."""


class AccountsApi:
    """Lead Gen & CRM accounts in memory; the first create is applied and its caller dies."""

    def __init__(self) -> None:
        self.accounts: dict[str, dict[str, Any]] = {}
        self.create_calls = 0
        self.api_calls = 0

    def create_accounts(self, objs: list[dict[str, Any]]) -> list[WriteResult]:
        self.create_calls += 1
        out = []
        for i, o in enumerate(objs):
            aid = str(500 + len(self.accounts))
            self.accounts[aid] = {**o, "id": aid}
            out.append(WriteResult(i, True, id=aid, created=True))
        if self.create_calls == 1:
            raise Killed
        return out

    def get_accounts_date_range(self, start, end, timestamp="create"):
        return list(self.accounts.values())


def test_a_create_in_flight_when_the_task_was_killed_is_looked_up_not_made_again(
    make_ctx, store
) -> None:
    from crm_sync.domains.opportunities.load import Loader
    from crm_sync.pipeline.results import ResultLog

    ctx, api = make_ctx("sync_opportunities"), AccountsApi()
    [account] = _plans()[:1]
    with pytest.raises(Killed):
        Loader(ctx, api, store, ResultLog(ctx.folder, "lg"), set()).write(
            [account], "create_accounts"
        )
    retry = Loader(ctx, api, store, ResultLog(ctx.folder, "lg"), set())  # the task's retry
    retry.write([dict(account)], "create_accounts")
    assert api.create_calls == 1 and len(api.accounts) == 1
    assert store.links_by_sf("account", ["001A"])["001A"][0].lg_id == "500"
    assert retry.results.latest()["acc:001A"]["adopted"]


def test_a_record_created_by_a_run_that_died_for_good_is_found_by_the_next_run(
    make_ctx, store
) -> None:
    """The run's last attempt died after Lead Gen & CRM created the account and before its link
    was recorded; the run failed. The next run plans the account again (no link): it looks it
    up among the records created around it that no link claims, and adopts it."""
    from types import SimpleNamespace

    from crm_sync.domains.opportunities.load import load

    api = AccountsApi()
    api.create_calls = 1  # from now on creates answer normally
    api.accounts["500"] = {"accountName": "Acme", "id": "500"}  # made by the dead run
    store.start_run(
        "sync_opportunities",
        "scheduled__09",
        window_start=None,
        window_end=None,
        dry_run=False,
        full_resync=False,
    )  # never finished
    ctx = make_ctx("sync_opportunities", run_id="scheduled__10")
    ctx.folder.write_jsonl("plans/validated.jsonl", _plans()[:1])
    load(SimpleNamespace(run=ctx, leadgen=api, store=store))
    assert api.create_calls == 1 and list(api.accounts) == ["500"]
    assert store.links_by_sf("account", ["001A"])["001A"][0].lg_id == "500"
