"""Admin changes to the access model -- how tests break each preflight requirement on purpose.

Every method validates its input, writes through the org's write engine (so the rows look like
any other org data to SOQL) and drops the cached verdicts of :class:`.access.AccessModel`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .access import (
    API_EDITIONS,
    EDITIONS,
    SESSION_LEVELS,
    AccessError,
    AccessModel,
    _bool,
    field_key,
)
from .access_schema import PERMISSIONS
from .schema import DATA_OBJECTS

if TYPE_CHECKING:
    from .org import Org


def _permission_changes(changes: Mapping[str, Any]) -> dict[str, int]:
    out = {}
    for key, value in changes.items():
        if key in PERMISSIONS:
            out[key] = int(_bool(value, key))
    return out


class AccessAdmin:
    """The admin API's view of :class:`AccessModel` (``/__sandbox__/org``, ``/profiles``, ...)."""

    def __init__(self, org: Org):
        self.org = org

    @property
    def model(self) -> AccessModel:
        return self.org.access

    def _done(self) -> dict[str, Any]:
        self.model.invalidate()
        return self.model.summary()

    # -- the org
    def set_org(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """``{edition?, api_enabled?}``; a new edition brings its own API access unless given."""
        unknown = set(changes) - {"edition", "api_enabled"}
        if unknown:
            raise AccessError(f"unknown org settings {sorted(unknown)}; use edition, api_enabled")
        state = dict(self.model.state)
        if "edition" in changes:
            edition = str(changes["edition"])
            if edition not in EDITIONS:
                raise AccessError(f"edition is one of {list(EDITIONS)}")
            state["edition"] = edition
            state["api_enabled"] = edition in API_EDITIONS
        if changes.get("api_enabled") is not None:
            state["api_enabled"] = _bool(changes["api_enabled"], "api_enabled")
        with self.org.db.write() as c:
            c.execute('UPDATE "sf_Organization" SET "OrganizationType" = ?', (state["edition"],))
        self.model.state = state
        self.org.db.set_meta("access", state)
        return self._done()

    # -- profiles and permission sets
    def update_profile(self, ref: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Permission flags and ``requiredSessionLevel`` (null: no requirement) of a profile."""
        profile = self.model.profile(ref)
        allowed = {*PERMISSIONS, "requiredSessionLevel", "Description"}
        unknown = set(changes) - allowed
        if unknown:
            raise AccessError(f"unknown profile settings {sorted(unknown)}; use {sorted(allowed)}")
        values: dict[str, Any] = _permission_changes(changes)
        if "Description" in changes:
            values["Description"] = changes["Description"]
        ctx = self.model._ctx()
        with self.org.db.write():
            if values:
                self.org.engine.update(self.model._obj("Profile"), profile["Id"], values, ctx)
                owned = self.model.owned_permission_set(profile["Id"])
                perms = {k: v for k, v in values.items() if k in PERMISSIONS}
                self.org.engine.update(self.model._obj("PermissionSet"), owned, perms, ctx)
        if "requiredSessionLevel" in changes:
            level = changes["requiredSessionLevel"]
            if level not in (None, "", *SESSION_LEVELS):
                raise AccessError(f"requiredSessionLevel is null or one of {list(SESSION_LEVELS)}")
            state = dict(self.model.state)
            levels = dict(state.get("session_levels", {}))
            levels[profile["Name"]] = level or None
            state["session_levels"] = levels
            self.model.state = state
            self.org.db.set_meta("access", state)
        return self._done()

    def create_permission_set(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        name = str(spec.get("Name") or "").strip()
        if not name:
            raise AccessError("a permission set needs a Name")
        values = {"Name": name, "Label": str(spec.get("Label") or name)}
        values.update(_permission_changes(spec))
        with self.org.db.write():
            ps = self.model._insert_permission_set(values)
        return {"id": ps, **self._done()}

    def update_permission_set(self, ref: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        ps = self.model.permission_set(ref)
        if ps["IsOwnedByProfile"]:
            raise AccessError("change a profile's own permission set through /profiles")
        with self.org.db.write():
            self.org.engine.update(
                self.model._obj("PermissionSet"),
                ps["Id"],
                _permission_changes(changes),
                self.model._ctx(),
            )
        return self._done()

    def assign(self, user_ref: str, ps_ref: str) -> dict[str, Any]:
        user = self.org.salesperson(user_ref)
        ps = self.model.permission_set(ps_ref)
        with self.org.db.write():
            aid = self.model._assign(user, ps["Id"])
        return {"id": aid, **self._done()}

    def unassign(self, assignment_id: str) -> dict[str, Any]:
        with self.org.db.write() as c:
            n = c.execute(
                'DELETE FROM "sf_PermissionSetAssignment" WHERE "Id" = ?', (assignment_id,)
            ).rowcount
        if not n:
            raise AccessError(f"no permission set assignment {assignment_id}")
        return self._done()

    def set_user_profile(self, user_id: str, profile_ref: str) -> None:
        """Move a user to another profile (and to that profile's permission set)."""
        profile = self.model.profile(profile_ref)
        owned = self.model.owned_permission_set(profile["Id"])
        with self.org.db.write() as c:
            c.execute(
                'DELETE FROM "sf_PermissionSetAssignment" WHERE "AssigneeId" = ? AND '
                '"PermissionSetId" IN (SELECT "Id" FROM "sf_PermissionSet" WHERE "IsOwnedByProfile" = 1)',
                (user_id,),
            )
            self.org.engine.update(
                self.model._obj("User"), user_id, {"ProfileId": profile["Id"]}, self.model._ctx()
            )
            self.model._assign(user_id, owned)
        self.model.invalidate()

    # -- field-level security
    def set_field_permission(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """``{field: "Lead.X", profile|permission_set: ref, read: bool, edit: bool}``.

        ``read: false`` removes the row (no access); ``edit`` implies ``read``.
        """
        obj_name, field_name = field_key(spec.get("field", ""))
        obj = self.org.schema.get(obj_name)
        f = obj.field(field_name) if obj else None
        if obj is None or obj.name not in DATA_OBJECTS or f is None or not f.permissionable:
            raise AccessError(f"{spec.get('field')} is not a permissionable field")
        if spec.get("permission_set"):
            ps = self.model.permission_set(str(spec["permission_set"]))["Id"]
        else:
            profile = self.model.profile(str(spec.get("profile") or ""))
            ps = self.model.owned_permission_set(profile["Id"])
        edit = _bool(spec.get("edit", False), "edit")
        read = edit or _bool(spec.get("read", True), "read")
        with self.org.db.write():
            self.model._write_fls(ps, obj.name, f.name, read, edit)
        self.model.invalidate()
        return {"field": f"{obj.name}.{f.name}", "ParentId": ps, "read": read, "edit": edit}

    def on_field_added(self, obj_name: str, field_name: str) -> None:
        """A new custom field is visible and editable for every profile (the wizard's default)."""
        obj = self.org.schema.get(obj_name)
        f = obj.field(field_name) if obj else None
        if obj is None or obj.name not in DATA_OBJECTS or f is None or not f.permissionable:
            return
        rows = self.model._rows('SELECT "Id" FROM "sf_PermissionSet" WHERE "IsOwnedByProfile" = 1')
        with self.org.db.write():
            for row in rows:
                self.model._write_fls(row["Id"], obj.name, f.name, True, True)
        self.model.invalidate()

    def on_field_removed(self, obj_name: str, field_name: str) -> None:
        with self.org.db.write() as c:
            c.execute(
                'DELETE FROM "sf_FieldPermissions" WHERE "Field" = ?', (f"{obj_name}.{field_name}",)
            )
        self.model.invalidate()
