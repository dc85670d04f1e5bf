"""Admin surface: salesperson actions, clock, seed, schema, CLI, persistence and shutdown."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest
from sf_sandbox_helpers import Admin

from sandbox.process import REPO_ROOT, start_sandbox

pytestmark = pytest.mark.contract

UTC = dt.UTC


def users_by_email(admin) -> dict[str, str]:
    return {u["Email"]: u["Id"] for u in admin.get("/users")["users"]}


def test_salesperson_edits_bump_stamps_and_last_modified_by(client, admin):
    users = users_by_email(admin)
    admin.post("/clock", {"now": "2026-11-27T09:10:00Z"})
    [res] = client.create("Lead", [{"LastName": "Stamp", "Company": "C"}])
    rec = admin.record("Lead", res.id)
    assert rec["CreatedDate"] == rec["SystemModstamp"] == "2026-11-27T09:10:00.000+0000"
    assert rec["LastModifiedById"] == admin.get("/users")["integration_user_id"]
    admin.post("/clock", {"advance_seconds": 90})
    admin.call("PATCH", f"/records/Lead/{res.id}", {"Title": "Director"})
    rec = admin.record("Lead", res.id)
    assert rec["SystemModstamp"] == rec["LastModifiedDate"] == "2026-11-27T09:11:30.000+0000"
    assert rec["LastModifiedById"] == users["sally.sales@sandbox.example"]
    assert rec["CreatedDate"] == "2026-11-27T09:10:00.000+0000"
    admin.call(
        "PATCH",
        f"/records/Lead/{res.id}",
        {"Title": "VP", "_at": "2026-11-27T08:00:00Z", "_as": "sam.seller@sandbox.example"},
    )
    rec = admin.record("Lead", res.id)
    assert rec["SystemModstamp"] == "2026-11-27T08:00:00.000+0000"
    assert rec["LastModifiedById"] == users["sam.seller@sandbox.example"]
    admin.post("/clock", {"now": None})
    assert admin.get("/clock")["frozen"] is False


def test_salesperson_edits_follow_the_org_rules(admin):
    lead = admin.create("Lead", LastName="Rules", Company="C")
    refused = admin.call("PATCH", f"/records/Lead/{lead}", {"Email": "nope"}, expect=400)
    assert refused["error"] == "INVALID_EMAIL_ADDRESS" and refused["fields"] == ["Email"]


def test_convert_lead_creates_account_contact_opportunity(client, admin):
    admin.post("/clock", {"now": "2026-11-27T09:10:00Z"})
    lead = admin.create(
        "Lead", FirstName="Grace", LastName="Hopper", Company="Navy", Email="grace@navy.example",
        LeadGen_Id__c="lg-grace", Product_Interest__c="CRM", City="Arlington",
    )  # fmt: skip
    out = admin.post("/actions/convert-lead", {"leadId": lead})
    lead_row = next(
        client.query(
            "SELECT IsConverted, ConvertedDate, Status, ConvertedAccountId, ConvertedContactId, "
            f"ConvertedOpportunityId FROM Lead WHERE Id = '{lead}'"
        )
    )
    assert lead_row == {
        "IsConverted": True,
        "ConvertedDate": "2026-11-27",
        "Status": "Closed - Converted",
        "ConvertedAccountId": out["accountId"],
        "ConvertedContactId": out["contactId"],
        "ConvertedOpportunityId": out["opportunityId"],
    }
    contact = next(
        client.query(
            f"SELECT Name, Email, LeadGen_Id__c, Product_Interest__c, MailingCity, Account.Name FROM Contact WHERE Id = '{out['contactId']}'"
        )
    )
    assert contact == {
        "Name": "Grace Hopper",
        "Email": "grace@navy.example",
        "LeadGen_Id__c": "lg-grace",
        "Product_Interest__c": "CRM",
        "MailingCity": "Arlington",
        "Account": {"Name": "Navy"},
    }
    roles = list(
        client.query("SELECT OpportunityId, ContactId, IsPrimary FROM OpportunityContactRole")
    )
    assert roles == [
        {"OpportunityId": out["opportunityId"], "ContactId": out["contactId"], "IsPrimary": True}
    ]


def test_convert_into_existing_contact_without_opportunity(client, admin):
    acc = admin.create("Account", Name="Existing Inc")
    con = admin.create("Contact", LastName="Known", AccountId=acc, Email="known@existing.example")
    lead = admin.create(
        "Lead",
        LastName="Known",
        Company="Existing Inc",
        Email="other@existing.example",
        Title="CFO",
    )
    out = admin.post(
        "/actions/convert-lead",
        {"leadId": lead, "accountId": acc, "contactId": con, "doNotCreateOpportunity": True},
    )
    assert (out["accountId"], out["contactId"], out["opportunityId"]) == (acc, con, None)
    row = next(client.query(f"SELECT Email, Title FROM Contact WHERE Id = '{con}'"))
    assert row == {"Email": "known@existing.example", "Title": "CFO"}  # only blanks are filled
    assert [r["Id"] for r in client.query("SELECT Id FROM Account", include_deleted=True)] == [acc]


def test_merge_deletes_losers_with_master_record_id(client, admin):
    master = admin.create("Lead", LastName="Master", Company="C")
    losers = [admin.create("Lead", LastName=f"Loser{i}", Company="C") for i in range(2)]
    task = admin.create("Task", Subject="follow up", WhoId=losers[0])
    out = admin.post(
        "/actions/merge",
        {"object": "Lead", "masterId": master, "mergeIds": losers, "fields": {"Title": "Kept"}},
    )
    assert out["updatedRelatedIds"] == {"Task": 1}
    live = list(client.query("SELECT Id, Title FROM Lead"))
    assert live == [{"Id": master, "Title": "Kept"}]
    gone = list(
        client.query(
            "SELECT Id, IsDeleted, MasterRecordId FROM Lead WHERE IsDeleted = true",
            include_deleted=True,
        )
    )
    assert sorted(r["Id"] for r in gone) == sorted(losers)
    assert all(r["MasterRecordId"] == master for r in gone)
    assert next(client.query(f"SELECT WhoId FROM Task WHERE Id = '{task}'"))["WhoId"] == master


def test_seed_is_deterministic_and_defects_are_opt_in(client, admin):
    clean = admin.post(
        "/seed",
        {"counts": {"Account": 20, "Contact": 200}, "seed": 5, "end_at": "2026-11-27T00:00:00Z"},
    )
    assert clean["defects"] == {} and clean["created"] == {"Account": 20, "Contact": 200}
    first = [
        r["Email"]
        for r in client.query(
            "SELECT Email FROM Contact ORDER BY CreatedDate, Email", include_deleted=True
        )
    ]
    admin.post("/reset")
    admin.post(
        "/seed",
        {"counts": {"Account": 20, "Contact": 200}, "seed": 5, "end_at": "2026-11-27T00:00:00Z"},
    )
    second = [
        r["Email"]
        for r in client.query(
            "SELECT Email FROM Contact ORDER BY CreatedDate, Email", include_deleted=True
        )
    ]
    assert first == second
    admin.post("/reset")
    messy = admin.post(
        "/seed", {"counts": {"Account": 50, "Lead": 2000}, "seed": 5, "defects": True}
    )
    assert {
        "duplicate_email",
        "email_case_whitespace",
        "missing_email",
        "stale_picklist_value",
    } <= set(messy["defects"])
    stale = client.query(
        "SELECT Id FROM Lead WHERE Product_Interest__c = 'Legacy Suite'", include_deleted=True
    )
    assert len(list(stale)) == messy["defects"]["stale_picklist_value"]
    users = {u["Id"]: u for u in admin.get("/users")["users"]}
    owners = {r["OwnerId"] for r in client.query("SELECT OwnerId FROM Lead", include_deleted=True)}
    assert any(not users[o]["IsActive"] for o in owners)  # one inactive user owns records


def test_call_counts_read_and_reset(client, admin):
    list(client.query("SELECT Id FROM Lead"))
    client.limits()
    calls = admin.calls()
    assert calls["by_kind"] == {"limits": 1, "query": 1} and calls["total"] == 2
    reset = admin.call("DELETE", "/calls")
    assert reset["total"] == 0 and reset["by_kind"] == {}
    # The daily allocation is not given back by a counts reset.
    assert (
        admin.get("/limits")["DailyApiRequests"]["Remaining"]
        == calls["daily_api_requests"]["max"] - 2
    )


def run_cli(sandbox, *args: str) -> tuple[int, object]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox.salesforce",
            "admin",
            "--url",
            sandbox.base_url,
            "--ca",
            str(sandbox.ca_file),
            *args,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else proc.stderr


def test_admin_cli(sandbox_env, admin):
    code, health = run_cli(sandbox_env, "health")
    assert code == 0 and health["status"] == "ok"
    code, created = run_cli(
        sandbox_env, "create", "Lead", "LastName=Cli", "Company=Shell Co", "LeadGen_Score__c=7"
    )
    assert code == 0
    assert admin.record("Lead", created["id"])["LeadGen_Score__c"] == 7.0
    code, err = run_cli(sandbox_env, "create", "Lead", "LastName=NoCompany")
    assert code == 1 and err["error"] == "REQUIRED_FIELD_MISSING"
    code, seeded = run_cli(sandbox_env, "seed", "100", "--seed", "3")
    assert code == 0 and seeded["total"] == 100
    code, faults = run_cli(
        sandbox_env, "fault-rule", "SERVER_UNAVAILABLE", "--kind", "query", "--count", "2"
    )
    assert code == 0 and faults["rules"][0]["remaining"] == 2


def test_data_survives_restart_and_sigterm_is_clean(tmp_path):
    schema = tmp_path / "schema.yaml"
    schema.write_text(
        "fields:\n"
        "  - {object: Lead, name: Region__c, type: picklist, picklistValues: [EMEA, AMER], restricted: true}\n"
        "validation_rules:\n"
        "  - {object: Lead, name: Region_Required, field: Region__c, condition: not_blank, message: Region is required}\n"
    )
    data_dir = tmp_path / "org"
    args = ["--schema-file", str(schema), "--session-lifetime", "60"]
    first = start_sandbox("sandbox.salesforce", data_dir, scheme="https", extra_args=args)
    try:
        admin = Admin(first.base_url, first.ca_file)
        rid = admin.create("Lead", LastName="Durable", Company="C", Region__c="EMEA")
        refused = admin.call(
            "POST", "/records/Lead", {"LastName": "NoRegion", "Company": "C"}, expect=400
        )
        assert refused["error"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        admin.post(
            "/schema/fields",
            {"object": "Contact", "name": "Nickname__c", "type": "string", "length": 30},
        )
    finally:
        first.stop()
    assert first.proc.returncode == 0
    assert (data_dir / "ca-bundle.pem").read_text().count("BEGIN CERTIFICATE") > 10
    flags = [
        "--api-limit",
        "500",
        "--latency-ms",
        "1",
        "--record-fault-rate",
        "0.25",
        "--fault-seed",
        "9",
    ]
    second = start_sandbox(
        "sandbox.salesforce", data_dir, scheme="https", extra_args=[*args, *flags]
    )
    try:
        admin = Admin(second.base_url, second.ca_file)
        assert admin.record("Lead", rid)["Region__c"] == "EMEA"
        assert admin.get("/limits")["DailyApiRequests"]["Max"] == 500
        faults = admin.get("/faults")
        assert (faults["latency_ms"], faults["record_rate"], faults["seed"]) == (1, 0.25, 9)
        assert admin.get("/schema")["custom_fields"]["Contact"][-1]["name"] == "Nickname__c"
        assert admin.get("/config")["session_lifetime"] == 60
    finally:
        second.stop()
    assert second.proc.returncode == 0
