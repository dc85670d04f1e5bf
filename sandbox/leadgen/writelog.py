"""The write log: which objects the API (not the admin API) created, updated and deleted.

Chaos tests read it to prove that no write was made twice: after runs with dropped connections
and lost answers (``drop_after``), every object a ``create*`` call made must be one the sync
knows (a link in its state store), and no two of them may stand for one source record. Only
objects the API answered with success are logged, once the call's transaction has committed (a
``drop_after`` fault commits, then drops the answer: the write is logged, the client never hears
of it). Creates log the new id, updates and deletes the id they targeted. Kept in memory:
cleared by reset and ``DELETE /__sandbox__/writes``, lost on restart.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

MAX_ENTRIES = 200_000


class WriteLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        self._entries: collections.deque[tuple[str, str | None]] = collections.deque(
            maxlen=MAX_ENTRIES
        )

    def on_write(self, method: str, objects: Any, result: Any) -> None:
        """Log the successful objects of one committed batch write (``objects`` as sent,
        ``result`` as answered: one entry per object, in order)."""
        entries = next((v for v in (result or {}).values() if isinstance(v, list)), [])
        sent = list(objects.values()) if isinstance(objects, dict) else list(objects or [])
        with self._lock:
            for i, entry in enumerate(entries):
                if not isinstance(entry, dict) or not entry.get("success"):
                    continue
                target = entry.get("id")
                if target is None and i < len(sent) and isinstance(sent[i], dict):
                    target = sent[i].get("id")
                self._counts[method] += 1
                self._entries.append((method, None if target is None else str(target)))

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
            self._entries.clear()

    def snapshot(self, *, method: str | None = None, entries: bool = False) -> dict[str, Any]:
        """``{by_method: {createLeads: n, ...}, total}``; with ``entries`` also the logged
        writes ``{method, id}`` (only those of ``method`` when given)."""
        with self._lock:
            out: dict[str, Any] = {
                "by_method": dict(sorted(self._counts.items())),
                "total": sum(self._counts.values()),
            }
            if entries:
                out["entries"] = [
                    {"method": m, "id": i}
                    for m, i in self._entries
                    if method is None or m.lower() == method.lower()
                ]
            return out
