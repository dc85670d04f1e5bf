"""An account whose API speaks local time (sandbox ``account_timezone``) read by a client told
so (``output_timezone``): timestamps come back in UTC, windows are sent in local time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.contract

ZONE = "America/New_York"  # UTC-4 in July
NOON_UTC = datetime(2026, 7, 1, 16, 0, tzinfo=UTC)


@pytest.fixture
def new_york(admin):
    admin.config(account_timezone=ZONE)
    admin.freeze("2026-07-01 16:00:00")  # the admin clock is UTC
    return admin


def test_reads_come_back_in_utc_and_windows_go_out_in_local_time(make_client, new_york, raw):
    local = make_client(output_timezone=ZONE)
    [created] = local.create_leads([{"emailAddress": "ny@example.com"}])
    api_view = raw("getLead", {"id": created.id})["result"]["lead"][0]
    assert api_view["updateTimestamp"] == "2026-07-01 12:00:00"  # what the API itself says
    lead = local.get_lead(created.id)
    assert (lead["updateTimestamp"], lead["createTimestamp"]) == ("2026-07-01 16:00:00",) * 2
    window = list(local.get_leads_date_range(NOON_UTC, NOON_UTC))
    assert [row["id"] for row in window] == [created.id]
    # a client that wrongly assumes UTC asks for 16:00 local time and misses the lead
    assumes_utc = make_client()
    assert list(assumes_utc.get_leads_date_range(NOON_UTC, NOON_UTC)) == []
    assert assumes_utc.get_lead(created.id)["updateTimestamp"] == "2026-07-01 12:00:00"


def test_event_windows_and_times_follow_the_account_zone(make_client, new_york):
    local = make_client(output_timezone=ZONE)
    lead = local.create_leads([{"emailAddress": "ev@example.com"}])[0].id
    for at in ("2026-07-01 15:59:59", "2026-07-01 16:30:00", "2026-07-01 17:00:01"):  # UTC
        new_york.post("/page-visits", {"leadID": int(lead), "url": "https://x.example/", "_at": at})
    events = list(local.get_events(NOON_UTC, datetime(2026, 7, 1, 17, 0, tzinfo=UTC)))
    assert [e["createTimestamp"] for e in events] == ["2026-07-01 16:30:00"]
    assert new_york.calls()["by_method"]["getEvents"] == 1  # the upper bound went to the API
