"""Each preflight check both ways, on the in-process fakes of ``test_preflight_fakes``: the default
sandbox org passes; breaking one requirement fails (or warns) that check with its fix, and only
that check."""

from __future__ import annotations

import pytest

from crm_sync.clients.salesforce import SalesforceApiError
from crm_sync.errors import AuthError, RetriableError
from crm_sync.preflight import Check, Report, Status, run_preflight
from crm_sync.preflight.facts import LEADGEN, SALESFORCE, load_spec_set
from tests.unit.test_preflight_fakes import (
    PROFILE_ID,
    USER_ID,
    USERNAME,
    FakeLeadGen,
    FakeSalesforce,
)

pytestmark = pytest.mark.unit

SPECS = load_spec_set()


def run(sf: FakeSalesforce | None = None, lg: FakeLeadGen | None = None, **kw) -> Report:
    kw.setdefault("username", USERNAME)
    kw.setdefault("specs", SPECS)
    return run_preflight(
        sf if sf is not None else FakeSalesforce(), lg if lg is not None else FakeLeadGen(), **kw
    )


def check(report: Report, name: str) -> Check:
    found = [c for c in report.checks if c.name == name]
    assert len(found) == 1, [c.name for c in report.checks]
    return found[0]


def only_failure(report: Report) -> Check:
    failed = report.with_status(Status.FAIL, Status.SKIP)
    assert len(failed) == 1, report.text()
    return failed[0]


def drop_permission(sf: FakeSalesforce, permission: str) -> None:
    sf.profiles[PROFILE_ID][permission] = False
    for ps in sf.permission_sets:
        ps[permission] = False


# -- connections ---------------------------------------------------------------------------------


def test_both_connections_answer() -> None:
    report = run()
    assert check(report, "Salesforce connection").status is Status.PASS
    assert "SANDBOXACCOUNT" in check(report, "Lead Gen & CRM connection").detail
    assert report.target["org"] == "00D5e0000000001EAA"


def test_salesforce_client_not_built_fails_its_check_and_skips_what_needs_it() -> None:
    report = run_preflight(
        None,
        FakeLeadGen(),
        username=USERNAME,
        specs=SPECS,
        errors={SALESFORCE: AuthError("Salesforce rejected the credentials")},
    )
    c = check(report, "Salesforce connection")
    assert c.status is Status.FAIL and "rejected the credentials" in c.detail
    assert "salesforce_default" in c.fix and "security_token" in c.fix
    skipped = {c.name for c in report.with_status(Status.SKIP)}
    assert {"Salesforce edition", "API Only User", "owners.yaml", "daily API allowance"} <= skipped
    assert check(report, "Lead Gen & CRM connection").status is Status.PASS
    assert check(report, "mapping specs").status is Status.PASS
    assert not report.ok


def test_api_disabled_names_the_edition_and_the_api_enabled_permission() -> None:
    sf = FakeSalesforce()
    sf.failures["query"] = SalesforceApiError("refused", code="API_DISABLED_FOR_ORG", status=403)
    c = check(run(sf), "Salesforce connection")
    assert c.status is Status.FAIL and "API_DISABLED_FOR_ORG" in c.detail
    assert "API Enabled" in c.fix and "Enterprise" in c.fix


def test_leadgen_refusing_the_key_fails_and_skips_leadgen_checks() -> None:
    lg = FakeLeadGen()
    lg.failures["getUserProfiles"] = AuthError("Lead Gen & CRM rejected the account ID or key")
    report = run(lg=lg)
    c = check(report, "Lead Gen & CRM connection")
    assert c.status is Status.FAIL and "rejected" in c.detail
    assert "leadgen_default" in c.fix and "secret key" in c.fix
    assert check(report, "owners.yaml").status is Status.SKIP
    assert check(report, "write access leads.yaml").status is Status.SKIP
    assert check(report, "API Only User").status is Status.PASS
    assert lg.calls["getFields"] == 0  # nothing more is asked of a system that did not answer


def test_a_transient_failure_is_reported_as_such() -> None:
    sf = FakeSalesforce()
    sf.failures["query"] = RetriableError("Salesforce query: connection failed", code="CONNECTION")
    report = run(sf)
    assert check(report, "Salesforce connection").status is Status.FAIL
    assert report.transient and "connection failed" in report.transient[0]


# -- the org and the integration user -------------------------------------------------------------


@pytest.mark.parametrize(
    ("edition", "status"),
    [
        ("Enterprise Edition", Status.PASS),
        ("Unlimited Edition", Status.PASS),
        ("Professional Edition", Status.PASS),
        ("Developer Edition", Status.WARN),
        ("Essentials Edition", Status.FAIL),
        ("Group Edition", Status.FAIL),
    ],
)
def test_edition(edition: str, status: Status) -> None:
    sf = FakeSalesforce()
    sf.org["OrganizationType"] = edition
    c = check(run(sf), "Salesforce edition")
    assert c.status is status and edition in c.detail
    if status is Status.FAIL:
        assert "Enterprise, Unlimited, Performance or Professional" in c.fix


def test_integration_user_inactive_or_unknown() -> None:
    sf = FakeSalesforce()
    sf.users[0]["IsActive"] = False
    report = run(sf)
    c = check(report, "integration user")
    assert c.status is Status.FAIL and "inactive" in c.detail and "Setup > Users" in c.fix
    # owners.yaml's fallback owner is the integration user: that fails too, for its own reason
    assert "fallback" in check(report, "owners.yaml").detail

    report = run(username="someone.else@sandbox.example")
    c = check(report, "integration user")
    assert c.status is Status.FAIL and "someone.else@sandbox.example" in c.detail
    assert check(report, "API Only User").status is Status.SKIP


def test_no_login_on_the_connection_warns() -> None:
    report = run(username=None)
    assert check(report, "integration user").status is Status.WARN
    assert check(report, "Modify All Data").status is Status.SKIP


@pytest.mark.parametrize(
    ("name", "permission", "label"),
    [
        ("API Only User", "PermissionsApiUserOnly", "API Only User"),
        ("Modify All Data", "PermissionsModifyAllData", "Modify All Data"),
    ],
)
def test_permission_missing_fails_with_the_setup_path(
    name: str, permission: str, label: str
) -> None:
    sf = FakeSalesforce()
    drop_permission(sf, permission)
    c = only_failure(run(sf))
    assert c.name == name and USERNAME in c.detail and label in c.detail
    assert c.fix.startswith(
        f"Setup > Profiles > Sync Integration > Administrative Permissions > {label}"
    )


def test_a_permission_set_can_grant_what_the_profile_lacks() -> None:
    sf = FakeSalesforce()
    drop_permission(sf, "PermissionsModifyAllData")
    sf.permission_sets.append(
        {
            "Name": "Sync_Data",
            "Label": "Sync Data",
            "IsOwnedByProfile": False,
            "PermissionsModifyAllData": True,
        }  # fmt: skip
    )
    c = check(run(sf), "Modify All Data")
    assert c.status is Status.PASS and c.detail == "granted by permission set Sync Data"


def test_password_that_can_expire_fails() -> None:
    sf = FakeSalesforce()
    drop_permission(sf, "PermissionsPasswordNeverExpires")
    sf.metadata_error = SalesforceApiError("readMetadata SecuritySettings: INVALID_TYPE")
    c = only_failure(run(sf))
    assert c.name == "password never expires" and "can expire" in c.detail
    assert "INVALID_TYPE" in c.detail  # says why the org-wide policy did not help
    assert "Password Never Expires" in c.fix and "Password Policies" in c.fix


def test_password_org_wide_policy_never_expires_passes_or_not() -> None:
    sf = FakeSalesforce()
    drop_permission(sf, "PermissionsPasswordNeverExpires")
    sf.metadata[("SecuritySettings", "Security")] = {"passwordPolicies": {"expiration": "Never"}}
    c = check(run(sf), "password never expires")
    assert c.status is Status.PASS and "org-wide" in c.detail

    sf.metadata[("SecuritySettings", "Security")] = {"passwordPolicies": {"expiration": "NinetyDays"}}  # fmt: skip
    c = check(run(sf), "password never expires")
    assert c.status is Status.FAIL and "NinetyDays" in c.detail


def test_high_assurance_session_level_fails() -> None:
    sf = FakeSalesforce()
    sf.metadata[("ProfileSessionSetting", "Sync Integration")]["requiredSessionLevel"] = (
        "HIGH_ASSURANCE"
    )
    c = only_failure(run(sf))
    assert c.name == "session security level" and "High Assurance" in c.detail
    assert "Session Security Level Required at Login" in c.fix


def test_session_level_standard_passes_and_unreadable_warns() -> None:
    sf = FakeSalesforce()
    sf.metadata[("ProfileSessionSetting", "Sync Integration")]["requiredSessionLevel"] = "STANDARD"
    assert check(run(sf), "session security level").status is Status.PASS
    sf.metadata_error = SalesforceApiError("INSUFFICIENT_ACCESS")
    c = check(run(sf), "session security level")
    assert c.status is Status.WARN and "INSUFFICIENT_ACCESS" in c.detail


def test_session_level_of_a_standard_profile_is_read_by_its_metadata_name() -> None:
    sf = FakeSalesforce()
    sf.user_profile[USER_ID] = ("System Administrator", PROFILE_ID)
    sf.metadata[("ProfileSessionSetting", "Admin")] = {"requiredSessionLevel": "HIGH_ASSURANCE"}
    c = check(run(sf), "session security level")
    assert c.status is Status.FAIL and "System Administrator" in c.detail


def test_api_allowance() -> None:
    sf = FakeSalesforce()
    assert check(run(sf), "daily API allowance").status is Status.PASS
    sf.daily["Remaining"] = 999
    c = only_failure(run(sf))
    assert c.name == "daily API allowance" and "999 of 100,000" in c.detail
    assert "API Requests, Last 24 Hours" in c.fix
    sf.daily["Remaining"] = 20_000  # under CRM_SYNC_SF_API_BUDGET (25,000 by default)
    c = check(run(sf), "daily API allowance")
    assert c.status is Status.WARN and "CRM_SYNC_SF_API_BUDGET" in c.detail


def test_api_allowance_threshold_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    sf = FakeSalesforce()
    sf.daily["Remaining"] = 30_000
    monkeypatch.setenv("CRM_SYNC_PREFLIGHT_MIN_API_CALLS", "50000")
    assert check(run(sf), "daily API allowance").status is Status.FAIL


def test_a_read_a_check_needs_failing_fails_that_check_only() -> None:
    sf = FakeSalesforce()
    sf.failures["limits"] = SalesforceApiError("limits: INSUFFICIENT_ACCESS")
    c = only_failure(run(sf))
    assert c.name == "daily API allowance" and c.detail.startswith("could not be checked")


def test_each_read_happens_once_and_nothing_is_written() -> None:
    sf, lg = FakeSalesforce(), FakeLeadGen()
    run(sf, lg)
    assert sf.calls["query User"] == 1 and sf.calls["query Profile"] == 1
    assert sf.calls["query PermissionSetAssignment"] == 1
    assert sf.calls["describe"] == 5  # Lead, Contact, Opportunity, Account, Task
    assert lg.calls == {"getUserProfiles": 1, "getFields": 1}
    # the fakes have no write method: a write would have raised AttributeError


def test_connections_name_the_configured_connection_ids() -> None:
    report = run_preflight(
        None,
        None,
        username=USERNAME,
        specs=SPECS,
        errors={SALESFORCE: AuthError("no"), LEADGEN: AuthError("no")},
        conn_ids={"salesforce": "sf_prod", "leadgen": "lg_prod"},
    )
    assert "'sf_prod'" in check(report, "Salesforce connection").fix
    assert "'lg_prod'" in check(report, "Lead Gen & CRM connection").fix
