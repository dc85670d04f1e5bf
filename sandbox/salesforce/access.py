"""The org's access model: edition and API access, profiles, permission sets, field-level security.

What a preflight check reads, and how the sandbox uses it:

* **Edition** -- ``Organization.OrganizationType``. Enterprise, Unlimited, Performance and
  Developer editions include the API; Professional only with the API add-on; Essentials,
  Group, Team, Contact Manager and Personal never [I: edition list from public material]. An
  org without API access still lets users log in, then refuses every API request with 403
  ``API_DISABLED_FOR_ORG`` ("API is not enabled for this Organization or Partner").
* **Profiles and permission sets** -- ``Profile`` and ``PermissionSet`` carry the permission
  fields (``PermissionsApiEnabled``, ``PermissionsApiUserOnly``, ``PermissionsModifyAllData``,
  ``PermissionsViewAllData``, ``PermissionsPasswordNeverExpires``). Each profile owns one
  permission set (``IsOwnedByProfile``); a user's permissions are the OR over the permission
  sets assigned to them (``PermissionSetAssignment``, the profile's included). A user without
  "API Enabled" gets the same 403 ``API_DISABLED_FOR_ORG``.
* **Field-level security** -- ``FieldPermissions`` rows (``ParentId`` = permission set,
  ``SobjectType``, ``Field`` = ``Lead.Email``, ``PermissionsRead``, ``PermissionsEdit``) for
  permissionable fields; no row means no access, as in a real org. Describe, SOQL and writes
  follow it for the session user.
* **Session security level required at login** -- only in the Metadata API
  (``ProfileSessionSetting.requiredSessionLevel``, see :mod:`.mdapi`); the sandbox does not
  refuse logins because of it [I].

The default org passes every check of the vendor's setup article: Enterprise Edition, the
integration user on the profile "Sync Integration" (API Enabled, API Only User, Modify All
Data, View All Data, Password Never Expires, no session level required), read/edit access to
every permissionable field. :meth:`AccessModel.seed` restores that state (on every reset).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .access_schema import ACCESS_OBJECTS, PERMISSIONS
from .dml import Ctx
from .ids import make_id, normalize_id
from .schema import DATA_OBJECTS, ObjectDef
from .storage import q, table_name

if TYPE_CHECKING:
    from .org import Org

EDITIONS = (
    "Enterprise Edition", "Unlimited Edition", "Performance Edition", "Developer Edition",
    "Professional Edition", "Essentials Edition", "Group Edition", "Team Edition",
    "Contact Manager Edition", "Personal Edition",
)  # fmt: skip
API_EDITIONS = frozenset(EDITIONS[:4])
DEFAULT_EDITION = "Enterprise Edition"
SESSION_LEVELS = ("LOW", "STANDARD", "HIGH_ASSURANCE")
ADMIN_PROFILE, STANDARD_PROFILE, INTEGRATION_PROFILE = (
    "System Administrator",
    "Standard User",
    "Sync Integration",
)
_ALL = dict.fromkeys(PERMISSIONS, True)
_NONE = dict.fromkeys(PERMISSIONS, False)
# name -> (Metadata API full name, permissions)
DEFAULT_PROFILES: dict[str, tuple[str, dict[str, bool]]] = {
    ADMIN_PROFILE: (
        "Admin",
        {**_ALL, "PermissionsApiUserOnly": False, "PermissionsPasswordNeverExpires": False},
    ),
    STANDARD_PROFILE: ("Standard", {**_NONE, "PermissionsApiEnabled": True}),
    INTEGRATION_PROFILE: (INTEGRATION_PROFILE, dict(_ALL)),
}
REFUSAL = ("API_DISABLED_FOR_ORG", "API is not enabled for this Organization or Partner")


class AccessError(ValueError):
    """An admin change to the access model is invalid (unknown profile, bad value, ...)."""


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise AccessError(f"{name} must be true or false, got {value!r}")


class AccessModel:
    """Reads and changes the access model; caches what each user may see and do."""

    def __init__(self, org: Org):
        self.org = org
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, ...], Any] = {}
        self.state: dict[str, Any] = org.db.get_meta("access") or self._default_state()

    @staticmethod
    def _default_state() -> dict[str, Any]:
        return {"edition": DEFAULT_EDITION, "api_enabled": True, "session_levels": {}}

    def invalidate(self) -> None:
        """Forget cached verdicts (after any change to profiles, permissions, users, schema)."""
        with self._lock:
            self._cache.clear()

    def _ctx(self) -> Ctx:
        return Ctx(self.org.integration_user_id, self.org.clock.now_ms(), "admin", False)

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cur = self.org.db.conn().execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur]

    def _obj(self, name: str) -> ObjectDef:
        obj = self.org.schema.get(name)
        assert obj is not None
        return obj

    # ------------------------------------------------------------------------ seeding
    def seed(self) -> None:
        """Restore the default access model (profiles, permission sets, FLS, edition)."""
        org, engine, ctx = self.org, self.org.engine, self._ctx()
        kept = {
            r["Id"]: r["Name"]
            for r in self._rows(
                'SELECT u."Id", p."Name" FROM "sf_User" u JOIN "sf_Profile" p ON p."Id" = u."ProfileId"'
            )
        }
        with org.db.write() as c:
            for name in ACCESS_OBJECTS:
                c.execute(f"DELETE FROM {q(table_name(name))}")
            owned: dict[str, str] = {}
            for name, (_full, perms) in DEFAULT_PROFILES.items():
                pid = engine.insert(self._obj("Profile"), {"Name": name, **_ints(perms)}, ctx)
                owned[pid] = self._insert_permission_set(
                    {"Name": f"X{pid}", "Label": name, "IsOwnedByProfile": 1, "ProfileId": pid}
                    | _ints(perms)
                )
            by_name = {n: pid for pid, n in zip(owned, DEFAULT_PROFILES, strict=True)}
            for user in org.users():
                default = INTEGRATION_PROFILE if user["Id"] == org.integration_user_id else None
                profile = by_name.get(kept.get(user["Id"]) or default or STANDARD_PROFILE)
                profile = profile or by_name[STANDARD_PROFILE]
                c.execute(
                    'UPDATE "sf_User" SET "ProfileId" = ? WHERE "Id" = ?', (profile, user["Id"])
                )
                self._assign(user["Id"], owned[profile])
            for ps in owned.values():
                self._grant_all(ps)
            c.execute('UPDATE "sf_Organization" SET "OrganizationType" = ?', (DEFAULT_EDITION,))
        self.state = self._default_state()
        org.db.set_meta("access", self.state)
        org.refresh_users()
        self.invalidate()

    def _insert_permission_set(self, values: dict[str, Any]) -> str:
        return self.org.engine.insert(self._obj("PermissionSet"), values, self._ctx())

    def _assign(self, user_id: str, permission_set_id: str) -> str:
        return self.org.engine.insert(
            self._obj("PermissionSetAssignment"),
            {"AssigneeId": user_id, "PermissionSetId": permission_set_id},
            self._ctx(),
        )

    def _grant_all(self, permission_set_id: str) -> None:
        """Read/edit on every permissionable field (one statement: this runs on every reset)."""
        keys = [
            (name, f.name)
            for name in DATA_OBJECTS
            for f in self._obj(name).field_list
            if f.permissionable
        ]
        first = self.org.db.allocate_pk("FieldPermissions", len(keys))
        now, actor = self.org.clock.now_ms(), self.org.integration_user_id
        prefix = self._obj("FieldPermissions").key_prefix
        self.org.db.conn().executemany(
            'INSERT INTO "sf_FieldPermissions" (pk, "Id", "ParentId", "SobjectType", "Field", '
            '"PermissionsRead", "PermissionsEdit", "CreatedDate", "CreatedById", '
            '"LastModifiedDate", "LastModifiedById", "SystemModstamp") '
            "VALUES (?, ?, ?, ?, ?, 1, 1, ?, ?, ?, ?, ?)",
            [
                (pk, make_id(prefix, pk), permission_set_id, obj, f"{obj}.{field}",
                 now, actor, now, actor, now)
                for pk, (obj, field) in enumerate(keys, start=first)
            ],
        )  # fmt: skip

    def _write_fls(self, ps: str, obj: str, field: str, read: bool, edit: bool) -> None:
        """Insert, change or (no read access) delete one FieldPermissions row."""
        key = f"{obj}.{field}"
        existing = self._rows(
            'SELECT "Id" FROM "sf_FieldPermissions" WHERE "ParentId" = ? AND "Field" = ?', (ps, key)
        )
        fp = self._obj("FieldPermissions")
        if not read:
            for row in existing:
                self.org.db.conn().execute(
                    'DELETE FROM "sf_FieldPermissions" WHERE "Id" = ?', (row["Id"],)
                )
            return
        values = {"PermissionsRead": 1, "PermissionsEdit": int(edit)}
        if existing:
            self.org.engine.update(fp, existing[0]["Id"], values, self._ctx())
        else:
            values.update(ParentId=ps, SobjectType=obj, Field=key)
            self.org.engine.insert(fp, values, self._ctx())

    # ----------------------------------------------------------------- verdicts (cached)
    def _cached(self, key: tuple[str, ...], compute: Any) -> Any:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        value = compute()
        with self._lock:
            self._cache[key] = value
        return value

    def permission_sets_of(self, user_id: str) -> list[str]:
        rows = self._rows(
            'SELECT "PermissionSetId" FROM "sf_PermissionSetAssignment" '
            'WHERE "AssigneeId" = ? AND "IsActive" = 1',
            (user_id,),
        )
        return [r["PermissionSetId"] for r in rows]

    def permissions(self, user_id: str) -> dict[str, bool]:
        """The user's system permissions: OR over every permission set assigned to them."""

        def compute() -> dict[str, bool]:
            out = dict(_NONE)
            for ps in self.permission_sets_of(user_id):
                row = self._rows('SELECT * FROM "sf_PermissionSet" WHERE "Id" = ?', (ps,))
                for perm in PERMISSIONS:
                    out[perm] = out[perm] or bool(row and row[0][perm])
            return out

        return self._cached(("perms", user_id), compute)

    def api_refusal(self, user_id: str) -> tuple[str, str] | None:
        """(errorCode, message) when the org or the user has no API access, else None."""
        if not self.state.get("api_enabled", True):
            return REFUSAL
        if not self.permissions(user_id)["PermissionsApiEnabled"]:
            return REFUSAL
        return None

    def field_access(self, user_id: str, obj: ObjectDef) -> dict[str, tuple[bool, bool]]:
        """Permissionable field -> (read, edit) for the user; {} for objects without FLS."""
        if obj.name not in DATA_OBJECTS:
            return {}

        def compute() -> dict[str, tuple[bool, bool]]:
            sets = self.permission_sets_of(user_id)
            granted: dict[str, tuple[bool, bool]] = {}
            if sets:
                marks = ",".join("?" * len(sets))
                for r in self._rows(
                    'SELECT "Field", MAX("PermissionsRead") AS r, MAX("PermissionsEdit") AS e '
                    f'FROM "sf_FieldPermissions" WHERE "SobjectType" = ? AND "ParentId" IN ({marks}) '
                    'GROUP BY "Field"',
                    (obj.name, *sets),
                ):
                    granted[r["Field"].split(".", 1)[-1].lower()] = (bool(r["r"]), bool(r["e"]))
            return {
                f.name: granted.get(f.name.lower(), (False, False))
                for f in obj.field_list
                if f.permissionable
            }

        return self._cached(("fls", user_id, obj.name), compute)

    def hidden_fields(self, user_id: str) -> frozenset[tuple[str, str]]:
        """(object, field), lower-cased, of every field the user cannot read (for SOQL)."""

        def compute() -> frozenset[tuple[str, str]]:
            out = set()
            for name in DATA_OBJECTS:
                obj = self._obj(name)
                for field, (read, _edit) in self.field_access(user_id, obj).items():
                    if not read:
                        out.add((name.lower(), field.lower()))
            return frozenset(out)

        return self._cached(("hidden", user_id), compute)

    def not_editable(self, user_id: str, obj: ObjectDef) -> frozenset[str]:
        """Names of the fields of ``obj`` the user may not create or update (lower-cased)."""
        if obj.name not in DATA_OBJECTS:
            return frozenset()
        return self._cached(
            ("locked", user_id, obj.name),
            lambda: frozenset(
                f.lower() for f, (_r, edit) in self.field_access(user_id, obj).items() if not edit
            ),
        )

    def session_setting(self, full_name: str) -> dict[str, Any] | None:
        """The Metadata API ``ProfileSessionSetting`` of a profile (by name or full name)."""
        try:
            profile = self.profile(full_name)
        except AccessError:
            return None
        level = self.state.get("session_levels", {}).get(profile["Name"])
        return {"fullName": self.full_name(profile["Name"]), "requiredSessionLevel": level}

    @staticmethod
    def full_name(profile_name: str) -> str:
        default = DEFAULT_PROFILES.get(profile_name)
        return default[0] if default else profile_name

    # --------------------------------------------------------------------- look-ups
    def profile(self, ref: str) -> dict[str, Any]:
        rid = normalize_id(ref)
        for row in self._rows('SELECT * FROM "sf_Profile"'):
            if rid == row["Id"] or str(ref).lower() in (
                row["Name"].lower(),
                self.full_name(row["Name"]).lower(),
            ):
                return row
        raise AccessError(f"unknown profile {ref!r}")

    def permission_set(self, ref: str) -> dict[str, Any]:
        rid = normalize_id(ref)
        for row in self._rows('SELECT * FROM "sf_PermissionSet"'):
            if rid == row["Id"] or str(ref).lower() == row["Name"].lower():
                return row
        raise AccessError(f"unknown permission set {ref!r}")

    def owned_permission_set(self, profile_id: str) -> str:
        rows = self._rows(
            'SELECT "Id" FROM "sf_PermissionSet" WHERE "ProfileId" = ? AND "IsOwnedByProfile" = 1',
            (profile_id,),
        )
        return rows[0]["Id"]

    def summary(self) -> dict[str, Any]:
        profiles = self._rows('SELECT * FROM "sf_Profile" ORDER BY pk')
        levels = self.state.get("session_levels", {})
        return {
            "edition": self.state.get("edition", DEFAULT_EDITION),
            "api_enabled": self.state.get("api_enabled", True),
            "profiles": [
                {
                    "Id": p["Id"],
                    "Name": p["Name"],
                    "fullName": self.full_name(p["Name"]),
                    "requiredSessionLevel": levels.get(p["Name"]),
                    **{perm: bool(p[perm]) for perm in PERMISSIONS},
                }
                for p in profiles
            ],
            "permission_sets": [
                {"Id": r["Id"], "Name": r["Name"], "IsOwnedByProfile": bool(r["IsOwnedByProfile"])}
                for r in self._rows('SELECT * FROM "sf_PermissionSet" ORDER BY pk')
            ],
        }


def _ints(perms: dict[str, bool]) -> dict[str, int]:
    return {k: int(v) for k, v in perms.items()}


def field_key(spec: str) -> tuple[str, str]:
    """``"Lead.Email"`` -> ("Lead", "Email")."""
    obj, sep, field = str(spec).partition(".")
    if not sep or not obj or not field:
        raise AccessError(f"a field is named Object.Field, got {spec!r}")
    return obj, field
