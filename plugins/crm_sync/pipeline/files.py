"""JSON-lines files in the run folder: the hand-off format between stages.

Readable with ``jq`` when debugging a run; streamed in chunks so memory stays bounded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any


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


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]], *, append: bool = False) -> int:
    """Write rows; return how many. Writes to a temp file first unless appending, so a crash never
    leaves a half-written file that a retry would trust."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    if append:
        with path.open("a", encoding="utf-8") as fh:
            for row in rows:
                fh.write(dumps(row) + "\n")
                n += 1
            fh.flush()
        return n
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(dumps(row) + "\n")
            n += 1
    tmp.replace(path)
    return n


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                yield json.loads(line)


def chunked(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    buf: list[Any] = []
    for r in rows:
        buf.append(r)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(
        json.dumps(obj, default=_default, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    tmp.replace(path)


def read_json(path: Path, default: Any = None) -> Any:
    if not path.exists():
        return default
    return json.loads(path.read_text(encoding="utf-8"))


class DiskMap:
    """A key -> JSON value map in a SQLite file in the run folder: lookups by key without
    holding every value in memory."""

    def __init__(self, path: Path):
        import sqlite3

        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path))
        self._db.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)")

    def put_many(self, items: Iterable[tuple[str, Any]]) -> int:
        n = 0
        for chunk in chunked(items, 2000):
            self._db.executemany(
                "INSERT OR REPLACE INTO kv VALUES (?, ?)", [(k, dumps(v)) for k, v in chunk]
            )
            n += len(chunk)
        self._db.commit()
        return n

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for chunk in chunked(list(keys), 500):
            q = f"SELECT k, v FROM kv WHERE k IN ({','.join('?' * len(chunk))})"
            out.update({k: json.loads(v) for k, v in self._db.execute(q, chunk)})
        return out

    def __contains__(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM kv WHERE k = ?", (key,)).fetchone() is not None

    def close(self) -> None:
        self._db.close()
