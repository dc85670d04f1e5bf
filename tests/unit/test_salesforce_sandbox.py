"""Unit tests of Salesforce sandbox parts that need no server: fault rules and latency, the
write log's transaction semantics, field-level security rules, SOAP parsing."""

from __future__ import annotations

import statistics

import pytest

from sandbox.salesforce.faults import FaultConfigError, FaultInjector, bulk_step
from sandbox.salesforce.schema import default_objects
from sandbox.salesforce.soap import parse_envelope, parse_soap_login
from sandbox.salesforce.storage import Database
from sandbox.salesforce.writelog import WriteLog

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("method", "path", "step"),
    [
        ("POST", "/services/data/v59.0/jobs/ingest", "create"),
        ("PUT", "/services/data/v59.0/jobs/ingest/7500000001/batches", "upload"),
        ("PATCH", "/services/data/v59.0/jobs/ingest/7500000001", "close"),
        ("GET", "/services/data/v59.0/jobs/ingest/7500000001/", "poll"),
        ("GET", "/services/data/v59.0/jobs/ingest/7500000001/successfulResults", "results"),
        ("GET", "/services/data/v59.0/jobs/ingest/7500000001/unprocessedrecords", "results"),
        ("DELETE", "/services/data/v59.0/jobs/ingest/7500000001", "delete"),
        ("POST", "/services/data/v59.0/jobs/query", "query_create"),
        ("GET", "/services/data/v59.0/jobs/query/7500000002", "query_poll"),
        ("GET", "/services/data/v59.0/jobs/query/7500000002/results", "query_results"),
        ("GET", "/services/data/v59.0/query", None),
        ("GET", "/services/data/v59.0/jobs/ingest", None),
    ],
)
def test_bulk_step(method, path, step):
    assert bulk_step(method, path) == step


def test_rules_target_a_bulk_step_and_are_consumed_in_order():
    faults = FaultInjector()
    faults.add_rule({"fault": "DROP_AFTER", "step": "close", "count": 1})
    faults.add_rule({"fault": "INVALID_SESSION_ID", "kind": "bulk2", "count": 1})
    close = ("PATCH", "/services/data/v59.0/jobs/ingest/750x", "bulk2")
    assert faults.call_fault(*close, random_allowed=False) == "DROP_AFTER"
    assert faults.call_fault(*close, random_allowed=False) == "INVALID_SESSION_ID"
    assert faults.call_fault(*close, random_allowed=False) is None
    with pytest.raises(FaultConfigError):
        faults.add_rule({"fault": "DROP", "step": "nope"})
    with pytest.raises(FaultConfigError):
        faults.configure({"kinds": "DROP_AFTER,EXPLODE"})


def test_latency_150_plus_minus_50_ms():
    faults = FaultInjector()
    faults.configure({"latency_ms": 100, "latency_jitter_ms": 100, "seed": 3})
    delays = [faults.latency_seconds() for _ in range(2000)]
    assert 0.1 <= min(delays) and max(delays) <= 0.2
    assert statistics.mean(delays) == pytest.approx(0.15, abs=0.005)


def test_journal_reaches_the_log_only_when_the_transaction_commits(tmp_path):
    db = Database(tmp_path / "x.db")
    log = WriteLog()
    db.on_commit = log.on_commit
    with db.write():
        db.journal(("Lead", "created", "00Q1", "collections"))
        with pytest.raises(RuntimeError), db.write():  # a rolled-back savepoint (allOrNone)
            db.journal(("Lead", "created", "00Q2", "collections"))
            raise RuntimeError
    with pytest.raises(RuntimeError), db.write():
        db.journal(("Lead", "created", "00Q3", "bulk2"))
        raise RuntimeError
    snap = log.snapshot(entries=True)
    assert snap["by_object"] == {"Lead": {"created": 1, "updated": 0, "deleted": 0}}
    assert [e["id"] for e in snap["entries"]] == ["00Q1"]


def test_permissionable_fields_follow_a_real_org():
    lead = default_objects()["Lead"]
    flags = {f.name: f.permissionable for f in lead.field_list}
    assert flags["LeadGen_Id__c"] and flags["Email"] and flags["Title"]
    assert not any(
        flags[n] for n in ("Id", "LastName", "Company", "OwnerId", "Name", "IsConverted")
    )


def test_soap_envelopes():
    body = (
        b'<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Header>'
        b'<SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>SID</sessionId>'
        b'</SessionHeader></se:Header><se:Body><logout xmlns="urn:partner.soap.sforce.com"/>'
        b"</se:Body></se:Envelope>"
    )
    request = parse_envelope(body)
    assert request is not None
    assert (request.operation, request.session_id) == ("logout", "SID")
    assert parse_envelope(b"<notsoap/>") is None and parse_envelope(b"{}") is None
    assert parse_soap_login(body) is None
