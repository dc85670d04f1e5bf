"""The command line and the runner: options, exit codes, output formats, read-only, errors."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from crm_sync.errors import AuthError, ConfigError
from crm_sync.state.store import SyncStore
from crm_sync.verify import _lib, cli
from crm_sync.verify.model import Report, Violation
from crm_sync.verify.runner import Options
from tests.unit.test_verify_fakes import (
    FakeLeadGen,
    FakeSalesforce,
    lead,
    link,
    sf_id,
    sf_person,
    utc,
)

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _restore_logging():
    """``main`` configures the root logger, as a command line does; give pytest its own back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


L1 = sf_id("00Q", 1)


def test_options_select_checks_by_name_and_by_dag() -> None:
    assert Options().selected() == [
        "people",
        "duplicates",
        "fields",
        "links",
        "engagement",
        "opportunities",
        "quarantine",
    ]
    assert Options(dags=["sync_engagement_activities"]).selected() == ["engagement", "quarantine"]
    assert Options(checks=["fields", "links"], dags=["sync_opportunities"]).selected() == ["links"]
    with pytest.raises(ConfigError, match="unknown check or DAG: nope"):
        Options(checks=["nope"]).selected()


def test_since_accepts_a_span_or_an_iso_time_in_utc() -> None:
    assert cli.parse_since("36h") == timedelta(hours=36)
    assert cli.parse_since("7d") == timedelta(days=7)
    assert cli.parse_since("2026-11-20T09:00") == utc("2026-11-20T09:00:00")
    assert cli.parse_time("2026-11-20T10:00:00+01:00") == utc("2026-11-20T09:00:00")


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A store file with one linked pair, fakes that agree with it, wired into the CLI."""
    path = tmp_path / "state.db"
    SyncStore(f"sqlite:///{path}").dispose()  # create and migrate it, as the sync would
    store = SyncStore(f"sqlite:///{path}", migrate=False)
    link(store, "1", L1)
    store.dispose()
    sf = FakeSalesforce(Lead=[sf_person(L1, "1")], User=[])
    lg = FakeLeadGen([lead("1")])
    made: list[str] = []

    def factory(name, client):
        def make(conn_id):
            made.append(f"{name}:{conn_id}")
            return client

        return make

    # Unit tests never ask an Airflow metadata database: the lookup is recorded, not run.
    monkeypatch.setattr(_lib, "expose_connections", lambda ids: made.append(f"expose:{ids}") or [])
    monkeypatch.setattr(_lib, "state_url", lambda conn_id: f"sqlite:///{path}")
    monkeypatch.setattr(_lib, "salesforce_client", factory("salesforce", sf))
    monkeypatch.setattr(_lib, "leadgen_client", factory("leadgen", lg))
    return {"path": path, "sf": sf, "lg": lg, "made": made}


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def dump(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        return list(conn.iterdump())


def test_clean_systems_exit_0_and_nothing_is_written(world) -> None:
    before = dump(world["path"])
    code, out, err = run("--dag", "sync_leads_contacts")
    assert code == 0, err
    assert out.startswith("crm_sync.verify: no violations (checks: people, duplicates, fields,")
    assert "salesforce_leads=1" in out and "leadgen_leads=1" in out
    assert dump(world["path"]) == before
    assert world["made"] == [
        "expose:('sync_state', 'salesforce_default', 'leadgen_default')",
        "salesforce:salesforce_default",
        "leadgen:leadgen_default",
    ]


def test_a_violation_exits_1_and_json_has_one_line_per_violation(world) -> None:
    world["lg"].add("2")  # an active lead nobody linked
    world["lg"].leads[0]["title"] = "CTO"  # and a title that differs on the pair
    world["sf"].records["Lead"][0]["Title"] = "CEO"
    code, out, _ = run("--json", "--only", "people,fields", "--leadgen-conn", "lg_other")
    assert code == 1
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(d.get("kind"), d.get("leadgen")) for d in lines[:-1]] == [
        ("missing_in_salesforce", ["2"]),
        ("field_mismatch", ["1"]),
    ]
    assert lines[1]["field"] == "title" and lines[1]["dag"] == "sync_leads_contacts"
    summary = lines[-1]["summary"]
    assert summary["violations"] == 2
    assert summary["by_kind"] == {"missing_in_salesforce": 1, "field_mismatch": 1}
    assert summary["checks"] == ["people", "fields"]
    assert "leadgen:lg_other" in world["made"]


def test_store_only_checks_need_no_connection_to_either_system(world) -> None:
    code, out, _ = run("--only", "links", "--only", "quarantine")
    assert code == 0
    assert [m for m in world["made"] if not m.startswith("expose:")] == []
    assert "checks: links, quarantine" in out


def test_a_missing_store_is_a_checker_error_and_is_not_created(world, tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "state.db"
    monkeypatch.setattr(_lib, "state_url", lambda conn_id: f"sqlite:///{missing}")
    code, out, err = run()
    assert code == 2
    assert out == ""
    assert "ConfigError: state store sqlite:///" in err and "not found" in err
    assert not missing.exists()


@pytest.mark.parametrize("verbose", [False, True])
def test_connection_errors_exit_2_without_secrets(world, monkeypatch, verbose) -> None:
    def refuse(conn_id):
        raise AuthError("login refused at https://h/pubapi/v1.2/?accountID=A&secretKey=S3CRETKEY")

    monkeypatch.setattr(_lib, "leadgen_client", refuse)
    # Debug logging on (as another tool or test may leave it): the traceback is logged too.
    logging.getLogger("crm_sync.verify").setLevel(logging.DEBUG)
    try:
        code, _, err = run(*(["-v"] if verbose else []))
    finally:
        logging.getLogger("crm_sync.verify").setLevel(logging.NOTSET)
    assert code == 2
    assert "crm_sync.verify: error: AuthError: login refused" in err
    assert "Traceback" in err  # the debug traceback is there, redacted
    assert "S3CRETKEY" not in err


def test_bad_options_exit_2() -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--dag", "no_such_dag"], stdout=io.StringIO(), stderr=io.StringIO())
    assert exc.value.code == 2


def test_report_lists_violations_grouped_by_kind() -> None:
    report = Report(sqlite3.connect(":memory:"), checks=["people", "duplicates"])
    report.add(Violation("duplicate_email_leadgen", "two leads", ("1", "2")))
    report.add(Violation("missing_in_salesforce", "no link", ("3",)))
    lines = list(report.text())
    assert lines[0] == "crm_sync.verify: 2 violation(s) (checks: people, duplicates)"
    assert lines[-2].startswith("missing_in_salesforce       leadgen=3 salesforce=-  no link")
    assert lines[-1].startswith("duplicate_email_leadgen     leadgen=1,2")
    with pytest.raises(ValueError, match="unknown violation kind"):
        Violation("nonsense", "why")


class _Conn:
    def __init__(self, conn_id: str):
        self.conn_id = conn_id

    def as_json(self) -> str:
        return json.dumps({"conn_type": "leadgen", "host": f"https://{self.conn_id}.example"})


def test_connections_from_the_metadata_database_are_exposed_to_this_process_only(
    monkeypatch,
) -> None:
    monkeypatch.setattr(
        _lib, "_lookup_connection", lambda conn_id: None if conn_id == "nowhere" else _Conn(conn_id)
    )
    env = {"AIRFLOW_CONN_SALESFORCE_DEFAULT": "from-the-environment"}
    exposed = _lib.expose_connections(["salesforce_default", "leadgen_default", "nowhere"], env)
    assert exposed == ["leadgen_default"]
    assert env["AIRFLOW_CONN_SALESFORCE_DEFAULT"] == "from-the-environment"  # never overridden
    assert (
        json.loads(env["AIRFLOW_CONN_LEADGEN_DEFAULT"])["host"] == "https://leadgen_default.example"
    )
    assert "AIRFLOW_CONN_NOWHERE" not in env
