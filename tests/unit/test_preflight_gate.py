"""The preflight gate, its record, the connection identity, the command line and the DAG task
(fakes from ``test_preflight_fakes``; connections as ``AIRFLOW_CONN_*`` variables)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from crm_sync.errors import ConfigError, RetriableError
from crm_sync.preflight import Status, gate
from crm_sync.preflight import cli as preflight_cli
from crm_sync.preflight.facts import SALESFORCE
from crm_sync.preflight.model import Check, Report
from crm_sync.preflight.record import (
    connection_identity,
    load_record,
    record_key,
    records_dir,
    specs_digest,
)
from crm_sync.settings import MAPPINGS_DIR_DEFAULT
from tests.unit.test_preflight_fakes import USERNAME, FakeLeadGen, FakeSalesforce, Runtime

pytestmark = pytest.mark.unit

SF_CONN = {
    "conn_type": "salesforce",
    "login": USERNAME,
    "password": "sandbox-password",
    "extra": {"security_token": "SANDBOXTOKEN", "domain": "test"},
}
LG_CONN = {
    "conn_type": "leadgen",
    "host": "https://api.example/pubapi/v1.2/",
    "login": "SANDBOXACCOUNT",
    "password": "SANDBOXSECRET",
}


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CRM_SYNC_HOME", str(tmp_path / "crm_sync"))
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(SF_CONN))
    monkeypatch.setenv("AIRFLOW_CONN_LEADGEN_DEFAULT", json.dumps(LG_CONN))
    return tmp_path


def test_identity_names_the_systems_without_secrets() -> None:
    identity = connection_identity()
    assert identity["salesforce"] == {
        "conn_id": "salesforce_default",
        "login": USERNAME,
        "host": None,
        "domain": "test",
    }
    assert identity["leadgen"]["account"] == "SANDBOXACCOUNT"
    text = json.dumps(identity)
    assert "sandbox-password" not in text and "SANDBOXTOKEN" not in text
    assert "SANDBOXSECRET" not in text


def test_the_key_changes_with_the_systems_and_the_specs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = record_key(connection_identity())
    monkeypatch.setenv("AIRFLOW_CONN_LEADGEN_DEFAULT", json.dumps({**LG_CONN, "login": "OTHER"}))
    assert record_key(connection_identity()) != key
    folder = tmp_path / "mappings"
    shutil.copytree(MAPPINGS_DIR_DEFAULT, folder)
    before = specs_digest(folder)
    (folder / "leads.yaml").write_text((folder / "leads.yaml").read_text() + "\n# edited\n")
    assert specs_digest(folder) != before


def test_the_gate_checks_once_then_returns_without_touching_either_system() -> None:
    rt = Runtime()
    first = gate(rt)
    assert first["preflight"] == "passed" and first["warn"] == 1
    assert rt._sf.api_calls > 0 and rt._lg.api_calls > 0
    record = load_record(record_key(connection_identity()))
    assert record is not None and record["ok"] and record["identity"]["leadgen"]["account"]

    again = Runtime()
    second = gate(again)
    assert second["preflight"] == "passed earlier"
    assert again.opened == []  # no client built, no API call


def test_a_failing_gate_raises_the_fixes_and_checks_again_next_time() -> None:
    sf = FakeSalesforce()
    sf.profiles["00e5e0000000003AAA"]["PermissionsApiUserOnly"] = False
    sf.permission_sets[0]["PermissionsApiUserOnly"] = False
    with pytest.raises(ConfigError) as err:
        gate(Runtime(sf))
    text = str(err.value)
    assert "preflight FAILED" in text and "nothing was written" in text
    assert "- API Only User:" in text and "Administrative Permissions > API Only User" in text
    assert load_record(record_key(connection_identity()))["ok"] is False

    fixed = Runtime()
    assert gate(fixed)["preflight"] == "passed"  # checked again, not trusted from the record
    assert fixed.opened


def test_a_spec_that_does_not_load_is_refused_before_any_client_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The specs are read first, offline: a broken one costs no API call."""
    folder = tmp_path / "mappings"
    shutil.copytree(MAPPINGS_DIR_DEFAULT, folder)
    text = (folder / "leads.yaml").read_text().replace("direction: push", "direction: sideways", 1)
    (folder / "leads.yaml").write_text(text)
    monkeypatch.setenv("CRM_SYNC_MAPPINGS_DIR", str(folder))
    rt = Runtime()
    with pytest.raises(ConfigError) as err:
        gate(rt)
    assert str(err.value).startswith(
        "mapping specs do not load, so the sync cannot run: leads.yaml"
    )
    assert "direction" in str(err.value)
    assert rt.opened == []


def test_a_gate_that_could_not_finish_is_retried() -> None:
    sf = FakeSalesforce()
    sf.failures["query"] = RetriableError("Salesforce query: connection failed", code="CONNECTION")
    with pytest.raises(RetriableError, match="could not finish.*connection failed"):
        gate(Runtime(sf))


def test_a_spec_change_makes_the_gate_check_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate(Runtime())
    folder = tmp_path / "mappings"
    shutil.copytree(MAPPINGS_DIR_DEFAULT, folder)
    (folder / "leads.yaml").write_text((folder / "leads.yaml").read_text() + "\n# edited\n")
    monkeypatch.setenv("CRM_SYNC_MAPPINGS_DIR", str(folder))
    rt = Runtime()
    assert gate(rt)["preflight"] == "passed" and rt.opened


def test_an_unreadable_record_is_not_trusted() -> None:
    gate(Runtime())
    key = record_key(connection_identity())
    (records_dir() / f"{key}.json").write_text("{not json")
    assert load_record(key) is None
    rt = Runtime()
    gate(rt)
    assert rt.opened


def test_report_text_shows_fixes_for_failures_only() -> None:
    report = Report(
        checks=[
            Check("a", Status.PASS, "fine", "never shown"),
            Check("b", Status.FAIL, "broken", "do this"),
            Check("c", Status.SKIP, "not checked: X did not answer"),
        ],
        target={"org": "00D1"},
    )
    lines = report.text().splitlines()
    assert lines[0] == "Preflight checklist (org=00D1)"
    assert "[FAIL] b  broken" in lines[2] and "fix: do this" in lines[3]
    assert "never shown" not in report.text()
    assert lines[-1] == "preflight FAILED: 1 pass, 1 fail, 1 skip"
    assert not report.ok
    assert Report.from_dict(json.loads(json.dumps(report.to_dict()))) == report


# -- command line and DAG task -------------------------------------------------------------------


def _cli(monkeypatch: pytest.MonkeyPatch, sf: Any, lg: Any, errors: dict, *argv: str):
    monkeypatch.setattr(preflight_cli, "open_clients", lambda ids: (sf, lg, errors))
    monkeypatch.setattr(preflight_cli, "expose", lambda ids: None)
    out, err = io.StringIO(), io.StringIO()
    code = preflight_cli.main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_prints_the_checklist_and_records_it(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = _cli(monkeypatch, FakeSalesforce(), FakeLeadGen(), {})
    assert code == 0 and "preflight PASSED" in out and "[WARN] owners.yaml" in out
    assert load_record(record_key(connection_identity()))["ok"]


def test_cli_exit_1_on_a_failed_check_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    from crm_sync.errors import AuthError

    errors = {SALESFORCE: AuthError("Salesforce rejected the credentials")}
    code, out, _ = _cli(monkeypatch, None, FakeLeadGen(), errors, "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False and report["checks"][0]["status"] == "fail"


def test_cli_exit_2_when_the_preflight_itself_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*a: Any, **k: Any) -> Any:
        raise OSError("disk full at https://api.example/?secretKey=SANDBOXSECRET")

    monkeypatch.setattr("crm_sync.preflight.gating.save_record", broken)
    code, out, err = _cli(monkeypatch, FakeSalesforce(), FakeLeadGen(), {})
    assert code == 2 and out == "" and "disk full" in err
    assert "SANDBOXSECRET" not in err


def test_open_clients_keeps_both_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_LEADGEN_DEFAULT")
    monkeypatch.setattr(
        "crm_sync.runtime.salesforce_client",
        lambda conn_id: (_ for _ in ()).throw(ConfigError("incomplete")),
    )
    sf, lg, errors = preflight_cli.open_clients(
        {"salesforce": "salesforce_default", "leadgen": "leadgen_default"}
    )
    assert sf is None and lg is None
    assert str(errors["Salesforce"]) == "incomplete"
    assert "'leadgen_default' is not defined or incomplete" in str(errors["Lead Gen & CRM"])


def test_dag_task_fails_without_retry_on_a_failed_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from crm_sync.preflight import dag_task

    sf = FakeSalesforce()
    sf.org["OrganizationType"] = "Group Edition"
    monkeypatch.setattr(preflight_cli, "open_clients", lambda ids: (sf, FakeLeadGen(), {}))
    monkeypatch.setattr(dag_task, "guarded", lambda client, ids: client)
    with pytest.raises(AirflowFailException, match="Salesforce edition: Group Edition"):
        dag_task.run({"params": {}})
    sf.org["OrganizationType"] = "Enterprise Edition"
    out = dag_task.run({"params": {}})
    assert out["ok"] is True and out["counts"]["fail"] == 0


def test_error_text_keeps_every_line_and_no_secret() -> None:
    from crm_sync.preflight.facts import error_text

    exc = ConfigError("leads.yaml: fields[1]: bad\nleads.yaml: fields[4]: worse")
    assert error_text(exc) == (
        "ConfigError: leads.yaml: fields[1]: bad / leads.yaml: fields[4]: worse"
    )
    assert "s3cr3t" not in error_text(ConfigError("GET https://x/?secretKey=s3cr3t failed"))
