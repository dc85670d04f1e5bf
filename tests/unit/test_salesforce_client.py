"""Unit tests of the Salesforce client's pure parts: call kinds, ambiguity, error classes,
retry decisions, Metadata API parsing (no network)."""

from __future__ import annotations

import http.client

import pytest
import requests
from simple_salesforce.exceptions import SalesforceRefusedRequest
from urllib3.exceptions import NewConnectionError, ProtocolError

from crm_sync.clients.results import WriteResult
from crm_sync.clients.salesforce import AMBIGUOUS_CODE, SalesforceClient, classify_url
from crm_sync.clients.salesforce.errors import (
    AmbiguousWriteError,
    is_concurrent_limit,
    map_error,
    may_have_reached_server,
)
from crm_sync.clients.salesforce.metadata import parse_read_metadata
from crm_sync.clients.salesforce.transport import MaybeApplied
from crm_sync.clients.salesforce.util import ambiguous_result
from crm_sync.errors import RateLimitError, RetriableError, SyncError

pytestmark = pytest.mark.unit


class FakeSf:
    """Just enough of ``simple_salesforce.Salesforce`` for the transport."""

    session_id = "00Dx!secret"
    _salesforce_login_partial = None

    def __init__(self) -> None:
        self.session = requests.Session()


def client(**kw) -> tuple[SalesforceClient, list[float]]:
    sleeps: list[float] = []
    return SalesforceClient(FakeSf(), sleep=sleeps.append, **kw), sleeps


def dropped() -> requests.ConnectionError:
    """What requests raises when the server closes the connection without answering."""
    return requests.ConnectionError(
        ProtocolError("Connection aborted.", http.client.RemoteDisconnected("closed"))
    )


def refused() -> requests.ConnectionError:
    return requests.ConnectionError(NewConnectionError(None, "Connection refused"))


def test_classify_url_knows_the_metadata_api():
    assert classify_url("POST", "https://h/services/Soap/m/59.0") == "metadata"
    assert classify_url("POST", "https://h/services/Soap/u/59.0") == "login"
    assert classify_url("GET", "https://h/services/data/v59.0/jobs/query/750x/results") == "bulk2"
    assert classify_url("GET", "https://h/id/00D/005") == "other"


@pytest.mark.parametrize(
    ("exc", "reached"),
    [
        (dropped(), True),
        (requests.exceptions.ReadTimeout("slow"), True),
        (requests.exceptions.ChunkedEncodingError("cut"), True),
        (refused(), False),
        (requests.exceptions.ConnectTimeout("no route"), False),
        (requests.exceptions.SSLError("bad cert"), False),
        (ValueError("other"), False),
    ],
)
def test_may_have_reached_server(exc, reached):
    assert may_have_reached_server(exc) is reached


def test_a_lost_answer_to_a_non_idempotent_call_is_not_retried():
    c, sleeps = client()
    calls = []

    def fn():
        calls.append(1)
        raise dropped()

    with pytest.raises(MaybeApplied) as exc_info:
        c._call("collections insert Lead", fn, idempotent=False)
    assert calls == [1] and sleeps == []
    assert isinstance(exc_info.value.mapped, RetriableError)


def test_a_refused_connection_is_retried_even_when_not_idempotent():
    c, sleeps = client(max_retries=2)
    attempts = iter([refused(), refused(), None])

    def fn():
        exc = next(attempts)
        if exc:
            raise exc
        return "ok"

    trace: list[BaseException] = []
    assert c._call("x", fn, idempotent=False, trace=trace) == "ok"
    assert sleeps == [0.5, 1.0] and len(trace) == 2


def refusal(message: str) -> SalesforceRefusedRequest:
    return SalesforceRefusedRequest(
        "https://h/x", 403, "x", [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": message}]
    )


def test_concurrent_limit_is_retried_and_the_daily_limit_is_not():
    concurrent = map_error(refusal("ConcurrentPerOrgLongTxn Limit exceeded."), "q", None, str)
    daily = map_error(refusal("TotalRequests Limit exceeded."), "q", None, str)
    assert isinstance(concurrent, RateLimitError) and is_concurrent_limit(concurrent)
    assert isinstance(daily, RateLimitError) and not is_concurrent_limit(daily)
    c, sleeps = client(max_retries=3)
    with pytest.raises(RateLimitError, match="TotalRequests"):
        c._call("q", lambda: (_ for _ in ()).throw(refusal("TotalRequests Limit exceeded.")))
    assert sleeps == []
    with pytest.raises(RateLimitError, match="Concurrent"):
        c._call(
            "q", lambda: (_ for _ in ()).throw(refusal("ConcurrentPerOrgLongTxn Limit exceeded."))
        )
    assert sleeps == [0.5, 1.0, 2.0]


def test_ambiguous_write_error_carries_every_result():
    results = [WriteResult(0, True, "00Q1", True), ambiguous_result(1, "dropped")]
    err = AmbiguousWriteError("lost", sobject="Lead", operation="insert", results=results)
    assert isinstance(err, SyncError) and not isinstance(err, RetriableError)
    assert err.ambiguous == [1] and err.results[1].error_code == AMBIGUOUS_CODE
    assert "may have been applied" in err.results[1].error_message


def test_create_with_an_external_id_is_an_upsert(monkeypatch):
    c, _ = client()
    seen = []
    monkeypatch.setattr(c, "upsert", lambda *a: seen.append(a) or [])
    c.create("Lead", [{"K__c": "1"}], external_id_field="K__c")
    assert seen == [("Lead", "K__c", [{"K__c": "1"}])]


def test_parse_read_metadata_skips_unknown_names():
    body = (
        b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        b'xmlns="http://soap.sforce.com/2006/04/metadata" '
        b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        b"<readMetadataResponse><result>"
        b'<records xsi:type="ProfileSessionSetting"><fullName>Admin</fullName>'
        b"<requiredSessionLevel>HIGH_ASSURANCE</requiredSessionLevel></records>"
        b'<records xsi:type="ProfileSessionSetting"/>'
        b"</result></readMetadataResponse></soapenv:Body></soapenv:Envelope>"
    )
    assert parse_read_metadata(body) == [
        {"fullName": "Admin", "requiredSessionLevel": "HIGH_ASSURANCE"}
    ]


def test_bulk_query_checks_its_arguments():
    c, _ = client()
    with pytest.raises(ValueError):
        c.bulk_query("SELECT Id FROM Lead", page_size=0)
    with pytest.raises(ValueError):
        c.read_metadata("ProfileSessionSetting", [])
