"""SOQL over REST: paging, the supported subset, serialisation, errors, query windows."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from simple_salesforce import format_soql
from simple_salesforce.exceptions import SalesforceMalformedRequest

from crm_sync.errors import ConfigError, RetriableError

pytestmark = pytest.mark.contract

UTC = dt.UTC


def lastnames(records) -> list[str]:
    return [r["LastName"] for r in records]


@pytest.fixture
def four_leads(admin):
    """Leads with distinct values, created at known instants."""
    specs = [
        ("Alpha", "alpha@x.com", "Hot", 10, False, "2026-11-01T10:00:00Z"),
        ("Beta", "beta@y.com", "Warm", 50, False, "2026-11-01T10:30:00Z"),
        ("Gamma", None, None, None, False, "2026-11-01T11:00:00Z"),
        ("O'Brien", "obrien@x.com", "Cold", 90, True, "2026-11-01T11:30:00Z"),
    ]
    ids = {}
    for last, email, rating, score, opted_out, at in specs:
        ids[last] = admin.create(
            "Lead",
            LastName=last,
            Company="Corp",
            Email=email,
            Rating=rating,
            LeadGen_Score__c=score,
            HasOptedOutOfEmail=opted_out,
            _at=at,
        )
    return ids


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Email LIKE '%@x.com'", ["Alpha", "O'Brien"]),
        ("Email = 'ALPHA@X.COM'", ["Alpha"]),  # string comparison is case-insensitive
        ("Email != 'alpha@x.com'", ["Beta", "Gamma", "O'Brien"]),  # != keeps nulls
        ("Email NOT IN ('alpha@x.com', 'beta@y.com')", ["Gamma", "O'Brien"]),
        ("Email IN ('beta@y.com', null)", ["Beta", "Gamma"]),
        ("NOT Rating = 'Hot'", ["Beta", "Gamma", "O'Brien"]),
        ("Rating = null", ["Gamma"]),
        ("Rating != null", ["Alpha", "Beta", "O'Brien"]),
        ("(Rating = 'Hot' OR Rating = 'Cold') AND HasOptedOutOfEmail = true", ["O'Brien"]),
        ("NOT (Rating = 'Hot' OR Rating = 'Warm')", ["Gamma", "O'Brien"]),
        ("LeadGen_Score__c >= 50", ["Beta", "O'Brien"]),
        ("LeadGen_Score__c < 50", ["Alpha"]),
        (
            "CreatedDate >= 2026-11-01T12:30:00+02:00 AND CreatedDate < 2026-11-01T11:00:00Z",
            ["Beta"],
        ),
        ("CreatedDate > 2026-11-01T11:00:00.000Z", ["O'Brien"]),
        ("LastName = 'O\\'Brien'", ["O'Brien"]),
        ("LastName LIKE 'o\\'b%'", ["O'Brien"]),
    ],
)
def test_where_clause_semantics(client, four_leads, where, expected):
    rows = list(client.query(f"SELECT LastName FROM Lead WHERE {where} ORDER BY LastName"))
    assert lastnames(rows) == expected


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("Rating DESC NULLS LAST, LastName", ["Beta", "Alpha", "O'Brien", "Gamma"]),
        ("Rating", ["Gamma", "O'Brien", "Alpha", "Beta"]),  # ASC puts nulls first by default
        ("Rating NULLS LAST", ["O'Brien", "Alpha", "Beta", "Gamma"]),
        ("LeadGen_Score__c DESC", ["O'Brien", "Beta", "Alpha", "Gamma"]),
    ],
)
def test_order_by(client, four_leads, order, expected):
    assert lastnames(client.query(f"SELECT LastName FROM Lead ORDER BY {order}")) == expected


def test_limit_offset_and_count(sf, four_leads):
    page = sf.query("SELECT LastName FROM Lead ORDER BY LastName LIMIT 2 OFFSET 1")
    assert lastnames(page["records"]) == ["Beta", "Gamma"]
    assert page["totalSize"] == 2
    count = sf.query("SELECT COUNT() FROM Lead WHERE Email != null")
    assert count["totalSize"] == 3 and count["records"] == []


def test_escaped_string_literal_obrien_with_format_soql(sf, four_leads, admin):
    admin.create("Lead", LastName="OBrien", Company="Corp")
    soql = format_soql("SELECT Id, LastName FROM Lead WHERE LastName = {}", "O'Brien")
    assert soql.endswith("'O\\'Brien'")
    result = sf.query(soql)
    assert result["totalSize"] == 1
    assert result["records"][0]["Id"] == four_leads["O'Brien"]


def test_ids_in_15_and_18_character_form(sf, four_leads):
    alpha = four_leads["Alpha"]
    # 18-character, 15-character, and 18-character in the wrong case (the suffix restores it).
    for literal in (alpha, alpha[:15], alpha.upper()):
        result = sf.query(f"SELECT LastName FROM Lead WHERE Id = '{literal}'")
        assert lastnames(result["records"]) == ["Alpha"], literal


def test_record_serialisation(sf, admin):
    acc = admin.create("Account", Name="Acme", NumberOfEmployees=42, AnnualRevenue=1500000)
    opp = admin.create(
        "Opportunity",
        Name="Deal",
        AccountId=acc,
        StageName="Closed Won",
        CloseDate="2026-12-31",
        Amount=1234.5,
    )
    rec = sf.query(
        "SELECT Id, Name, CloseDate, Amount, Probability, IsWon, IsClosed, CreatedDate, "
        "Account.Name, Account.NumberOfEmployees FROM Opportunity"
    )["records"][0]
    assert rec["attributes"] == {
        "type": "Opportunity",
        "url": f"/services/data/v59.0/sobjects/Opportunity/{opp}",
    }
    assert rec["CloseDate"] == "2026-12-31"
    assert rec["Amount"] == 1234.5 and isinstance(rec["Amount"], float)
    assert rec["Probability"] == 100.0  # defaulted from the stage
    assert rec["IsWon"] is True and rec["IsClosed"] is True
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", rec["CreatedDate"])
    assert rec["Account"]["attributes"]["type"] == "Account"
    assert rec["Account"]["Name"] == "Acme"
    assert rec["Account"]["NumberOfEmployees"] == 42 and isinstance(
        rec["Account"]["NumberOfEmployees"], int
    )


def test_parent_relationships_nested_and_null(client, admin):
    acc = admin.create("Account", Name="Parent Co")
    admin.create("Contact", LastName="WithAccount", AccountId=acc)
    admin.create("Contact", LastName="Orphan")
    rows = list(
        client.query("SELECT LastName, Account.Name, Owner.Email FROM Contact ORDER BY LastName")
    )
    assert rows[0] == {
        "LastName": "Orphan",
        "Account": None,
        "Owner": {"Email": "sally.sales@sandbox.example"},
    }
    assert rows[1]["Account"] == {"Name": "Parent Co"}
    filtered = list(client.query("SELECT LastName FROM Contact WHERE Account.Name = 'Parent Co'"))
    assert lastnames(filtered) == ["WithAccount"]


def test_polymorphic_who(client, admin):
    lead = admin.create("Lead", LastName="Lead Person", Company="C")
    contact = admin.create("Contact", LastName="Contact Person")
    admin.create("Task", Subject="call lead", WhoId=lead)
    admin.create("Task", Subject="call contact", WhoId=contact)
    rows = list(client.query("SELECT Subject, Who.Type, Who.Name FROM Task ORDER BY Subject"))
    assert rows == [
        {"Subject": "call contact", "Who": {"Type": "Contact", "Name": "Contact Person"}},
        {"Subject": "call lead", "Who": {"Type": "Lead", "Name": "Lead Person"}},
    ]
    only_leads = list(client.query("SELECT Subject FROM Task WHERE Who.Type = 'Lead'"))
    assert [r["Subject"] for r in only_leads] == ["call lead"]


def test_paging_with_next_records_url(sf, client, admin):
    admin.post("/seed", {"counts": {"Lead": 4500}})
    # queryAll: the seed puts about 1% of leads in the recycle bin; this counts them all.
    first = sf.query("SELECT Id FROM Lead", include_deleted=True)
    assert first["done"] is False and len(first["records"]) == 2000 and first["totalSize"] == 4500
    assert re.fullmatch(r"/services/data/v59\.0/queryAll/01g\w+-2000", first["nextRecordsUrl"])
    ids = [r["Id"] for r in client.query("SELECT Id FROM Lead", include_deleted=True)]
    assert len(ids) == len(set(ids)) == 4500
    assert (client.calls["query"], client.calls["query_more"]) == (1, 2)


def test_batch_size_header_sets_the_page_size(hook, admin):
    admin.post("/seed", {"counts": {"Lead": 1200}})
    admin.post("/calls/reset")
    result = hook.make_query(
        "SELECT Id FROM Lead",
        include_deleted=True,
        query_params={"headers": {"Sforce-Query-Options": "batchSize=500"}},
    )
    assert result["totalSize"] == 1200
    assert admin.calls()["by_kind"] == {"query": 1, "query_more": 2}


def test_lazy_query_does_not_fetch_pages_it_does_not_need(client, admin):
    admin.post("/seed", {"counts": {"Lead": 4500}})
    rows = client.query("SELECT Id FROM Lead")
    first = [next(rows) for _ in range(10)]
    assert len(first) == 10
    assert client.calls["query_more"] == 0


def test_query_excludes_deleted_and_query_all_includes_them(sf, client, admin):
    keep = admin.create("Lead", LastName="Keep", Company="C")
    gone = admin.create("Lead", LastName="Gone", Company="C")
    admin.post("/actions/delete", {"ids": [gone]})
    assert [r["Id"] for r in client.query("SELECT Id FROM Lead")] == [keep]
    every = {
        r["Id"]: r["IsDeleted"]
        for r in client.query("SELECT Id, IsDeleted FROM Lead", include_deleted=True)
    }
    assert every == {keep: False, gone: True}
    assert sf.query_all("SELECT Id FROM Lead", include_deleted=True)["totalSize"] == 2


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Nope__c FROM Lead", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE Email = 5", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE CreatedDate > 2024-01-01", "INVALID_FIELD"),
        ("SELECT Id FROM Lead ORDER BY Description", "INVALID_FIELD"),
        ("SELECT Owner.Nope FROM Lead", "INVALID_FIELD"),
        (
            "SELECT Id FROM Lead WHERE Email = 'a' AND Rating = 'b' OR Rating = 'c'",
            "MALFORMED_QUERY",
        ),
        ("SELECT Id FROM Lead WHERE", "MALFORMED_QUERY"),
        ("SELECT Id FROM Nope__c", "INVALID_TYPE"),
        ("SELECT Id FROM Lead WHERE Id = 'not-an-id'", "INVALID_QUERY_FILTER_OPERATOR"),
    ],
)
def test_invalid_queries(sf, client, soql, code):
    with pytest.raises(SalesforceMalformedRequest) as exc_info:
        sf.query(soql)
    assert exc_info.value.content[0]["errorCode"] == code
    with pytest.raises(ConfigError, match=code):
        list(client.query(soql))


def test_query_window_is_half_open_and_ordered(client, admin):
    at = [
        "2026-11-27T09:00:00Z",
        "2026-11-27T09:00:00Z",
        "2026-11-27T09:30:00Z",
        "2026-11-27T10:00:00Z",
    ]
    ids = [admin.create("Lead", LastName=f"L{i}", Company="C", _at=ts) for i, ts in enumerate(at)]
    admin.post("/actions/delete", {"ids": [ids[2]], "_at": "2026-11-27T09:45:00Z"})
    start = dt.datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    end = dt.datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    rows = list(client.query_window("Lead", ["Id", "SystemModstamp"], start, end))
    assert [r["Id"] for r in rows] == sorted(
        ids[:2]
    )  # start included, end excluded, deleted hidden
    with_deleted = list(
        client.query_window("Lead", ["Id", "IsDeleted"], start, end, include_deleted=True)
    )
    assert [r["Id"] for r in with_deleted] == [*sorted(ids[:2]), ids[2]]
    narrowed = list(
        client.query_window("Lead", ["Id"], start, end, where=format_soql("LastName = {}", "L1"))
    )
    assert [r["Id"] for r in narrowed] == [ids[1]]


def test_query_window_requires_aware_utc(client):
    naive = dt.datetime(2026, 11, 27, 9, 0)
    aware = dt.datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="UTC"):
        list(client.query_window("Lead", ["Id"], naive, aware))
    with pytest.raises(ValueError, match="UTC"):
        list(
            client.query_window(
                "Lead",
                ["Id"],
                aware,
                dt.datetime(2026, 11, 27, 11, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            )
        )
    with pytest.raises(ValueError, match="field"):
        list(client.query_window("Lead", ["Id) FROM User --"], aware, aware))


def test_query_by_values_chunks_the_in_list(client, admin):
    emails = [f"person{i}@example.com" for i in range(650)]
    admin.create_many(
        "Lead", [{"LastName": f"P{i}", "Company": "C", "Email": e} for i, e in enumerate(emails)]
    )
    values = [*emails, emails[0], None, "O'Nobody@example.com"]
    rows = list(client.query_by_values("Lead", ["Id", "Email"], "Email", values))
    assert sorted(r["Email"] for r in rows) == sorted(emails)
    # each value costs ~32 bytes URL-encoded ('person1@example.com' -> %27person1%40...%27%2C):
    # about 490 fit the request-URI budget, so 651 values take two queries
    assert client.calls["query"] == 2


def test_in_lists_fill_the_request_uri_without_passing_its_limit(client, admin):
    """Long addresses with quotes and plus signs (which SOQL escaping and URL-encoding grow):
    every query is
    accepted by the sandbox, which answers 414 past 16,384 bytes as a real org's front end
    does, and the lists are as long as the limit allows."""
    from urllib.parse import quote_plus

    from simple_salesforce import format_soql

    emails = [f"o'neil+{i:05d}.{'x' * 40}@long-domain-{i % 7}.example.com" for i in range(900)]
    admin.create_many(
        "Lead", [{"LastName": f"P{i}", "Company": "C", "Email": e} for i, e in enumerate(emails)]
    )
    rows = list(client.query_by_values("Lead", ["Id", "Email"], "Email", emails))
    assert sorted(r["Email"] for r in rows) == sorted(emails)
    encoded = sum(len(quote_plus(format_soql("{}", e))) + 3 for e in emails)
    assert encoded > 3 * 16_384  # the test would not test anything otherwise
    assert client.calls["query"] == -(-encoded // 15_000)  # ceil: lists full to ~95 %


def test_more_than_ten_open_cursors_release_the_oldest(client, sf, admin, sleeps):
    admin.post("/seed", {"counts": {"Lead": 2100}})
    first = sf.query("SELECT Id FROM Lead")
    for _ in range(10):
        sf.query("SELECT Id FROM Lead")
    with pytest.raises(SalesforceMalformedRequest) as exc_info:
        sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert exc_info.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    # The client treats an expired cursor as transient (the task retry re-runs the query).
    rows = client.query("SELECT Id FROM Lead")
    next(rows)
    for _ in range(10):
        sf.query("SELECT Id FROM Lead")
    with pytest.raises(RetriableError) as exc_info:
        list(rows)
    assert exc_info.value.code == "INVALID_QUERY_LOCATOR"
    assert sleeps == []  # retrying an expired cursor in the call would only waste API calls


def test_query_by_values_ands_an_extra_condition(client, admin):
    admin.create_many(
        "Lead",
        [
            {"LastName": "A", "Company": "C", "Email": "a@example.com", "Title": "CTO"},
            {"LastName": "B", "Company": "C", "Email": "b@example.com", "Title": "CEO"},
        ],
    )
    rows = list(
        client.query_by_values(
            "Lead",
            ["Id", "Email"],
            "Email",
            ["a@example.com", "b@example.com"],
            where="Title = 'CEO'",
        )
    )
    assert [r["Email"] for r in rows] == ["b@example.com"]
