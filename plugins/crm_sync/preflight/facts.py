"""What the checks read, read once: the mapping specs, and lazily cached reads of both systems.

Every read is read-only (SOQL, describe, ``/limits``, ``readMetadata``, ``getFields``,
``getUserProfiles``) and happens at most once per preflight, whichever checks ask for it; a
read that failed fails the same way for every check that needs it, without calling again. A
system whose connection check failed is *down*: its reads raise :class:`Unavailable`, and the
checks that need it are reported as skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_args

from crm_sync.errors import ConfigError, RetriableError, SyncError
from crm_sync.mapping.loader import (
    load_engagement_spec,
    load_object_spec,
    load_owner_spec,
    spec_path,
)
from crm_sync.mapping.models import EngagementSpec, ObjectSpec, OwnerSpec
from crm_sync.mapping.schema import LiveSchema
from crm_sync.redact import redact_text
from crm_sync.runtime import DEFAULT_CONN_IDS

if TYPE_CHECKING:
    from crm_sync.clients.leadgen import LeadGenClient
    from crm_sync.clients.salesforce import SalesforceClient

log = logging.getLogger(__name__)

T = TypeVar("T")

SALESFORCE, LEADGEN = "Salesforce", "Lead Gen & CRM"
# The object spec files, one per kind the spec model knows (leads, contacts, ...).
OBJECT_SPEC_NAMES: tuple[str, ...] = get_args(ObjectSpec.model_fields["kind"].annotation)
PERMISSION_FIELDS = (
    "PermissionsApiEnabled",
    "PermissionsApiUserOnly",
    "PermissionsModifyAllData",
    "PermissionsPasswordNeverExpires",
)


class Unavailable(Exception):
    """A system a check needs did not answer; its connection check says why."""


def error_text(exc: BaseException) -> str:
    """One line for an error (its lines joined with " / "), secrets removed (the clients'
    messages are redacted already)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return redact_text(f"{type(exc).__name__}: " + " / ".join(lines))


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, RetriableError)


@dataclass
class SpecSet:
    """The mapping specs a preflight checks against, and the files that did not load."""

    objects: dict[str, ObjectSpec] = field(default_factory=dict)  # by kind: leads, contacts...
    engagement: EngagementSpec | None = None
    owners: OwnerSpec | None = None
    errors: dict[str, str] = field(default_factory=dict)  # file name -> why it did not load


def load_spec_set(directory: str | Path | None = None) -> SpecSet:
    """Every spec of the mappings folder; a file that does not load is kept in ``errors``."""
    out = SpecSet()

    def load(name: str, loader: Callable[[Path], T]) -> T | None:
        try:
            return loader(spec_path(name, directory))
        except (SyncError, OSError) as exc:
            out.errors[f"{name}.yaml"] = error_text(exc)
            return None

    for name in OBJECT_SPEC_NAMES:
        spec = load(name, load_object_spec)
        if spec is not None:
            out.objects[name] = spec
    out.engagement = load("engagement", load_engagement_spec)
    out.owners = load("owners", load_owner_spec)
    return out


def loadable_spec_set(purpose: str, directory: str | Path | None = None) -> SpecSet:
    """:func:`load_spec_set`, or ``ConfigError`` naming every file that does not load and why
    (``purpose`` says what cannot be done without them). No API call: a broken spec stops a
    run before either system is asked anything."""
    specs = load_spec_set(directory)
    if specs.errors:
        raise ConfigError(
            f"mapping specs do not load, so {purpose}: "
            + "; ".join(f"{k}: {v}" for k, v in sorted(specs.errors.items()))
        )
    return specs


class Facts:
    """Both systems and the specs, as the checks see them (see the module docstring).

    ``sf``/``lg`` may be None when the client could not even be built; ``errors`` then says why
    (by system name), and that system is down from the start. ``conn_ids`` name the Airflow
    connections in the fixes.
    """

    def __init__(
        self,
        sf: SalesforceClient | None,
        lg: LeadGenClient | None,
        *,
        username: str | None,
        specs: SpecSet,
        errors: dict[str, BaseException] | None = None,
        conn_ids: Mapping[str, str] | None = None,
    ):
        self.conn_ids = {**DEFAULT_CONN_IDS, **(conn_ids or {})}
        self.sf = sf
        self.lg = lg
        self.username = username
        self.specs = specs
        self.down: dict[str, str] = {k: error_text(v) for k, v in (errors or {}).items()}
        # Reads that failed for a passing reason (an outage, a rate limit): a gate retries later
        # instead of blaming the configuration.
        self.transient: list[str] = [
            f"{k}: {error_text(v)}" for k, v in (errors or {}).items() if _transient(v)
        ]
        self._cache: dict[str, tuple[bool, Any]] = {}

    # The clients, once _read has made sure the system is up (typed loosely for the lambdas).
    @property
    def _sf(self) -> Any:
        return self.sf

    @property
    def _lg(self) -> Any:
        return self.lg

    def mark_down(self, system: str, exc: BaseException) -> None:
        self.down[system] = error_text(exc)

    def target(self) -> dict[str, Any]:
        """What was checked: org id and edition (when Salesforce answered), user, account id."""
        out: dict[str, Any] = {"user": self.username}
        try:
            org = self.org()
            out.update(org=org.get("Id"), edition=org.get("OrganizationType"))
        except (Unavailable, SyncError):
            pass
        out["leadgen_account"] = getattr(self.lg, "account_id", None)
        return out

    def _read(self, key: str, system: str, read: Callable[[], T]) -> T:
        if system in self.down or (self.sf if system == SALESFORCE else self.lg) is None:
            raise Unavailable(f"not checked: {system} did not answer")
        if key not in self._cache:
            try:
                self._cache[key] = (True, read())
            except SyncError as exc:
                self._cache[key] = (False, exc)
                if _transient(exc):
                    self.transient.append(f"{system} {key.split(':')[0]}: {error_text(exc)}")
        ok, value = self._cache[key]
        if not ok:
            raise value
        return value

    # -- Salesforce ------------------------------------------------------------------------
    def org(self) -> dict[str, Any]:
        """The Organization row (the first Salesforce call: it also proves the API answers)."""
        soql = "SELECT Id, Name, OrganizationType, IsSandbox FROM Organization"
        rows = self._read("org", SALESFORCE, lambda: list(self._sf.query(soql)))
        return rows[0] if rows else {}

    def user(self) -> dict[str, Any] | None:
        """The integration user (the connection's login), or None when no user has that name."""
        if not self.username:
            return None
        fields = ["Id", "Username", "IsActive", "ProfileId", "Profile.Name"]
        rows = self._read(
            "user",
            SALESFORCE,
            lambda: list(self._sf.query_by_values("User", fields, "Username", [self.username])),
        )
        return rows[0] if rows else None

    def profile(self, profile_id: str) -> dict[str, Any] | None:
        fields = ["Id", "Name", *PERMISSION_FIELDS]
        rows = self._read(
            f"profile:{profile_id}",
            SALESFORCE,
            lambda: list(self._sf.query_by_values("Profile", fields, "Id", [profile_id])),
        )
        return rows[0] if rows else None

    def assignments(self, user_id: str) -> list[dict[str, Any]]:
        """The user's permission sets (the profile's own set included), with their permissions."""
        fields = [
            "PermissionSetId",
            "PermissionSet.Name",
            "PermissionSet.Label",
            "PermissionSet.IsOwnedByProfile",
            *(f"PermissionSet.{p}" for p in PERMISSION_FIELDS),
        ]
        return self._read(
            f"assignments:{user_id}",
            SALESFORCE,
            lambda: list(
                self._sf.query_by_values("PermissionSetAssignment", fields, "AssigneeId", [user_id])
            ),
        )

    def describe(self, sobject: str) -> dict[str, dict[str, Any]] | None:
        """Field name -> describe entry, as the integration user sees it; None when the object
        is not available to the user."""

        def read() -> dict[str, dict[str, Any]] | None:
            try:
                return {f["name"]: dict(f) for f in self._sf.describe(sobject)["fields"]}
            except ConfigError:  # NOT_FOUND / INVALID_TYPE: no such object for this user
                return None

        return self._read(f"describe:{sobject}", SALESFORCE, read)

    def limits(self) -> dict[str, Any]:
        return self._read("limits", SALESFORCE, lambda: self._sf.limits())

    def sf_users(self) -> list[dict[str, Any]]:
        soql = "SELECT Id, Username, Email, Name, IsActive FROM User"
        return self._read("sf_users", SALESFORCE, lambda: list(self._sf.query(soql)))

    def metadata(self, metadata_type: str, full_name: str) -> dict[str, Any] | None:
        """One Metadata API component, or None when the org has none of that name."""
        rows = self._read(
            f"metadata:{metadata_type}:{full_name}",
            SALESFORCE,
            lambda: self._sf.read_metadata(metadata_type, [full_name]),
        )
        return rows[0] if rows else None

    # -- Lead Gen & CRM --------------------------------------------------------------------
    def lg_users(self) -> list[dict[str, Any]]:
        """getUserProfiles (the first Lead Gen & CRM call: it also proves the API answers)."""
        return self._read("lg_users", LEADGEN, lambda: self._lg.get_user_profiles())

    def lg_schema(self) -> LiveSchema:
        """The account's fields (getFields) as the sync reads them (standard fields included)."""

        def read() -> LiveSchema:
            schema = LiveSchema()
            schema.add_leadgen_fields(self._lg.get_fields())
            return schema

        return self._read("lg_schema", LEADGEN, read)
