"""API allocation, injected faults and the client's retries -- with exact call counts."""

from __future__ import annotations

import datetime as dt

import pytest
from simple_salesforce.exceptions import SalesforceRefusedRequest

from crm_sync.clients.salesforce import SalesforceClient
from crm_sync.errors import RateLimitError, RetriableError

pytestmark = pytest.mark.contract


def org_counts(admin) -> dict[str, int]:
    return admin.calls()["by_kind"]


def client_counts(client) -> dict[str, int]:
    return {k: v for k, v in client.calls.items() if k != "login" and v}


def test_limit_info_header_and_limits_resource(sf, client, admin):
    sf.query("SELECT Id FROM Lead")
    used = admin.get("/limits")["DailyApiRequests"]
    assert sf.api_usage["api-usage"].used == used["Max"] - used["Remaining"]
    assert sf.api_usage["api-usage"].total == used["Max"] == 100_000
    limits = client.limits()
    assert limits["DailyApiRequests"]["Remaining"] == used["Remaining"] - 1
    assert client.api_usage == (used["Max"] - used["Remaining"] + 1, 100_000)
    assert {"DailyBulkV2QueryJobs", "DailyBulkApiBatches", "DataStorageMB"} <= set(limits)


def test_request_limit_exceeded_is_not_retried(sf, client, admin, sleeps):
    admin.post("/limits", {"daily_api_requests": 3, "used": 0})
    for _ in range(3):
        list(client.query("SELECT Id FROM Lead"))
    with pytest.raises(RateLimitError) as exc_info:
        list(client.query("SELECT Id FROM Lead"))
    assert exc_info.value.code == "REQUEST_LIMIT_EXCEEDED"
    assert sleeps == []
    with pytest.raises(SalesforceRefusedRequest) as raw:
        sf.query("SELECT Id FROM Lead")
    assert raw.value.status == 403 and raw.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    calls = admin.calls()
    assert calls["total"] == 3 == client.api_calls
    assert calls["not_counted"]["REQUEST_LIMIT_EXCEEDED"] == 2


def test_injected_503_is_retried_and_counted(client, admin, sleeps):
    admin.rule(fault="SERVER_UNAVAILABLE", kind="collections", count=2)
    results = client.create("Account", [{"Name": "A"}, {"Name": "B"}])
    assert all(r.success for r in results)
    assert sleeps == [0.5, 1.0]
    assert client.calls["collections"] == 3 == org_counts(admin)["collections"]


def test_call_level_lock_error_is_retried(client, admin, sleeps):
    admin.create("Lead", LastName="Locked", Company="C")
    admin.rule(fault="UNABLE_TO_LOCK_ROW", kind="query", count=1)
    assert [r["LastName"] for r in client.query("SELECT LastName FROM Lead")] == ["Locked"]
    assert sleeps == [0.5]
    assert client.calls["query"] == 2 == org_counts(admin)["query"]


def test_dropped_connection_is_retried(client, admin, sleeps):
    admin.create("Lead", LastName="Dropped", Company="C")
    admin.rule(fault="DROP", kind="query", count=1)
    assert [r["LastName"] for r in client.query("SELECT LastName FROM Lead")] == ["Dropped"]
    assert sleeps == [0.5]
    # A dropped connection never answered: neither side counts it.
    assert client.calls["query"] == 1 == org_counts(admin)["query"]
    assert admin.calls()["not_counted"]["DROP"] == 1


def test_persistent_failure_raises_retriable_error(sf, admin, sleeps):
    client = SalesforceClient(sf, max_retries=2, sleep=sleeps)
    admin.rule(fault="SERVER_UNAVAILABLE", path="/query", count=10)
    with pytest.raises(RetriableError) as exc_info:
        list(client.query("SELECT Id FROM Lead"))
    assert exc_info.value.code == "SERVER_UNAVAILABLE"
    assert sleeps == [0.5, 1.0]
    assert client.calls["query"] == 3


def test_only_locked_records_are_resubmitted(client, admin, sleeps):
    admin.rule(scope="record", fault="UNABLE_TO_LOCK_ROW", count=2, operation="insert")
    records = [{"LastName": f"R{i}", "Company": "C"} for i in range(5)]
    results = client.create("Lead", records)
    assert all(r.success for r in results) and [r.index for r in results] == list(range(5))
    assert sleeps == [0.5]
    assert client.calls["collections"] == 2
    names = sorted(r["LastName"] for r in client.query("SELECT LastName FROM Lead"))
    assert names == [f"R{i}" for i in range(5)]  # nothing written twice


def test_record_level_failure_is_returned_after_max_retries(sf, admin, sleeps):
    client = SalesforceClient(sf, max_retries=2, sleep=sleeps)
    admin.rule(scope="record", fault="API_TEMPORARILY_UNAVAILABLE", count=100, object="Account")
    [res] = client.create("Account", [{"Name": "Never"}])
    assert not res.success and res.error_code == "API_TEMPORARILY_UNAVAILABLE"
    assert sleeps == [0.5, 1.0] and client.calls["collections"] == 3


def test_seeded_random_faults_and_latency(sf, admin):
    admin.create("Lead", LastName="Chaos", Company="C")
    admin.post(
        "/faults",
        {
            "rate": 0.35,
            "kinds": "SERVER_UNAVAILABLE,UNABLE_TO_LOCK_ROW,DROP",
            "seed": 11,
            "latency_ms": 2,
            "record_rate": 0.2,
        },
    )
    client = SalesforceClient(sf, max_retries=12, sleep=lambda _s: None)
    for _ in range(12):
        assert [r["LastName"] for r in client.query("SELECT LastName FROM Lead")] == ["Chaos"]
    results = client.create("Contact", [{"LastName": f"C{i}"} for i in range(30)])
    assert all(r.success for r in results)
    faults = admin.get("/faults")
    assert faults["latency_ms"] == 2 and sum(faults["injected"].values()) > 0
    assert client_counts(client) == org_counts(admin)
    assert client.api_calls == admin.calls()["total"]


def test_bulk_job_after_session_expiry(sf, admin, sleeps):
    # Bulk 2.0 requests do not log in again by themselves; the client does it for them.
    client = SalesforceClient(sf, bulk_threshold=2, sleep=sleeps, bulk_poll_wait=0.0)
    admin.post("/sessions/expire")
    results = client.create("Account", [{"Name": f"A{i}"} for i in range(3)])
    assert all(r.success for r in results)
    assert client.calls["login"] == 1 and client.calls["bulk2"] == 7
    assert sleeps == []
    # Again, with the re-login itself hitting an outage first: the login is retried.
    admin.post("/sessions/expire")
    admin.rule(fault="SERVER_UNAVAILABLE", kind="login", count=1)
    results = client.create("Account", [{"Name": f"B{i}"} for i in range(3)])
    assert all(r.success for r in results)
    assert sleeps == [0.5] and client.calls["login"] == 3  # the failed login is seen too


def test_client_counts_equal_the_org_counts(sf, admin):
    admin.post("/seed", {"counts": {"Lead": 2300}})
    admin.post("/calls/reset")
    admin.post("/clock", {"now": "2026-11-27T12:00:00Z"})
    client = SalesforceClient(sf, bulk_threshold=100, sleep=lambda _s: None, bulk_poll_wait=0.0)
    client.describe("Lead")
    assert sum(1 for _ in client.query("SELECT Id FROM Lead", include_deleted=True)) == 2300
    client.create("Account", [{"Name": f"A{i}"} for i in range(150)])  # bulk
    client.create("Account", [{"Name": "Single"}])  # collections
    now = dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)
    client.get_deleted("Lead", now - dt.timedelta(days=1), now)
    client.limits()
    expected = {
        "describe": 1,
        "query": 1,
        "query_more": 1,
        "bulk2": 7,
        "collections": 1,
        "get_deleted": 1,
        "limits": 1,
    }
    assert client_counts(client) == expected == org_counts(admin)
    assert client.api_calls == 13 == admin.calls()["total"]


def test_concurrent_clients_share_the_org_safely(hook, admin):
    from concurrent.futures import ThreadPoolExecutor

    def work(n: int) -> list[bool]:
        client = SalesforceClient(hook.get_conn(), sleep=lambda _s: None)
        results = client.create(
            "Contact", [{"LastName": f"T{n}-{i}", "LeadGen_Id__c": f"t{n}-{i}"} for i in range(60)]
        )
        list(client.query("SELECT Id FROM Contact"))
        return [r.success for r in results]

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(work, range(4)))
    assert all(all(o) for o in outcomes)
    assert admin.calls()["by_kind"] == {"collections": 4, "query": 4}
    assert (
        len(
            {
                r["LeadGen_Id__c"]
                for r in SalesforceClient(hook.get_conn()).query(
                    "SELECT LeadGen_Id__c FROM Contact"
                )
            }
        )
        == 240
    )
