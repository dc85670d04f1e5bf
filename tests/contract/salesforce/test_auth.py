"""Login, sessions and the Airflow connection that reaches the sandbox with configuration only."""

from __future__ import annotations

import json

import pytest
from sf_sandbox_helpers import PASSWORD, TOKEN, USERNAME
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed

from crm_sync.clients.salesforce import SalesforceClient
from crm_sync.errors import AuthError, ConfigError

pytestmark = pytest.mark.contract


def test_hook_builds_connection_from_env_var_without_airflow_db(hook, sandbox_env):
    conn = hook.get_connection("salesforce_default")
    assert conn.extra_dejson["domain"] == f"127.0.0.1:{sandbox_env.port}#"
    sf = hook.get_conn()
    # serverUrl from the SOAP login points the REST client at the sandbox (host:port kept).
    assert sf.sf_instance == f"127.0.0.1:{sandbox_env.port}"
    assert sf.session_id.startswith("00D")
    # The provider's connection test describes Account.
    status, message = hook.test_connection()
    assert status is True, message
    assert "Name" in hook.get_available_fields("Account")


def test_make_query_and_object_to_df(hook, admin):
    admin.create("Lead", LastName="Lovelace", Company="Analytical Engines", Email="ada@example.com")
    result = hook.make_query("SELECT Id, LastName, CreatedDate FROM Lead")
    assert result["totalSize"] == 1
    df = hook.object_to_df(result["records"], coerce_to_timestamp=True)
    assert list(df.columns) == ["id", "lastname", "createddate"]
    assert df.loc[0, "lastname"] == "Lovelace"
    assert float(df.loc[0, "createddate"]) > 1_600_000_000  # converted to UNIX seconds via describe


def test_bad_password_is_an_invalid_login_soap_fault(sandbox_env):
    with pytest.raises(SalesforceAuthenticationFailed) as exc_info:
        Salesforce(
            username=USERNAME,
            password="wrong-password",
            security_token=TOKEN,
            domain=f"127.0.0.1:{sandbox_env.port}#",
        )
    assert exc_info.value.code == "INVALID_LOGIN"
    assert "Invalid username, password, security token" in exc_info.value.auth_message


def test_bad_credentials_become_auth_error_naming_the_connection(sandbox_env, monkeypatch):
    bad = {
        "conn_type": "salesforce",
        "login": USERNAME,
        "password": "not-the-password",
        "extra": {"security_token": "NOTTHETOKEN", "domain": f"127.0.0.1:{sandbox_env.port}#"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SF_BAD", json.dumps(bad))
    with pytest.raises(AuthError) as exc_info:
        SalesforceClient.from_connection("sf_bad")
    text = str(exc_info.value)
    assert "'sf_bad'" in text and "INVALID_LOGIN" in text
    assert "not-the-password" not in text and "NOTTHETOKEN" not in text


def test_missing_security_token_is_a_config_error(sandbox_env, monkeypatch):
    incomplete = {
        "conn_type": "salesforce",
        "login": USERNAME,
        "password": PASSWORD,
        "extra": {"domain": "x#"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SF_INCOMPLETE", json.dumps(incomplete))
    with pytest.raises(ConfigError, match="sf_incomplete"):
        SalesforceClient.from_connection("sf_incomplete")


def test_unknown_connection_is_a_config_error(sandbox_env):
    with pytest.raises(ConfigError, match="no_such_conn"):
        SalesforceClient.from_connection("no_such_conn")


def test_expired_session_logs_in_again_transparently(client, admin):
    admin.create("Lead", LastName="Hopper", Company="Navy")
    logins_before = admin.calls()["not_counted"].get("login", 0)
    assert admin.post("/sessions/expire")["expired"] >= 1
    rows = list(client.query("SELECT Id, LastName FROM Lead"))
    assert [r["LastName"] for r in rows] == ["Hopper"]
    calls = admin.calls()
    assert calls["not_counted"]["login"] == logins_before + 1
    assert calls["not_counted"]["INVALID_SESSION_ID"] == 1
    # The re-login is visible to the client, and does not count against the API allocation.
    assert client.calls["login"] == 1
    assert client.calls["query"] == 1
    assert client.api_calls == 1 == calls["total"]


def test_session_that_never_stays_valid_ends_in_auth_error(client, admin):
    # Lifetime 0: every session is expired by the time it is used.
    admin.post("/config", {"session_lifetime": 0})
    with pytest.raises(AuthError, match="session stayed invalid"):
        list(client.query("SELECT Id FROM Lead"))
    calls = admin.calls()
    assert calls["total"] == 0  # nothing got through, nothing was counted
    assert calls["not_counted"]["login"] >= 4  # simple-salesforce tried several logins
    # sf.Lead.describe() would log in ~1,000 times and end in RecursionError (SFType does not
    # count its re-login retries); the client's per-object calls stay bounded.
    with pytest.raises(AuthError):
        client.describe("Lead")
    assert admin.calls()["not_counted"]["login"] - calls["not_counted"]["login"] <= 10


def test_oauth_password_grant(sandbox_env):
    sf = Salesforce(
        username=USERNAME,
        password=PASSWORD + TOKEN,
        consumer_key="sandbox-consumer-key",
        consumer_secret="sandbox-consumer-secret",
        domain=f"127.0.0.1:{sandbox_env.port}#",
    )
    assert sf.sf_instance == f"127.0.0.1:{sandbox_env.port}"
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0
    with pytest.raises(SalesforceAuthenticationFailed) as exc_info:
        Salesforce(
            username=USERNAME,
            password="wrong",
            consumer_key="k",
            consumer_secret="s",
            domain=f"127.0.0.1:{sandbox_env.port}#",
        )
    assert exc_info.value.code == "invalid_grant"


def test_is_sandbox_reads_the_organization(sf):
    assert sf.is_sandbox() is False


def test_uri_form_of_the_connection(sandbox_env, monkeypatch):
    uri = (
        "salesforce://integration%40sandbox.example:sandbox-password@/"
        f"?security_token=SANDBOXTOKEN&domain=127.0.0.1%3A{sandbox_env.port}%23"
    )
    monkeypatch.setenv("AIRFLOW_CONN_SF_URI", uri)
    client = SalesforceClient.from_connection("sf_uri")
    assert list(client.query("SELECT Id FROM Lead")) == []
    assert client.conn_id == "sf_uri"


def test_login_outage_is_retriable_not_an_auth_error(sandbox_env, admin, sleeps):
    from crm_sync.errors import RetriableError

    admin.rule(fault="SERVER_UNAVAILABLE", kind="login", count=1)
    with pytest.raises(RetriableError) as exc_info:
        SalesforceClient.from_connection("salesforce_default")
    assert exc_info.value.code == "LOGIN_UNAVAILABLE"
    admin.rule(fault="DROP", kind="login", count=1)
    with pytest.raises(RetriableError):
        SalesforceClient.from_connection("salesforce_default")
    client = SalesforceClient.from_connection("salesforce_default", sleep=sleeps)
    # A re-login that hits an outage mid-run is retried like any transient failure.
    admin.post("/sessions/expire")
    admin.rule(fault="SERVER_UNAVAILABLE", kind="login", count=1)
    assert list(client.query("SELECT Id FROM Lead")) == []
    assert sleeps == [0.5]
    assert admin.get("/faults")["injected"] == {"SERVER_UNAVAILABLE": 2, "DROP": 1}


def test_certificate_names_extra_hosts_for_containers(tmp_path):
    """``--cert-host`` adds DNS names (compose service names) to the certificate; an existing
    certificate without them is replaced."""
    from cryptography import x509

    from sandbox.salesforce.certs import ensure_certificate

    cert, _ = ensure_certificate(tmp_path)
    first = cert.read_bytes()
    cert, _ = ensure_certificate(tmp_path, ("sandbox-salesforce",))
    san = (
        x509.load_pem_x509_certificate(cert.read_bytes())
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert {"localhost", "sandbox-salesforce"} <= set(san.get_values_for_type(x509.DNSName))
    assert cert.read_bytes() != first
    assert (tmp_path / "ca-bundle.pem").read_text().count("BEGIN CERTIFICATE") > 1
