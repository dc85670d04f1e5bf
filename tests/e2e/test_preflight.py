"""Preflight end to end: the ``crm_sync_preflight`` DAG and the command line pass on the default
sandboxes; each requirement broken through the Salesforce sandbox's admin API (or a connection
made wrong) fails -- or warns -- with the right message and fix; nothing is written anywhere; and
the sync DAGs' gate, given a real task runtime, trusts a recorded pass without an API call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from crm_sync.preflight import Report, Status

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CONN_IDS = {"salesforce": "salesforce_default", "leadgen": "leadgen_default", "state": "sync_state"}


@pytest.fixture(autouse=True)
def _no_recorded_pass(fresh: Any) -> None:
    """These tests run the preflight themselves: forget the pass the e2e fixture recorded."""
    import shutil

    shutil.rmtree(Path(os.environ["CRM_SYNC_HOME"]) / "preflight", ignore_errors=True)


def admin(side: Any, method: str, path: str, body: dict | None = None) -> Any:
    r = requests.request(
        method, f"{side.base}/{path}", json=body or {}, verify=side.verify, timeout=60
    )
    assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text[:300]}"
    return r.json() if r.content else None


def preflight() -> Report:
    """The preflight with the real clients of the configured connections (as the CLI runs it)."""
    from crm_sync.preflight.cli import open_clients
    from crm_sync.preflight.gating import check_and_record

    sf, lg, errors = open_clients(CONN_IDS)
    return check_and_record(sf, lg, conn_ids=CONN_IDS, errors=errors)


def nothing_written(fresh: Any) -> None:
    assert fresh.sf.get("writes")["total"] == 0
    methods = fresh.lg.get("calls")["by_method"]
    assert not [m for m in methods if m.startswith(("create", "update", "delete"))], methods


def the_check(report: Report, name: str):
    [check] = [c for c in report.checks if c.name == name]
    return check


def test_the_default_sandboxes_pass(fresh) -> None:
    report = preflight()
    assert report.ok, report.text()
    assert [c.name for c in report.with_status(Status.WARN)] == ["owners.yaml"]
    assert report.target["edition"] == "Enterprise Edition"
    assert report.target["user"] == "integration@sandbox.example"
    nothing_written(fresh)


PROFILE = "profiles/Sync Integration"

# (id, admin calls to break it, the check, the words its detail must hold, the words of its fix)
BREAKS = [
    ("edition", [("POST", "org", {"edition": "Group Edition", "api_enabled": True})],
     "Salesforce edition", "Group Edition: not an edition", "Enterprise, Unlimited"),
    ("api_only", [("PATCH", PROFILE, {"PermissionsApiUserOnly": False})],
     "API Only User", "lacks API Only User", "Administrative Permissions > API Only User"),
    ("modify_all_data", [("PATCH", PROFILE, {"PermissionsModifyAllData": False})],
     "Modify All Data", "lacks Modify All Data", "Administrative Permissions > Modify All Data"),
    ("password", [("PATCH", PROFILE, {"PermissionsPasswordNeverExpires": False})],
     "password never expires", "password can expire", "Password Never Expires"),
    ("session_level", [("PATCH", PROFILE, {"requiredSessionLevel": "HIGH_ASSURANCE"})],
     "session security level", "High Assurance", "Session Security Level Required at Login"),
    ("fls_read_only", [("POST", "field-permissions", {"profile": "Sync Integration", "field": "Lead.LeadGen_Score__c", "read": True, "edit": False})],
     "write access leads.yaml", "Lead.LeadGen_Score__c is not createable/updateable",
     "LeadGen_Score__c > Set Field-Level Security"),
    ("fls_hidden", [("POST", "field-permissions", {"profile": "Sync Integration", "field": "Contact.Title", "read": False})],
     "write access contacts.yaml", "Contact.Title does not exist or is hidden", "Visible"),
    ("link_url_removed", [("DELETE", "schema/fields/Lead/LeadGen_URL__c", None)],
     "field Lead.LeadGen_URL__c", "record link URL field does not exist",
     "New: LeadGen_URL__c URL(255)"),
    ("event_id_not_external", [("PATCH", "schema/fields/Task/LeadGen_Event_Id__c", {"externalId": False, "unique": False})],
     "field Task.LeadGen_Event_Id__c", "is not External ID, not Unique",
     "LeadGen_Event_Id__c > Edit: Text(80), External ID, Unique"),
    ("link_id_wrong_type", [("PATCH", "schema/fields/Contact/LeadGen_Id__c", {"type": "double"})],
     "field Contact.LeadGen_Id__c", "is type double", "Text(32), External ID, Unique"),
    ("api_allowance", [("POST", "limits", {"daily_api_requests": 100000, "used": 99500})],
     "daily API allowance", "of 100,000 daily API requests left", "API Requests, Last 24 Hours"),
]  # fmt: skip


@pytest.mark.parametrize(("calls", "name", "detail", "fix"), [b[1:] for b in BREAKS], ids=[b[0] for b in BREAKS])  # fmt: skip
def test_each_broken_requirement_fails_its_check(
    fresh, calls: list, name: str, detail: str, fix: str
) -> None:
    for method, path, body in calls:
        admin(fresh.sf, method, path, body)
    report = preflight()
    assert [c.name for c in report.with_status(Status.FAIL, Status.SKIP)] == [name], report.text()
    check = the_check(report, name)
    assert detail in check.detail and fix in check.fix, check
    assert f"[FAIL] {name}" in report.text() and f"fix: {check.fix}" in report.text()
    nothing_written(fresh)


def test_an_org_without_api_access_fails_the_connection(fresh) -> None:
    admin(fresh.sf, "POST", "org", {"edition": "Essentials Edition"})
    report = preflight()
    check = the_check(report, "Salesforce connection")
    assert check.status is Status.FAIL and "API_DISABLED_FOR_ORG" in check.detail
    assert "API Enabled" in check.fix
    assert the_check(report, "API Only User").status is Status.SKIP
    assert the_check(report, "Lead Gen & CRM connection").status is Status.PASS


def test_an_inactive_owner_warns_and_still_passes(fresh) -> None:
    users = fresh.sf.get("users")["users"]
    [sally] = [u for u in users if u["Username"] == "sally.sales@sandbox.example"]
    admin(fresh.sf, "PATCH", f"users/{sally['Id']}", {"IsActive": False})
    report = preflight()
    assert report.ok
    check = the_check(report, "owners.yaml")
    assert check.status is Status.WARN
    assert "users[0]: Salesforce user sally.sales@sandbox.example is inactive" in check.detail


@pytest.mark.parametrize(
    ("var", "change", "name", "words"),
    [
        (
            "AIRFLOW_CONN_SALESFORCE_DEFAULT",
            {"password": "wrong"},
            "Salesforce connection",
            "rejected the credentials",
        ),  # fmt: skip
        (
            "AIRFLOW_CONN_LEADGEN_DEFAULT",
            {"password": "WRONGSECRET"},
            "Lead Gen & CRM connection",
            "AuthError",
        ),  # fmt: skip
    ],
    ids=["salesforce_password", "leadgen_secret_key"],
)
def test_a_connection_that_does_not_answer_fails_and_skips_the_rest(
    fresh, monkeypatch: pytest.MonkeyPatch, var: str, change: dict, name: str, words: str
) -> None:
    monkeypatch.setenv(var, json.dumps({**json.loads(os.environ[var]), **change}))
    report = preflight()
    check = the_check(report, name)
    assert check.status is Status.FAIL and words in check.detail, check
    assert "Admin > Connections" in check.fix
    assert the_check(report, "owners.yaml").status is Status.SKIP
    assert "WRONGSECRET" not in report.text() and "wrong" not in check.detail


def test_the_dag_passes_then_fails_without_retry(fresh, dags) -> None:
    dag = dags["crm_sync_preflight"]
    run = dag.test()
    assert str(getattr(run.state, "value", run.state)) == "success"
    admin(fresh.sf, "PATCH", PROFILE, {"requiredSessionLevel": "HIGH_ASSURANCE"})
    run = dag.test()
    [ti] = run.get_task_instances()
    assert str(getattr(ti.state, "value", ti.state)) == "failed"
    assert ti.try_number == 1  # a failed check is configuration: no retry
    nothing_written(fresh)


def test_the_gate_of_a_sync_dag_trusts_a_recorded_pass(fresh) -> None:
    """After a passing preflight, the gate with a real task runtime of a sync DAG returns without
    building a client; a failed one is checked again and raises with the fixes."""
    from crm_sync.definitions import get_definition
    from crm_sync.errors import ConfigError
    from crm_sync.preflight import gate
    from crm_sync.tasks import TaskRuntime

    definition = get_definition("sync_leads_contacts")
    with TaskRuntime(definition, "prepare") as rt:
        assert gate(rt)["preflight"] == "passed"
    calls = fresh.sf.get("calls")["total"]
    with TaskRuntime(definition, "prepare") as rt:
        assert gate(rt)["preflight"] == "passed earlier"
        assert rt._sf is None and rt._lg is None  # nothing opened
    assert fresh.sf.get("calls")["total"] == calls

    admin(fresh.sf, "PATCH", PROFILE, {"PermissionsModifyAllData": False})
    preflight()  # a manual preflight (make preflight, the DAG) records the failure
    with TaskRuntime(definition, "prepare") as rt, pytest.raises(ConfigError) as err:
        gate(rt)
    assert "- Modify All Data:" in str(err.value) and "nothing was written" in str(err.value)


def test_the_command_line_prints_the_checklist(fresh, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)])}
    out = subprocess.run(
        [sys.executable, "-m", "crm_sync.preflight"],
        capture_output=True, text=True, env=env, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("Preflight checklist (user=integration@sandbox.example")
    assert "[pass] API Only User" in out.stdout and "preflight PASSED" in out.stdout
    admin(fresh.sf, "PATCH", PROFILE, {"PermissionsApiUserOnly": False})
    out = subprocess.run(
        [sys.executable, "-m", "crm_sync.preflight", "--json"],
        capture_output=True, text=True, env=env, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert [c["name"] for c in report["checks"] if c["status"] == "fail"] == ["API Only User"]
