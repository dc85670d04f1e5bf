"""Envelope, authentication, error classification, limits and injected faults."""

from __future__ import annotations

import pytest
import requests

from crm_sync.clients.leadgen import LeadGenApiError
from crm_sync.errors import AuthError, ConfigError, FatalError, RateLimitError, RetriableError

pytestmark = pytest.mark.contract


def test_envelope_of_a_read(api_url, auth_params):
    body = {"method": "getLeads", "params": {"where": {}}, "id": "req-7"}
    resp = requests.post(api_url, params=auth_params, json=body, timeout=10)
    assert resp.status_code == 200
    envelope = resp.json()
    assert list(envelope) == ["result", "error", "id", "callCount", "queryLimit"]
    assert (
        envelope["result"] == {"lead": []}
        and envelope["error"] is None
        and envelope["id"] == "req-7"
    )
    assert (envelope["callCount"], envelope["queryLimit"]) == ("1", "50000")


def test_client_tracks_daily_usage_and_counts_calls(client):
    client.create_leads([{"emailAddress": "u@example.com"}])
    list(client.get_leads())
    assert client.daily_usage == (2, 50000)
    assert client.api_calls == 2 and dict(client.calls) == {"createLeads": 1, "getLeads": 1}


def test_full_success_of_a_write_has_empty_error_array(api_url, auth_params):
    body = {
        "method": "createLeads",
        "params": {"objects": [{"emailAddress": "e@example.com"}]},
        "id": "",
    }
    envelope = requests.post(api_url, params=auth_params, json=body, timeout=10).json()
    assert envelope["error"] == [] and envelope["id"] == ""


def test_bad_credentials_answer_401_like_the_real_api(api_url, auth_params):
    resp = requests.post(
        api_url,
        params={**auth_params, "secretKey": "WRONG"},
        json={"method": "getLeads"},
        timeout=10,
    )
    assert resp.status_code == 401
    assert resp.text == "Unable to determine clusterID from provided accountID/secretKey"
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="SharpSpring"'


def test_bad_credentials_raise_auth_error_naming_the_account_not_the_secret(make_client):
    secret = "S3CRET-VALUE-THAT-IS-WRONG"
    client = make_client(secret_key=secret, conn_id="leadgen_default")
    with pytest.raises(AuthError) as err:
        client.get_user_profiles()
    text = str(err.value)
    assert "SANDBOXACCOUNT" in text and "leadgen_default" in text and "clusterID" in text
    assert secret not in text and secret not in repr(err.value)
    assert err.value.code == 401
    assert client.calls["getUserProfiles"] == 1  # auth failures are not retried


def test_unknown_method_is_config_error_204(client):
    with pytest.raises(ConfigError) as err:
        client.call("getLeadz", {"where": {}})
    assert err.value.code == 204 and err.value.method == "getLeadz"


def test_more_than_500_objects_is_209(client):
    with pytest.raises(LeadGenApiError) as err:
        client.call(
            "createLeads", {"objects": [{"emailAddress": f"{i}@example.com"} for i in range(501)]}
        )
    assert err.value.code == 209
    assert isinstance(err.value, FatalError)


def test_request_shape_errors(client, api_url, auth_params):
    with pytest.raises(LeadGenApiError) as err:
        client.call("getLeads", {})  # where is required even when empty
    assert err.value.code == 206
    with pytest.raises(LeadGenApiError) as err:
        client.call("createLeads", {})
    assert err.value.code == 207
    with pytest.raises(LeadGenApiError) as err:
        client.call("getLeads", {"where": {}, "limit": [5]})
    assert err.value.code == 210
    raw = [
        (b"this is not json", 101),
        (b'{"method": "getLeads", "params": {"where": {}}}', 102),
        (b'{"params": {}, "id": "1"}', 201),
        (b'{"method": "getLeads", "id": "1"}', 202),
    ]
    for body, code in raw:
        envelope = requests.post(api_url, params=auth_params, data=body, timeout=10).json()
        assert envelope["error"]["code"] == code, body


def test_burst_without_client_limiter_hits_107_then_limiter_avoids_it(make_client, admin):
    raw = make_client(max_per_second=0, max_retries=0)
    with pytest.raises(RateLimitError) as err:
        for _ in range(30):
            raw.get_user_profiles()
    assert err.value.code == 107 and isinstance(err.value, RetriableError)
    assert raw.api_calls == 11  # ten accepted in the window, the eleventh refused
    assert admin.calls()["rejected"] == {"107": 1}

    admin.post("/calls/reset")
    limited = make_client(max_per_second=10, max_retries=0)
    for _ in range(25):
        limited.get_user_profiles()
    assert limited.api_calls == 25 and limited.limiter.waited > 0
    stats = admin.calls()
    assert stats["total"] == 25 and stats["rejected"] == {}


def test_107_is_retried_by_the_client(fast_client, admin):
    admin.fault("getUserProfiles", "107", count=2)
    assert fast_client.get_user_profiles()
    assert fast_client.calls["getUserProfiles"] == 3 and fast_client.retries == 2


def test_daily_cap_raises_106_rate_limit_error_without_retrying(client, admin):
    admin.config(daily_limit=3)
    for _ in range(3):
        client.get_user_profiles()
    assert client.daily_usage == (3, 3)
    with pytest.raises(RateLimitError) as err:
        client.get_user_profiles()
    assert err.value.code == 106 and "daily" in str(err.value)
    assert client.calls["getUserProfiles"] == 4
    # a new day of the account clock refills the budget
    admin.post("/clock", {"now": "2099-01-01 00:00:00"})
    assert client.get_user_profiles()


def test_injected_999_is_retried_and_counted(fast_client, admin):
    admin.fault("getLeads", "999", count=2)
    assert list(fast_client.get_leads()) == []
    assert fast_client.calls["getLeads"] == 3 and fast_client.retries == 2
    stats = admin.calls()
    assert stats["by_method"]["getLeads"] == 3 and stats["rejected"] == {"fault:999": 2}


def test_dropped_connection_is_retried_and_counted(fast_client, admin):
    admin.fault("createLeads", "drop", count=1)
    results = fast_client.create_leads([{"emailAddress": "dropped@example.com"}])
    assert results[0].success
    assert fast_client.calls["createLeads"] == 2 and fast_client.retries == 1
    assert admin.calls()["rejected"] == {"fault:drop": 1}


def test_http_500_is_retried(fast_client, admin):
    admin.fault("*", "500", count=1)
    assert fast_client.get_user_profiles()
    assert fast_client.api_calls == 2


def test_retries_exhausted_raise_retriable_error(make_client, admin):
    client = make_client(max_retries=2, backoff_base=0.01)
    admin.fault("getFields", "999", count=10)
    with pytest.raises(RetriableError) as err:
        client.get_fields()
    assert err.value.code == 999 and client.calls["getFields"] == 3
    assert not isinstance(err.value, RateLimitError)


def test_write_failing_midway_keeps_results_of_written_batches(make_client, admin):
    client = make_client(batch_size=2, max_retries=0)
    admin.fault("createLeads", "999", count=1, after=1)  # the second batch fails
    with pytest.raises(RetriableError) as err:
        client.create_leads([{"emailAddress": f"p{i}@example.com"} for i in range(5)])
    partial = err.value.partial_results
    assert [(r.index, r.success) for r in partial] == [(0, True), (1, True)]
    assert [lead["id"] for lead in client.get_leads()] == [partial[0].id, partial[1].id]


def test_random_faults_are_reproducible_with_a_seed(make_client, admin):
    def run() -> list[str]:
        admin.config(fault_rate=0.5, fault_kinds=["999"], fault_seed=7)
        client = make_client(max_retries=0, max_per_second=0)
        outcomes = []
        for _ in range(8):
            try:
                client.get_user_profiles()
                outcomes.append("ok")
            except RetriableError:
                outcomes.append("999")
        return outcomes

    first = run()
    admin.post("/calls/reset")
    second = run()
    assert first == second and "ok" in first and "999" in first


def test_latency_injection_is_configurable(admin):
    assert admin.config(latency_ms=5)["latency_ms"] == 5
    assert admin.post("/config", {"latency_ms": -1}, expect=400)["error"]
