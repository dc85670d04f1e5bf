"""Checks of the vendor's requirements on the org, the integration user and the connections.

From the vendor's setup article (``docs/preflight.md`` lists them with their sources): an edition
with API access; a dedicated integration user with "API Only User" and "Modify All Data";
password expiration off; the profile's "Session Security Level Required at Login" not High
Assurance. Plus what any run needs: both connections answer, and the org's remaining daily API
allowance covers a run. One function per check; each takes the :class:`Facts` and returns one
:class:`Check`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from crm_sync.errors import SyncError
from crm_sync.preflight.facts import LEADGEN, SALESFORCE, Facts, Unavailable, error_text
from crm_sync.preflight.model import Check, failed, passed, warned
from crm_sync.settings import sf_api_budget

# The editions the vendor's article names; Professional needs the API add-on (if the API
# answered, the org has it).
SUPPORTED_EDITIONS = (
    "Enterprise Edition",
    "Unlimited Edition",
    "Performance Edition",
    "Professional Edition",
)
# Editions that have the API but are not in the vendor's list (work, warn).
API_ONLY_EDITIONS = ("Developer Edition",)
# Metadata API full names of standard profiles whose names differ from their labels; a custom
# profile's full name is its name.
STANDARD_PROFILE_NAMES = {
    "System Administrator": "Admin",
    "Standard User": "Standard",
    "Read Only": "ReadOnly",
    "Marketing User": "MarketingProfile",
    "Contract Manager": "ContractManager",
    "Solution Manager": "SolutionManager",
}
API_ACCESS_FIX = (
    "use an edition with API access (Enterprise, Unlimited, Performance; Professional with the "
    "API add-on from Salesforce) and give the integration user's profile Setup > Profiles > "
    "<profile> > Administrative Permissions > API Enabled"
)
DEFAULT_MIN_API_CALLS = 1_000


def min_api_calls() -> int:
    """Daily API requests that must be left for a run (``CRM_SYNC_PREFLIGHT_MIN_API_CALLS``).

    The default covers an initial load of about 20,000 people per side (measured: 414 calls for
    10,000, docs/benchmarks.md) or hundreds of hourly runs (15 calls each)."""
    return int(os.environ.get("CRM_SYNC_PREFLIGHT_MIN_API_CALLS") or DEFAULT_MIN_API_CALLS)


def _connection_fix(f: Facts, system: str) -> str:
    conn = f.conn_ids.get("salesforce" if system == SALESFORCE else "leadgen", "")
    if system == SALESFORCE:
        return (
            f"Airflow connection {conn!r} (Admin > Connections): login and password of the "
            "integration user, extra security_token (Salesforce: Settings > Reset My Security "
            'Token), extra "domain": "test" for a Salesforce sandbox org'
        )
    return (
        f"Airflow connection {conn!r} (Admin > Connections): host = the API endpoint, login = "
        "the account ID, password = the secret key (Lead Gen & CRM: Settings > API Settings)"
    )


def _connection_check(
    f: Facts, system: str, read: Callable[[], Any], answered: Callable[[Any], str]
) -> Check:
    """The first call to ``system``: pass with ``answered(result)``, or fail and mark the
    system down (the checks that need it are skipped)."""
    name = f"{system} connection"
    if (f.sf if system == SALESFORCE else f.lg) is None or system in f.down:
        return failed(name, f.down.get(system, "no client"), _connection_fix(f, system))
    try:
        result = read()
    except SyncError as exc:
        f.mark_down(system, exc)
        if getattr(exc, "code", None) == "API_DISABLED_FOR_ORG":
            return failed(
                name,
                "Salesforce refuses every API call (API_DISABLED_FOR_ORG): the org's edition has "
                "no API access or the integration user lacks API Enabled",
                API_ACCESS_FIX,
            )
        return failed(name, error_text(exc), _connection_fix(f, system))
    return passed(name, answered(result))


def check_salesforce_connection(f: Facts) -> Check:
    return _connection_check(
        f, SALESFORCE, f.org, lambda org: f"org {org.get('Id')} ({org.get('Name')}) answers"
    )


def check_leadgen_connection(f: Facts) -> Check:
    account = getattr(f.lg, "account_id", "?")
    return _connection_check(
        f, LEADGEN, f.lg_users, lambda users: f"account {account} answers ({len(users)} users)"
    )


def check_edition(f: Facts) -> Check:
    name = "Salesforce edition"
    edition = str(f.org().get("OrganizationType") or "unknown")
    if edition in SUPPORTED_EDITIONS:
        note = " (with the API add-on)" if edition == "Professional Edition" else ""
        return passed(name, f"{edition}{note}: API access")
    if edition in API_ONLY_EDITIONS:
        return warned(
            name,
            f"{edition}: the API works, but the vendor supports Enterprise, Unlimited, "
            "Professional and Performance only",
            "use a supported edition for production",
        )
    return failed(
        name,
        f"{edition}: not an edition the integration supports",
        "Salesforce Enterprise, Unlimited, Performance or Professional (with API access) "
        "edition: ask Salesforce to upgrade the org",
    )


def _integration_user(f: Facts) -> tuple[dict[str, Any], str]:
    """The integration user and their profile's name; :class:`Unavailable` when unknown."""
    user = f.user()
    if user is None:
        raise Unavailable("not checked: the integration user is unknown (see integration user)")
    return user, str((user.get("Profile") or {}).get("Name") or user.get("ProfileId"))


def check_integration_user(f: Facts) -> Check:
    name = "integration user"
    if not f.username:
        return warned(
            name,
            "the Salesforce connection has no login, so the integration user is unknown",
            "log in with the integration user's username and password (connection login)",
        )
    user = f.user()
    if user is None:
        return failed(
            name,
            f"no Salesforce user {f.username} visible to the API",
            "check the connection login against Setup > Users",
        )
    if not user.get("IsActive"):
        return failed(
            name, f"{f.username} is inactive", f"Setup > Users > {f.username} > Edit > Active"
        )
    _, profile = _integration_user(f)
    return passed(name, f"{f.username}, profile {profile}")


def _granted_by(f: Facts, permission: str) -> tuple[dict[str, Any], str, list[str]]:
    """(user, profile name, what grants ``permission``: the profile and/or permission sets)."""
    user, profile_name = _integration_user(f)
    sources: list[str] = []
    profile = f.profile(str(user.get("ProfileId") or "")) or {}
    if profile.get(permission):
        sources.append(f"profile {profile_name}")
    for a in f.assignments(str(user["Id"])):
        ps = a.get("PermissionSet") or {}
        if not ps.get(permission):
            continue
        if ps.get("IsOwnedByProfile"):  # the profile's own set: the same grant as the profile
            source = f"profile {profile_name}"
        else:
            source = f"permission set {ps.get('Label') or ps.get('Name')}"
        if source not in sources:
            sources.append(source)
    return user, profile_name, sources


def _permission_check(f: Facts, name: str, permission: str, label: str, why: str) -> Check:
    user, profile, sources = _granted_by(f, permission)
    if sources:
        return passed(name, f"granted by {', '.join(sources)}")
    return failed(
        name,
        f"{user.get('Username')} lacks {label} {why}",
        f"Setup > Profiles > {profile} > Administrative Permissions > {label} "
        f"(or a permission set with it assigned to {user.get('Username')})",
    )


def check_api_only_user(f: Facts) -> Check:
    return _permission_check(
        f,
        "API Only User",
        "PermissionsApiUserOnly",
        "API Only User",
        "(a dedicated integration user logs in through the API only, so MFA never blocks it)",
    )


def check_modify_all_data(f: Facts) -> Check:
    return _permission_check(
        f,
        "Modify All Data",
        "PermissionsModifyAllData",
        "Modify All Data",
        "(the sync updates records owned by anyone, converts and merges)",
    )


def check_password_never_expires(f: Facts) -> Check:
    """The user's "Password Never Expires" permission, or else an org-wide "never expires"
    password policy (Metadata API ``SecuritySettings``); an expired password stops the sync."""
    name = "password never expires"
    user, profile, sources = _granted_by(f, "PermissionsPasswordNeverExpires")
    if sources:
        return passed(name, f"Password Never Expires granted by {', '.join(sources)}")
    try:
        settings = f.metadata("SecuritySettings", "Security") or {}
        policy = (settings.get("passwordPolicies") or {}).get("expiration")
        note = f"the org-wide policy expires passwords ({policy or 'unknown'})"
    except SyncError as exc:
        policy, note = None, f"the org-wide policy could not be read ({error_text(exc)})"
    if policy == "Never":
        return passed(name, "org-wide password policy: passwords never expire")
    return failed(
        name,
        f"{user.get('Username')}'s password can expire: profile {profile} lacks Password Never "
        f"Expires and {note}",
        f"Setup > Profiles > {profile} > Administrative Permissions > Password Never Expires "
        "(or Setup > Security > Password Policies > User passwords expire in: Never expires)",
    )


def check_session_level(f: Facts) -> Check:
    """The profile's "Session Security Level Required at Login" (Metadata API only)."""
    name = "session security level"
    _, profile = _integration_user(f)
    full_name = STANDARD_PROFILE_NAMES.get(profile, profile)
    fix = (
        f"Setup > Profiles > {profile} > Session Settings > Session Security Level Required "
        "at Login: None (or Standard)"
    )
    try:
        setting = f.metadata("ProfileSessionSetting", full_name)
    except SyncError as exc:
        return warned(
            name, f"could not read the profile's session settings: {error_text(exc)}", fix
        )
    if setting is None:
        return warned(name, f"no session settings found for profile {profile}", fix)
    level = setting.get("requiredSessionLevel")
    if level == "HIGH_ASSURANCE":
        return failed(
            name,
            f"profile {profile} requires a High Assurance session at login: the integration "
            "user's API logins would be refused",
            fix,
        )
    return passed(name, f"profile {profile} requires {level or 'no particular level'} at login")


def check_api_allowance(f: Facts) -> Check:
    name = "daily API allowance"
    daily = f.limits().get("DailyApiRequests") or {}
    remaining, maximum = int(daily.get("Remaining", 0)), int(daily.get("Max", 0))
    need, budget = min_api_calls(), sf_api_budget()
    left = f"{remaining:,} of {maximum:,} daily API requests left"
    if remaining < need:
        return failed(
            name,
            f"{left}; a run may need {need:,} (CRM_SYNC_PREFLIGHT_MIN_API_CALLS)",
            "wait for the rolling 24-hour allocation to refill, find the integration using it "
            "(Setup > System Overview > API Requests, Last 24 Hours), or buy more from Salesforce",
        )
    if remaining < budget:
        return warned(
            name,
            f"{left}: less than this product's own budget CRM_SYNC_SF_API_BUDGET={budget:,}, "
            "so the org's allocation may run out first",
            "lower CRM_SYNC_SF_API_BUDGET or raise the org's allocation",
        )
    return passed(name, left)
