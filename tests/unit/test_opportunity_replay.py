"""A retried opportunities load replays the links of what its killed attempt wrote (issue 15,
found by tests/chaos/test_kill9.py: load_leadgen killed after its last batch, before it could
report success).

The plans a retry reads from disk hold no reference the killed attempt resolved while it wrote:
a membership of an opportunity created in the same load has no ``opportunityID``, an opportunity
whose account was created in the same load has no ``accountID``. Replaying them as they are
recorded every membership link of the run with a blank opportunity, and the invariant checker
then found every one of those contact roles missing.
"""

from __future__ import annotations

from typing import Any

import pytest

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
