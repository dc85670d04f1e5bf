"""The data-quality gate end to end: every kind of defect is quarantined with the record, the
field and the rule; the good rows load; nothing is lost; a fixed row loads on the next run; the
threshold turns the run red after the good rows are loaded; bad configuration fails fast."""

from __future__ import annotations

import json
import os
import shutil
from datetime import timedelta

import pytest

from tests.e2e.conftest import REPO_MAPPINGS
from tests.e2e.helpers import H, freeze, lg_at, lg_lead, run_dag, sf_create, sf_find, state_store

pytestmark = pytest.mark.e2e

DAG = "sync_leads_contacts"

H2 = H + timedelta(hours=1)
TOO_LONG_TITLE = "Senior Vice President of " + "Very Important Things " * 6  # > 128 characters


@pytest.fixture
def dq_setup(fresh, tmp_path, monkeypatch):
    """Extra fields on both sides and a spec that maps them, with a user rule on Phone."""
    fresh.sf.post("schema/fields", {"object": "Lead", "name": "Employees__c", "type": "int"})
    fresh.sf.post("schema/fields", {"object": "Lead", "name": "First_Touch__c", "type": "date"})
    fresh.sf.post(
        "schema/validation-rules",
        {
            "object": "Lead",
            "name": "No_Competitors",
            "field": "Company",
            "condition": {"regex": "^(?!Competitor).*"},
            "message": "Competitors may not be leads",
        },
    )
    from crm_sync.runtime import leadgen_client

    lg = leadgen_client()
    lg.create_fields(
        [
            {"relationship": "lead", "label": "Employees", "dataType": "string"},
            {"relationship": "lead", "label": "First Touch", "dataType": "string"},
        ]
    )
    names = {
        f["label"]: f["systemName"]
        for f in lg.get_fields()
        if f.get("label") in ("Employees", "First Touch")
    }
    mappings = tmp_path / "mappings"
    shutil.copytree(REPO_MAPPINGS, mappings)
    leads = (mappings / "leads.yaml").read_text()
    leads = leads.replace(
        "  - {leadgen: phoneNumber, salesforce: Phone, direction: two-way, transform: [trim]}",
        "  - leadgen: phoneNumber\n    salesforce: Phone\n    direction: two-way\n    transform: [trim]\n"
        "    rules: [{name: international-format, regex: '^\\+', message: 'phone numbers start with + and the country code'}]",
    )
    leads += (
        f"  - {{leadgen: {names['Employees']}, salesforce: Employees__c, direction: push}}\n"
        f"  - {{leadgen: {names['First Touch']}, salesforce: First_Touch__c, direction: push}}\n"
    )
    (mappings / "leads.yaml").write_text(leads)
    monkeypatch.setenv("CRM_SYNC_MAPPINGS_DIR", str(mappings))
    return names


def test_each_defect_is_quarantined_with_its_reason_and_the_rest_loads(
    fresh, dags, dq_setup
) -> None:
    names = dq_setup
    freeze(fresh, 40)
    good = [
        lg_lead(
            fresh,
            emailAddress=f"good{i}@example.com",
            firstName="Good",
            lastName=f"Row{i}",
            companyName="Fine Inc",
            phoneNumber="+1 555 0100",
        )
        for i in range(20)
    ]
    bad = {
        "required:LastName": lg_lead(
            fresh, emailAddress="nolast@example.com", firstName="No", companyName="Fine Inc"
        ),
        "required:Company": lg_lead(
            fresh, emailAddress="nocompany@example.com", firstName="No", lastName="Company"
        ),
        "email_format:Email": lg_lead(
            fresh,
            emailAddress="broken@@example",
            firstName="Bad",
            lastName="Email",
            companyName="Fine Inc",
        ),
        "max_length:Title": lg_lead(
            fresh,
            emailAddress="long@example.com",
            lastName="Long",
            companyName="Fine Inc",
            title=TOO_LONG_TITLE,
        ),
        "picklist:Product_Interest__c": lg_lead(
            fresh,
            emailAddress="pick@example.com",
            lastName="Pick",
            companyName="Fine Inc",
            product_interest_5f1a2b3c4d5e6="Widgets",
        ),
        "parseable:Employees__c": lg_lead(
            fresh,
            emailAddress="num@example.com",
            lastName="Num",
            companyName="Fine Inc",
            **{names["Employees"]: "about fifty"},
        ),
        "parseable:First_Touch__c": lg_lead(
            fresh,
            emailAddress="date@example.com",
            lastName="Date",
            companyName="Fine Inc",
            **{names["First Touch"]: "next tuesday"},
        ),
        "rule:international-format:Phone": lg_lead(
            fresh,
            emailAddress="phone@example.com",
            lastName="Phone",
            companyName="Fine Inc",
            phoneNumber="555 0100",
        ),
        "salesforce:FIELD_CUSTOM_VALIDATION_EXCEPTION:Company": lg_lead(
            fresh, emailAddress="rival@example.com", lastName="Rival", companyName="Competitor Ltd"
        ),
    }
    no_email_contact = sf_create(fresh, "Contact", LastName="Noemail")
    out = run_dag(dags, DAG, H, conf={"max_reject_rate": 0.5})
    assert out.state == "success", out.task_states
    report = out.report

    # the good rows loaded
    assert report["salesforce"]["created"] == len(good)
    assert set(state_store().links_by_lg("person", good)) == set(good)
    # each bad row is quarantined with the record, the field and the rule
    items = {q.lg_id or q.sf_id: q for q in state_store().quarantined(DAG)}
    for expected, lead_id in bad.items():
        q = items[lead_id]
        check, field = expected.rsplit(":", 1)
        assert (q.check, q.field) == (check, field), (expected, q.check, q.field, q.message)
        assert lead_id in q.message and field in q.message
        assert q.payload, "the payload that was not written is kept"
        assert q.direction == "lg_to_sf"
    assert items[bad["email_format:Email"]].category == "format"
    assert items[bad["max_length:Title"]].category == "length"
    assert items[bad["picklist:Product_Interest__c"]].category == "picklist"
    assert items[bad["required:Company"]].category == "required field"
    assert (
        items[bad["salesforce:FIELD_CUSTOM_VALIDATION_EXCEPTION:Company"]].category
        == "validation rule"
    )
    assert (
        "Competitors may not be leads"
        in items[bad["salesforce:FIELD_CUSTOM_VALIDATION_EXCEPTION:Company"]].message
    )
    # and the Salesforce contact without an email cannot become a lead (email is required there)
    q = items[no_email_contact]
    assert (q.direction, q.check, q.field, q.category) == (
        "sf_to_lg",
        "required",
        "emailAddress",
        "required field",
    )
    # nothing is lost: every extracted record is loaded, unchanged or quarantined
    assert report["pairs"] == report["extracted"]["lead"] + report["extracted"]["Contact"]
    assert (
        report["pairs"]
        == report["loaded_rows"]
        + report["unchanged"]
        + report["rejected_rows"]
        + report["still_quarantined_rows"]
    )
    assert report["rejected_rows"] == len(bad) + 1
    assert report["quarantined"] == len(bad) + 1
    # the validation report is kept with the run
    checks = report["validation"]["checks"]
    assert checks["sf_Lead_create:required:Company"]["failed"] == 1
    assert checks["sf_Lead_create:required:Company"]["evaluated"] == len(good) + len(bad)
    assert checks["sf_Lead_create:max_length:Title"]["examples"] == [TOO_LONG_TITLE.strip()]

    # fixing a row at the source: it loads on the next run and leaves the quarantine
    fresh.lg.post(
        f"leads/{bad['required:Company']}",
        {"fields": {"companyName": "Fixed Corp"}, "_at": lg_at(30, H2)},
    )
    out = run_dag(dags, DAG, H2, conf={"max_reject_rate": 0.5})
    assert out.state == "success", out.task_states
    assert bad["required:Company"] in state_store().links_by_lg("person", [bad["required:Company"]])
    remaining = {q.lg_id or q.sf_id for q in state_store().quarantined(DAG)}
    assert bad["required:Company"] not in remaining
    assert len(remaining) == len(bad)  # the others are retried, still failing, attempts counted
    assert out.report["quarantine_resolved"] == 1
    assert {q.attempts for q in state_store().quarantined(DAG)} == {2}
    # rows already quarantined do not count again against the threshold
    assert out.report["rejected_rows"] == 0 and out.report["still_quarantined_rows"] == len(bad)


def test_threshold_turns_the_run_red_after_the_good_rows_loaded(fresh, dags, caplog) -> None:
    freeze(fresh, 40)
    good = [
        lg_lead(fresh, emailAddress=f"ok{i}@example.com", lastName=f"Ok{i}", companyName="Fine Inc")
        for i in range(8)
    ]
    bad = [
        lg_lead(fresh, emailAddress=f"bad{i}@example.com", lastName=f"Bad{i}") for i in range(2)
    ]  # no company
    out = run_dag(dags, DAG, H, now=True)  # default limit 5 %: 2 of 10 rejected is 20 %
    assert out.state == "failed"
    assert out.task_states["record"] == "failed"
    assert {k: v for k, v in out.task_states.items() if k != "record"} == {
        k: "success" for k in out.task_states if k != "record"
    }
    assert out.report["status"] == "threshold_exceeded"
    assert set(state_store().links_by_lg("person", good + bad)) == set(good)  # the good rows loaded
    assert len(sf_find(fresh, "Lead", "ok0@example.com")) == 1
    run = state_store().get_run(DAG, out.run_id)
    assert "2 of 10 rows rejected (20.0% > limit 5.0%)" in run.message
    assert "required" in run.message and "report.json" in run.message
    # the window is done: its rejected rows are retried from the quarantine, so the next run
    # starts here instead of re-reading this window (and every later one) until the rows pass
    assert state_store().get_watermark(DAG, "people") == H
    # one alert, through the DAG's failure notifier, with the counts
    alerts = [r.getMessage() for r in caplog.records if r.name == "crm_sync.alerts"]
    assert len(alerts) == 1
    assert "threshold_exceeded in task record" in alerts[0] and "quarantined: 2 rows" in alerts[0]


@pytest.mark.parametrize("system", ["salesforce", "leadgen"])
def test_bad_credentials_fail_fast_without_retry_and_without_secrets(
    fresh, dags, monkeypatch, capfd, system
) -> None:
    secret = "Wr0ng-S3cret-Value-42"
    var = f"AIRFLOW_CONN_{system.upper()}_DEFAULT"
    conn = json.loads(os.environ[var])
    conn["password"] = secret
    monkeypatch.setenv(var, json.dumps(conn))
    freeze(fresh, 40)
    lg_lead(fresh, emailAddress="cred@example.com", lastName="Cred", companyName="C")
    out = run_dag(dags, DAG, H)
    assert out.state == "failed"
    assert out.task_states["prepare"] == "failed"
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter_by(dag_id=DAG, run_id=out.run_id, task_id="prepare")
            .one()
        )
        assert ti.try_number == 1, "bad credentials are fatal: no retries"
    captured = capfd.readouterr()
    logs = captured.out + captured.err
    assert "AuthError" in logs and f"{system}_default" in logs
    assert secret not in logs
    assert fresh.sf.get("calls")["by_kind"].get("collections", 0) == 0
