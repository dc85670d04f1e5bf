"""LeadGenHook: Airflow connection from an environment variable (no Airflow DB needed)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from crm_sync.clients.leadgen import LeadGenClient
from crm_sync.clients.leadgen_hook import LeadGenHook
from crm_sync.errors import ConfigError

pytestmark = pytest.mark.contract


def _port(api_url: str) -> int:
    return int(api_url.split(":")[2].split("/")[0])


def test_hook_reads_the_documented_json_connection(monkeypatch, api_url, admin):
    conn = {
        "conn_type": "leadgen",
        "host": api_url,
        "login": "SANDBOXACCOUNT",
        "password": "SANDBOXSECRET",
    }
    monkeypatch.setenv("AIRFLOW_CONN_LEADGEN_DEFAULT", json.dumps(conn))
    hook = LeadGenHook()
    client = hook.get_client()
    assert isinstance(client, LeadGenClient) and hook.get_conn() is client
    assert client.base_url == api_url and client.conn_id == "leadgen_default"
    assert client.create_leads([{"emailAddress": "hook@example.com"}])[0].success
    assert admin.calls()["by_method"] == {"createLeads": 1}
    ok, message = hook.test_connection()
    assert ok and "SANDBOXACCOUNT" in message


def test_hook_reads_the_uri_form_with_extras(monkeypatch, api_url):
    uri = (
        f"leadgen://SANDBOXACCOUNT:SANDBOXSECRET@127.0.0.1:{_port(api_url)}/{quote('pubapi/v1.2/', safe='')}"
        "?scheme=http&max_per_second=4&batch_size=250&timeout=30"
    )
    monkeypatch.setenv("AIRFLOW_CONN_LEADGEN_URI", uri)
    client = LeadGenHook(leadgen_conn_id="leadgen_uri").get_client()
    assert client.base_url == api_url
    assert (client.batch_size, client.timeout, client.limiter.capacity) == (250, 30.0, 4)
    assert client.get_user_profiles()


def test_hook_host_port_schema_split(monkeypatch, api_url):
    conn = {"conn_type": "leadgen", "host": "127.0.0.1", "port": _port(api_url), "schema": "pubapi/v1.2/",
            "login": "SANDBOXACCOUNT", "password": "SANDBOXSECRET", "extra": {"scheme": "http"}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_LEADGEN_SPLIT", json.dumps(conn))
    assert LeadGenHook("leadgen_split").get_client().base_url == api_url


def test_test_connection_reports_bad_credentials_without_the_secret(monkeypatch, api_url):
    conn = {
        "conn_type": "leadgen",
        "host": api_url,
        "login": "SANDBOXACCOUNT",
        "password": "NOT-THE-SECRET-123",
    }
    monkeypatch.setenv("AIRFLOW_CONN_LEADGEN_BAD", json.dumps(conn))
    ok, message = LeadGenHook("leadgen_bad").test_connection()
    assert not ok and "leadgen_bad" in message and "401" in message
    assert "NOT-THE-SECRET-123" not in message


def test_missing_credentials_are_a_config_error(monkeypatch, api_url):
    monkeypatch.setenv(
        "AIRFLOW_CONN_LEADGEN_EMPTY", json.dumps({"conn_type": "leadgen", "host": api_url})
    )
    with pytest.raises(ConfigError, match="leadgen_empty"):
        LeadGenHook("leadgen_empty").get_client()


def test_hook_kwargs_override_extras(monkeypatch, api_url):
    conn = {"conn_type": "leadgen", "host": api_url, "login": "SANDBOXACCOUNT", "password": "SANDBOXSECRET",
            "extra": {"batch_size": 100}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_LEADGEN_KW", json.dumps(conn))
    client = LeadGenHook("leadgen_kw", batch_size=7, max_retries=0).get_client()
    assert (client.batch_size, client.max_retries) == (7, 0)


def test_hook_passes_the_output_time_zone_and_reads_prefixed_extras(monkeypatch, api_url, admin):
    conn = {"conn_type": "leadgen", "host": api_url, "login": "SANDBOXACCOUNT", "password": "SANDBOXSECRET",
            "extra": {"output_timezone": "America/New_York", "extra__leadgen__batch_size": "50"}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_LEADGEN_TZ", json.dumps(conn))
    client = LeadGenHook("leadgen_tz").get_client()
    assert str(client.zone) == "America/New_York" and client.batch_size == 50
    admin.config(account_timezone="America/New_York")
    admin.freeze("2026-07-01 16:00:00")
    lead = client.create_leads([{"emailAddress": "tz@example.com"}])[0].id
    assert client.get_lead(lead)["createTimestamp"] == "2026-07-01 16:00:00"


def test_unknown_output_time_zone_is_a_config_error(monkeypatch, api_url):
    conn = {"conn_type": "leadgen", "host": api_url, "login": "SANDBOXACCOUNT", "password": "SANDBOXSECRET",
            "extra": {"output_timezone": "Eastern"}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_LEADGEN_BADTZ", json.dumps(conn))
    with pytest.raises(ConfigError, match="output_timezone 'Eastern'"):
        LeadGenHook("leadgen_badtz").get_client()
