"""Reads of the Lead Gen & CRM client: batched lookups, single getters, the getEvents window,
the account's output time zone, decoded values. In-process fake transport."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from crm_sync.clients.leadgen import LeadGenApiError
from tests.unit.test_leadgen_client import _pager, api_error, make

pytestmark = pytest.mark.unit

W0 = datetime(2026, 7, 1, 16, 0, tzinfo=UTC)
W1 = datetime(2026, 7, 1, 17, 0, tzinfo=UTC)


def _where_lists(key: str, result_key: str, stored: dict[str, list[dict[str, Any]]]):
    """A fake list method whose where.<key> takes a list (rows ordered by id)."""

    def reply(body):
        p = body["params"]
        wanted = p["where"][key]
        rows = sorted((r for v in wanted for r in stored.get(v, [])), key=lambda r: int(r["id"]))
        return {result_key: rows[p["offset"] : p["offset"] + p["limit"]]}

    return reply


@pytest.mark.parametrize(
    ("method", "api", "key"),
    [
        ("get_opportunities_by_ids", "getOpportunities", "opportunity"),
        ("get_accounts_by_ids", "getAccounts", "account"),
        ("get_opportunity_leads_by_ids", "getOpportunityLeads", "getWhereopportunityLeads"),
    ],
)
def test_lookups_by_ids_take_500_ids_per_call_in_the_order_asked(method, api, key):
    stored = {str(i): [{"id": str(i)}] for i in range(1, 1201)}
    client, session, _ = make(_where_lists("id", key, stored))
    asked = [str(i) for i in reversed(range(1, 1202))]  # 1201 ids, one (1201) missing
    found = getattr(client, method)(asked)
    assert [r["id"] for r in found] == asked[1:]
    assert [b["method"] for b in session.bodies] == [api] * 3
    assert [len(b["params"]["where"]["id"]) for b in session.bodies] == [500, 500, 201]


def test_memberships_by_opportunity_ids_page_each_query():
    stored = {
        str(o): [{"id": str(o * 1000 + n), "opportunityID": str(o)} for n in range(300)]
        for o in range(1, 4)
    }
    client, session, _ = make(_where_lists("opportunityID", "getWhereopportunityLeads", stored))
    rows = client.get_opportunity_leads_by_opportunity_ids(["1", "2", "3", "2"])
    assert len(rows) == 900 and len({r["id"] for r in rows}) == 900
    assert session.bodies[0]["params"]["where"] == {"opportunityID": ["1", "2", "3"]}
    assert [b["params"]["offset"] for b in session.bodies] == [0, 499]


@pytest.mark.parametrize(
    ("method", "api", "key"),
    [
        ("get_account", "getAccount", "account"),
        ("get_opportunity", "getOpportunity", "opportunity"),
        ("get_deal_stage", "getDealStage", "dealStage"),
        ("get_campaign", "getCampaign", "campaign"),
        ("get_opportunity_lead", "getOpportunityLead", "opportunityLead"),
    ],
)
def test_single_record_getters(method, api, key):
    rows = {"7": [{"id": "7", "name": "R &amp; D"}]}
    client, session, _ = make(lambda body: {key: rows.get(body["params"]["id"], [])})
    assert getattr(client, method)(7) == {"id": "7", "name": "R & D"}
    assert getattr(client, method)("8") is None
    assert session.bodies[0]["method"] == api and session.bodies[0]["params"] == {"id": "7"}


def test_email_lookups_trim_and_lower_case():
    client, session, _ = make(lambda body: {"lead": [{"id": "1", "emailAddress": "Jane@X.test"}]})
    found = client.get_leads_by_emails(["  JANE@x.test ", "jane@x.test", " "])
    assert [r["id"] for r in found] == ["1"]
    assert session.bodies[0]["params"]["where"] == {"emailAddress": ["jane@x.test"]}


def test_events_send_both_bounds_and_still_filter_locally():
    events = [{"id": str(i), "createTimestamp": f"2026-07-01 1{i}:00:00"} for i in range(5, 9)]
    client, session, _ = make(_pager(events, key="event"))
    got = [e["id"] for e in client.get_events(W0, W1, event_source="emailClick")]
    assert got == ["6", "7"]  # the fake ignores the bounds; the client applies until itself
    params = session.bodies[0]["params"]
    assert params["where"] == {
        "createTimestamp": "2026-07-01 16:00:00",
        "eventSource": "emailClick",
    }
    assert params["endDate"] == "2026-07-01 17:00:00"


def test_events_stop_sending_end_date_if_the_api_refuses_it():
    def reply(body):
        if "endDate" in body["params"]:
            return api_error(205, "Invalid parameters: unknown parameter endDate")
        return {"event": [{"id": "1", "createTimestamp": "2026-07-01 16:30:00"}]}

    client, session, _ = make(reply)
    assert [e["id"] for e in client.get_events(W0, W1)] == ["1"]
    assert [e["id"] for e in client.get_events(W0, W1)] == ["1"]
    assert ["endDate" in b["params"] for b in session.bodies] == [True, False, False]
    other, _, _ = make(lambda body: api_error(205, "Invalid parameters: where"))
    with pytest.raises(LeadGenApiError):
        list(other.get_events(W0, W1))


def test_non_utc_account_dates_go_out_local_and_timestamps_come_back_utc():
    lead = {
        "id": "1",
        "updateTimestamp": "2026-07-01 12:30:00",
        "createTimestamp": "2026-07-01 12:00:00",
    }
    client, session, _ = make(
        lambda body: {"lead": [dict(lead)]}, output_timezone="America/New_York"
    )
    [got] = list(client.get_leads_date_range(W0, W1))
    params = session.bodies[0]["params"]
    assert (params["startDate"], params["endDate"]) == (
        "2026-07-01 12:00:00",
        "2026-07-01 13:00:00",
    )
    assert (got["updateTimestamp"], got["createTimestamp"]) == (
        "2026-07-01 16:30:00",
        "2026-07-01 16:00:00",
    )
    events, s2, _ = make(
        lambda body: {"event": [{"id": "1", "createTimestamp": "2026-07-01 12:59:59"}]},
        output_timezone="America/New_York",
    )
    assert [e["createTimestamp"] for e in events.get_events(W0, W1)] == ["2026-07-01 16:59:59"]
    assert s2.bodies[0]["params"]["where"]["createTimestamp"] == "2026-07-01 12:00:00"


def test_full_range_pages_are_split_not_offset_paged():
    rows = [{"id": str(i), "updateTimestamp": f"2026-07-01 16:{i:02d}:00"} for i in range(10)]

    def reply(body):
        p = body["params"]
        inside = [r for r in rows if p["startDate"] <= r["updateTimestamp"] <= p["endDate"]]
        return {"lead": inside[p["offset"] : p["offset"] + p["limit"]]}

    client, session, _ = make(reply, page_size=4)
    got = [r["id"] for r in client.get_leads_date_range(W0, W1)]
    assert got == [str(i) for i in range(10)]
    assert {b["params"]["offset"] for b in session.bodies} == {0}
