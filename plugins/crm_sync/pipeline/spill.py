"""Sets of keys that grow with a run, kept on the task's local disk past a bounded buffer.

A match or load pass remembers which records it has already handled (to hand each record to
one pair only); on a full resync of a million-record org those ids alone would take hundreds of
megabytes. :class:`DiskSet` keeps the newest keys in memory and moves them to a task-local SQLite
file in bulk once the buffer is full, so memory stays flat whatever the run's size, and a run
small enough for the buffer never touches the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path


class DiskSet:
    """A set of string keys: ``add``, ``update``, ``in``, ``len``. Keys beyond ``buffer`` go to
    ``path`` (a scratch file of the task; replaced when the set is created)."""

    def __init__(self, path: Path, buffer: int = 50_000):
        self.path, self.buffer = path, buffer
        self._mem: set[str] = set()
        self._db: sqlite3.Connection | None = None
        self._on_disk = 0

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.unlink(missing_ok=True)
            self._db = sqlite3.connect(str(self.path))
            # scratch data, rebuilt by a retried task: no journal, no fsync
            self._db.executescript(
                "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                "CREATE TABLE k (k TEXT PRIMARY KEY) WITHOUT ROWID;"
            )
        return self._db

    def add(self, key: str) -> None:
        if key in self:
            return
        self._mem.add(key)
        if len(self._mem) >= self.buffer:
            self._spill()

    def update(self, keys: Iterable[str]) -> None:
        for k in keys:
            self.add(k)

    def _spill(self) -> None:
        db = self._open()
        db.executemany("INSERT INTO k VALUES (?)", [(k,) for k in self._mem])
        db.commit()
        self._on_disk += len(self._mem)
        self._mem = set()

    def _stored(self, key: str) -> bool:
        if self._db is None:
            return False
        return self._db.execute("SELECT 1 FROM k WHERE k = ?", (key,)).fetchone() is not None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self._mem or self._stored(key))

    def __len__(self) -> int:
        return len(self._mem) + self._on_disk

    @property
    def spilled(self) -> int:
        """Keys moved to disk so far."""
        return self._on_disk

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self.path.unlink(missing_ok=True)
