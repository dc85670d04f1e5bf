"""What the tasks of one run hand each other: JSON-lines and JSON files in the run folder, plus a
task-local on-disk index for lookups by key.

The run folder lives wherever ``CRM_SYNC_RUN_STORAGE`` points (``crm_sync.settings.run_storage``):
a local folder by default, or object storage through an Airflow connection
(``s3://<conn id>@<bucket>/<prefix>``), so workers need no shared disk. Every access goes through
Airflow's ``ObjectStoragePath`` and the fsspec filesystem it attaches for that connection.

Readable with ``jq`` when debugging a run; streamed in chunks so memory stays bounded. A file
appears whole or not at all: locally it is written next to its final name and renamed; on object
storage the object is created only when the upload completes (one PUT, or a multipart upload
completed at the end), and an upload that fails half way is discarded. Appends never rewrite a
file: each one adds a *part* (``results/lg.jsonl.parts/000001.jsonl``), so a crash mid-append
leaves whole parts only, and the same layout works on object storage, which has no append.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from crm_sync.errors import ConfigError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath
    from fsspec import AbstractFileSystem

PARTS = ".parts"
TMP = ".tmp"
# Filesystems where a rename is atomic and cheap (write next to the name, then rename).
LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
# Read-ahead and upload block on object storage: bounds the memory an open file holds (s3fs
# defaults to 50 MiB) and stays above S3's 5 MiB minimum part of a multipart upload.
BLOCK_SIZE = 8 * 2**20
# Encoded lines are written in batches of about this size (fewer calls into the filesystem).
WRITE_BATCH = 256 * 2**10


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


def storage_path(location: str | os.PathLike[str] | ObjectStoragePath) -> ObjectStoragePath:
    """``location`` as an ``ObjectStoragePath``: a URL (``file:///srv/runs``,
    ``s3://conn_id@bucket/prefix``: the connection before ``@``, as Airflow reads it) or a
    local path."""
    from airflow.sdk import ObjectStoragePath

    if isinstance(location, ObjectStoragePath):
        return location
    text = os.fspath(location)
    if "://" not in text:
        text = Path(text).absolute().as_uri()
    try:
        return ObjectStoragePath(text)
    except ValueError as exc:  # universal-pathlib: "Unsupported filesystem: ..."
        raise ConfigError(f"run storage {text}: {exc}") from exc


def _write_rows(fh: BinaryIO, rows: Iterable[dict[str, Any]]) -> int:
    """JSON lines of ``rows`` into ``fh`` in batches; how many rows."""
    n, size, batch = 0, 0, []
    for row in rows:
        line = (dumps(row) + "\n").encode("utf-8")
        batch.append(line)
        size += len(line)
        n += 1
        if size >= WRITE_BATCH:
            fh.write(b"".join(batch))
            batch, size = [], 0
    if batch:
        fh.write(b"".join(batch))
    return n


def _discard(fh: Any) -> None:
    """Drop an object-storage upload that failed half way, so none of it becomes visible.

    fsspec's buffered files upload what they hold when closed (also from ``__del__``): the file
    is marked closed after its ``discard`` (s3fs: aborts the multipart upload, drops the buffer).
    fsspec's in-memory files (tests only) are visible from the start and cannot be discarded."""
    discard = getattr(fh, "discard", None)
    if callable(discard):
        discard()
    try:
        fh.closed = True
    except AttributeError:
        pass


class RunFolder:
    """The files of one DAG run, by name (``"plans/plans.jsonl"``).

    Every stage reads and writes through this object, never through paths of its own, so where
    the folder lives is one setting. ``root`` is a URL, a local path or an ``ObjectStoragePath``.
    """

    def __init__(self, root: str | os.PathLike[str] | ObjectStoragePath):
        self.root = storage_path(root)
        self.local = self.root.protocol in LOCAL_PROTOCOLS

    def __repr__(self) -> str:
        return f"RunFolder({self.root})"

    @property
    def fs(self) -> AbstractFileSystem:
        """The filesystem of the root (through its Airflow connection, if it names one)."""
        try:
            return self.root.fs
        except ValueError as exc:  # Airflow: "No filesystem registered for scheme ..."
            raise ConfigError(
                f"run storage {self.root}: {exc} (is the Airflow provider for it installed?)"
            ) from exc

    def _path(self, name: str) -> str:
        """The filesystem path of ``name``; object-storage listings cached by this process are
        dropped first, so another worker's files are seen."""
        path = f"{self.root.path.rstrip('/')}/{name}"
        self.fs.invalidate_cache(path)
        return path

    @contextmanager
    def _create(self, path: str) -> Iterator[BinaryIO]:
        """A binary file that appears at ``path`` whole, when the block ends without error."""
        fs = self.fs
        if self.local:
            # A crash never leaves a half-written file a retry trusts: write, then rename.
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            tmp = path + TMP
            try:
                with fs.open(tmp, "wb") as fh:
                    yield fh
                fs.mv(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
            return
        # The object is created when the upload completes: one PUT below BLOCK_SIZE, else a
        # multipart upload completed by close().
        fh = fs.open(path, "wb", block_size=BLOCK_SIZE)
        try:
            yield fh
        except BaseException:
            _discard(fh)
            raise
        fh.close()

    def _lines(self, path: str) -> Iterator[dict[str, Any]]:
        """The rows of one JSON-lines file, streamed (nothing when it does not exist)."""
        try:
            raw = self.fs.open(path, "rb", block_size=BLOCK_SIZE)
        except FileNotFoundError:
            return
        with raw, io.TextIOWrapper(raw, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line:
                    yield json.loads(line)

    def _parts(self, path: str) -> list[str]:
        """The appended parts of ``path``, in order (their full paths)."""
        parts = path + PARTS
        self.fs.invalidate_cache(parts)  # its listing may be cached from before another's append
        try:
            entries = self.fs.ls(parts, detail=False)
        except FileNotFoundError:
            return []
        found = (e.rstrip("/").rsplit("/", 1)[-1] for e in entries)
        return [f"{parts}/{n}" for n in sorted(n for n in found if _is_part(n))]

    def exists(self, name: str) -> bool:
        p = self._path(name)
        return self.fs.exists(p) or bool(self._parts(p))

    def clear(self) -> None:
        """Remove everything: a new run plans from scratch against both systems' current state."""
        root = self._path("").rstrip("/")
        if self.fs.exists(root):
            self.fs.rm(root, recursive=True)

    def write_jsonl(self, name: str, rows: Iterable[dict[str, Any]]) -> int:
        """Replace ``name`` with ``rows`` (and drop its appended parts); return how many."""
        p = self._path(name)
        if self.fs.exists(p + PARTS):
            self.fs.rm(p + PARTS, recursive=True)
        with self._create(p) as fh:
            return _write_rows(fh, rows)

    def append_jsonl(self, name: str, rows: Sequence[dict[str, Any]]) -> int:
        """Add ``rows`` to ``name`` as one new part; return how many."""
        if not rows:
            return 0
        p = self._path(name)
        last = max((int(_stem(f)) for f in self._parts(p)), default=0)
        with self._create(f"{p}{PARTS}/{last + 1:06d}.jsonl") as fh:
            return _write_rows(fh, rows)

    def read_jsonl(self, name: str) -> Iterator[dict[str, Any]]:
        """The rows of ``name``: the file first, then its appended parts in order."""
        p = self._path(name)
        yield from self._lines(p)
        for part in self._parts(p):
            yield from self._lines(part)

    def write_json(self, name: str, obj: Any) -> None:
        text = json.dumps(obj, default=_default, indent=2, ensure_ascii=False)
        with self._create(self._path(name)) as fh:
            fh.write(text.encode("utf-8"))

    def read_json(self, name: str, default: Any = None) -> Any:
        try:
            with self.fs.open(self._path(name), "rb") as fh:
                return json.loads(fh.read().decode("utf-8"))
        except FileNotFoundError:
            return default

    def local_path(self, name: str) -> Path | str:
        """Where ``name`` is, for humans (messages, logs): a local file path (its folder is
        created, for tools that need one) or, on object storage, its URL."""
        if not self.local:
            return str(self.root / name)
        p = Path(self.root.path) / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].split(".", 1)[0]


def _is_part(name: str) -> bool:
    """``000001.jsonl``, not an unfinished ``000001.jsonl.tmp``."""
    return name.endswith(".jsonl") and name[: -len(".jsonl")].isdigit()


class DiskIndex:
    """Records by key in a task-local SQLite file: lookups by key without holding every record
    in memory. ``columns`` are extra text columns a caller can query (e.g. an email); see
    :meth:`index` and :meth:`where_in`."""

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

    def index(self, *columns: str) -> None:
        """An SQLite index on each of ``columns`` (build it after the bulk ``put_many``: one
        sort instead of a B-tree update per row)."""
        for c in columns:
            if c not in self.columns:
                raise ValueError(f"{c!r} is not a column of this index: {self.columns}")
            self.db.execute(f"CREATE INDEX IF NOT EXISTS ix_rec_{c} ON rec ({c})")
        self.db.commit()

    def where_in(self, column: str, values: Iterable[str]) -> dict[str, Any]:
        """Key -> value of the rows whose ``column`` is one of ``values``."""
        if column not in self.columns:
            raise ValueError(f"{column!r} is not a column of this index: {self.columns}")
        out: dict[str, Any] = {}
        for chunk in chunked(list(dict.fromkeys(values)), 500):
            q = f"SELECT k, v FROM rec WHERE {column} IN ({','.join('?' * len(chunk))})"
            out.update({k: json.loads(v) for k, v in self.db.execute(q, chunk)})
        return out

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
