"""The spec-driven preflight checks both ways: the sync's own fields, write access per spec, the
specs loading, owners.yaml (fakes from ``test_preflight_fakes``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crm_sync.preflight import Status
from crm_sync.preflight.facts import load_spec_set
from crm_sync.preflight.fields import sync_field_requirements
from crm_sync.settings import MAPPINGS_DIR_DEFAULT
from tests.unit.test_preflight_checks import check, only_failure, run
from tests.unit.test_preflight_fakes import FakeLeadGen, FakeSalesforce

pytestmark = pytest.mark.unit


def test_the_sync_fields_come_from_the_specs() -> None:
    reqs = {(r.sobject, r.field): r for r in sync_field_requirements(load_spec_set())}
    assert set(reqs) == {
        ("Lead", "LeadGen_Id__c"),
        ("Lead", "LeadGen_URL__c"),
        ("Lead", "LeadGen_Score__c"),
        ("Contact", "LeadGen_Id__c"),
        ("Contact", "LeadGen_URL__c"),
        ("Contact", "LeadGen_Score__c"),
        ("Task", "LeadGen_Event_Id__c"),
    }
    assert reqs[("Lead", "LeadGen_Id__c")].external_id and reqs[("Lead", "LeadGen_Id__c")].unique


def test_a_missing_sync_field_fails_once_with_how_to_create_it() -> None:
    sf = FakeSalesforce()
    del sf.describes["Lead"]["LeadGen_URL__c"]
    c = only_failure(run(sf))  # write access leads.yaml does not report it a second time
    assert c.name == "field Lead.LeadGen_URL__c" and "does not exist" in c.detail
    assert c.fix.startswith(
        "Setup > Object Manager > Lead > Fields & Relationships > New: LeadGen_URL__c URL(255)"
    )


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"externalId": False}, "not External ID"),
        ({"unique": False}, "not Unique"),
        ({"type": "double"}, "type double"),
    ],
)
def test_a_sync_id_field_defined_wrong_fails(change: dict, words: str) -> None:
    sf = FakeSalesforce()
    sf.describes["Task"]["LeadGen_Event_Id__c"].update(change)
    c = only_failure(run(sf))
    assert c.name == "field Task.LeadGen_Event_Id__c" and words in c.detail
    assert "Text(80), External ID, Unique" in c.fix


def test_a_score_field_of_text_type_fails_and_a_short_id_field_warns() -> None:
    sf = FakeSalesforce()
    sf.describes["Contact"]["LeadGen_Score__c"]["type"] = "string"
    c = only_failure(run(sf))
    assert c.name == "field Contact.LeadGen_Score__c" and "Number(18, 0)" in c.detail
    sf = FakeSalesforce()
    sf.describes["Lead"]["LeadGen_Id__c"]["length"] = 18
    c = check(run(sf), "field Lead.LeadGen_Id__c")
    assert c.status is Status.WARN and "18 characters" in c.detail


def test_an_object_the_user_cannot_see_fails_its_checks() -> None:
    sf = FakeSalesforce()
    del sf.describes["Task"]
    report = run(sf)
    assert "Task is not available" in check(report, "field Task.LeadGen_Event_Id__c").detail
    assert "Task is not available" in check(report, "write access engagement.yaml").detail


def test_a_pushed_field_without_edit_access_fails_with_the_fls_path() -> None:
    sf = FakeSalesforce()
    sf.describes["Lead"]["Title"].update(createable=False, updateable=False)
    c = only_failure(run(sf))
    assert c.name == "write access leads.yaml"
    assert "Lead.Title is not createable/updateable" in c.detail
    assert "Lead > Fields & Relationships > Title > Set Field-Level Security" in c.fix


def test_a_field_that_cannot_be_created_fails_for_a_spec_that_creates_records() -> None:
    sf = FakeSalesforce()
    sf.describes["Contact"]["LeadGen_Score__c"]["createable"] = False
    c = only_failure(run(sf))
    assert c.name == "write access contacts.yaml" and "not createable" in c.detail


def test_a_formula_field_is_read_only_by_definition() -> None:
    sf = FakeSalesforce()
    sf.describes["Lead"]["Phone"].update(
        createable=False, updateable=False, calculated=True, permissionable=False
    )
    c = only_failure(run(sf))
    assert "read-only by definition: map it as pull or none" in c.fix


def test_a_pulled_field_only_needs_to_be_visible() -> None:
    sf = FakeSalesforce()
    sf.describes["Account"]["Industry"].update(createable=False, updateable=False)
    assert run(sf).ok
    del sf.describes["Account"]["Industry"]
    c = only_failure(run(sf))
    assert c.name == "write access accounts.yaml" and "Account.Industry does not exist" in c.detail


def test_leadgen_fields_missing_or_read_only_fail() -> None:
    lg = FakeLeadGen()
    lg.fields = [f for f in lg.fields if f["systemName"] != "customer_tier_5f1a2b3c4d5e7"]
    report = run(lg=lg)
    for name in ("write access leads.yaml", "write access contacts.yaml"):
        c = check(report, name)
        assert c.status is Status.FAIL and "customer_tier_5f1a2b3c4d5e7 does not exist" in c.detail
    lg = FakeLeadGen()
    for f in lg.fields:
        if f["systemName"] == "customer_tier_5f1a2b3c4d5e7":
            f["isEditableInContactManager"] = "0"  # pulled: Salesforce writes it here
    c = check(run(lg=lg), "write access leads.yaml")
    assert c.status is Status.FAIL and "is read-only" in c.detail and "push or none" in c.fix


def test_task_fields_the_engagement_dag_writes_must_be_createable() -> None:
    sf = FakeSalesforce()
    sf.describes["Task"]["TaskSubtype"]["createable"] = False
    c = only_failure(run(sf))
    assert c.name == "write access engagement.yaml" and "Task.TaskSubtype" in c.detail


@pytest.fixture
def mappings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "mappings"
    shutil.copytree(MAPPINGS_DIR_DEFAULT, folder)
    monkeypatch.setenv("CRM_SYNC_MAPPINGS_DIR", str(folder))
    return folder


def test_a_spec_that_does_not_load_fails_and_skips_its_checks(mappings: Path) -> None:
    path = mappings / "accounts.yaml"
    path.write_text(path.read_text().replace("direction: pull", "direction: sideways", 1))
    report = run(specs=load_spec_set())
    c = check(report, "mapping specs")
    assert c.status is Status.FAIL and "accounts.yaml" in c.detail and "sideways" in c.detail
    assert "include/mappings/" in c.fix
    assert check(report, "write access accounts.yaml").status is Status.SKIP
    assert check(report, "write access leads.yaml").status is Status.PASS


def test_renamed_link_fields_are_followed(mappings: Path) -> None:
    for name in ("leads.yaml", "contacts.yaml"):
        path = mappings / name
        path.write_text(path.read_text().replace("LeadGen_URL__c", "Marketing_URL__c"))
    report = run(specs=load_spec_set())
    c = check(report, "field Lead.Marketing_URL__c")
    assert c.status is Status.FAIL and "record link URL" in c.detail


# -- owners.yaml ---------------------------------------------------------------------------------


def test_owners_inactive_users_warn() -> None:
    c = check(run(), "owners.yaml")
    assert c.status is Status.WARN
    assert "users[3]: Salesforce user ivan.inactive@sandbox.example is inactive" in c.detail


def test_owners_all_active_pass() -> None:
    sf, lg = FakeSalesforce(), FakeLeadGen()
    sf.users[-1]["IsActive"] = True
    lg.users[-1]["isActive"] = "1"
    c = check(run(sf, lg), "owners.yaml")
    assert c.status is Status.PASS and "4 listed users" in c.detail


def test_owners_user_that_does_not_exist_fails() -> None:
    sf = FakeSalesforce()
    sf.users = [u for u in sf.users if u["Username"] != "priya.patel@sandbox.example"]
    c = only_failure(run(sf))
    assert c.name == "owners.yaml"
    assert "users[1]: Salesforce user priya.patel@sandbox.example does not exist" in c.detail
    assert "include/mappings/owners.yaml" in c.fix
    lg = FakeLeadGen()
    lg.users = [
        u for u in lg.users if u["emailAddress"] != "morgan.reyes@northwind-sandbox.example"
    ]
    c = only_failure(run(lg=lg))
    assert "users[0]: Lead Gen & CRM user morgan.reyes@northwind-sandbox.example" in c.detail


def test_owners_inactive_fallback_fails(mappings: Path) -> None:
    path = mappings / "owners.yaml"
    text = path.read_text().replace(
        "salesforce_username: integration@sandbox.example",
        "salesforce_username: ivan.inactive@sandbox.example",
    )
    path.write_text(text)
    c = only_failure(run(specs=load_spec_set()))
    assert c.name == "owners.yaml" and c.detail.startswith(
        "fallback: Salesforce user ivan.inactive"
    )
