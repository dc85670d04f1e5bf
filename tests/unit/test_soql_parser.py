"""The sandbox's SOQL parser: each valid form next to the invalid forms it must refuse.

A permissive parser that silently dropped an unknown clause would widen filters (and return
every row), so the invalid side matters as much as the valid one.
"""

from __future__ import annotations

import datetime as dt

import pytest

from sandbox.salesforce import soql
from sandbox.salesforce.query import like_pattern

pytestmark = pytest.mark.unit

UTC = dt.UTC


def parse(text: str) -> soql.Query:
    return soql.parse(text)


# (valid query, invalid sibling, what makes the sibling invalid)
PAIRS = [
    ("SELECT Id FROM Lead", "SELECT Id Lead", "missing FROM"),
    ("SELECT Id, Email FROM Lead", "SELECT Id,, Email FROM Lead", "empty select item"),
    (
        "SELECT Id FROM Lead WHERE Email = 'a@b.com'",
        'SELECT Id FROM Lead WHERE Email = "a@b.com"',
        "double quotes",
    ),
    (
        "SELECT Id FROM Lead WHERE Email = 'a@b.com'",
        "SELECT Id FROM Lead WHERE Email 'a@b.com'",
        "no operator",
    ),
    (
        "SELECT Id FROM Lead WHERE Email LIKE '%@x.com'",
        "SELECT Id FROM Lead WHERE Email LIKE 5",
        "LIKE needs a string",
    ),
    (
        "SELECT Id FROM Lead WHERE NOT Email = 'a'",
        "SELECT Id FROM Lead WHERE Email NOT = 'a'",
        "NOT placement",
    ),
    (
        "SELECT Id FROM Lead WHERE Email NOT IN ('a')",
        "SELECT Id FROM Lead WHERE Email NOT LIKE 'a'",
        "NOT LIKE",
    ),
    (
        "SELECT Id FROM Lead WHERE Email IN ('a', 'b')",
        "SELECT Id FROM Lead WHERE Email IN ()",
        "empty IN",
    ),
    (
        "SELECT Id FROM Lead WHERE (A__c = 1 AND B__c = 2) OR C__c = 3",
        "SELECT Id FROM Lead WHERE A__c = 1 AND B__c = 2 OR C__c = 3",
        "AND/OR mix",
    ),
    (
        "SELECT Id FROM Lead WHERE A__c = 1 AND (B__c = 2 OR C__c = 3)",
        "SELECT Id FROM Lead WHERE A__c = 1 AND (B__c = 2 OR C__c = 3",
        "unbalanced parenthesis",
    ),
    (
        "SELECT Id FROM Lead WHERE CreatedDate > 2024-01-01T00:00:00Z",
        "SELECT Id FROM Lead WHERE CreatedDate > 2024-01-01T00:00:00",
        "datetime without zone",
    ),
    (
        "SELECT Id FROM Lead WHERE CreatedDate > 2024-01-01T00:00:00+01:00",
        "SELECT Id FROM Lead WHERE CreatedDate > 2024-13-01T00:00:00Z",
        "month 13",
    ),
    (
        "SELECT Id FROM Task WHERE ActivityDate = 2024-02-29",
        "SELECT Id FROM Task WHERE ActivityDate = 2023-02-29",
        "not a leap year",
    ),
    (
        "SELECT Id FROM Lead WHERE CreatedDate = LAST_N_DAYS:30",
        "SELECT Id FROM Lead WHERE CreatedDate = LAST_N_DAYS",
        "LAST_N_DAYS without n",
    ),
    (
        "SELECT Id FROM Lead ORDER BY Email DESC NULLS LAST, Id",
        "SELECT Id FROM Lead ORDER BY Email NULLS",
        "NULLS without FIRST/LAST",
    ),
    (
        "SELECT Id FROM Lead LIMIT 10 OFFSET 5",
        "SELECT Id FROM Lead OFFSET 5 LIMIT 10",
        "OFFSET before LIMIT",
    ),
    ("SELECT Id FROM Lead LIMIT 10", "SELECT Id FROM Lead LIMIT -1", "negative LIMIT"),
    ("SELECT COUNT() FROM Lead", "SELECT COUNT(Id) FROM Lead", "aggregate other than COUNT()"),
    ("SELECT Id, Owner.Email FROM Lead", "SELECT Id, Owner. FROM Lead", "dangling dot"),
    (
        "SELECT Id FROM Lead WHERE LastName = 'O\\'Brien'",
        "SELECT Id FROM Lead WHERE LastName = 'O'Brien'",
        "unescaped quote",
    ),
    (
        "SELECT Id FROM Lead WHERE LastName = 'a\\\\b'",
        "SELECT Id FROM Lead WHERE LastName = 'a\\qb'",
        "unknown escape",
    ),
    ("SELECT Id FROM Lead", "SELECT Id FROM Lead WHERE", "WHERE without condition"),
    (
        "SELECT Id FROM Lead WHERE IsConverted = false",
        "SELECT Id FROM Lead WHERE IsConverted = :flag",
        "bind variable",
    ),
    ("SELECT Id FROM Contact", "SELECT Id, (SELECT Id FROM Cases) FROM Contact", "child subquery"),
    ("SELECT Id FROM Contact", "SELECT Id FROM Contact c", "object alias"),
    ("SELECT Id FROM Contact", "SELECT FIELDS(ALL) FROM Contact", "FIELDS()"),
    ("SELECT Id FROM Contact", "SELECT Id FROM Contact GROUP BY Id", "GROUP BY"),
    ("SELECT Id FROM Contact", "SELECT Id FROM Contact FOR UPDATE", "FOR UPDATE"),
]


@pytest.mark.parametrize(("valid", "invalid", "why"), PAIRS, ids=[p[2] for p in PAIRS])
def test_valid_parses_and_invalid_sibling_is_refused(valid: str, invalid: str, why: str) -> None:
    assert isinstance(parse(valid), soql.Query)
    with pytest.raises(soql.SoqlSyntaxError):
        parse(invalid)


def test_structure_of_a_full_query() -> None:
    q = parse(
        "select Id, Owner.Email, Account.Owner.Name from Contact "
        "where (Email like '%@x.com' or Email = null) and not IsDeleted = true "
        "order by LastName desc nulls last, Id limit 50 offset 10"
    )
    assert q.sobject == "Contact"
    assert [f.parts for f in q.fields] == [
        ("Id",),
        ("Owner", "Email"),
        ("Account", "Owner", "Name"),
    ]
    assert isinstance(q.where, soql.And)
    first, second = q.where.items
    assert isinstance(first, soql.Or) and isinstance(second, soql.Not)
    like, is_null = first.items
    assert like.op == "LIKE" and like.value.raw == "%@x.com"
    assert is_null.op == "=" and is_null.value.kind == "null"
    assert [(o.field.dotted, o.descending, o.nulls_last) for o in q.order_by] == [
        ("LastName", True, True),
        ("Id", False, None),
    ]
    assert (q.limit, q.offset) == (50, 10)


def test_count_query() -> None:
    q = parse("SELECT COUNT() FROM Lead WHERE IsDeleted = false")
    assert q.count_only and q.fields == ()


def test_escaped_string_literals_are_decoded() -> None:
    q = parse(r"SELECT Id FROM Lead WHERE LastName = 'O\'Brien \"Jr\" \\ \n'")
    assert q.where.value.value == 'O\'Brien "Jr" \\ \n'


def test_in_list_and_not_in() -> None:
    q = parse("SELECT Id FROM Lead WHERE Status NOT IN ('Open', 'Closed', null)")
    assert isinstance(q.where, soql.InList) and q.where.negated
    assert [v.value for v in q.where.values] == ["Open", "Closed", None]


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("2024-01-01T00:00:00Z", dt.datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T02:00:00+02:00", dt.datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T00:00:00-0500", dt.datetime(2024, 1, 1, 5, tzinfo=UTC)),
        ("2024-01-01T00:00:00.250Z", dt.datetime(2024, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC)),
    ],
)
def test_datetime_literals_are_normalised_to_utc(literal: str, expected: dt.datetime) -> None:
    q = parse(f"SELECT Id FROM Lead WHERE SystemModstamp >= {literal}")
    assert q.where.value.kind == "datetime"
    assert q.where.value.value == expected


def test_date_literal_and_date_keywords() -> None:
    q = parse("SELECT Id FROM Task WHERE ActivityDate = 2024-03-01 AND CreatedDate = LAST_N_DAYS:7")
    date_cmp, keyword = q.where.items
    assert date_cmp.value.value == dt.date(2024, 3, 1)
    assert keyword.value.value == soql.DateLiteral("LAST_N_DAYS", 7)


def test_numbers_booleans_and_keywords_are_case_insensitive() -> None:
    q = parse("SeLeCt Id FrOm Opportunity WhErE Amount > -10.5 AnD IsWon = TRUE")
    amount, won = q.where.items
    assert amount.value.value == -10.5
    assert won.value.value is True


def test_error_message_points_at_the_offending_token() -> None:
    text = "SELECT Id FROM Lead WHERE Email = 'a' AND Status = 'x' OR Rating = 'Hot'"
    with pytest.raises(soql.SoqlSyntaxError) as exc_info:
        parse(text)
    rendered = exc_info.value.render(text)
    assert "ERROR at Row:1:Column:56" in rendered
    assert "unexpected token: 'OR'" in rendered


def test_empty_query_is_refused() -> None:
    with pytest.raises(soql.SoqlSyntaxError):
        parse("   ")


def test_like_pattern_keeps_escaped_wildcards_literal() -> None:
    # SOQL: '50\% off_%' -> a literal %, a wildcard _ and a wildcard %
    assert like_pattern(r"50\% off_%") == r"50\% off_%"
    assert like_pattern(r"O\'Brien%") == "O'Brien%"
    assert like_pattern(r"a\\b") == r"a\\b"
