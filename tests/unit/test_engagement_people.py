"""The engagement plan's people lookups open the Salesforce client only when a record is needed:
an hour without events (or whose leads are not linked) makes no login."""

from __future__ import annotations

import pytest

from crm_sync.domains.engagement.plan import People
from crm_sync.state.store import SyncStore

pytestmark = pytest.mark.unit


class FakeSalesforce:
    def __init__(self) -> None:
        self.queries: list[tuple[str, list[str]]] = []

    def query_by_values(self, sobject, fields, key, values):
        self.queries.append((sobject, list(values)))
        return [{"Id": v, "OwnerId": "005000000000001AAA"} for v in values]


def test_people_open_the_salesforce_client_only_for_records(make_ctx, tmp_state_url) -> None:
    store = SyncStore(tmp_state_url)
    sf = FakeSalesforce()
    opened: list[int] = []

    def client() -> FakeSalesforce:
        opened.append(1)
        return sf

    people = People(client, store, make_ctx("sync_engagement_activities"))
    try:
        people.load([])  # no events
        people.load(["11"])  # a lead without a link
        assert opened == [] and people.links == {}
        store.upsert_link("person", "22", "Contact", "003000000000001AAA", run_id="r1")
        people.load(["22"])
        assert opened == [1]
        assert sf.queries == [("Contact", ["003000000000001AAA"])]
        assert people.record("003000000000001AAA")["OwnerId"] == "005000000000001AAA"
    finally:
        people.close()
        store.dispose()
