"""The sObject describe as one user sees it: child relationships and field-level security.

:meth:`.schema.ObjectDef.describe` builds the static part from field metadata; this module adds
what depends on the rest of the org:

* ``childRelationships`` -- one entry per lookup field (of any object) pointing at this object,
  with the child's relationship name where the org has one (``Account.Contacts``),
  ``cascadeDelete`` for the children that go to the recycle bin with their parent;
* field-level security of the logged-in user (:mod:`.access`): a field the user cannot read is
  left out, a field the user cannot edit reports ``createable``/``updateable`` false.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .schema import CASCADE, CHILD_RELATIONSHIP_NAMES, ObjectDef, Schema

if TYPE_CHECKING:
    from .org import Org


def child_relationships(schema: Schema, parent: ObjectDef) -> list[dict[str, Any]]:
    """Describe's ``childRelationships`` of ``parent``, ordered by child object, then field."""
    cascading = set(CASCADE.get(parent.name, []))
    out = []
    for child in sorted(schema.objects.values(), key=lambda o: o.name):
        for f in child.field_list:
            if f.type != "reference" or parent.name not in f.reference_to:
                continue
            name = CHILD_RELATIONSHIP_NAMES.get((child.name, f.name))
            if name is None and f.custom:
                # A custom lookup gets its child relationship from the child's plural label [I].
                name = child.label_plural.replace(" ", "") + "__r"
            out.append(
                {
                    "cascadeDelete": (child.name, f.name) in cascading,
                    "childSObject": child.name,
                    "deprecatedAndHidden": False,
                    "field": f.name,
                    "junctionIdListNames": [],
                    "junctionReferenceTo": [],
                    "relationshipName": name,
                    "restrictedDelete": False,
                }
            )
    return out


def describe_for(org: Org, obj: ObjectDef, version: str, user: str) -> dict[str, Any]:
    """The full describe of ``obj`` for the session user ``user``."""
    body = obj.describe(version)
    body["childRelationships"] = child_relationships(org.schema, obj)
    access = org.access.field_access(user, obj)
    if access:
        fields = []
        for entry in body["fields"]:
            read, edit = access.get(entry["name"], (True, True))
            if not read:
                continue
            if not edit:
                entry = {**entry, "createable": False, "updateable": False}
            fields.append(entry)
        body["fields"] = fields
    return body
