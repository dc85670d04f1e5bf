"""Bulk API 2.0: ingest jobs, results CSV, query jobs, and the client's bulk path."""

from __future__ import annotations

import csv
import io

import pytest

from crm_sync.clients.salesforce import SalesforceClient, match_bulk_results
from crm_sync.errors import ConfigError

pytestmark = pytest.mark.contract


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_bulk2_ingest_with_a_failing_row(sf):
    records = [
        {"LastName": "B0", "Company": "C"},
        {"LastName": "B1", "Company": ""},  # empty cell on insert = no value: Company missing
        {"LastName": "B2", "Company": "C"},
    ]
    [summary] = sf.bulk2.Lead.insert(records=records, wait=0)
    assert summary["numberRecordsProcessed"] == 3 and summary["numberRecordsFailed"] == 1
    job = summary["job_id"]
    assert job.startswith("750")
    ok = rows(sf.bulk2.Lead.get_successful_records(job))
    assert [r["LastName"] for r in ok] == ["B0", "B2"]
    assert all(r["sf__Created"] == "true" and r["sf__Id"].startswith("00Q") for r in ok)
    [failed] = rows(sf.bulk2.Lead.get_failed_records(job))
    assert (
        failed["sf__Error"]
        == "REQUIRED_FIELD_MISSING:Required fields are missing: [Company]:Company --"
    )
    assert failed["LastName"] == "B1"
    # The library asks for "unprocessedRecords"; the route is case-insensitive.
    assert rows(sf.bulk2.Lead.get_unprocessed_records(job)) == []


def test_bulk2_job_state_machine(sf):
    base = f"https://{sf.sf_instance}/services/data/v59.0/jobs/ingest"
    job = sf.restful(
        "jobs/ingest",
        method="POST",
        json={"object": "Account", "operation": "insert", "contentType": "CSV"},
    )
    assert job["state"] == "Open" and job["object"] == "Account"
    put = sf.session.put(
        f"{base}/{job['id']}/batches",
        data=b"Name\nAcme\nGlobex\n",
        headers={**sf.headers, "Content-Type": "text/csv"},
    )
    assert put.status_code == 201
    closed = sf.restful(
        f"jobs/ingest/{job['id']}", method="PATCH", json={"state": "UploadComplete"}
    )
    assert closed["state"] == "UploadComplete"
    info = sf.restful(f"jobs/ingest/{job['id']}")
    assert info["state"] == "JobComplete" and info["numberRecordsProcessed"] == 2
    again = sf.session.put(
        f"{base}/{job['id']}/batches",
        data=b"Name\nX\n",
        headers={**sf.headers, "Content-Type": "text/csv"},
    )
    assert again.status_code == 409
    lower = sf.session.get(f"{base}/{job['id']}/unprocessedrecords", headers=sf.headers)
    assert lower.status_code == 200 and lower.text.strip() == '"Name"'
    assert any(j["id"] == job["id"] for j in sf.restful("jobs/ingest")["records"])
    assert sf.restful(f"jobs/ingest/{job['id']}", method="DELETE") is None


def test_bulk2_unknown_column_fails_the_job(sf):
    from simple_salesforce.exceptions import SalesforceOperationError

    with pytest.raises(SalesforceOperationError, match="Field name not found : Shoe_Size__c"):
        sf.bulk2.Lead.insert(
            records=[{"LastName": "X", "Company": "C", "Shoe_Size__c": "9"}], wait=0
        )


def test_client_switches_to_bulk_above_the_threshold(client, admin):
    records = [
        {"LastName": f"Bulk{i:04d}", "Company": "C", "Email": f"b{i}@example.com"}
        for i in range(2500)
    ]
    records[10]["Email"] = "broken@"
    records[2000]["Company"] = None  # None -> "#N/A" -> null -> required field missing
    records[2400]["NumberOfEmployees"] = (
        "lots"  # per record in Bulk (a whole-request error in REST)
    )
    results = client.create("Lead", records)
    assert len(results) == 2500 and [r.index for r in results] == list(range(2500))
    assert [i for i, r in enumerate(results) if not r.success] == [10, 2000, 2400]
    assert results[10].error_code == "INVALID_EMAIL_ADDRESS" and results[10].errors[0].fields == (
        "Email",
    )
    assert results[2000].error_code == "REQUIRED_FIELD_MISSING"
    assert results[2400].error_code == "INVALID_TYPE_ON_FIELD_IN_RECORD"
    assert results[2400].errors[0].fields == ("NumberOfEmployees",)
    assert all(r.created for r in results if r.success)
    by_id = {r["Id"]: r["LastName"] for r in client.query("SELECT Id, LastName FROM Lead")}
    assert all(by_id[r.id] == f"Bulk{r.index:04d}" for r in results if r.success)
    # create job, upload, close, one poll, then successful/failed/unprocessed results
    assert client.calls["bulk2"] == 7
    assert admin.calls()["by_kind"]["bulk2"] == 7


@pytest.fixture
def small_bulk_client(sf, sleeps):
    return SalesforceClient(sf, bulk_threshold=5, sleep=sleeps, bulk_poll_wait=0.0)


def test_bulk_upsert_update_delete_map_results_back(small_bulk_client, admin):
    c = small_bulk_client
    existing = [
        admin.create("Contact", LastName=f"Old{i}", LeadGen_Id__c=f"lg{i}") for i in range(4)
    ]
    records = [{"LeadGen_Id__c": f"lg{i}", "LastName": f"Up{i}"} for i in range(8)]
    records[6]["Email"] = "nope"
    upserted = c.upsert("Contact", "LeadGen_Id__c", records)
    assert [r.created for r in upserted[:4]] == [False] * 4
    assert [r.id for r in upserted[:4]] == existing
    assert [r.created for r in upserted[4:6]] == [True, True] and upserted[7].created is True
    assert upserted[6].error_code == "INVALID_EMAIL_ADDRESS"

    ids = [r.id for r in upserted if r.success]
    updates = [{"Id": rid, "Title": f"T{i}"} for i, rid in enumerate(ids)]
    updates[2]["Id"] = ids[2][:15]  # 15-character ids work too, results still line up
    updates[3]["Title"] = None  # #N/A: set to null
    updated = c.update("Contact", updates)
    assert all(r.success for r in updated)
    titles = {r["Id"]: r["Title"] for r in c.query("SELECT Id, Title FROM Contact")}
    assert titles[ids[0]] == "T0" and titles[ids[3]] is None

    deleted = c.delete([*ids[:6], "003000000000000AAA"])
    assert [r.success for r in deleted] == [True] * 6 + [False]
    assert deleted[6].error_code == "ENTITY_IS_DELETED"
    assert {r.id for r in deleted[:6]} == set(ids[:6])


def test_bulk_unknown_column_is_a_config_error(small_bulk_client):
    records = [{"LastName": f"X{i}", "Company": "C", "Shoe_Size__c": 9} for i in range(6)]
    with pytest.raises(ConfigError, match="Field name not found"):
        small_bulk_client.create("Lead", records)


def test_bulk_lock_errors_are_resubmitted(small_bulk_client, admin, sleeps):
    admin.rule(scope="record", fault="UNABLE_TO_LOCK_ROW", count=3)
    records = [{"LastName": f"L{i}", "Company": "C"} for i in range(10)]
    results = small_bulk_client.create("Lead", records)
    assert all(r.success for r in results)
    assert sleeps == [0.5]
    # One bulk job for 10 records, then the 3 locked ones alone (below the threshold: collections).
    assert small_bulk_client.calls["bulk2"] == 7 and small_bulk_client.calls["collections"] == 1
    assert admin.get("/faults")["injected"] == {"record:UNABLE_TO_LOCK_ROW": 3}


def test_bulk2_query_pages_with_locator(sf, admin):
    admin.post("/seed", {"counts": {"Lead": 2500}})
    expected = sf.query("SELECT COUNT() FROM Lead")["totalSize"]
    pages = list(
        sf.bulk2.Lead.query("SELECT Id, LastName, Owner.Email FROM Lead", max_records=1000, wait=0)
    )
    assert len(pages) == 3
    parsed = [rows(p) for p in pages]
    assert sum(len(p) for p in parsed) == expected
    assert list(parsed[0][0]) == ["Id", "LastName", "Owner.Email"]
    assert parsed[0][0]["Owner.Email"].endswith("@sandbox.example")
    every = sum(len(rows(p)) for p in sf.bulk2.Lead.query_all("SELECT Id FROM Lead", wait=0))
    assert every == 2500
    # Raw headers: Sforce-NumberOfRecords and Sforce-Locator ("null" on the last page).
    job = sf.restful(
        "jobs/query", method="POST", json={"operation": "query", "query": "SELECT Id FROM Lead"}
    )
    url = f"https://{sf.sf_instance}/services/data/v59.0/jobs/query/{job['id']}/results"
    first = sf.session.get(url, params={"maxRecords": 2000}, headers=sf.headers)
    assert (
        first.headers["Sforce-NumberOfRecords"] == "2000"
        and first.headers["Sforce-Locator"] != "null"
    )
    last = sf.session.get(
        url,
        params={"maxRecords": 2000, "locator": first.headers["Sforce-Locator"]},
        headers=sf.headers,
    )
    assert int(last.headers["Sforce-NumberOfRecords"]) == expected - 2000
    assert last.headers["Sforce-Locator"] == "null"
    limits = sf.limits()
    assert limits["DailyBulkV2QueryJobs"]["Max"] - limits["DailyBulkV2QueryJobs"]["Remaining"] == 3


def test_bulk2_hard_delete_skips_the_recycle_bin(sf, admin):
    ids = [admin.create("Account", Name=f"H{i}") for i in range(3)]
    [summary] = sf.bulk2.Account.hard_delete(records=[{"Id": i} for i in ids[:2]], wait=0)
    assert summary["numberRecordsProcessed"] == 2 and summary["numberRecordsFailed"] == 0
    left = sf.query_all("SELECT Id FROM Account", include_deleted=True)["records"]
    assert [r["Id"] for r in left] == [ids[2]]


def test_bulk_results_fall_back_to_sf_id_when_the_echo_differs():
    # A server that echoes the Id column in another form (18 instead of 15 characters) must
    # still line results up with the input rows.
    rows = [["0035e0000000001"], ["0035e0000000002"]]
    successful = '"sf__Id","sf__Created","Id"\n"0035e0000000002AAA","false","0035e0000000002AAA"\n'
    failed = '"sf__Id","sf__Error","Id"\n"0035e0000000001AAA","ENTITY_IS_DELETED:entity is deleted: --","0035e0000000001AAA"\n'
    results = match_bulk_results(
        "delete", ["Id"], rows, None, (successful, failed, '"Id"\n'), "750x", None
    )
    assert [(r.index, r.success, r.error_code) for r in results] == [
        (0, False, "ENTITY_IS_DELETED"),
        (1, True, None),
    ]
    assert results[0].errors[0].message == "entity is deleted"
