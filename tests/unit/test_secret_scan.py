"""The session's secret scan (tests/conftest_secret_scan.py) can fail: a planted secret is found
in a file, across a chunk boundary, URL-encoded, in an XCom row, in a log record, and it fails
the session, without ever printing the secret. The planted value is not one of the session's
secrets, so these files do not fail the real scan at the end of the suite."""

from __future__ import annotations

import json
import logging
import sqlite3
from types import SimpleNamespace

import pytest

from tests import conftest_secret_scan as scan

pytestmark = pytest.mark.unit

PLANTED = "PLANTED-s3cret/value"
SECRETS = {PLANTED: "a planted secret"}


def test_a_planted_secret_is_found_with_its_file_and_offset_and_never_shown(tmp_path) -> None:
    (tmp_path / "logs" / "dag_id=x").mkdir(parents=True)
    log = tmp_path / "logs" / "dag_id=x" / "attempt=1.log"
    log.write_text("INFO connecting\n" + f"GET /?secretKey={PLANTED} 200\n")
    (tmp_path / "clean.txt").write_text("nothing here")
    hits, files, size = scan.scan_tree(tmp_path, SECRETS)
    assert files == 2 and size > 0
    [hit] = hits
    assert hit.where == str(log) and hit.offset == len("INFO connecting\nGET /?secretKey=")
    assert PLANTED not in str(hit) and "PL…(20 chars)" in str(hit)
    assert "secretKey=" in hit.context


def test_url_encoded_forms_and_chunk_boundaries_are_found(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(scan, "CHUNK", 16)  # the secret straddles chunks
    path = tmp_path / "run" / "plans.jsonl"
    path.parent.mkdir()
    encoded = PLANTED.replace("/", "%2F")
    path.write_bytes(b"x" * 9 + PLANTED.encode() + b"y" * 40 + encoded.encode())
    hits = scan.find_in_file(path, SECRETS)
    assert [h.offset for h in hits] == [9, 9 + len(PLANTED) + 40]


def test_sandbox_data_directories_are_exempt(tmp_path) -> None:
    sandbox = tmp_path / "sandboxes0" / "leadgen"
    sandbox.mkdir(parents=True)
    (sandbox / "sandbox.log").write_text("started")
    (sandbox / "config.json").write_text(json.dumps({"secret": PLANTED}))
    assert scan.scan_tree(tmp_path, SECRETS)[0] == []


def test_xcom_rows_are_named(tmp_path) -> None:
    db = tmp_path / "airflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE xcom (dag_id, run_id, task_id, key, value)")
        conn.execute(
            "INSERT INTO xcom VALUES ('d', 'r', 't', 'return_value', ?)",
            (json.dumps({"url": f"https://x/?secretKey={PLANTED}"}).encode(),),
        )
        conn.execute("INSERT INTO xcom VALUES ('d', 'r', 'u', 'return_value', '{}')")
    hits, rows = scan.xcom_hits(db, SECRETS)
    assert rows == 2 and [h.where for h in hits] == ["xcom d/r/t/return_value"]


def test_connection_secrets_come_from_json_and_uri_connections() -> None:
    env = {
        "AIRFLOW_CONN_SALESFORCE_DEFAULT": json.dumps(
            {"login": "u", "password": "pa55word!", "extra": {"security_token": "TOKEN123"}}
        ),
        "AIRFLOW_CONN_SYNC_STATE": "postgresql://sync:st4te%40pw@db:5432/sync_state",
        "AIRFLOW_CONN_SHORT": json.dumps({"password": "abc"}),  # too short to mean anything
        "OTHER": "password=ignored",
    }
    found = scan.connection_secrets(env)
    assert set(found) == {"pa55word!", "TOKEN123", "st4te@pw"}
    assert found["st4te@pw"] == "password of connection sync_state"


def test_log_records_and_pages_are_scanned_as_they_appear(monkeypatch) -> None:
    fresh = scan.SessionScan(secrets=dict(SECRETS))
    monkeypatch.setattr(scan, "SCAN", fresh)
    logger = logging.getLogger("crm_sync.test_secret_scan")
    monkeypatch.setattr(logger, "handlers", [])  # no handler at all: the record is seen anyway
    monkeypatch.setattr(logger, "propagate", False)
    try:
        raise RuntimeError(f"login failed for {PLANTED}")
    except RuntimeError:
        logger.exception("no secret in the message itself")
    fresh.text("<html>fine</html>", "page GET /ui/overview", "pages")
    assert [h.where.split(" (")[0] for h in fresh.hits] == [
        "log record of crm_sync.test_secret_scan"
    ]
    assert fresh.counts == {"log records": 1, "pages": 1, "captured outputs": 0}


def test_a_hit_fails_the_session(tmp_path, monkeypatch) -> None:
    home = tmp_path / "airflow_home"
    (home / "logs").mkdir(parents=True)
    (home / "logs" / "task.log").write_text(f"token={PLANTED}")
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    monkeypatch.setattr(scan, "SCAN", scan.SessionScan(secrets=dict(SECRETS)))
    lines: list[str] = []
    reporter = SimpleNamespace(
        write_sep=lambda *a, **k: None, write_line=lambda line, **k: lines.append(line)
    )
    config = SimpleNamespace(
        pluginmanager=SimpleNamespace(get_plugin=lambda name: reporter), _tmp_path_factory=None
    )
    session = SimpleNamespace(config=config, exitstatus=0)
    scan.pytest_sessionfinish(session, 0)  # type: ignore[arg-type]
    assert session.exitstatus == pytest.ExitCode.TESTS_FAILED
    assert "1 hits" in lines[0] and "task.log at offset 6" in lines[1]
    assert not any(PLANTED in line for line in lines)


def test_the_session_knows_the_sandbox_credentials_of_the_suite() -> None:
    from tests.contract.salesforce.sf_sandbox_helpers import PASSWORD, TOKEN
    from tests.e2e.conftest import LG_CONN, SF_CONN

    for secret in (LG_CONN["password"], SF_CONN["password"], SF_CONN["extra"]["security_token"]):
        assert secret in scan.KNOWN_SECRETS
    assert {PASSWORD, TOKEN} <= set(scan.KNOWN_SECRETS)
