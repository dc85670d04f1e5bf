"""The schema cache (clients/schema_cache.py) on a real SQLite state store: describes and the
field list are read from the APIs once per TTL, shared by later runs, dropped after a write was
refused for a schema reason, and re-read when a spec check fails on cached schemas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_sync.clients.schema_cache import SchemaCache
from crm_sync.errors import ConfigError
from crm_sync.state.store import SyncStore

pytestmark = pytest.mark.unit

TTL = timedelta(minutes=60)


class FakeSF:
    """The describe side of SalesforceClient (same caching rules), counting API describes."""

    def __init__(self, instance: str = "acme.my.salesforce.com"):
        self.identity = f"sf:{instance}"
        self.api_describes: list[str] = []
        self.fields = {"Lead": ["Id", "Email"], "Contact": ["Id", "Email"]}
        self._cache: dict[str, dict[str, Any]] = {}
        self.described: set[str] = set()

    def describe(self, sobject: str) -> dict[str, Any]:
        if sobject not in self._cache:
            self.api_describes.append(sobject)
            self._cache[sobject] = {
                "name": sobject,
                "fields": [{"name": f} for f in self.fields[sobject]],
            }
            self.described.add(sobject)
        return self._cache[sobject]

    def remember_describe(self, sobject: str, describe: dict[str, Any]) -> None:
        self._cache.setdefault(sobject, dict(describe))

    def forget_describes(self) -> None:
        self._cache.clear()


class FakeLG:
    def __init__(self) -> None:
        self.identity = "lg:https://api.example/#ACCT"
        self.api_calls = 0
        self._fields: list[dict[str, Any]] | None = None
        self.fields_read = False

    def get_fields(self) -> list[dict[str, Any]]:
        if self._fields is None:
            self.api_calls += 1
            self._fields = [{"systemName": "emailAddress"}]
            self.fields_read = True
        return list(self._fields)

    def remember_fields(self, fields: list[dict[str, Any]]) -> None:
        if self._fields is None:
            self._fields = list(fields)

    def forget_fields(self) -> None:
        self._fields = None


@pytest.fixture
def store(tmp_state_url: str) -> SyncStore:
    s = SyncStore(tmp_state_url)
    yield s
    s.dispose()


def a_run(
    store: SyncStore, sf: FakeSF, lg: FakeLG, now: datetime, ttl: timedelta = TTL
) -> SchemaCache:
    """What a prepare does: prime the clients, describe, keep what was read."""
    cache = SchemaCache(store, ttl, now=now)
    cache.prime(sf, lg)
    sf.describe("Lead")
    sf.describe("Contact")
    lg.get_fields()
    cache.keep(sf, lg)
    return cache


def test_a_second_run_within_the_ttl_describes_nothing(store: SyncStore) -> None:
    t0 = datetime.now(UTC)
    first_sf, first_lg = FakeSF(), FakeLG()
    first = a_run(store, first_sf, first_lg, t0)
    assert first_sf.api_describes == ["Lead", "Contact"] and first_lg.api_calls == 1
    assert first.used == {"cached": 0, "stored": 3}
    sf, lg = FakeSF(), FakeLG()  # the next run: new clients, new process
    second = a_run(store, sf, lg, t0 + timedelta(minutes=59))
    assert sf.api_describes == [] and lg.api_calls == 0
    assert second.used == {"cached": 3, "stored": 0}
    assert sf.describe("Lead")["fields"] == [{"name": "Id"}, {"name": "Email"}]


def test_after_the_ttl_both_schemas_are_read_again(store: SyncStore) -> None:
    t0 = datetime.now(UTC)
    a_run(store, FakeSF(), FakeLG(), t0)
    sf, lg = FakeSF(), FakeLG()
    a_run(store, sf, lg, t0 + timedelta(minutes=61))
    assert sf.api_describes == ["Lead", "Contact"] and lg.api_calls == 1


def test_a_ttl_of_zero_turns_the_cache_off(store: SyncStore) -> None:
    t0 = datetime.now(UTC)
    a_run(store, FakeSF(), FakeLG(), t0, ttl=timedelta(0))
    sf, lg = FakeSF(), FakeLG()
    a_run(store, sf, lg, t0, ttl=timedelta(0))
    assert sf.api_describes == ["Lead", "Contact"] and lg.api_calls == 1
    assert store.cache_fresh("schema:sf:acme.my.salesforce.com", t0 - timedelta(days=1)) == {}


def test_entries_are_keyed_by_connection_identity(store: SyncStore) -> None:
    t0 = datetime.now(UTC)
    a_run(store, FakeSF("acme.my.salesforce.com"), FakeLG(), t0)
    other = FakeSF("other.my.salesforce.com")
    a_run(store, other, FakeLG(), t0)
    assert other.api_describes == ["Lead", "Contact"]


def quarantine_refusal(store: SyncStore, code: str) -> None:
    store.quarantine(
        dag_id="sync_leads_contacts",
        domain="person",
        direction="lg_to_sf",
        record_key="lg:1",
        target_object="Lead",
        lg_id="1",
        sf_id=None,
        category="rejected_by_target",
        check="write",
        field="Region__c",
        error_code=code,
        message="No such column 'Region__c' on sobject of type Lead",
        payload={},
        run_id="r1",
        max_attempts=5,
    )


@pytest.mark.parametrize(
    ("code", "stale"), [("INVALID_FIELD", True), ("REQUIRED_FIELD_MISSING", False), ("205", True)]
)
def test_a_write_refused_for_a_schema_reason_makes_the_next_run_describe_again(
    store: SyncStore, code: str, stale: bool
) -> None:
    a_run(store, FakeSF(), FakeLG(), datetime.now(UTC) - timedelta(minutes=5))
    quarantine_refusal(store, code)  # last_seen: now, after the entries were stored
    sf, lg = FakeSF(), FakeLG()
    a_run(store, sf, lg, datetime.now(UTC))
    assert (sf.api_describes == ["Lead", "Contact"]) is stale
    assert (lg.api_calls == 1) is stale


def test_a_check_failing_on_cached_schemas_is_repeated_on_live_ones(store: SyncStore) -> None:
    t0 = datetime.now(UTC)
    a_run(store, FakeSF(), FakeLG(), t0)
    sf, lg = FakeSF(), FakeLG()
    sf.fields["Lead"].append("Region__c")  # added in Setup after the cache was filled
    cache = SchemaCache(store, TTL, now=t0 + timedelta(minutes=1))
    cache.prime(sf, lg)

    def check() -> list[str]:
        names = [f["name"] for f in sf.describe("Lead")["fields"]]
        if "Region__c" not in names:
            raise ConfigError("leads.yaml: fields[3].salesforce: Lead has no field Region__c")
        return names

    assert cache.checked(sf, lg, check) == ["Id", "Email", "Region__c"]
    assert sf.api_describes == ["Lead"]
    cache.keep(sf, lg)
    later = FakeSF()
    SchemaCache(store, TTL, now=t0 + timedelta(minutes=2)).prime(later, None)
    assert "Region__c" in [f["name"] for f in later.describe("Lead")["fields"]]


def test_a_check_failing_on_live_schemas_is_not_repeated(store: SyncStore) -> None:
    sf, lg = FakeSF(), FakeLG()
    cache = SchemaCache(store, TTL)
    cache.prime(sf, lg)
    calls = []

    def check() -> None:
        calls.append(1)
        sf.describe("Lead")
        raise ConfigError("leads.yaml: fields[3]: no such field")

    with pytest.raises(ConfigError):
        cache.checked(sf, lg, check)
    assert calls == [1] and sf.api_describes == ["Lead"]
