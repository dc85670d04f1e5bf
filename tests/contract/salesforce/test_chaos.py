"""The fault catalogue (issue 15): every injectable fault, and what the client does with it.

The invariant every test checks through the org's write log: no record is written twice
(``created`` equals the records the client was asked to create), and nothing the client
reports as written is missing.
"""

from __future__ import annotations

import pytest
import requests
from simple_salesforce import Salesforce

from crm_sync.clients.salesforce import AMBIGUOUS_CODE, AmbiguousWriteError, SalesforceClient
from crm_sync.errors import RateLimitError, RetriableError

pytestmark = pytest.mark.contract

BULK_STEPS = ("create", "upload", "close", "poll", "results")


@pytest.fixture
def small(sleeps) -> SalesforceClient:
    """Collections of 5 records; Bulk API 2.0 from 8 records on."""
    return SalesforceClient.from_connection(
        "salesforce_default", sleep=sleeps, bulk_poll_wait=0.0, collection_size=5, bulk_threshold=7
    )


def leads(n: int, prefix: str = "L") -> list[dict]:
    return [
        {"LastName": f"{prefix}{i}", "Company": "C", "LeadGen_Id__c": f"{prefix}-{i}"}
        for i in range(n)
    ]


def writes(admin, obj: str = "Lead") -> dict[str, int]:
    return admin.get("/writes")["by_object"].get(obj, {"created": 0, "updated": 0, "deleted": 0})


def names_in_org(client) -> list[str]:
    return sorted(r["LastName"] for r in client.query("SELECT LastName FROM Lead"))


# ------------------------------------------------------------------------- the write log
def test_write_log_counts_committed_api_writes_only(sf, client, admin):
    admin.create("Lead", LastName="ByHand", Company="C")  # admin writes are not API writes
    [ok] = client.create("Lead", [{"LastName": "A", "Company": "C"}])
    client.update("Lead", [{"Id": ok.id, "Title": "T"}])
    sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": True,
            "records": [
                {"attributes": {"type": "Lead"}, "LastName": "Rolled", "Company": "C"},
                {"attributes": {"type": "Lead"}, "LastName": "Bad"},  # no Company
            ],
        },
    )
    client.delete([ok.id])
    log = admin.get("/writes")
    assert log["by_object"]["Lead"] == {"created": 1, "updated": 1, "deleted": 1}
    assert log["by_channel"] == {"collections": 3}
    entries = admin.get("/writes?entries=1&op=created")["entries"]
    assert entries == [{"object": "Lead", "op": "created", "id": ok.id, "channel": "collections"}]
    admin.call("DELETE", "/writes")
    assert admin.get("/writes")["total"] == 0


# ----------------------------------------------------------- a lost answer after the write
def test_lost_answer_to_a_plain_create_is_never_resent(small, admin):
    admin.rule(fault="DROP_AFTER", kind="collections", count=1)
    with pytest.raises(AmbiguousWriteError) as exc_info:
        small.create("Lead", [{"LastName": f"P{i}", "Company": "C"} for i in range(8 - 1)])
    err = exc_info.value
    # The first chunk (5) was applied but its answer lost; the second chunk (2) went through.
    assert err.ambiguous == [0, 1, 2, 3, 4]
    assert [r.success for r in err.results] == [False] * 5 + [True] * 2
    assert all(r.error_code == AMBIGUOUS_CODE for r in err.results[:5])
    assert writes(admin)["created"] == 7  # each record exactly once: nothing was re-sent
    assert names_in_org(small) == sorted(f"P{i}" for i in range(7))


def test_a_failure_after_a_lost_create_still_reports_the_ambiguity(small, admin):
    # Chunk 1's answer is lost, chunk 2 keeps failing: re-running the whole call would send
    # chunk 1 again, so the call must not end in a plain RetriableError.
    admin.rule(fault="DROP_AFTER", kind="collections", count=1)
    admin.rule(fault="SERVER_UNAVAILABLE", kind="collections", count=small.max_retries + 1)
    with pytest.raises(AmbiguousWriteError) as exc_info:
        small.create("Lead", [{"LastName": f"F{i}", "Company": "C"} for i in range(7)])
    codes = [r.error_code for r in exc_info.value.results]
    assert codes == [AMBIGUOUS_CODE] * 5 + ["NOT_PROCESSED"] * 2
    assert "SERVER_UNAVAILABLE" in exc_info.value.results[5].error_message
    assert writes(admin)["created"] == 5


def test_lost_answer_before_the_write_is_equally_ambiguous(small, admin):
    # DROP closes the connection before the org does anything; the client cannot tell.
    admin.rule(fault="DROP", kind="collections", count=1)
    with pytest.raises(AmbiguousWriteError):
        small.create("Lead", [{"LastName": "Q", "Company": "C"}])
    assert writes(admin)["created"] == 0


def test_create_with_an_external_id_goes_through_upsert_and_survives(small, admin):
    admin.rule(fault="DROP_AFTER", kind="collections", count=1)
    results = small.create("Lead", leads(4), external_id_field="LeadGen_Id__c")
    assert all(r.success for r in results)
    # Applied by the lost call, then matched (updated) by the retry: created once each.
    assert writes(admin) == {"created": 4, "updated": 4, "deleted": 0}
    assert len(names_in_org(small)) == 4


def test_lost_answers_to_update_and_delete_are_retried(small, admin):
    ids = [
        r.id
        for r in small.create("Lead", [{"LastName": f"U{i}", "Company": "C"} for i in range(3)])
    ]
    admin.rule(fault="DROP_AFTER", kind="collections", method="PATCH", count=1)
    assert all(r.success for r in small.update("Lead", [{"Id": i, "Title": "X"} for i in ids]))
    admin.rule(fault="DROP_AFTER", kind="collections", method="DELETE", count=1)
    deleted = small.delete(ids)
    assert [(r.success, r.unchanged) for r in deleted] == [(True, True)] * 3
    assert writes(admin) == {"created": 3, "updated": 6, "deleted": 3}


def test_sobject_create_with_a_lost_answer_was_applied(sf, admin):
    admin.rule(fault="DROP_AFTER", kind="sobject", count=1)
    with pytest.raises(requests.ConnectionError):
        sf.Lead.create({"LastName": "Single", "Company": "C"})
    assert writes(admin)["created"] == 1
    assert admin.get("/writes?entries=1")["entries"][0]["channel"] == "rest"


def test_unreachable_org_is_retriable_not_ambiguous(sleeps):
    # A refused connection never carried the request: retrying a create is safe.
    sf = Salesforce(instance="127.0.0.1:9", session_id="00Dx!nothing")
    client = SalesforceClient(sf, max_retries=2, sleep=sleeps)
    with pytest.raises(RetriableError):
        client.create("Lead", [{"LastName": "N", "Company": "C"}])
    assert len(sleeps) == 2


@pytest.mark.parametrize("step", BULK_STEPS)
def test_bulk_insert_survives_a_lost_answer_at_every_step(small, admin, step):
    admin.rule(fault="DROP_AFTER", step=step, count=1)
    results = small.create("Lead", [{"LastName": f"B{i}", "Company": "C"} for i in range(10)])
    assert all(r.success and r.created for r in results)
    assert writes(admin)["created"] == 10
    assert names_in_org(small) == sorted(f"B{i}" for i in range(10))
    assert admin.get("/faults")["injected"] == {"DROP_AFTER": 1}


def test_bulk_close_whose_outcome_cannot_be_read(small, admin):
    # The close is applied, its answer lost, and the job's state cannot be read either.
    admin.rule(fault="DROP_AFTER", step="close", count=1)
    admin.rule(fault="SERVER_UNAVAILABLE", step="poll", count=small.max_retries + 1)
    with pytest.raises(AmbiguousWriteError) as exc_info:
        small.create("Lead", [{"LastName": f"C{i}", "Company": "C"} for i in range(9)])
    assert exc_info.value.ambiguous == list(range(9))
    assert writes(admin)["created"] == 9  # applied once, and not sent again
    # An upsert in the same situation is safe to run again: a retriable error.
    admin.rule(fault="DROP_AFTER", step="close", count=1)
    admin.rule(fault="SERVER_UNAVAILABLE", step="poll", count=small.max_retries + 1)
    with pytest.raises(RetriableError):
        small.upsert("Lead", "LeadGen_Id__c", leads(9, "UP"))
    assert small.upsert("Lead", "LeadGen_Id__c", leads(9, "UP"))[0].success


# ------------------------------------------------------------- session expiry mid-job
@pytest.mark.parametrize("step", BULK_STEPS)
def test_session_expiry_in_the_middle_of_a_bulk_job(small, admin, step):
    logins = small.calls["login"]
    admin.rule(fault="INVALID_SESSION_ID", step=step, count=1)
    results = small.create("Lead", [{"LastName": f"S{i}", "Company": "C"} for i in range(8)])
    assert all(r.success for r in results)
    assert small.calls["login"] == logins + 1  # logged in again once
    assert writes(admin)["created"] == 8
    assert admin.get("/faults")["injected"] == {"INVALID_SESSION_ID": 1}


# --------------------------------------------------------------------------- lock errors
def test_call_level_lock_error_on_a_write_is_retried_without_doubling(small, admin, sleeps):
    admin.rule(fault="UNABLE_TO_LOCK_ROW", kind="collections", count=2)
    assert all(r.success for r in small.create("Lead", [{"LastName": "K", "Company": "C"}]))
    assert sleeps == [0.5, 1.0]
    assert writes(admin)["created"] == 1


def test_bulk_lock_error_on_close_is_retried(small, admin):
    admin.rule(fault="UNABLE_TO_LOCK_ROW", step="close", count=1)
    assert all(
        r.success
        for r in small.create("Lead", [{"LastName": f"Z{i}", "Company": "C"} for i in range(8)])
    )
    assert writes(admin)["created"] == 8


@pytest.mark.parametrize("fault", ["UNABLE_TO_LOCK_ROW", "API_TEMPORARILY_UNAVAILABLE"])
def test_per_record_transient_faults_are_resubmitted(small, admin, sleeps, fault):
    admin.rule(scope="record", fault=fault, object="Lead", operation="insert", count=2)
    results = small.create("Lead", [{"LastName": f"R{i}", "Company": "C"} for i in range(4)])
    assert all(r.success for r in results)
    assert writes(admin)["created"] == 4 and sleeps == [0.5]


# ----------------------------------------------------------------------- rate limit storms
def test_concurrent_limit_storm_is_waited_out(small, admin, sleeps):
    admin.rule(fault="CONCURRENT_LIMIT", count=3)
    assert [r["LastName"] for r in small.query("SELECT LastName FROM Lead")] == []
    assert sleeps == [0.5, 1.0, 2.0]
    assert admin.calls()["not_counted"]["CONCURRENT_LIMIT"] == 3


def test_daily_limit_storm_stops_at_once(small, admin, sleeps):
    admin.rule(fault="REQUEST_LIMIT_EXCEEDED", count=2)
    for _ in range(2):
        with pytest.raises(RateLimitError):
            small.create("Lead", [{"LastName": "D", "Company": "C"}])
    assert sleeps == [] and writes(admin)["created"] == 0
    assert small.create("Lead", [{"LastName": "D", "Company": "C"}])[0].success  # storm over


# --------------------------------------------------------------------------- random chaos
def test_random_faults_across_everything_never_write_twice(admin, sleeps):
    client = SalesforceClient.from_connection(
        "salesforce_default",
        sleep=sleeps,
        bulk_poll_wait=0.0,
        collection_size=5,
        bulk_threshold=12,
        max_retries=12,
    )
    admin.post(
        "/faults",
        {
            "rate": 0.25,
            "kinds": "SERVER_UNAVAILABLE,UNABLE_TO_LOCK_ROW,DROP,DROP_AFTER,INVALID_SESSION_ID,CONCURRENT_LIMIT",
            "record_rate": 0.1,
            "record_kinds": "UNABLE_TO_LOCK_ROW,API_TEMPORARILY_UNAVAILABLE",
            "seed": 7,
        },
    )
    upserted = client.upsert("Lead", "LeadGen_Id__c", leads(10, "RC"))  # collections
    upserted += client.upsert("Lead", "LeadGen_Id__c", leads(20, "RB"))  # Bulk API 2.0
    assert all(r.success for r in upserted)
    updated = client.update("Lead", [{"Id": r.id, "Title": "T"} for r in upserted])
    assert all(r.success for r in updated)
    plain: list = []
    try:
        plain = client.create("Lead", [{"LastName": f"PL{i}", "Company": "C"} for i in range(10)])
    except AmbiguousWriteError as exc:
        plain = exc.results
    injected = admin.get("/faults")["injected"]
    admin.call("DELETE", "/faults")
    names = names_in_org(client)
    assert len(names) == len(set(names)), "a record was written twice"
    assert {f"RC{i}" for i in range(10)} | {f"RB{i}" for i in range(20)} <= set(names)
    assert {f"PL{i}" for i, r in enumerate(plain) if r.success} <= set(names)
    assert writes(admin)["created"] == len(names)
    assert sum(injected.values()) >= 10 and "DROP_AFTER" in injected  # the chaos did happen
