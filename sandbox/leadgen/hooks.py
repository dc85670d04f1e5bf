"""Test hooks: "on the Nth call of method M, touch lead X" (admin ``/__sandbox__/hooks``).

A hook edits a record *between* two API calls of a client, at a moment the test chooses, so a
contract test can show what a reader sees when the set it pages through changes underneath
(a lead edited while later pages are read leaves a ``getLeadsDateRange`` window and every
later row shifts). The touch runs just before the chosen call is processed, through the same
lead rules as a marketer's edit, stamped with the account clock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TouchHook:
    """Before the ``call``-th matching call of ``method`` (counted from scheduling), edit lead
    ``lead_id`` with ``fields`` (none: only bump its updateTimestamp)."""

    method: str
    call: int
    lead_id: int
    fields: dict[str, Any] = field(default_factory=dict)
    seen: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "call": self.call,
            "lead_id": str(self.lead_id),
            "fields": self.fields,
            "seen": self.seen,
        }


class HookQueue:
    """Pending hooks; thread-safe (the app counts calls on the event loop, edits in a pool)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hooks: list[TouchHook] = []

    def schedule(self, method: str, call: int, lead_id: int, fields: dict[str, Any]) -> None:
        if not method:
            raise ValueError("method is required")
        if call < 1:
            raise ValueError("call must be at least 1 (the 1st matching call)")
        if not isinstance(fields, dict):
            raise ValueError("fields must be an object")
        with self._lock:
            self._hooks.append(TouchHook(method, call, lead_id, dict(fields)))

    def due(self, method: str) -> list[TouchHook]:
        """Count this call of ``method``; return (and remove) the hooks it triggers."""
        fired: list[TouchHook] = []
        with self._lock:
            for hook in list(self._hooks):
                if hook.method != method:
                    continue
                hook.seen += 1
                if hook.seen >= hook.call:
                    self._hooks.remove(hook)
                    fired.append(hook)
        return fired

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [h.to_dict() for h in self._hooks]

    def clear(self) -> None:
        with self._lock:
            self._hooks.clear()
