"""The sandbox as a process: TLS, credentials from the environment, persistence across a
restart, a clean SIGTERM, and the admin CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from crm_sync.clients.leadgen import LeadGenClient
from crm_sync.clients.leadgen_hook import LeadGenHook
from crm_sync.errors import AuthError
from sandbox.process import REPO_ROOT, start_sandbox

pytestmark = pytest.mark.contract


def test_tls_custom_credentials_persistence_and_clean_stop(tmp_path, monkeypatch):
    env = {
        "LEADGEN_SANDBOX_ACCOUNT_ID": "ACME0001",
        "LEADGEN_SANDBOX_SECRET_KEY": "acme-secret-key",
    }
    data_dir = tmp_path / "tls"
    sandbox = start_sandbox(
        "sandbox.leadgen", data_dir, scheme="https", extra_args=["--tls"], env=env
    )
    try:
        url = f"{sandbox.base_url}/pubapi/v1.2/"
        session = requests.Session()
        session.verify = str(sandbox.ca_file)
        client = LeadGenClient(url, "ACME0001", "acme-secret-key", session=session)
        lead_id = client.create_leads([{"emailAddress": "tls@example.com"}])[0].id
        requests.post(sandbox.base_url + "/__sandbox__/clock", json={"now": "2026-11-27 09:10:00"},
                      verify=str(sandbox.ca_file), timeout=10)  # fmt: skip
        with pytest.raises(AuthError):
            LeadGenClient(
                url, "SANDBOXACCOUNT", "SANDBOXSECRET", session=session
            ).get_user_profiles()
        # the hook trusts the self-signed certificate through the "verify" extra
        conn = {"conn_type": "leadgen", "host": url, "login": "ACME0001", "password": "acme-secret-key",
                "extra": {"verify": str(sandbox.ca_file)}}  # fmt: skip
        monkeypatch.setenv("AIRFLOW_CONN_LEADGEN_TLS", json.dumps(conn))
        assert LeadGenHook("leadgen_tls").test_connection()[0]
    finally:
        sandbox.stop()  # the client's keep-alive TLS connection is still open: stop must not hang
    assert sandbox.proc.returncode == 0  # SIGTERM is a clean stop

    again = start_sandbox(
        "sandbox.leadgen", data_dir, scheme="https", extra_args=["--tls"], env=env
    )
    try:
        session = requests.Session()
        session.verify = str(again.ca_file)
        client = LeadGenClient(
            f"{again.base_url}/pubapi/v1.2/", "ACME0001", "acme-secret-key", session=session
        )
        lead = client.get_lead(lead_id)
        assert lead["emailAddress"] == "tls@example.com"
        health = requests.get(
            again.base_url + "/__sandbox__/health", verify=str(again.ca_file), timeout=10
        ).json()
        assert health["now"] == "2026-11-27 09:10:00"  # the frozen clock survived the restart
    finally:
        again.stop()
    assert "acme-secret-key" not in again.log_path.read_text()


def _cli(base_url: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "sandbox.leadgen", "admin", "--url", base_url, *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_admin_cli(leadgen_sandbox, client):
    base = leadgen_sandbox.base_url
    assert _cli(base, "health")["status"] == "ok"
    seeded = _cli(base, "seed", "25", "--seed", "5", "--inactive", "1")
    assert seeded["leads"] == 25 and len(seeded["inactive_ids"]) == 1
    assert _cli(base, "clock", "2026-11-27 09:10:00") == {
        "now": "2026-11-27 09:10:00",
        "frozen": True,
    }
    filled = _cli(
        base, "form-fill", "cli@example.com", "firstName=Cli", "--form", "Webinar Registration"
    )
    assert filled["created"] is True
    assert client.get_lead(filled["leadID"])["firstName"] == "Cli"
    assert _cli(base, "calls")["by_method"] == {"getLead": 1}
    _cli(base, "fault", "getLead", "999", "--count", "2")
    assert _cli(base, "faults")["pending"] == [
        {"method": "getLead", "fault": "999", "remaining": 2, "after": 0}
    ]
    assert _cli(base, "config", "per_second_limit=20")["per_second_limit"] == 20
    assert _cli(base, "calls", "--reset")["total"] == 0
    refused = subprocess.run(
        [sys.executable, "-m", "sandbox.leadgen", "admin", "--url", base, "lead", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1 and "does not exist" in refused.stderr


def test_admin_cli_limits_hooks_time_zone_and_ui_typed_edits(leadgen_sandbox, client, raw):
    base = leadgen_sandbox.base_url
    off = _cli(base, "limits", "off")
    assert (off["per_second_limit"], off["daily_limit"]) == (0, 0)
    real = _cli(base, "limits", "real")
    assert (real["per_second_limit"], real["daily_limit"]) == (10, 50000)
    assert (
        _cli(base, "config", "account_timezone=Europe/Berlin")["account_timezone"]
        == "Europe/Berlin"
    )
    bad = subprocess.run(
        [sys.executable, "-m", "sandbox.leadgen", "admin", "--url", base, "config", "account_timezone=Mars"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 1 and "unknown time zone" in bad.stderr
    lead = client.create_leads([{"emailAddress": "cli-ui@example.com"}])[0].id
    _cli(base, "edit", "--ui", lead, "companyName=Archer & Co")
    assert raw("getLead", {"id": lead})["result"]["lead"][0]["companyName"] == "Archer &amp; Co"
    assert client.get_lead(lead)["companyName"] == "Archer & Co"
    pending = _cli(base, "hook", "getLeads", "2", lead, "title=Moved")["pending"]
    assert pending == [
        {"method": "getLeads", "call": 2, "lead_id": lead, "fields": {"title": "Moved"}, "seen": 0}
    ]
    assert _cli(base, "hooks", "--clear") == {"pending": []}


@pytest.mark.parametrize("allow_remote", [False, True])
def test_admin_api_refuses_remote_clients_unless_allowed(tmp_path, allow_remote):
    """The admin guard itself, in-process (a remote peer cannot be faked over loopback)."""
    import asyncio

    import httpx

    from sandbox.leadgen.app import SandboxState, create_app
    from sandbox.leadgen.clock import AccountClock
    from sandbox.leadgen.config import ConfigHolder, RuntimeConfig
    from sandbox.leadgen.storage import Database

    state = SandboxState(
        Database(tmp_path),
        AccountClock(),
        ConfigHolder(RuntimeConfig()),
        "A",
        "S",
        allow_remote_admin=allow_remote,
    )

    async def status(peer: str, path: str) -> int:
        transport = httpx.ASGITransport(app=create_app(state), client=(peer, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
            return (await http.get(path)).status_code

    try:
        assert asyncio.run(status("10.1.2.3", "/__sandbox__/health")) == 200
        assert asyncio.run(status("10.1.2.3", "/__sandbox__/calls")) == (
            200 if allow_remote else 403
        )
        assert asyncio.run(status("127.0.0.1", "/__sandbox__/calls")) == 200
    finally:
        state.db.close()


def test_record_link_page_shows_the_lead_its_lists_and_activity(leadgen_sandbox, admin):
    """The page the Salesforce record link opens ("Lead Hyperlink Widget")."""
    import requests

    lead = admin.post(
        "/forms/submit",
        {
            "emailAddress": "widget@example.com",
            "formName": "Demo",
            "fields": {"firstName": "Wid", "lastName": "Get"},
        },
    )
    lead_id = lead["leadID"]
    admin.post("/lists", {"name": "Newsletter", "leadIDs": [lead_id]})
    base = leadgen_sandbox.base_url
    page = requests.get(f"{base}/__sandbox__/app/Contacts/View/{lead_id}", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Wid Get" in page.text and "widget@example.com" in page.text
    assert "Newsletter" in page.text and "Filled out the form Demo" in page.text
    assert (
        requests.get(f"{base}/__sandbox__/app/Contacts/View/999999", timeout=10).status_code == 404
    )
