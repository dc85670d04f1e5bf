"""Shared constants and the admin-API helper for the Salesforce contract tests.

A module with a unique name (not ``conftest``) so test modules can import it directly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

USERNAME = "integration@sandbox.example"
PASSWORD = "sandbox-password"
TOKEN = "SANDBOXTOKEN"


def connection_json(port: int) -> str:
    """The Airflow connection that reaches the sandbox with configuration only."""
    return json.dumps(
        {
            "conn_type": "salesforce",
            "login": USERNAME,
            "password": PASSWORD,
            "extra": {"security_token": TOKEN, "domain": f"127.0.0.1:{port}#"},
        }
    )


class Admin:
    """Tiny client for the sandbox's ``/__sandbox__/`` admin API (TLS verified)."""

    def __init__(self, base_url: str, ca_file: Path):
        self.base = base_url + "/__sandbox__"
        self.ca = str(ca_file)
        self.http = requests.Session()
        self.http.trust_env = False  # the admin calls must not depend on proxy/CA env vars

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, expect: int | None = None
    ) -> Any:
        resp = self.http.request(method, self.base + path, json=body, verify=self.ca, timeout=300)
        if expect is not None:
            assert resp.status_code == expect, resp.text
        elif resp.status_code >= 400:
            raise AssertionError(f"admin {method} {path} -> {resp.status_code}: {resp.text}")
        return resp.json()

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self.call("POST", path, body or {}, **kw)

    def create(self, obj: str, **fields: Any) -> str:
        return self.post(f"/records/{obj}", fields)["id"]

    def create_many(self, obj: str, records: list[dict[str, Any]], **extra: Any) -> list[str]:
        return self.post(f"/records/{obj}", {"records": records, **extra})["ids"]

    def record(self, obj: str, record_id: str) -> dict[str, Any]:
        return self.get(f"/records/{obj}/{record_id}")

    def calls(self) -> dict[str, Any]:
        return self.get("/calls")

    def rule(self, **spec: Any) -> None:
        self.post("/faults/rules", spec)
