"""The secret key never reaches a log record, an exception text, a repr, or the sandbox's log."""

from __future__ import annotations

import logging
import traceback

import pytest

from crm_sync.clients.leadgen import LeadGenApiError, LeadGenClient
from crm_sync.errors import AuthError, RetriableError
from sandbox.process import free_port

pytestmark = pytest.mark.contract

SECRET = "SANDBOXSECRET"


def _exception_texts(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


def test_no_log_record_or_exception_text_contains_the_secret(
    caplog, make_client, admin, leadgen_sandbox
):
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's request lines included
    texts: list[str] = []
    client = make_client(backoff_base=0.01, max_retries=2)
    assert SECRET not in repr(client) and SECRET not in str(client)

    # successes, then retried faults of every kind
    client.create_leads([{"emailAddress": "s@example.com"}])
    for fault in ("999", "drop", "500", "107"):
        admin.fault("getLeads", fault, count=1)
        list(client.get_leads())
    assert client.retries == 4

    # retries exhausted
    admin.fault("getFields", "999", count=5)
    with pytest.raises(RetriableError) as exhausted:
        client.get_fields()
    texts += _exception_texts(exhausted.value)

    # an API-level error with data
    with pytest.raises(LeadGenApiError) as api_error:
        client.call("getLeads", {"where": {"secretKey": SECRET}})
    texts += _exception_texts(api_error.value)

    # wrong secret (the wrong one must not leak either)
    wrong = "WRONG-SECRET-9876"
    with pytest.raises(AuthError) as auth:
        make_client(secret_key=wrong).get_user_profiles()
    texts += _exception_texts(auth.value)

    # nobody listening: requests' own message embeds the full URL, query string included
    dead = LeadGenClient(f"http://127.0.0.1:{free_port()}/pubapi/v1.2/", "SANDBOXACCOUNT", SECRET,
                         max_retries=1, backoff_base=0.01)  # fmt: skip
    with pytest.raises(RetriableError) as refused:
        dead.get_user_profiles()
    texts += _exception_texts(refused.value)
    assert "secretKey=***" in str(refused.value)  # the URL is still there, redacted

    records = caplog.records
    assert any("retry" in r.getMessage() for r in records)  # the retries were logged...
    assert any(r.name.startswith("urllib3") for r in records)  # ...and so were urllib3's requests
    for record in records:
        texts.append(record.getMessage())
        if record.exc_info:
            texts.append("".join(traceback.format_exception(*record.exc_info)))
    for text in texts:
        assert SECRET not in text, text
        assert wrong not in text, text

    # the sandbox process logs neither the secret nor a request URL with its query string
    sandbox_log = leadgen_sandbox.log_path.read_text()
    assert "getLeads" in sandbox_log
    assert SECRET not in sandbox_log and wrong not in sandbox_log and "secretKey" not in sandbox_log
