"""What an undo does with each change-log entry of the run it undoes, given the record now.

Pure: no I/O. Every entry gets one :class:`Decision`:

* an overwritten field (``update``): ``restore`` where the record still holds the value the run
  wrote; ``already_restored`` where it holds the value from before (a second undo, or someone
  put it back); else ``conflict`` (edited since: reported with the value the run wrote and the
  value now, never overwritten); ``gone`` when the record no longer exists;
* a created record (``create``): ``keep_created`` (reported) unless ``delete_created``; then
  ``remove`` when every value the run created it with is still there, ``created_changed`` (a
  conflict: not removed) when someone edited it since, ``already_removed`` when it is deleted or
  (a lead) inactive;
* everything else (``kept``: the record link and lifecycle flags; ``existing``: a create that met
  a record already there; ``deleted``/``removed``: records deleted) is ``not_undoable``, with why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crm_sync.pipeline.changelog import CREATE, DELETED, EXISTING, KEPT, REMOVED, UPDATE
from crm_sync.pipeline.readback import same_value

RESTORE = "restore"
ALREADY_RESTORED = "already_restored"
CONFLICT = "conflict"
GONE = "gone"
KEEP_CREATED = "keep_created"
REMOVE = "remove"
CREATED_CHANGED = "created_changed"
ALREADY_REMOVED = "already_removed"
NOT_UNDOABLE = "not_undoable"

WHY_NOT = {
    KEPT: "the record link and lifecycle flags follow the pairing, not the data",
    EXISTING: "the run did not create this record (it was there already); its values before "
    "the run were not recorded -- see the backup",
    DELETED: "the run deleted this record -- restore it from the recycle bin or the backup",
    REMOVED: "an undo deleted or deactivated this record -- restore it from the recycle bin or "
    "reactivate it",
}


@dataclass(frozen=True)
class Entry:
    """One change-log entry, as the undo reads it."""

    system: str
    object: str
    record_id: str
    field: str
    kind: str
    before: Any
    after: Any
    meta: Mapping[str, Any]

    @classmethod
    def of(cls, row: Any) -> Entry:
        """From a ``ChangeRecord`` row (or anything with the same attributes)."""
        return cls(
            row.system,
            row.object,
            str(row.record_id),
            row.field,
            row.kind,
            row.before,
            row.after,
            dict(row.meta or {}),
        )

    def show(self, **extra: Any) -> dict[str, Any]:
        """The entry for a report (``extra``: the value now, the reason)."""
        out = {"system": self.system, "object": self.object, "record_id": self.record_id}
        if self.field:
            out["field"] = self.field
        return {**out, **extra}


@dataclass(frozen=True)
class Decision:
    action: str
    entry: Entry
    now: Any = None  # the field's value now (updates), or the fields edited since (creates)
    why: str | None = None


def inactive(record: Mapping[str, Any]) -> bool:
    """A Lead Gen & CRM lead the sync (or an undo) deactivated."""
    return str(record.get("active", "1")).strip().lower() in ("0", "false")


def decide(entry: Entry, record: Mapping[str, Any] | None, *, delete_created: bool) -> Decision:
    """The decision for one entry; ``record`` is its record now (None: it does not exist)."""
    if entry.kind == UPDATE:
        if record is None:
            return Decision(GONE, entry, why="the record no longer exists")
        now = record.get(entry.field)
        if same_value(entry.after, now):
            return Decision(RESTORE, entry, now)
        if same_value(entry.before, now):
            return Decision(ALREADY_RESTORED, entry, now)
        return Decision(CONFLICT, entry, now, "changed since the run")
    if entry.kind == CREATE:
        return _created(entry, record, delete_created)
    return Decision(NOT_UNDOABLE, entry, why=WHY_NOT.get(entry.kind, entry.kind))


def _created(entry: Entry, record: Mapping[str, Any] | None, delete_created: bool) -> Decision:
    if record is None or (
        entry.system == "leadgen" and entry.object == "lead" and inactive(record)
    ):
        return Decision(ALREADY_REMOVED, entry)
    if not delete_created:
        return Decision(KEEP_CREATED, entry)
    created = entry.after if isinstance(entry.after, Mapping) else {}
    edited = sorted(f for f, v in created.items() if not same_value(v, record.get(f)))
    if edited:
        return Decision(
            CREATED_CHANGED, entry, edited, f"edited since the run: {', '.join(edited)}"
        )
    return Decision(REMOVE, entry)
