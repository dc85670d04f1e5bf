"""Fixtures for the Lead Gen & CRM contract tests.

One sandbox process per test session (``sandbox.process.start_sandbox``, exactly how users
start it); every test starts from a reset account (data wiped, default fields and users back,
counters zeroed, clock unfrozen, start-up limits restored). Tests drive the API only through
``LeadGenClient`` / ``LeadGenHook``; the admin API plays the marketer and inspects the server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from crm_sync.clients.leadgen import LeadGenClient
from sandbox.process import SandboxProcess, start_sandbox

ACCOUNT_ID = "SANDBOXACCOUNT"
SECRET_KEY = "SANDBOXSECRET"


class SandboxAdmin:
    """Thin JSON client for ``/__sandbox__/`` (tests only)."""

    def __init__(self, base_url: str, verify: Any = True):
        self.base = base_url + "/__sandbox__"
        self.http = requests.Session()
        self.http.verify = verify

    def request(
        self, verb: str, path: str, body: dict[str, Any] | None = None, *, expect: int = 200
    ) -> Any:
        resp = self.http.request(verb, self.base + path, json=body, timeout=120)
        assert resp.status_code == expect, f"{verb} {path} -> {resp.status_code}: {resp.text}"
        return resp.json()

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self.request("POST", path, body or {}, **kw)

    # shortcuts used by many tests
    def reset(self) -> None:
        self.post("/reset")

    def seed(self, leads: int, **kw: Any) -> dict[str, Any]:
        return self.post("/seed", {"leads": leads, **kw})

    def calls(self) -> dict[str, Any]:
        return self.get("/calls")

    def config(self, **changes: Any) -> dict[str, Any]:
        return self.post("/config", changes)

    def fault(self, method: str, fault: str, count: int = 1, after: int = 0) -> None:
        self.post("/faults", {"method": method, "fault": fault, "count": count, "after": after})

    def freeze(self, now: str | None) -> None:
        self.post("/clock", {"now": now})

    def lead(self, lead_id: str) -> dict[str, Any]:
        return self.get(f"/leads/{lead_id}")

    def hook(self, method: str, call: int, lead_id: str, **fields: Any) -> None:
        """Before the ``call``-th ``method`` call from now, edit lead ``lead_id`` (no fields:
        only bump its updateTimestamp)."""
        body = {"method": method, "call": call, "lead_id": int(lead_id), "fields": fields}
        self.post("/hooks", body)


@pytest.fixture(scope="session")
def leadgen_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    sandbox = start_sandbox("sandbox.leadgen", tmp_path_factory.mktemp("leadgen-sandbox"))
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture(scope="session")
def api_url(leadgen_sandbox: SandboxProcess) -> str:
    return f"{leadgen_sandbox.base_url}/pubapi/v1.2/"


@pytest.fixture(scope="session")
def _admin(leadgen_sandbox: SandboxProcess) -> SandboxAdmin:
    return SandboxAdmin(leadgen_sandbox.base_url)


@pytest.fixture(autouse=True)
def admin(_admin: SandboxAdmin) -> SandboxAdmin:
    """The admin API, after resetting the account (autouse: every test starts clean)."""
    _admin.reset()
    return _admin


@pytest.fixture
def client(api_url: str) -> LeadGenClient:
    """A client as production builds it (10 calls/s, batches and pages of 500, 5 retries)."""
    return LeadGenClient(api_url, ACCOUNT_ID, SECRET_KEY)


@pytest.fixture
def fast_client(api_url: str) -> LeadGenClient:
    """Same, but retries back off for a few milliseconds only (keeps fault tests quick)."""
    return LeadGenClient(api_url, ACCOUNT_ID, SECRET_KEY, backoff_base=0.01)


@pytest.fixture
def make_client(api_url: str) -> Callable[..., LeadGenClient]:
    """``make_client(secret_key=..., **client_kwargs)`` for tests that need other settings."""

    def make(
        *, account_id: str = ACCOUNT_ID, secret_key: str = SECRET_KEY, **kwargs: Any
    ) -> LeadGenClient:
        return LeadGenClient(api_url, account_id, secret_key, **kwargs)

    return make


@pytest.fixture
def raw(api_url: str) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    """``raw(method, params)`` -> the whole envelope, bypassing the client's rules (to see what
    the API itself accepts and answers). Waits out the per-second limit (107), which the
    client's own calls in the same test share."""
    http = requests.Session()

    def send(method: str, params: dict[str, Any]) -> dict[str, Any]:
        for _ in range(20):
            resp = http.post(
                api_url,
                params={"accountID": ACCOUNT_ID, "secretKey": SECRET_KEY},
                json={"method": method, "params": params, "id": "raw"},
                timeout=60,
            )
            assert resp.status_code == 200, resp.text
            envelope = resp.json()
            error = envelope.get("error")
            if not (isinstance(error, dict) and error.get("code") == 107):
                return envelope
            time.sleep(0.2)
        raise AssertionError(f"{method} kept hitting the per-second limit")

    return send


@pytest.fixture
def auth_params() -> dict[str, str]:
    """The query string of a raw request with the sandbox's default credentials."""
    return {"accountID": ACCOUNT_ID, "secretKey": SECRET_KEY}
