"""Streaming Bulk API 2.0 queries: locator pages, laziness, nulls, deleted rows, faults."""

from __future__ import annotations

import pytest

from crm_sync.errors import ConfigError

pytestmark = pytest.mark.contract


@pytest.fixture
def many_leads(admin) -> list[str]:
    records = [
        {"LastName": f"Q{i:04d}", "Company": "C", "Title": "T" if i % 2 else None}
        for i in range(450)
    ]
    return admin.create_many("Lead", records)


def results_calls(admin) -> int:
    return admin.calls()["by_kind"].get("bulk2", 0)


def test_bulk_query_streams_locator_pages(client, admin, many_leads):
    admin.post("/calls/reset")
    rows = client.bulk_query(
        "SELECT Id, LastName, Title FROM Lead ORDER BY LastName", page_size=100
    )
    assert results_calls(admin) == 0  # nothing is sent before the first record is asked for
    first = next(rows)
    # create, one poll, one page: the other pages are not read yet.
    assert results_calls(admin) == 3 == client.calls["bulk2"]
    rest = list(rows)
    assert len(rest) + 1 == 450
    assert results_calls(admin) == 2 + 5  # five pages of at most 100 rows
    assert first == {"Id": many_leads[0], "LastName": "Q0000", "Title": None}
    assert rest[0]["Title"] == "T"
    assert len({r["Id"] for r in [first, *rest]}) == 450


def test_bulk_export_of_mapped_fields_with_relationships_and_deleted_rows(
    client, admin, many_leads
):
    admin.post("/actions/delete", {"ids": many_leads[:3]})
    live = list(client.bulk_export("Lead", ["Id", "Owner.Email", "IsDeleted"], page_size=1000))
    assert len(live) == 447 and all(r["IsDeleted"] == "false" for r in live)
    assert live[0]["Owner.Email"].endswith("@sandbox.example")
    every = list(client.bulk_export("Lead", ["Id"], where="IsDeleted = true", include_deleted=True))
    assert sorted(r["Id"] for r in every) == sorted(many_leads[:3])


def test_bulk_query_errors(client):
    with pytest.raises(ConfigError, match="Nope"):
        list(client.bulk_query("SELECT Nope FROM Lead"))
    with pytest.raises(ValueError):
        client.bulk_query("SELECT Id")
    with pytest.raises(ValueError):
        client.bulk_export("Lead; DROP", ["Id"])


@pytest.mark.parametrize(
    ("fault", "step"),
    [
        ("INVALID_SESSION_ID", "query_results"),
        ("DROP", "query_results"),
        ("DROP_AFTER", "query_create"),
        ("INVALID_SESSION_ID", "query_poll"),
    ],
)
def test_bulk_query_survives_faults_without_repeating_records(
    client, admin, many_leads, fault, step
):
    admin.rule(fault=fault, step=step, count=1)
    rows = list(client.bulk_query("SELECT Id FROM Lead", page_size=200))
    assert sorted(r["Id"] for r in rows) == sorted(many_leads)
    assert admin.get("/faults")["injected"] == {fault: 1}
