"""In-process stand-ins for both clients as the preflight and the backup read them, shared by
``test_preflight*.py`` and ``test_backup*.py`` (and a test that the stand-ins look like the
sandbox org: the preflight passes on them as built).

The fakes model the default sandbox org (``docs/sandbox-salesforce.md``, "Access model"): the
describe of every object comes from the sandbox's own object definitions, the integration user
is on the profile "Sync Integration" with every permission. Each test breaks one thing. The
fakes have no write method, so a preflight or backup that tried to write would fail with
AttributeError. Every call is counted.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from crm_sync.errors import ConfigError
from crm_sync.preflight.facts import load_spec_set
from tests.unit.schema_fixtures import LG_CUSTOM

pytestmark = pytest.mark.unit

USERNAME = "integration@sandbox.example"
USER_ID = "0055e0000000001AAA"
PROFILE_ID = "00e5e0000000003AAA"
ALL_PERMISSIONS = {
    "PermissionsApiEnabled": True,
    "PermissionsApiUserOnly": True,
    "PermissionsModifyAllData": True,
    "PermissionsPasswordNeverExpires": True,
}


def _describes() -> dict[str, dict[str, dict[str, Any]]]:
    from sandbox.salesforce.schema import default_objects

    return {
        name: {f["name"]: dict(f) for f in obj.describe("59.0")["fields"]}
        for name, obj in default_objects().items()
    }


_DESCRIBES = _describes()


def _sf_users() -> list[dict[str, Any]]:
    def user(uid: str, username: str, active: bool = True) -> dict[str, Any]:
        return {"Id": uid, "Username": username, "Email": username, "Name": username, "IsActive": active}  # fmt: skip

    return [
        user(USER_ID, USERNAME),
        user("0055e0000000002AAA", "sally.sales@sandbox.example"),
        user("0055e0000000003AAA", "sam.seller@sandbox.example"),
        user("0055e0000000004AAA", "priya.patel@sandbox.example"),
        user("0055e0000000005AAA", "diego.ramos@sandbox.example"),
        user("0055e0000000006AAA", "ivan.inactive@sandbox.example", active=False),
    ]


class _Counted:
    """Counts every call by kind; ``failures[kind]`` makes that kind of call raise."""

    def __init__(self) -> None:
        self.calls: Counter = Counter()
        self.failures: dict[str, Exception] = {}

    def _count(self, kind: str) -> None:
        self.calls[kind] += 1
        if kind in self.failures:
            raise self.failures[kind]

    @property
    def api_calls(self) -> int:
        return sum(self.calls.values())


class FakeSalesforce(_Counted):
    """The default sandbox org, read-only; tests change its attributes to break one thing."""

    def __init__(self) -> None:
        super().__init__()
        self.org = {"Id": "00D5e0000000001EAA", "Name": "Sandbox", "OrganizationType": "Enterprise Edition", "IsSandbox": False}  # fmt: skip
        self.users = _sf_users()
        self.user_profile = {USER_ID: ("Sync Integration", PROFILE_ID)}
        self.profiles = {PROFILE_ID: {"Id": PROFILE_ID, "Name": "Sync Integration", **ALL_PERMISSIONS}}  # fmt: skip
        self.permission_sets: list[dict[str, Any]] = [
            {
                "Name": f"X{PROFILE_ID}",
                "Label": "Sync Integration",
                "IsOwnedByProfile": True,
                **ALL_PERMISSIONS,
            }  # fmt: skip
        ]
        self.describes = copy.deepcopy(_DESCRIBES)
        self.metadata: dict[tuple[str, str], dict[str, Any]] = {
            ("ProfileSessionSetting", "Sync Integration"): {"fullName": "Sync Integration"}
        }
        self.metadata_error: Exception | None = None
        self.daily = {"Max": 100_000, "Remaining": 99_000}
        self.exports: dict[str, list[dict[str, Any]]] = {}  # object -> Bulk rows
        self.account_id = None

    def query(self, soql: str) -> Iterator[dict[str, Any]]:
        self._count("query")
        if "FROM Organization" in soql:
            return iter([dict(self.org)])
        if "FROM User" in soql:
            return iter(copy.deepcopy(self.users))
        raise AssertionError(f"unexpected query {soql}")

    def query_by_values(
        self, sobject: str, fields: list[str], field: str, values: list[Any]
    ) -> Iterator[dict[str, Any]]:
        self._count(f"query {sobject}")
        if sobject == "User":
            rows = [u for u in self.users if u["Username"] in values]
            for row in rows:
                name, pid = self.user_profile.get(row["Id"], ("Standard User", "00e0"))
                row.update(ProfileId=pid, Profile={"Name": name})
            return iter(copy.deepcopy(rows))
        if sobject == "Profile":
            return iter([dict(self.profiles[v]) for v in values if v in self.profiles])
        if sobject == "PermissionSetAssignment":
            return iter(
                [
                    {"PermissionSetId": f"0PS{i}", "PermissionSet": dict(ps)}
                    for i, ps in enumerate(self.permission_sets)
                ]  # fmt: skip
            )
        raise AssertionError(f"unexpected query of {sobject}")

    def describe(self, sobject: str) -> dict[str, Any]:
        self._count("describe")
        if sobject not in self.describes:
            raise ConfigError(f"Salesforce describe {sobject}: NOT_FOUND")
        return {"fields": list(self.describes[sobject].values())}

    def limits(self) -> dict[str, Any]:
        self._count("limits")
        return {"DailyApiRequests": dict(self.daily)}

    def read_metadata(self, metadata_type: str, names: list[str]) -> list[dict[str, Any]]:
        self._count(f"metadata {metadata_type}")
        if self.metadata_error is not None:
            raise self.metadata_error
        return [self.metadata[(metadata_type, n)] for n in names if (metadata_type, n) in self.metadata]  # fmt: skip

    def bulk_export(self, sobject: str, fields: list[str]) -> Iterator[dict[str, Any]]:
        self._count(f"bulk {sobject}")
        for row in self.exports.get(sobject, []):
            yield {f: row.get(f) for f in fields}


class FakeLeadGen(_Counted):
    """The sandbox account: its users and fields; leads, opportunities and accounts to export."""

    account_id = "SANDBOXACCOUNT"

    def __init__(self) -> None:
        from sandbox.leadgen.catalog import FIELDS_BY_RELATIONSHIP

        super().__init__()
        self.fields = [
            {
                "relationship": rel,
                "systemName": f.name,
                "dataType": f.data_type,
                "isEditableInContactManager": str(int(f.writable)),
            }  # fmt: skip
            for rel, defs in FIELDS_BY_RELATIONSHIP.items()
            for f in defs
        ] + copy.deepcopy(LG_CUSTOM)
        self.users = [
            {"id": str(313361052 + i), "emailAddress": email, "isActive": active}
            for i, (email, active) in enumerate(
                [
                    ("morgan.reyes@northwind-sandbox.example", "1"),
                    ("priya.nair@northwind-sandbox.example", "1"),
                    ("diego.alvarez@northwind-sandbox.example", "1"),
                    ("hannah.kim@northwind-sandbox.example", "1"),
                    ("tom.becker@northwind-sandbox.example", "0"),
                ]
            )
        ]
        self.records: dict[str, list[dict[str, Any]]] = {"lead": [], "opportunity": [], "account": []}  # fmt: skip

    def get_user_profiles(self) -> list[dict[str, Any]]:
        self._count("getUserProfiles")
        return copy.deepcopy(self.users)

    def get_fields(self) -> list[dict[str, Any]]:
        self._count("getFields")
        return copy.deepcopy(self.fields)

    def _scan(self, kind: str, obj: str) -> Iterator[dict[str, Any]]:
        self._count(kind)
        for row in self.records[obj]:
            yield dict(row)

    def get_leads(self) -> Iterator[dict[str, Any]]:
        return self._scan("getLeads", "lead")

    def get_opportunities(self) -> Iterator[dict[str, Any]]:
        return self._scan("getOpportunities", "opportunity")

    def get_accounts(self) -> Iterator[dict[str, Any]]:
        return self._scan("getAccounts", "account")


class Runtime:
    """A task runtime as the gates see it; records which client was asked for."""

    def __init__(self, sf: Any = None, lg: Any = None):
        self.conn_ids = {"salesforce": "salesforce_default", "leadgen": "leadgen_default"}
        self._sf = sf if sf is not None else FakeSalesforce()
        self._lg = lg if lg is not None else FakeLeadGen()
        self.opened: list[str] = []

    @property
    def salesforce(self) -> Any:
        self.opened.append("salesforce")
        return self._sf

    @property
    def leadgen(self) -> Any:
        self.opened.append("leadgen")
        return self._lg


def test_the_fakes_model_the_default_sandbox_org() -> None:
    """As built, the fakes pass every check (as the default sandbox does), with the one
    warning the repository's owners.yaml causes on purpose (a former employee)."""
    from crm_sync.preflight import Status, run_preflight

    report = run_preflight(
        FakeSalesforce(), FakeLeadGen(), username=USERNAME, specs=load_spec_set()
    )
    assert report.ok, report.text()
    assert [c.name for c in report.with_status(Status.WARN)] == ["owners.yaml"]
