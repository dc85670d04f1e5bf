"""Sets of keys and lists of items that grow with a run, kept on the task's local disk past a
bounded buffer.

A match or load pass remembers which records it has already handled (to hand each record to
one pair only); on a full resync of a million-record org those ids alone would take hundreds of
megabytes. :class:`DiskSet` keeps the newest keys in memory and moves them to a task-local SQLite
file in bulk once the buffer is full, so memory stays flat whatever the run's size, and a run
small enough for the buffer never touches the file. :class:`DiskList` does the same for a list
(the quarantine entries of a run: every row of a full resync may fail).
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

from crm_sync.pipeline.files import dumps

T = TypeVar("T")


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


class DiskList(Sequence[T]):
    """A list that grows with a run (``append``, ``extend``, ``len``, iteration and indexing in
    insertion order), kept in memory up to ``buffer`` items and in a task-local SQLite file past
    it: the quarantine entries of a run whose every row fails must not all sit in memory.

    ``encode`` / ``decode`` turn an item into JSON-able data and back; ``key`` names an item
    for :meth:`last_per_key` (the store writes one row per key: the last one wins). The file
    lives in the process's scratch folder (:func:`crm_sync.pipeline.results.index_dir`, removed
    when the task ends) and goes when the list is closed or garbage-collected."""

    def __init__(
        self,
        encode: Callable[[T], Any],
        decode: Callable[[Any], T],
        key: Callable[[T], str],
        buffer: int = 2000,
    ):
        self.encode, self.decode, self.key, self.buffer = encode, decode, key, buffer
        self._mem: list[T] = []
        self._db: sqlite3.Connection | None = None
        self._on_disk = 0
        self._finalizer: weakref.finalize | None = None
        self.path: Path | None = None  # the file, once the list spilled

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            from crm_sync.pipeline.results import index_dir

            folder = index_dir()
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=folder, suffix=".list.db")
            os.close(fd)
            self.path = Path(name)
            self._db = sqlite3.connect(name)
            self._db.executescript(
                "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                "CREATE TABLE item (n INTEGER PRIMARY KEY, k TEXT NOT NULL, v TEXT NOT NULL);"
                "CREATE INDEX item_k ON item (k);"
            )
            self._finalizer = weakref.finalize(self, _drop, self._db, Path(name))
        return self._db

    def append(self, item: T) -> None:
        self._mem.append(item)
        if len(self._mem) >= self.buffer:
            self._spill()

    def extend(self, items: Iterable[T]) -> None:
        for item in items:
            self.append(item)

    def _spill(self) -> None:
        if not self._mem:
            return
        db = self._open()
        db.executemany(
            "INSERT INTO item VALUES (?, ?, ?)",
            [
                (self._on_disk + i + 1, self.key(x), dumps(self.encode(x)))
                for i, x in enumerate(self._mem)
            ],
        )
        db.commit()
        self._on_disk += len(self._mem)
        self._mem = []

    @property
    def spilled(self) -> int:
        """Items moved to disk so far."""
        return self._on_disk

    def __len__(self) -> int:
        return self._on_disk + len(self._mem)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[T]:
        if self._db is None:
            return
        cur = self._db.execute(sql, params)
        while rows := cur.fetchmany(self.buffer):
            for (v,) in rows:
                yield self.decode(json.loads(v))

    def __iter__(self) -> Iterator[T]:
        yield from self._rows("SELECT v FROM item ORDER BY n")
        yield from list(self._mem)

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> list[T]: ...
    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return [self[j] for j in range(len(self))[i]]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        if i >= self._on_disk:
            return self._mem[i - self._on_disk]
        return next(self._rows("SELECT v FROM item WHERE n = ?", (i + 1,)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DiskList({len(self)} items, {self._on_disk} on disk)"

    def last_per_key(self, size: int) -> Iterator[list[T]]:
        """The last item of every key, ``size`` at a time (in the order of each key's first
        item, as a dict keyed by it would keep them)."""
        if self._db is None:
            last: dict[str, T] = {}
            for x in self._mem:
                last[self.key(x)] = x
            items = list(last.values())
            for start in range(0, len(items), size):
                yield items[start : start + size]
            return
        self._spill()
        sql = (
            "SELECT (SELECT v FROM item AS last WHERE last.k = item.k ORDER BY n DESC LIMIT 1)"
            " FROM item WHERE n IN (SELECT MIN(n) FROM item GROUP BY k) ORDER BY n"
        )
        chunk: list[T] = []
        for x in self._rows(sql):
            chunk.append(x)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._db = None
        self._mem = []


def _drop(db: sqlite3.Connection, path: Path) -> None:
    db.close()
    path.unlink(missing_ok=True)
