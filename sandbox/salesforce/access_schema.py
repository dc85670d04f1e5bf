"""The sObjects that describe who may do what: Profile, PermissionSet, PermissionSetAssignment,
FieldPermissions -- with the real field names a preflight check queries.

All four are read-only through the API (as the sandbox's User and Organization are); the admin
API changes them (:mod:`.access`). The permission fields exist on both Profile and
PermissionSet, as in a real org, where a profile's permissions live in a permission set owned
by the profile (``IsOwnedByProfile = true``).
"""

from __future__ import annotations

from .schema import KEY_PREFIXES, FieldDef, ObjectDef, _pick, _ref, _s, _system_fields

# The system permissions the sandbox models (``Permissions<Name>`` on Profile/PermissionSet).
PERMISSIONS = (
    "PermissionsApiEnabled",  # "API Enabled"
    "PermissionsApiUserOnly",  # "API Only User"
    "PermissionsModifyAllData",  # "Modify All Data"
    "PermissionsViewAllData",  # "View All Data"
    "PermissionsPasswordNeverExpires",  # "Password Never Expires"
)
_PERMISSION_LABELS = {
    "PermissionsApiEnabled": "API Enabled",
    "PermissionsApiUserOnly": "API Only User",
    "PermissionsModifyAllData": "Modify All Data",
    "PermissionsViewAllData": "View All Data",
    "PermissionsPasswordNeverExpires": "Password Never Expires",
}
ACCESS_OBJECTS = ("Profile", "PermissionSet", "PermissionSetAssignment", "FieldPermissions")


def _permission_fields() -> list[FieldDef]:
    return [
        FieldDef(name, _PERMISSION_LABELS[name], "boolean", default=False) for name in PERMISSIONS
    ]


def _object(name: str, label: str, plural: str, fields: list[FieldDef]) -> ObjectDef:
    obj = ObjectDef(
        name,
        label,
        plural,
        KEY_PREFIXES[name],
        createable=False,
        updateable=False,
        deletable=False,
        has_owner=False,
    )
    for f in [*_system_fields(name, owner=False, soft_delete=False), *fields]:
        obj.add(f)
    return obj


def access_objects() -> dict[str, ObjectDef]:
    """The four access objects, ready to join the default schema."""
    objs = [
        _object(
            "Profile",
            "Profile",
            "Profiles",
            [
                _s("Name", "Name", 255, required=True),
                _s("Description", "Description", 255),
                _pick("UserType", "User Type", ("Standard",), default="Standard"),
                *_permission_fields(),
            ],
        ),
        _object(
            "PermissionSet",
            "Permission Set",
            "Permission Sets",
            [
                _s("Name", "Name", 80, required=True, unique=True),
                _s("Label", "Label", 80, required=True),
                _s("Description", "Description", 255),
                FieldDef("IsOwnedByProfile", "Is Owned By Profile", "boolean", default=False),
                _ref("ProfileId", "Profile ID", ["Profile"], "Profile"),
                *_permission_fields(),
            ],
        ),
        _object(
            "PermissionSetAssignment",
            "Permission Set Assignment",
            "Permission Set Assignments",
            [
                _ref("AssigneeId", "Assignee ID", ["User"], "Assignee", required=True),
                _ref(
                    "PermissionSetId",
                    "Permission Set ID",
                    ["PermissionSet"],
                    "PermissionSet",
                    required=True,
                ),
                FieldDef("IsActive", "Active", "boolean", default=True),
            ],
        ),
        _object(
            "FieldPermissions",
            "Field Permissions",
            "Field Permissions",
            [
                _ref("ParentId", "Parent ID", ["PermissionSet"], "Parent", required=True),
                _s("SobjectType", "Sobject Type Name", 80, required=True),
                _s("Field", "Field Name", 255, required=True),
                FieldDef("PermissionsRead", "Read Access", "boolean", default=False),
                FieldDef("PermissionsEdit", "Edit Access", "boolean", default=False),
            ],
        ),
    ]
    return {o.name: o for o in objs}
