"""Write safety of the Lead Gen & CRM client: which failures are retried for which method,
AmbiguousWriteError for creates without a natural key, blanks on write, redaction of what
exceptions carry. In-process fake transport, injected clock: nothing sleeps."""

from __future__ import annotations

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from crm_sync.clients.leadgen import LeadGenApiError, retry_safe
from crm_sync.errors import AmbiguousWriteError, RateLimitError, RetriableError, SyncError
from tests.unit.test_leadgen_client import SECRET, URL, FakeResponse, _echo_creates, api_error, make

pytestmark = pytest.mark.unit


def dropped(body):
    # The request went out; the connection died before an answer (the server may have applied it).
    raise requests.ConnectionError(
        requests.packages.urllib3.exceptions.ProtocolError("Connection aborted.")
    )


def refused(body):
    # No TCP connection could be opened: the request never left.
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111]")
    raise requests.ConnectionError(MaxRetryError(None, URL, reason))


def read_timeout(body):
    raise requests.ReadTimeout("read timed out")


def then(first, after=_echo_creates):
    calls = []

    def reply(body):
        calls.append(body)
        return first(body) if len(calls) == 1 else after(body)

    return reply


def test_methods_are_classified_by_whether_a_repeat_is_harmless():
    assert all(
        retry_safe(m) for m in ("getLeads", "updateLeadsV2", "deleteAccounts", "createLeads")
    )
    assert not any(
        retry_safe(m)
        for m in ("createOpportunities", "createAccounts", "createDealStages", "createOpportunityLeads", "createFields", "logCalls")
    )  # fmt: skip


@pytest.mark.parametrize(
    "failure",
    [dropped, read_timeout, lambda body: FakeResponse(503), lambda body: api_error(999)],
    ids=["dropped", "read-timeout", "http-503", "999"],
)
def test_a_create_without_natural_key_is_not_retried_after_it_may_have_been_applied(failure):
    client, session, t = make(then(failure), batch_size=2)
    objects = [{"opportunityName": f"Deal {i}"} for i in range(5)]
    with pytest.raises(AmbiguousWriteError) as err:
        client.create_opportunities(objects)
    exc = err.value
    assert len(session.bodies) == 1 and t.sleeps == [] and client.retries == 0
    assert (exc.method, exc.count, exc.first_index, exc.partial_results) == (
        "createOpportunities", 2, 0, [],
    )  # fmt: skip
    assert not isinstance(exc, RetriableError) and isinstance(exc, SyncError)
    assert "look them up" in str(exc)


def test_ambiguous_batch_keeps_the_results_of_the_batches_before_it():
    replies = iter([_echo_creates, dropped])
    client, _, _ = make(lambda body: next(replies)(body), batch_size=2)
    with pytest.raises(AmbiguousWriteError) as err:
        client.create_accounts([{"accountName": f"A{i}"} for i in range(5)])
    assert err.value.first_index == 2 and err.value.count == 2
    assert [(r.index, r.id) for r in err.value.partial_results] == [(0, "1000"), (1, "1001")]


@pytest.mark.parametrize(
    "failure",
    [refused, lambda body: api_error(107), lambda body: FakeResponse(429)],
    ids=["connection-refused", "107", "http-429"],
)
def test_a_create_without_natural_key_is_retried_when_it_certainly_was_not_applied(failure):
    client, session, t = make(then(failure))
    [result] = client.create_deal_stages([{"dealStageName": "Won"}])
    assert result.success and len(session.bodies) == 2 and t.sleeps == [0.5]


def test_keyed_creates_updates_and_deletes_are_retried_after_a_lost_answer():
    client, session, _ = make(then(dropped))
    assert client.create_leads([{"emailAddress": "a@x.test"}])[0].success  # 301 would answer
    assert len(session.bodies) == 2
    updates, s2, _ = make(
        then(dropped, lambda body: {"updates": [{"success": True, "error": None}]})
    )
    assert updates.update_opportunities([{"id": "1", "amount": "5"}])[0].success
    assert len(s2.bodies) == 2


def test_a_repeated_delete_counts_404_as_done():
    gone = {
        "success": False,
        "error": {"code": 404, "message": "Record with that ID does not exist"},
    }
    client, _, _ = make(then(dropped, lambda body: {"deletes": [gone]}))
    [result] = client.delete_opportunities(["9"])
    assert result.success and result.unchanged
    # without a lost answer first, 404 is a real failure
    plain, _, _ = make(lambda body: {"deletes": [gone]})
    assert plain.delete_opportunities(["9"])[0].error_code == "404"


def test_refused_connections_exhaust_retries_as_retriable_for_any_method():
    client, session, _ = make(refused, max_retries=2)
    with pytest.raises(RetriableError) as err:
        client.create_opportunity_leads([{"opportunityID": "1", "leadID": "2"}])
    assert len(session.bodies) == 3 and err.value.code == "refused"
    assert not isinstance(err.value, RateLimitError)


def test_writes_send_empty_strings_for_text_and_null_for_id_references():
    client, session, _ = make(lambda body: {"updates": [{"success": True, "error": None}]})
    client.update_leads(
        [{"id": "5", "title": None, "ownerID": "", "customer_tier_5f1a2b3c4d5e7": None}]
    )
    assert session.bodies[0]["params"]["objects"] == [
        {"id": "5", "title": "", "ownerID": None, "customer_tier_5f1a2b3c4d5e7": ""}
    ]


def test_api_error_data_and_record_errors_are_redacted():
    leak = f"https://api.example.test/?accountID=A&secretKey={SECRET}"
    client, _, _ = make(
        lambda body: api_error(205, f"bad {SECRET}", {"url": leak, "n": [SECRET, 3]})
    )
    with pytest.raises(LeadGenApiError) as err:
        client.call("getLeads", {"where": {}})
    exc = err.value
    assert SECRET not in repr(exc.data) and SECRET not in str(exc) and exc.data["n"][1] == 3
    assert exc.data["url"].endswith("secretKey=***")
    assert exc.__context__ is None and exc.__cause__ is None
    entry = {"success": False, "error": {"code": 205, "message": f"echo {SECRET}", "data": []}}
    writer, _, _ = make(lambda body: {"creates": [entry]})
    [result] = writer.create_leads([{"emailAddress": "x@x.test"}])
    assert SECRET not in result.error_message and "***" in result.error_message


def test_ambiguous_error_carries_no_secret():
    def drop_with_url(body):
        raise requests.ConnectionError(f"aborted: {URL}?accountID=A&secretKey={SECRET}")

    client, _, _ = make(drop_with_url)
    with pytest.raises(AmbiguousWriteError) as err:
        client.create_accounts([{"accountName": "A"}])
    exc = err.value
    assert SECRET not in str(exc) and SECRET not in repr(vars(exc))
    assert exc.__context__ is None and exc.__cause__ is None
