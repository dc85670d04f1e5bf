"""What the tasks of one run hand each other: JSON-lines and JSON files in the run folder, plus a
task-local on-disk index for lookups by key.

Readable with ``jq`` when debugging a run; streamed in chunks so memory stays bounded. Appends
never rewrite a file: each one adds a *part* (``results/lg.jsonl.parts/000001.jsonl``), so a crash
mid-append leaves whole parts only, and the same layout works on object storage, which has no
append.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

PARTS = ".parts"


def _default(o: Any) -> Any:
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, Decimal):
        return str(o)
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=_default, separators=(",", ":"), ensure_ascii=False)


def chunked(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    buf: list[Any] = []
    for r in rows:
        buf.append(r)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def _write_lines(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write to a temp file, then rename: a crash never leaves a half-written file a retry trusts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(dumps(row) + "\n")
            n += 1
    tmp.replace(path)
    return n


def _read_lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                yield json.loads(line)


class RunFolder:
    """The files of one DAG run, by name (``"plans/plans.jsonl"``).

    Every stage reads and writes through this object, never through paths of its own, so where
    the folder lives is one setting.
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunFolder({self.root})"

    def _path(self, name: str) -> Path:
        return self.root / name

    def exists(self, name: str) -> bool:
        p = self._path(name)
        return p.exists() or p.with_name(p.name + PARTS).exists()

    def clear(self) -> None:
        """Remove everything: a new run plans from scratch against both systems' current state."""
        if self.root.exists():
            shutil.rmtree(self.root)

    def write_jsonl(self, name: str, rows: Iterable[dict[str, Any]]) -> int:
        """Replace ``name`` with ``rows`` (and drop its appended parts); return how many."""
        p = self._path(name)
        parts = p.with_name(p.name + PARTS)
        if parts.exists():
            shutil.rmtree(parts)
        return _write_lines(p, rows)

    def append_jsonl(self, name: str, rows: Sequence[dict[str, Any]]) -> int:
        """Add ``rows`` to ``name`` as one new part; return how many."""
        if not rows:
            return 0
        p = self._path(name)
        parts = p.with_name(p.name + PARTS)
        parts.mkdir(parents=True, exist_ok=True)
        seq = 1 + max((int(f.stem) for f in parts.glob("*.jsonl") if f.stem.isdigit()), default=0)
        return _write_lines(parts / f"{seq:06d}.jsonl", rows)

    def read_jsonl(self, name: str) -> Iterator[dict[str, Any]]:
        """The rows of ``name``: the file first, then its appended parts in order."""
        p = self._path(name)
        if p.exists():
            yield from _read_lines(p)
        parts = p.with_name(p.name + PARTS)
        if parts.exists():
            for f in sorted(parts.glob("*.jsonl")):
                yield from _read_lines(f)

    def write_json(self, name: str, obj: Any) -> None:
        p = self._path(name)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(
            json.dumps(obj, default=_default, indent=2, ensure_ascii=False), encoding="utf-8"
        )
        tmp.replace(p)

    def read_json(self, name: str, default: Any = None) -> Any:
        p = self._path(name)
        if not p.exists():
            return default
        return json.loads(p.read_text(encoding="utf-8"))

    def local_path(self, name: str) -> Path:
        """A local file path for ``name`` (for humans and for tools that need a path)."""
        p = self._path(name)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


class DiskIndex:
    """Records by key in a task-local SQLite file: lookups by key without holding every record
    in memory. ``columns`` are extra indexed text columns a caller can query (e.g. an email)."""

    def __init__(self, path: Path, columns: Sequence[str] = ()):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.columns = tuple(columns)
        self.db = sqlite3.connect(str(path))
        extra = "".join(f", {c} TEXT" for c in self.columns)
        self.db.executescript(
            f"DROP TABLE IF EXISTS rec; CREATE TABLE rec (k TEXT PRIMARY KEY, v TEXT{extra});"
        )

    def put_many(self, items: Iterable[tuple[str, Any] | tuple[Any, ...]]) -> int:
        """``(key, value, *column values)`` rows; a later key replaces an earlier one."""
        marks = ",".join("?" * (2 + len(self.columns)))
        n = 0
        for chunk in chunked(items, 2000):
            self.db.executemany(
                f"INSERT OR REPLACE INTO rec VALUES ({marks})",
                [(str(k), dumps(v), *rest) for k, v, *rest in chunk],
            )
            n += len(chunk)
        self.db.commit()
        return n

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for chunk in chunked([str(k) for k in keys], 500):
            q = f"SELECT k, v FROM rec WHERE k IN ({','.join('?' * len(chunk))})"
            out.update({k: json.loads(v) for k, v in self.db.execute(q, chunk)})
        return out

    def __contains__(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM rec WHERE k = ?", (key,)).fetchone() is not None

    def key_chunks(self, size: int, *columns: str) -> Iterator[list[tuple[str, ...]]]:
        """Keys (and the named columns) in insertion order, ``size`` at a time."""
        cols = "".join(f", {c}" for c in columns)
        cur = self.db.execute(f"SELECT k{cols} FROM rec ORDER BY rowid")
        while rows := cur.fetchmany(size):
            yield [tuple(r) for r in rows]

    def query(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Read-only SQL over the ``rec`` table (``k``, ``v`` and the extra columns)."""
        yield from self.db.execute(sql, params)

    def close(self) -> None:
        self.db.close()
