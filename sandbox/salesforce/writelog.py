"""The write log: what the API (not the admin API) created, updated and deleted, per object.

Chaos tests read it to prove that no write was made twice: after a run with dropped
connections, lost answers and expired sessions, ``created`` for an object must equal the
number of records the client was asked to create. Entries are counted when the transaction
that wrote them commits (an ``allOrNone`` rollback counts nothing). Besides the counters the
log keeps the last 200,000 entries ``(object, op, id, channel)`` so a test can see which
records a call wrote. Kept in memory: cleared by reset and ``DELETE /__sandbox__/writes``, lost on
restart.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

MAX_ENTRIES = 200_000


class WriteLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, collections.Counter[str]] = {}
        self._channels: collections.Counter[str] = collections.Counter()
        self._entries: collections.deque[tuple[str, str, str, str]] = collections.deque(
            maxlen=MAX_ENTRIES
        )

    def on_commit(self, entries: list[tuple[Any, ...]]) -> None:
        """Count the API writes of one committed transaction (``Database.on_commit``)."""
        with self._lock:
            for obj, op, record_id, channel in entries:
                self._counts.setdefault(obj, collections.Counter())[op] += 1
                self._channels[channel] += 1
                self._entries.append((obj, op, record_id, channel))

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
            self._channels.clear()
            self._entries.clear()

    def snapshot(
        self, *, obj: str | None = None, op: str | None = None, entries: bool = False
    ) -> dict[str, Any]:
        """Counters; with ``entries`` also the logged writes (filtered by ``obj``/``op``)."""
        with self._lock:
            by_object = {
                name: {k: counts.get(k, 0) for k in ("created", "updated", "deleted")}
                for name, counts in sorted(self._counts.items())
            }
            out: dict[str, Any] = {
                "by_object": by_object,
                "by_channel": dict(sorted(self._channels.items())),
                "total": sum(self._channels.values()),
            }
            if entries:
                out["entries"] = [
                    {"object": o, "op": p, "id": i, "channel": c}
                    for o, p, i, c in self._entries
                    if (obj is None or o.lower() == obj.lower()) and (op is None or p == op)
                ]
            return out
