"""Alerts (notifier text and channels) and the Salesforce API budget guard."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests

from crm_sync import alerts
from crm_sync.budget import Budget, guard
from crm_sync.errors import BudgetExhaustedError

pytestmark = pytest.mark.unit

REPORT = {
    "dag_id": "sync_leads_contacts",
    "window": {"start": "2026-11-27T08:55:00+00:00", "end": "2026-11-27T10:00:00+00:00"},
    "status": "threshold_exceeded",
    "salesforce": {"created": 3},
    "leadgen": {"updated": 2},
    "quarantined": 4,
    "reject_rate": 0.4,
    "max_reject_rate": 0.05,
    "quarantine_examples": [
        {
            "category": "format",
            "message": "Salesforce Lead (new) (lead 1): field Email must be a valid email address",
        }
    ],
    "api_calls": {"salesforce": 9, "leadgen": 4},
}


def test_alert_text_names_the_run_reason_and_counts_without_secrets() -> None:
    text = alerts.alert_text(
        dag_id="sync_leads_contacts",
        run_id="scheduled__2026-11-27T09:00:00+00:00",
        status="threshold_exceeded",
        reason="ThresholdExceeded: see https://api.example/pubapi/v1.2/?accountID=A&secretKey=S3CR3T-KEY",
        report=REPORT,
        task_id="record",
    )
    assert text.startswith(
        "[crm-sync] sync_leads_contacts run scheduled__2026-11-27T09:00:00+00:00: threshold_exceeded in task record"
    )
    assert "Salesforce: created 3" in text and "quarantined: 4 rows" in text
    assert "S3CR3T-KEY" not in text and "secretKey=***" in text


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook():
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received = []
    yield f"http://127.0.0.1:{server.server_port}/hook?token=ABCDEF123456"
    server.shutdown()


def test_alerts_go_to_the_log_by_default(monkeypatch, caplog) -> None:
    monkeypatch.delenv(alerts.WEBHOOK_ENV, raising=False)
    with caplog.at_level(logging.WARNING, logger="crm_sync.alerts"):
        assert alerts.send("[crm-sync] something failed") is False
    assert "[crm-sync] something failed" in caplog.text


def test_alerts_are_posted_to_a_configured_webhook(monkeypatch, webhook) -> None:
    monkeypatch.setenv(alerts.WEBHOOK_ENV, webhook)
    assert alerts.send("[crm-sync] hello", {"dag_id": "d"}) is True
    assert _Hook.received == [{"text": "[crm-sync] hello", "dag_id": "d"}]


def test_a_webhook_that_is_down_does_not_fail_and_its_token_is_not_logged(
    monkeypatch, caplog
) -> None:
    monkeypatch.setenv(alerts.WEBHOOK_ENV, "http://127.0.0.1:9/hook?token=ABCDEF123456")
    with caplog.at_level(logging.ERROR, logger="crm_sync.alerts"):
        assert alerts.send("[crm-sync] x") is False
    assert "could not post the alert" in caplog.text
    assert "ABCDEF123456" not in caplog.text


def test_notifier_builds_the_summary_from_the_failure_context(monkeypatch, caplog) -> None:
    monkeypatch.delenv(alerts.WEBHOOK_ENV, raising=False)
    monkeypatch.setattr(alerts, "_stored_report", lambda *a: REPORT)

    class TI:
        dag_id, run_id, task_id = "sync_leads_contacts", "manual__1", "record"

    with caplog.at_level(logging.WARNING, logger="crm_sync.alerts"):
        alerts.SyncAlertNotifier().notify(
            {"ti": TI(), "run_id": "manual__1", "exception": RuntimeError("boom")}
        )
    assert "sync_leads_contacts run manual__1: threshold_exceeded in task record" in caplog.text
    assert "reason: RuntimeError: boom" in caplog.text


# -- budget ----------------------------------------------------------------------------------


def test_budget_arithmetic_and_retry_stop() -> None:
    b = Budget(cap=1000, used=700, retry_stop_share=0.75)
    assert (b.remaining, b.retries_allowed) == (300, True)
    b = Budget(cap=1000, used=800, retry_stop_share=0.75)
    assert (b.remaining, b.retries_allowed) == (200, False)
    assert Budget(cap=10, used=50, retry_stop_share=0.75).remaining == 0


class FakeClient:
    """Just what the guard touches: a requests session, a call count, retries."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.api_calls = 0
        self.max_retries = 5


def test_guard_refuses_calls_past_the_allowance_before_sending() -> None:
    client = guard(FakeClient(), Budget(cap=100, used=98, retry_stop_share=0.75))
    client.api_calls = 2  # the allowance (100 - 98) is used up
    with pytest.raises(BudgetExhaustedError, match="100 of 100 calls in the last 24 h"):
        # would fail to connect if it were sent: the guard refuses first
        client.session.get("https://127.0.0.1:9/services/data/v59.0/limits")
    assert client.max_retries == 0  # 98 % used: above the retry-stop share


def test_guard_lets_calls_through_within_the_allowance() -> None:
    client = guard(FakeClient(), Budget(cap=100, used=10, retry_stop_share=0.75))
    assert client.max_retries == 5
    with pytest.raises(requests.ConnectionError):
        client.session.get("https://127.0.0.1:9/services/data/v59.0/limits", timeout=2)
