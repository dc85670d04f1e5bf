"""Fixtures for the Salesforce contract suite.

One sandbox process per test session (``python -m sandbox.salesforce`` on a free port, HTTPS),
reset through the admin API before every test. Tests reach it exactly as the DAGs will: the
Airflow connection comes from ``AIRFLOW_CONN_SALESFORCE_DEFAULT`` and TLS trust from
``REQUESTS_CA_BUNDLE`` (the machine's own value is overridden per test).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from sf_sandbox_helpers import PASSWORD, TOKEN, Admin, connection_json

from sandbox.process import SandboxProcess, start_sandbox


@pytest.fixture(scope="session")
def sf_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    data_dir = tmp_path_factory.mktemp("salesforce-sandbox")
    proc = start_sandbox("sandbox.salesforce", data_dir, scheme="https")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session", autouse=True)
def _airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep Airflow's first import (by SalesforceHook) out of the user's ~/airflow."""
    with pytest.MonkeyPatch.context() as mp:
        if "AIRFLOW_HOME" not in os.environ:
            mp.setenv("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow-home")))
        # Import Airflow now: its logging set-up replaces root handlers, which must happen
        # before caplog and the session log collector attach theirs.
        import airflow.providers.salesforce.hooks.salesforce  # noqa: F401

        yield


@pytest.fixture(scope="session")
def admin(sf_sandbox: SandboxProcess) -> Admin:
    assert sf_sandbox.ca_file is not None
    return Admin(sf_sandbox.base_url, sf_sandbox.ca_file)


class ClientLog(logging.Handler):
    """Collects every record the Salesforce client logs during the session."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="session")
def client_log(_airflow_home: None) -> Iterator[ClientLog]:
    handler = ClientLog()
    logger = logging.getLogger("crm_sync")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@pytest.fixture(autouse=True)
def sandbox_env(
    sf_sandbox: SandboxProcess, admin: Admin, monkeypatch: pytest.MonkeyPatch, client_log: ClientLog
) -> SandboxProcess:
    """Per test: a clean org, and the environment a DAG worker would have."""
    admin.post("/reset", {"schema": True})
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sf_sandbox.ca_file))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", connection_json(sf_sandbox.port))
    return sf_sandbox


@pytest.fixture
def hook() -> Any:
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    return SalesforceHook("salesforce_default")


@pytest.fixture
def sf(hook: Any) -> Any:
    """A simple-salesforce connection built by the provider hook from the env connection."""
    return hook.get_conn()


class Sleeps(list):
    """Records requested backoff delays instead of sleeping (tests never wait on the clock)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(sleeps: Sleeps) -> Any:
    from crm_sync.clients.salesforce import SalesforceClient

    return SalesforceClient.from_connection("salesforce_default", sleep=sleeps, bulk_poll_wait=0.0)


@pytest.fixture
def seeded_secrets(sf_sandbox: SandboxProcess) -> tuple[str, ...]:
    return (PASSWORD, TOKEN, PASSWORD + TOKEN)
