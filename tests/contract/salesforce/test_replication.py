"""getUpdated / getDeleted windows, the recycle bin and undelete."""

from __future__ import annotations

import datetime as dt

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from crm_sync.clients.salesforce import ResyncRequiredError

pytestmark = pytest.mark.contract

UTC = dt.UTC
NOW = "2026-11-27T12:00:00Z"


@pytest.fixture
def frozen(admin):
    admin.post("/clock", {"now": NOW})
    return dt.datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_get_updated_window(sf, client, admin, frozen):
    early = admin.create("Lead", LastName="Early", Company="C", _at="2026-11-27T09:00:00Z")
    mid = admin.create("Lead", LastName="Mid", Company="C", _at="2026-11-27T10:00:00Z")
    late = admin.create("Lead", LastName="Late", Company="C", _at="2026-11-27T11:00:00Z")
    result = sf.Lead.updated(frozen - dt.timedelta(hours=3), frozen - dt.timedelta(hours=1))
    assert result["ids"] == [early, mid]
    assert result["latestDateCovered"] == "2026-11-27T11:00:00.000+0000"
    assert client.get_updated("Lead", frozen - dt.timedelta(hours=2, minutes=30), frozen) == [
        mid,
        late,
    ]
    assert client.calls["get_updated"] == 1
    with pytest.raises(SalesforceMalformedRequest) as exc_info:
        sf.Lead.updated(frozen - dt.timedelta(days=31), frozen)
    assert exc_info.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_get_deleted_window(client, admin, frozen):
    ids = [admin.create("Contact", LastName=f"C{i}", _at="2026-11-20T00:00:00Z") for i in range(3)]
    admin.post("/actions/delete", {"ids": [ids[0]], "_at": "2026-11-27T10:00:00Z"})
    admin.post("/actions/delete", {"ids": [ids[1]], "_at": "2026-11-27T11:30:00Z"})
    deleted = client.get_deleted(
        "Contact", frozen - dt.timedelta(hours=3), frozen - dt.timedelta(hours=1)
    )
    assert deleted == [{"id": ids[0], "deletedDate": "2026-11-27T10:00:00.000+0000"}]
    assert [
        d["id"] for d in client.get_deleted("Contact", frozen - dt.timedelta(hours=3), frozen)
    ] == ids[:2]
    assert client.calls["get_deleted"] == 2


def test_windows_work_per_minute(client, admin, frozen):
    rid = admin.create("Lead", LastName="Sec", Company="C", _at="2026-11-27T09:00:00Z")
    admin.post("/actions/delete", {"ids": [rid], "_at": "2026-11-27T11:05:30Z"})
    # Seconds are dropped from both bounds: the 11:05:30 delete belongs to the window that
    # starts at 11:05, so consecutive windows neither miss nor duplicate it.
    before = client.get_deleted(
        "Lead", frozen - dt.timedelta(hours=1), dt.datetime(2026, 11, 27, 11, 5, 45, tzinfo=UTC)
    )
    after = client.get_deleted("Lead", dt.datetime(2026, 11, 27, 11, 5, 45, tzinfo=UTC), frozen)
    assert before == [] and [d["id"] for d in after] == [rid]


def test_naive_datetimes_from_simple_salesforce_are_read_as_utc(sf, admin, frozen):
    rid = admin.create("Lead", LastName="Naive", Company="C", _at="2026-11-27T09:00:00Z")
    admin.post("/actions/delete", {"ids": [rid], "_at": "2026-11-27T11:00:00Z"})
    # The library turns naive datetimes into "2026-11-27T10:00:00:" (trailing colon, no zone).
    result = sf.Lead.deleted(dt.datetime(2026, 11, 27, 10, 0), dt.datetime(2026, 11, 27, 12, 0))
    assert [r["id"] for r in result["deletedRecords"]] == [rid]


def test_start_older_than_15_days_requires_a_resync(sf, client, frozen):
    with pytest.raises(SalesforceMalformedRequest) as exc_info:
        sf.Contact.deleted(frozen - dt.timedelta(days=16), frozen)
    assert exc_info.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    with pytest.raises(ResyncRequiredError, match="full resync"):
        client.get_deleted("Contact", frozen - dt.timedelta(days=16), frozen)


def test_purged_recycle_bin_moves_earliest_date_available(client, admin, frozen):
    rid = admin.create("Contact", LastName="Purged", _at="2026-11-20T00:00:00Z")
    admin.post("/actions/delete", {"ids": [rid], "_at": "2026-11-25T00:00:00Z"})
    admin.post("/actions/purge-recycle-bin", {"before": "2026-11-26T00:00:00Z"})
    assert client.get_deleted("Contact", frozen - dt.timedelta(hours=12), frozen) == []
    with pytest.raises(ResyncRequiredError) as exc_info:
        client.get_deleted("Contact", frozen - dt.timedelta(days=3), frozen)
    assert exc_info.value.earliest_available == dt.datetime(2026, 11, 26, tzinfo=UTC)
    assert list(client.query("SELECT Id FROM Contact", include_deleted=True)) == []


def test_get_deleted_requires_aware_utc(client):
    with pytest.raises(ValueError, match="UTC"):
        client.get_deleted("Lead", dt.datetime(2026, 11, 27), dt.datetime(2026, 11, 27, 1))


def test_undelete_restores_record_and_cascaded_children(client, admin, frozen):
    acc = admin.create("Account", Name="Parent")
    con = admin.create("Contact", LastName="Child", AccountId=acc)
    admin.post("/actions/delete", {"ids": [acc]})
    assert list(client.query("SELECT Id FROM Contact")) == []  # the contact went with its account
    # getDeleted covers whole minutes up to the current one: let the clock move on first.
    admin.post("/clock", {"advance_seconds": 60})
    deleted_contacts = client.get_deleted(
        "Contact", frozen - dt.timedelta(minutes=5), frozen + dt.timedelta(minutes=1)
    )
    assert [d["id"] for d in deleted_contacts] == [con]
    admin.post("/actions/undelete", {"ids": [acc]})
    assert [r["Id"] for r in client.query("SELECT Id FROM Contact")] == [con]
    rec = admin.record("Contact", con)
    assert rec["IsDeleted"] is False and rec["SystemModstamp"] == "2026-11-27T12:01:00.000+0000"
    assert (
        client.get_deleted(
            "Contact", frozen - dt.timedelta(minutes=5), frozen + dt.timedelta(minutes=2)
        )
        == []
    )


def test_undelete_refuses_a_duplicate_external_id(admin):
    old = admin.create("Lead", LastName="Old", Company="C", LeadGen_Id__c="same")
    admin.post("/actions/delete", {"ids": [old]})
    admin.create(
        "Lead", LastName="New", Company="C", LeadGen_Id__c="same"
    )  # the bin does not block it
    refused = admin.call("POST", "/actions/undelete", {"ids": [old]}, expect=400)
    assert refused["error"] == "DUPLICATE_VALUE"
