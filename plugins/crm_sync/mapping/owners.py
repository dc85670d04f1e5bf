"""Owner mapping: Lead Gen & CRM user accounts <-> Salesforce users.

Built once per run from ``owners.yaml`` and both systems' user lists (a pure function of them).
Only *active* Salesforce users are ever targets: an owner that maps to nobody, or to an inactive
user, is never written; the run report names it instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crm_sync.mapping.models import OwnerSpec


def _norm(email: Any) -> str:
    return str(email or "").strip().lower()


def _truthy(v: Any) -> bool:
    return v is True or str(v).strip().lower() in ("1", "true", "yes")


@dataclass
class OwnerMap:
    lg_to_sf: dict[str, str] = field(default_factory=dict)
    sf_to_lg: dict[str, str] = field(default_factory=dict)
    fallback_sf: str | None = None
    fallback_lg: str | None = None
    problems: list[str] = field(default_factory=list)
    sf_names: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lg_to_sf": self.lg_to_sf,
            "sf_to_lg": self.sf_to_lg,
            "fallback_sf": self.fallback_sf,
            "fallback_lg": self.fallback_lg,
            "problems": self.problems,
            "sf_names": self.sf_names,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OwnerMap:
        return cls(**d)


class _Users:
    """Both systems' user lists, indexed the ways owners.yaml may name a user."""

    def __init__(self, lg_users: list[dict[str, Any]], sf_users: list[dict[str, Any]]):
        self.lg_users = lg_users
        self.lg_by_id = {str(u["id"]): u for u in lg_users}
        self.lg_by_email = {
            _norm(u.get("emailAddress")): u for u in lg_users if u.get("emailAddress")
        }
        self.sf_by_id = {u["Id"]: u for u in sf_users}
        self.sf_by_username = {_norm(u.get("Username")): u for u in sf_users}
        self.sf_by_email: dict[str, list[dict[str, Any]]] = {}
        for u in sf_users:
            self.sf_by_email.setdefault(_norm(u.get("Email")), []).append(u)

    def sf(self, sid: str | None, username: str | None, email: str | None) -> dict[str, Any] | None:
        if sid:
            return self.sf_by_id.get(sid)
        if username:
            return self.sf_by_username.get(_norm(username))
        if email:
            matches = self.sf_by_email.get(_norm(email), [])
            active = [m for m in matches if _truthy(m.get("IsActive"))]
            return (active or matches or [None])[0]
        return None

    def lg(self, lid: str | None, email: str | None) -> dict[str, Any] | None:
        if lid:
            return self.lg_by_id.get(str(lid))
        if email:
            return self.lg_by_email.get(_norm(email))
        return None

    def active_sf_by_email(self, email: Any) -> list[dict[str, Any]]:
        return [m for m in self.sf_by_email.get(_norm(email), []) if _truthy(m.get("IsActive"))]


def _map_listed(om: OwnerMap, spec: OwnerSpec, users: _Users) -> None:
    for i, u in enumerate(spec.users):
        lg = users.lg(u.leadgen_id, u.leadgen_email)
        sf = users.sf(u.salesforce_id, u.salesforce_username, u.salesforce_email)
        who = u.leadgen_id or u.leadgen_email
        if lg is None:
            om.problems.append(f"owners.yaml users[{i}]: Lead Gen & CRM user {who} not found")
        elif sf is None:
            om.problems.append(f"owners.yaml users[{i}]: Salesforce user for {who} not found")
        elif not _truthy(sf.get("IsActive")):
            om.problems.append(
                f"owners.yaml users[{i}]: Salesforce user {sf.get('Username')} is inactive; "
                "owner changes for this user are not synced"
            )
        else:
            om.lg_to_sf[str(lg["id"])] = sf["Id"]
            om.sf_to_lg.setdefault(sf["Id"], str(lg["id"]))


def _map_by_email(om: OwnerMap, users: _Users) -> None:
    for lg in users.lg_users:
        lid = str(lg["id"])
        if lid in om.lg_to_sf or not _truthy(lg.get("isActive", "1")):
            continue
        active = users.active_sf_by_email(lg.get("emailAddress"))
        if len(active) == 1:
            om.lg_to_sf[lid] = active[0]["Id"]
            om.sf_to_lg.setdefault(active[0]["Id"], lid)


def _map_fallback(om: OwnerMap, spec: OwnerSpec, users: _Users) -> None:
    fb = spec.fallback
    if fb is None:
        return
    sf = users.sf(fb.salesforce_id, fb.salesforce_username, None)
    if sf is not None and _truthy(sf.get("IsActive")):
        om.fallback_sf = sf["Id"]
    elif fb.salesforce_id or fb.salesforce_username:
        om.problems.append("owners.yaml fallback: Salesforce user not found or inactive")
    lg = users.lg(fb.leadgen_id, fb.leadgen_email)
    if lg is not None:
        om.fallback_lg = str(lg["id"])
    elif fb.leadgen_id or fb.leadgen_email:
        om.problems.append("owners.yaml fallback: Lead Gen & CRM user not found")


def build_owner_map(
    spec: OwnerSpec, lg_users: list[dict[str, Any]], sf_users: list[dict[str, Any]]
) -> OwnerMap:
    """Resolve the spec against the live user lists: the users it lists, then (when
    ``auto_match_by_email``) every other active user with one active Salesforce user of the same
    email, then the fallback owner.

    ``lg_users``: getUserProfiles rows (id, emailAddress, isActive). ``sf_users``: User records
    (Id, Username, Email, IsActive, Name).
    """
    om = OwnerMap()
    users = _Users(lg_users, sf_users)
    om.sf_names = {u["Id"]: str(u.get("Name") or u.get("Username") or u["Id"]) for u in sf_users}
    _map_listed(om, spec, users)
    if spec.auto_match_by_email:
        _map_by_email(om, users)
    _map_fallback(om, spec, users)
    return om
