"""Pure client logic against an in-process fake transport: rate limiter, backoff, error
classification, result parsing, batching, paging. No process, no network, no real sleeping."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from crm_sync.clients.leadgen import (
    LeadGenApiError,
    LeadGenClient,
    RateLimiter,
    parse_event_data,
    parse_timestamp,
)
from crm_sync.errors import AuthError, ConfigError, FatalError, RateLimitError, RetriableError

pytestmark = pytest.mark.unit

SECRET = "TOP-SECRET-KEY-0123456789"
URL = "https://api.example.test/pubapi/v1.2/"


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


class FakeResponse:
    def __init__(
        self, status: int = 200, payload: Any = None, text: str | None = None, url: str = URL
    ):
        self.status_code = status
        self._payload = payload
        self.text = text if text is not None else ""
        self.url = url

    def json(self) -> Any:
        if self._payload is None:
            raise ValueError("no JSON")
        return self._payload


Reply = Callable[[dict[str, Any]], Any]


class FakeSession:
    """Records requests; ``reply(body)`` returns a result dict, a FakeResponse, or raises."""

    verify: Any = True

    def __init__(self, reply: Reply):
        self.reply = reply
        self.bodies: list[dict[str, Any]] = []
        self.params: list[dict[str, str]] = []

    def post(
        self, url: str, *, params: dict[str, str], json: dict[str, Any], timeout: float, verify: Any
    ) -> FakeResponse:
        self.bodies.append(json)
        self.params.append(params)
        out = self.reply(json)
        if isinstance(out, FakeResponse):
            return out
        result, error = out if isinstance(out, tuple) else (out, None)
        return FakeResponse(
            200,
            {
                "result": result,
                "error": error,
                "id": json["id"],
                "callCount": str(len(self.bodies)),
                "queryLimit": "50000",
            },
        )


def api_error(code: int, message: str = "boom", data: Any = None) -> tuple[None, dict[str, Any]]:
    return None, {"code": code, "message": message, "data": data if data is not None else []}


def make(
    reply: Reply, fake_time: FakeTime | None = None, **kwargs: Any
) -> tuple[LeadGenClient, FakeSession, FakeTime]:
    fake_time = fake_time or FakeTime()
    session = FakeSession(reply)
    kwargs.setdefault("max_per_second", 0)
    client = LeadGenClient(
        URL,
        "ACCT123",
        SECRET,
        session=session,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        **kwargs,
    )
    return client, session, fake_time


# -- rate limiter -----------------------------------------------------------------------------


def _max_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


def test_limiter_allows_a_burst_then_keeps_any_second_under_the_cap():
    t = FakeTime()
    limiter = RateLimiter(10, clock=t.clock, sleep=t.sleep)
    times = []
    for _ in range(35):
        limiter.acquire()
        times.append(t.now)
    assert times[:10] == [0.0] * 10 and t.sleeps[0] == pytest.approx(1.05)
    assert _max_in_window(times, 1.0) == 10
    assert limiter.waited == pytest.approx(sum(t.sleeps))


def test_limiter_fractional_rate_and_disabled():
    t = FakeTime()
    limiter = RateLimiter(2.5, clock=t.clock, sleep=t.sleep, margin=0)
    times = []
    for _ in range(6):
        limiter.acquire()
        times.append(t.now)
    assert limiter.capacity == 2 and times == pytest.approx([0, 0, 0.8, 0.8, 1.6, 1.6])
    off = RateLimiter(None, clock=t.clock, sleep=t.sleep)
    before = list(t.sleeps)
    for _ in range(100):
        off.acquire()
    assert t.sleeps == before


def test_client_waits_on_the_injected_clock_only():
    client, session, t = make(lambda body: {"userProfile": []}, max_per_second=10)
    for _ in range(25):
        client.get_user_profiles()
    assert len(session.bodies) == 25 and client.api_calls == 25
    assert sum(t.sleeps) == pytest.approx(2 * 1.05)


# -- retries and classification -----------------------------------------------------------------


def test_backoff_is_exponential_then_retriable_error():
    client, session, t = make(lambda body: api_error(999, "System temporarily unavailable"))
    with pytest.raises(RetriableError) as err:
        client.get_user_profiles()
    assert t.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert len(session.bodies) == 6 and client.calls["getUserProfiles"] == 6 and client.retries == 5
    assert err.value.code == 999 and err.value.method == "getUserProfiles"
    assert not isinstance(err.value, RateLimitError)


def test_backoff_is_capped():
    client, _, t = make(lambda body: api_error(999), max_retries=8, backoff_base=1)
    with pytest.raises(RetriableError):
        client.get_user_profiles()
    assert t.sleeps == [1, 2, 4, 8, 16, 30, 30, 30]


def test_107_retried_then_succeeds_or_becomes_rate_limit_error():
    replies = iter([api_error(107), api_error(107), {"userProfile": [{"id": "1"}]}])
    client, session, t = make(lambda body: next(replies))
    assert client.get_user_profiles() == [{"id": "1"}]
    assert t.sleeps == [0.5, 1.0] and len(session.bodies) == 3
    always, _, _ = make(lambda body: api_error(107), max_retries=1)
    with pytest.raises(RateLimitError) as err:
        always.get_user_profiles()
    assert err.value.code == 107


def test_daily_cap_106_is_not_retried():
    client, session, t = make(lambda body: api_error(106, "Exceeded daily call limit"))
    with pytest.raises(RateLimitError) as err:
        client.get_user_profiles()
    assert err.value.code == 106 and len(session.bodies) == 1 and t.sleeps == []


@pytest.mark.parametrize(
    ("code", "exc_type"),
    [(101, LeadGenApiError), (102, LeadGenApiError), (105, AuthError), (204, ConfigError), (205, LeadGenApiError), (209, LeadGenApiError)],
)  # fmt: skip
def test_request_errors_are_fatal_with_their_code(code, exc_type):
    client, session, _ = make(lambda body: api_error(code, data={"param": "where"}))
    with pytest.raises(exc_type) as err:
        client.call("getLeads", {"where": {}})
    assert isinstance(err.value, FatalError) and err.value.code == code and len(session.bodies) == 1
    assert f"error {code}" in str(err.value)


def test_http_401_is_auth_error_without_the_secret():
    body = "Unable to determine clusterID from provided accountID/secretKey"
    client, session, t = make(lambda b: FakeResponse(401, text=body), conn_id="leadgen_default")
    with pytest.raises(AuthError) as err:
        client.get_fields()
    text = str(err.value)
    assert "ACCT123" in text and "leadgen_default" in text and SECRET not in text
    assert len(session.bodies) == 1 and t.sleeps == []


def test_http_5xx_and_bad_json_are_retried_4xx_is_config_error():
    replies = iter(
        [FakeResponse(503), FakeResponse(200, None, text="<html>proxy</html>"), {"field": []}]
    )
    client, session, t = make(lambda body: next(replies))
    assert client.get_fields() == []
    assert len(session.bodies) == 3 and t.sleeps == [0.5, 1.0]
    lost, _, _ = make(lambda body: FakeResponse(404, url=URL + f"?accountID=A&secretKey={SECRET}"))
    with pytest.raises(ConfigError) as err:
        lost.get_fields()
    assert "HTTP 404" in str(err.value) and SECRET not in str(err.value)


def test_connection_errors_are_retried_and_redacted_without_chaining():
    def refuse(body):
        raise requests.ConnectionError(
            f"Max retries exceeded with url: /pubapi/v1.2/?accountID=ACCT123&secretKey={SECRET}"
        )

    client, session, t = make(refuse, max_retries=2)
    with pytest.raises(RetriableError) as err:
        client.get_fields()
    assert len(session.bodies) == 3 and t.sleeps == [0.5, 1.0]
    exc = err.value
    # Raised outside the except block: no __context__ holds requests' exception (URL + secret).
    assert exc.__context__ is None and exc.__cause__ is None
    rendered = "".join(traceback.format_exception(exc))
    assert SECRET not in rendered and SECRET not in repr(exc) and "secretKey=***" in str(exc)


def test_tls_failures_are_not_retried():
    def bad_cert(body):
        raise requests.exceptions.SSLError(f"certificate verify failed (url ...secretKey={SECRET})")

    client, session, _ = make(bad_cert)
    with pytest.raises(ConfigError) as err:
        client.get_fields()
    assert len(session.bodies) == 1 and SECRET not in str(err.value)


def test_response_id_must_echo_the_request_id():
    client, _, _ = make(
        lambda body: FakeResponse(200, {"result": {"field": []}, "error": None, "id": "other"})
    )
    with pytest.raises(LeadGenApiError, match="does not match"):
        client.get_fields()


def test_credentials_travel_in_the_query_string_and_usage_is_read():
    client, session, _ = make(lambda body: {"field": []})
    client.get_fields()
    assert session.params[0] == {"accountID": "ACCT123", "secretKey": SECRET}
    body = session.bodies[0]
    assert set(body) == {"method", "params", "id"} and body["params"] == {
        "where": {},
        "limit": 500,
        "offset": 0,
    }
    assert client.daily_usage == (1, 50000)


# -- writes -------------------------------------------------------------------------------------


def _echo_creates(body):
    return {
        "creates": [
            {"success": True, "error": None, "id": 1000 + i}
            for i, _ in enumerate(body["params"]["objects"])
        ]
    }


def test_batches_of_500_and_one_result_per_object_in_order():
    client, session, _ = make(_echo_creates)
    results = client.create_leads({"emailAddress": f"{i}@x.test"} for i in range(1201))
    assert [len(b["params"]["objects"]) for b in session.bodies] == [500, 500, 201]
    assert [r.index for r in results] == list(range(1201))
    assert results[0].id == "1000" and results[500].id == "1000" and results[1200].id == "1200"
    assert all(r.success and r.created is True for r in results)


def test_object_errors_are_results_not_exceptions():
    entries = [
        {"success": True, "error": None},
        {"success": False, "error": {"code": 302, "message": "No table rows affected", "data": []}},
        {
            "success": False,
            "error": {
                "code": 404,
                "message": "Record with that ID does not exist",
                "data": {"id": "9"},
            },
        },
        {
            "success": "false",
            "error": {"code": 205, "message": "Invalid parameters", "data": {"field": "firstName"}},
        },
    ]
    client, session, _ = make(
        lambda body: ({"updates": entries}, [e["error"] for e in entries if e["error"]])
    )
    results = client.update_leads([{"id": str(i)} for i in range(4)])
    assert session.bodies[0]["method"] == "updateLeadsV2"
    assert [(r.success, r.unchanged, r.error_code) for r in results] == [
        (True, False, None),
        (True, True, None),
        (False, False, "404"),
        (False, False, "205"),
    ]
    assert (
        results[3].errors[0].fields == ("firstName",)
        and "Invalid parameters" in results[3].error_message
    )


def test_create_failures_carry_code_and_fields():
    reply = {
        "creates": [
            {
                "success": False,
                "error": {
                    "code": 301,
                    "message": "Entry already exists",
                    "data": {"field": "emailAddress"},
                },
            }
        ]
    }
    client, _, _ = make(lambda body: reply)
    [result] = client.create_leads([{"emailAddress": "dup@x.test"}])
    assert (result.success, result.id, result.created, result.error_code) == (
        False,
        None,
        False,
        "301",
    )
    assert result.errors[0].fields == ("emailAddress",)


def test_batch_error_midway_keeps_partial_results():
    replies = iter([_echo_creates, lambda body: api_error(205)])
    client, _, _ = make(lambda body: next(replies)(body), batch_size=2)
    with pytest.raises(LeadGenApiError) as err:
        client.create_leads([{"emailAddress": f"{i}@x.test"} for i in range(5)])
    assert [(r.index, r.id) for r in err.value.partial_results] == [(0, "1000"), (1, "1001")]


def test_result_count_mismatch_is_an_error():
    client, _, _ = make(lambda body: {"deletes": [{"success": True, "error": None}]})
    with pytest.raises(LeadGenApiError, match="1 results for 2 objects") as err:
        client.delete_leads(["1", "2"])
    assert err.value.partial_results == []


def test_delete_sends_id_objects():
    client, session, _ = make(lambda body: {"deletes": [{"success": True, "error": None}]})
    client.delete_leads([123])
    assert session.bodies[0]["params"] == {"objects": [{"id": "123"}]}


# -- reads --------------------------------------------------------------------------------------


def _pager(rows: list[dict[str, Any]], key: str = "lead", cap: int = 500) -> Reply:
    def reply(body):
        p = body["params"]
        limit = min(int(p["limit"]), cap)
        return {key: rows[int(p["offset"]) : int(p["offset"]) + limit]}

    return reply


def test_paging_overlaps_one_row_and_stops_on_the_first_short_page():
    rows = [{"id": str(i)} for i in range(1000)]
    client, session, _ = make(_pager(rows))
    assert list(client.get_leads()) == rows
    # each page starts at the last row of the previous one (the anchor), so 499 new rows a page
    assert [b["params"]["offset"] for b in session.bodies] == [0, 499, 998]
    short, session2, _ = make(_pager(rows[:730]))
    assert len(list(short.get_leads())) == 730 and len(session2.bodies) == 2


def test_has_more_false_stops_paging_and_missing_key_is_an_error():
    client, session, _ = make(
        lambda body: {"getWherelistMemberGets": [{"id": "1"}] * 500, "hasMore": False}
    )
    assert len(client.get_list_members(7)) == 500 and len(session.bodies) == 1
    assert session.bodies[0]["params"]["where"] == {"id": "7"}
    wrong, _, _ = make(lambda body: {"emailJobs": []})
    with pytest.raises(LeadGenApiError, match="getAllgetEmailJobss"):
        wrong.get_email_jobs()


def test_page_size_limits_and_batch_size_limit():
    for bad in (1, 5001):
        with pytest.raises(ConfigError):
            make(lambda body: {}, page_size=bad)
    with pytest.raises(ConfigError):
        make(lambda body: {}, batch_size=501)


def test_a_capped_page_is_full_not_the_end():
    """getLeads answers at most 500 rows whatever limit says: with page_size 1000 the client
    asks 500 and a 500-row answer does not end paging; getLeadsDateRange may take 1000."""
    rows = [{"id": str(i)} for i in range(1200)]
    client, session, _ = make(_pager(rows, cap=500), page_size=1000)
    assert len(list(client.get_leads())) == 1200
    assert {b["params"]["limit"] for b in session.bodies} == {500} and len(session.bodies) == 3
    ranged, session2, _ = make(_pager([], cap=5000), page_size=1000)
    list(
        ranged.get_leads_date_range(
            datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
        )
    )
    assert session2.bodies[0]["params"]["limit"] == 1000


def test_lookups_by_email_chunk_and_keep_the_order_asked():
    stored = {f"e{i}@x.test": {"id": str(i), "emailAddress": f"E{i}@x.test"} for i in range(1001)}

    def reply(body):
        wanted = body["params"]["where"]["emailAddress"]
        return {"lead": [stored[e] for e in sorted(wanted) if e in stored]}

    client, session, _ = make(reply)
    asked = [f"e{i}@x.test" for i in reversed(range(1001))] + ["missing@x.test"]
    found = client.get_leads_by_emails(asked)
    assert [row["id"] for row in found] == [str(i) for i in reversed(range(1001))]
    assert [len(b["params"]["where"]["emailAddress"]) for b in session.bodies] == [500, 500, 2]


def test_date_range_arguments_are_utc_and_must_be_aware():
    client, session, _ = make(_pager([]))
    plus2 = timezone(timedelta(hours=2))
    list(
        client.get_leads_date_range(
            datetime(2026, 3, 1, 12, 0, tzinfo=plus2), datetime(2026, 3, 2, tzinfo=UTC), "create"
        )
    )
    params = session.bodies[0]["params"]
    assert (params["startDate"], params["endDate"], params["timestamp"]) == (
        "2026-03-01 10:00:00",
        "2026-03-02 00:00:00",
        "create",
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        list(client.get_leads_date_range(datetime(2026, 3, 1), datetime(2026, 3, 2, tzinfo=UTC)))
    with pytest.raises(ValueError):
        list(
            client.get_leads_date_range(
                datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC), "modified"
            )
        )


def test_events_use_a_lower_bound_and_filter_until_locally():
    events = [{"id": str(i), "createTimestamp": f"2026-11-27 0{i}:00:00"} for i in range(1, 6)]
    client, session, _ = make(_pager(events, key="event"))
    got = list(
        client.get_events(
            datetime(2026, 11, 27, 1, tzinfo=UTC), datetime(2026, 11, 27, 3, tzinfo=UTC), lead_id=7
        )
    )
    assert [e["id"] for e in got] == ["1", "2", "3"]
    assert session.bodies[0]["params"]["where"] == {
        "createTimestamp": "2026-11-27 01:00:00",
        "leadID": "7",
    }


def test_parse_helpers():
    assert parse_event_data('{"url": "https://x"}') == {"url": "https://x"}
    assert parse_event_data("{'formName': 'Contact Us'}") == {"formName": "Contact Us"}
    assert parse_event_data({"a": 1}) == {"a": 1}
    assert parse_event_data(None) == {} and parse_event_data("not json") == {}
    assert parse_timestamp("2026-11-27 09:10:00") == datetime(2026, 11, 27, 9, 10, tzinfo=UTC)
    assert parse_timestamp(None) is None


def test_secret_never_in_repr_str_or_config_errors():
    client, _, _ = make(lambda body: {})
    assert SECRET not in repr(client) and SECRET not in str(client)
    with pytest.raises(ConfigError) as err:
        LeadGenClient(URL + f"?accountID=A&secretKey={SECRET}", "A", SECRET)
    assert SECRET not in str(err.value)
    with pytest.raises(ConfigError, match="needs an account ID"):
        LeadGenClient(URL, "A", "")
