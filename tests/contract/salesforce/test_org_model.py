"""What a preflight check reads from the org (issue 17): edition and API access, the integration
user's profile and permission sets, field-level security, field definitions, owners, the daily
allowance. The default org passes every requirement; the admin API breaks each one, and each
break is visible the way a real client reads it (SOQL, describe, the Metadata API)."""

from __future__ import annotations

import json

import pytest
from sf_sandbox_helpers import USERNAME
from simple_salesforce import format_soql

from crm_sync.clients.salesforce import SalesforceApiError
from crm_sync.errors import ConfigError

pytestmark = pytest.mark.contract

INTEGRATION = "Sync Integration"
PERMS = (
    "PermissionsApiEnabled",
    "PermissionsApiUserOnly",
    "PermissionsModifyAllData",
    "PermissionsViewAllData",
    "PermissionsPasswordNeverExpires",
)


def me(client) -> dict:
    soql = format_soql(
        "SELECT Id, IsActive, ProfileId, Profile.Name FROM User WHERE Username = {}", USERNAME
    )
    [user] = list(client.query(soql))
    return user


def profile_perms(client, profile_id: str) -> dict:
    soql = format_soql(f"SELECT Name, {', '.join(PERMS)} FROM Profile WHERE Id = {{}}", profile_id)
    [row] = list(client.query(soql))
    return row


def effective(client, user_id: str) -> dict[str, bool]:
    """OR over the user's permission sets, read through PermissionSetAssignment (as a preflight does)."""
    fields = ", ".join(f"PermissionSet.{p}" for p in PERMS)
    soql = format_soql(
        f"SELECT PermissionSet.Name, PermissionSet.IsOwnedByProfile, {fields} "
        "FROM PermissionSetAssignment WHERE AssigneeId = {}",
        user_id,
    )
    rows = list(client.query(soql))
    assert rows, "every user holds at least the permission set of their profile"
    return {p: any(r["PermissionSet"][p] for r in rows) for p in PERMS}


def fls(client, user_id: str, sobject: str) -> dict[str, tuple[bool, bool]]:
    sets = [
        r["PermissionSetId"]
        for r in client.query(
            format_soql(
                "SELECT PermissionSetId FROM PermissionSetAssignment WHERE AssigneeId = {}", user_id
            )
        )
    ]
    soql = format_soql(
        "SELECT Field, PermissionsRead, PermissionsEdit FROM FieldPermissions "
        "WHERE SobjectType = {} AND ParentId IN {}",
        sobject,
        sets,
    )
    out: dict[str, tuple[bool, bool]] = {}
    for r in client.query(soql):
        read, edit = out.get(r["Field"], (False, False))
        out[r["Field"]] = (read or r["PermissionsRead"], edit or r["PermissionsEdit"])
    return out


def test_default_org_passes_every_requirement(client):
    [org] = list(client.query("SELECT OrganizationType, IsSandbox FROM Organization"))
    assert org["OrganizationType"] == "Enterprise Edition"
    user = me(client)
    assert user["IsActive"] and user["Profile"]["Name"] == INTEGRATION
    assert all(profile_perms(client, user["ProfileId"])[p] for p in PERMS)
    assert all(effective(client, user["Id"]).values())
    access = fls(client, user["Id"], "Lead")
    for field in ("LeadGen_Id__c", "LeadGen_URL__c", "LeadGen_Score__c", "Email", "Title"):
        assert access[f"Lead.{field}"] == (True, True), field
    assert "Lead.LastName" not in access  # required fields are not permissionable
    fields = client.field_map("Lead")
    assert fields["LeadGen_Id__c"]["externalId"] and fields["LeadGen_Id__c"]["unique"]
    assert fields["LeadGen_Score__c"]["createable"] and fields["LeadGen_Score__c"]["updateable"]
    [setting] = client.read_metadata("ProfileSessionSetting", [INTEGRATION])
    assert setting["fullName"] == INTEGRATION and "requiredSessionLevel" not in setting
    assert client.limits()["DailyApiRequests"]["Remaining"] > 0


def test_edition_without_api_refuses_every_call(client, sf, admin):
    admin.post("/org", {"edition": "Professional Edition"})  # no API add-on
    with pytest.raises(SalesforceApiError) as exc_info:
        list(client.query("SELECT Id FROM Organization"))
    assert (exc_info.value.code, exc_info.value.status) == ("API_DISABLED_FOR_ORG", 403)
    assert admin.calls()["not_counted"]["API_DISABLED_FOR_ORG"] == 1
    admin.post("/org", {"api_enabled": True})  # the add-on bought
    [org] = list(client.query("SELECT OrganizationType FROM Organization"))
    assert org["OrganizationType"] == "Professional Edition"


def test_profile_without_api_only_or_modify_all_data(client, admin):
    admin.call(
        "PATCH",
        f"/profiles/{INTEGRATION}",
        {"PermissionsApiUserOnly": False, "PermissionsModifyAllData": False},
    )
    user = me(client)
    perms = profile_perms(client, user["ProfileId"])
    assert not perms["PermissionsApiUserOnly"] and not perms["PermissionsModifyAllData"]
    assert perms["PermissionsApiEnabled"] and perms["PermissionsPasswordNeverExpires"]
    assert effective(client, user["Id"])["PermissionsModifyAllData"] is False
    # A permission set can grant what the profile lacks.
    ps = admin.post("/permission-sets", {"Name": "Sync_Extra", "PermissionsModifyAllData": True})
    admin.post("/permission-set-assignments", {"user": USERNAME, "permission_set": "Sync_Extra"})
    assert effective(client, user["Id"])["PermissionsModifyAllData"] is True
    names = {p["Name"] for p in ps["permission_sets"]}
    assert "Sync_Extra" in names


def test_user_without_api_enabled_is_refused(client, admin):
    admin.call("PATCH", f"/profiles/{INTEGRATION}", {"PermissionsApiEnabled": False})
    with pytest.raises(SalesforceApiError) as exc_info:
        list(client.query("SELECT Id FROM User"))
    assert exc_info.value.code == "API_DISABLED_FOR_ORG"


def test_password_that_expires_is_visible(client, admin):
    admin.call("PATCH", "/profiles/Sync Integration", {"PermissionsPasswordNeverExpires": False})
    assert (
        profile_perms(client, me(client)["ProfileId"])["PermissionsPasswordNeverExpires"] is False
    )


def test_high_assurance_session_level_is_read_through_the_metadata_api(client, sf, admin):
    admin.call("PATCH", f"/profiles/{INTEGRATION}", {"requiredSessionLevel": "HIGH_ASSURANCE"})
    [setting] = client.read_metadata("ProfileSessionSetting", [INTEGRATION])
    assert setting["requiredSessionLevel"] == "HIGH_ASSURANCE"
    assert client.calls["metadata"] == 1 == admin.calls()["by_kind"]["metadata"]
    # The provider's own Metadata API client (zeep over the WSDL) reads the same answer.
    read = sf.mdapi.ProfileSessionSetting.read([INTEGRATION])
    assert read.requiredSessionLevel == "HIGH_ASSURANCE" and read.profile == INTEGRATION
    # Unknown names come back empty; the standard profiles also answer to their Metadata names.
    assert client.read_metadata("ProfileSessionSetting", ["Nobody"]) == []
    assert client.read_metadata("ProfileSessionSetting", ["Admin"])[0]["fullName"] == "Admin"
    with pytest.raises(SalesforceApiError) as exc_info:
        client.read_metadata("CustomObject", ["Lead"])
    assert exc_info.value.code == "INVALID_TYPE"


def test_metadata_read_logs_in_again_after_the_session_expired(client, admin):
    client.describe("Lead")  # logged in
    logins = client.calls["login"]
    admin.post("/sessions/expire")
    [setting] = client.read_metadata("ProfileSessionSetting", [INTEGRATION])
    assert setting["fullName"] == INTEGRATION and client.calls["login"] == logins + 1


def test_field_read_only_by_fls(client, admin):
    admin.post(
        "/field-permissions",
        {"profile": INTEGRATION, "field": "Lead.LeadGen_Score__c", "read": True, "edit": False},
    )
    assert fls(client, me(client)["Id"], "Lead")["Lead.LeadGen_Score__c"] == (True, False)
    score = client.field_map("Lead")["LeadGen_Score__c"]
    assert (score["createable"], score["updateable"]) == (False, False)
    [res] = client.create("Lead", [{"LastName": "F", "Company": "C", "LeadGen_Score__c": 3}])
    assert res.error_code == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert res.errors[0].fields == ("LeadGen_Score__c",)
    # Other users keep their own access: a salesperson edit still works.
    admin.create("Lead", LastName="S", Company="C", LeadGen_Score__c=5)


def test_field_hidden_by_fls_leaves_describe_and_soql(client, admin):
    admin.post("/field-permissions", {"profile": INTEGRATION, "field": "Lead.Title", "read": False})
    assert "Lead.Title" not in fls(client, me(client)["Id"], "Lead")
    assert "Title" not in client.field_map("Lead")
    with pytest.raises(ConfigError, match="No such column 'Title'"):
        list(client.query("SELECT Title FROM Lead"))


def test_missing_field_and_field_definitions(client, admin):
    admin.call("DELETE", "/schema/fields/Lead/LeadGen_URL__c")
    admin.call("PATCH", "/schema/fields/Lead/LeadGen_Id__c", {"externalId": False, "unique": False})
    admin.call("PATCH", "/schema/fields/Task/LeadGen_Event_Id__c", {"unique": False})
    admin.call("PATCH", "/schema/fields/Contact/LeadGen_Score__c", {"type": "string", "length": 20})
    lead = client.field_map("Lead")
    assert "LeadGen_URL__c" not in lead
    assert (lead["LeadGen_Id__c"]["externalId"], lead["LeadGen_Id__c"]["unique"]) == (False, False)
    task = client.field_map("Task")["LeadGen_Event_Id__c"]
    assert (task["externalId"], task["unique"]) == (True, False)
    assert client.field_map("Contact")["LeadGen_Score__c"]["type"] == "string"
    assert "Lead.LeadGen_URL__c" not in fls(client, me(client)["Id"], "Lead")
    # An upsert on a field that is no longer an external id is refused as a whole.
    with pytest.raises((ConfigError, SalesforceApiError)):
        client.upsert(
            "Lead", "LeadGen_Id__c", [{"LeadGen_Id__c": "1", "LastName": "X", "Company": "C"}]
        )


def test_inactive_owner_and_profile_changes_are_visible(client, admin):
    sam = next(u for u in admin.get("/users")["users"] if u["Email"].startswith("sam."))
    admin.call(
        "PATCH", f"/users/{sam['Id']}", {"IsActive": False, "profile": "System Administrator"}
    )
    [row] = list(
        client.query(
            format_soql("SELECT IsActive, Profile.Name FROM User WHERE Id = {}", sam["Id"])
        )
    )
    assert row == {"IsActive": False, "Profile": {"Name": "System Administrator"}}
    [res] = client.create("Lead", [{"LastName": "O", "Company": "C", "OwnerId": sam["Id"]}])
    assert res.error_code == "INACTIVE_OWNER_OR_USER"


def test_daily_allowance_is_read_from_limits(client, admin):
    admin.post("/limits", {"daily_api_requests": 1000, "used": 990})
    assert client.limits()["DailyApiRequests"] == {"Max": 1000, "Remaining": 9}


def test_reset_restores_the_default_org(client, admin):
    admin.post("/org", {"edition": "Group Edition"})
    admin.call("PATCH", f"/profiles/{INTEGRATION}", {"PermissionsModifyAllData": False})
    admin.post("/field-permissions", {"profile": INTEGRATION, "field": "Lead.Email", "read": False})
    ivan = next(u for u in admin.get("/users")["users"] if not u["IsActive"])
    sam = next(u for u in admin.get("/users")["users"] if u["Email"].startswith("sam."))
    admin.call("PATCH", f"/users/{sam['Id']}", {"IsActive": False})
    admin.post("/reset")
    summary = admin.get("/org")
    assert (summary["edition"], summary["api_enabled"]) == ("Enterprise Edition", True)
    integration = next(p for p in summary["profiles"] if p["Name"] == INTEGRATION)
    assert integration["PermissionsModifyAllData"] is True
    users = {u["Id"]: u["IsActive"] for u in admin.get("/users")["users"]}
    assert users[sam["Id"]] is True and users[ivan["Id"]] is False
    assert fls(client, me(client)["Id"], "Lead")["Lead.Email"] == (True, True)


def test_access_objects_are_read_only_through_the_api(sf):
    from simple_salesforce.exceptions import SalesforceMalformedRequest

    with pytest.raises(SalesforceMalformedRequest) as exc_info:
        sf.PermissionSet.create({"Name": "Mine", "Label": "Mine"})
    assert exc_info.value.content[0]["errorCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"


def test_admin_cli_breaks_each_requirement(sandbox_env, admin, client, capsys):
    from sandbox.salesforce.cli import main

    def cli(*argv: str) -> tuple[int, object]:
        code = main(["--url", sandbox_env.base_url, "--ca", str(sandbox_env.ca_file), *argv])
        return code, json.loads(capsys.readouterr().out)

    code, org = cli("org", "--edition", "Developer Edition")
    assert code == 0 and (org["edition"], org["api_enabled"]) == ("Developer Edition", True)
    code, org = cli(
        "profile", INTEGRATION, "--api-only", "false", "--session-level", "HIGH_ASSURANCE"
    )
    profile = next(p for p in org["profiles"] if p["Name"] == INTEGRATION)
    assert (profile["PermissionsApiUserOnly"], profile["requiredSessionLevel"]) == (
        False,
        "HIGH_ASSURANCE",
    )
    code, fls_row = cli("fls", "Lead.LeadGen_URL__c", "--profile", INTEGRATION, "--access", "read")
    assert fls_row == {**fls_row, "read": True, "edit": False}
    code, field = cli("change-field", "Lead", "LeadGen_Id__c", "--unique", "false")
    assert field["unique"] is False and field["externalId"] is True
    sally = next(u for u in admin.get("/users")["users"] if u["Email"].startswith("sally."))
    assert cli("user", sally["Id"], "--active", "false")[0] == 0
    code, rule = cli("fault-rule", "DROP_AFTER", "--step", "close")
    assert rule["rules"] == [{**rule["rules"][0], "fault": "DROP_AFTER", "step": "close"}]
    client.create("Lead", [{"LastName": "W", "Company": "C"}])
    code, log = cli("writes", "--entries", "--object", "Lead")
    assert log["by_object"]["Lead"]["created"] == 1 and len(log["entries"]) == 1
    assert cli("org", "--edition", "Nope Edition")[0] == 1
