"""Write results: one row per record a load stage attempted, in one shape for every DAG.

A load stage appends the rows of each batch as soon as the batch returns (``results/<side>.jsonl``),
so a retried task skips what is done and the record stage sees every outcome, including those of
an attempt that crashed later. Rows are keyed by the plan's ``pair``; the answers for a whole run
(done pairs, the latest row per pair) are indexed on disk, never held in memory.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

from crm_sync.clients.results import WriteResult
from crm_sync.pipeline.files import DiskIndex, RunFolder, chunked


class ResultRow(TypedDict, total=False):
    pair: str  # the plan this row answers
    target: str  # "salesforce" | "leadgen"
    kind: str | None  # what was written when a DAG writes several kinds (account, membership, ...)
    op: str  # create | update | delete | upsert | present | dry_run
    success: bool
    id: str | None
    created: bool | None
    unchanged: bool
    error_code: str | None
    error_message: str | None
    error_fields: list[str]


def _row(pair: str, target: str, op: str, kind: str | None, **fields: Any) -> ResultRow:
    row: dict[str, Any] = {"pair": pair, "target": target, "kind": kind, "op": op}
    row.update(fields)
    return row  # type: ignore[return-value]


def result_row(
    pair: str, target: str, op: str, res: WriteResult, *, kind: str | None = None, **extra: Any
) -> ResultRow:
    """The row for one :class:`WriteResult` of the target system (``extra``: domain facts)."""
    return _row(
        pair,
        target,
        op,
        kind,
        success=bool(res.success),
        id=res.id,
        created=res.created,
        unchanged=bool(res.unchanged),
        error_code=res.error_code,
        error_message=res.error_message,
        error_fields=[f for e in res.errors for f in e.fields],
        **extra,
    )


def outcome_row(
    pair: str,
    target: str,
    op: str,
    *,
    id: str | None,
    success: bool = True,
    kind: str | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    error_fields: Sequence[str] = (),
    **extra: Any,
) -> ResultRow:
    """A row the load stage decided itself (a record adopted, found present, or not found)."""
    fields: dict[str, Any] = {
        "success": success,
        "id": id,
        "created": False,
        "unchanged": False,
        "error_code": error_code,
        "error_message": error_message,
        "error_fields": list(error_fields),
    }
    fields.update(extra)
    return _row(pair, target, op, kind, **fields)


class ResultLog:
    """The results of one side of one run (``results/<name>.jsonl``), appended batch by batch.

    :meth:`done` and :meth:`latest` answer for every row of the run without holding them in
    memory: they are indexed in a task-local SQLite file (:class:`ResultIndex`), so a million
    results cost disk, not RAM."""

    def __init__(self, folder: RunFolder, name: str):
        self.folder = folder
        self.name = f"results/{name}.jsonl"

    def append(self, rows: Sequence[ResultRow]) -> None:
        self.folder.append_jsonl(self.name, list(rows))  # type: ignore[arg-type]

    def rows(self) -> Iterable[ResultRow]:
        return self.folder.read_jsonl(self.name)  # type: ignore[return-value]

    def done(self, *, success_only: bool = False) -> ResultIndex:
        """Pairs a retried load must not write again (all answered ones, or only successes):
        a set of pairs (``in``, ``len``, iteration, ``|=``)."""
        index = ResultIndex()
        for chunk in chunked(self.rows(), INDEX_CHUNK):
            index.add(r["pair"] for r in chunk if r["success"] or not success_only)
        return index

    def latest(self) -> ResultIndex:
        """One row per pair: a success wins over failures; otherwise the last answer. A
        mapping of pair -> row (``get``, ``[]``, ``in``, ``values()``, ``len``)."""
        index = ResultIndex()
        for chunk in chunked(self.rows(), INDEX_CHUNK):
            before = index.get_many({r["pair"] for r in chunk})
            keep: dict[str, ResultRow] = {}
            for r in chunk:
                prev = keep.get(r["pair"]) or before.get(r["pair"])
                if prev is None or r["success"] or not prev["success"]:
                    keep[r["pair"]] = r
            index.put(keep)
        return index


INDEX_CHUNK = 2000


class ResultIndex(Mapping[str, ResultRow]):
    """Result rows by pair in a temporary SQLite file under the scratch folder (removed when
    the index is closed or garbage-collected). Read-only as a mapping; :meth:`add` (and
    ``|=``) add bare pairs, as a set of done pairs needs."""

    def __init__(self) -> None:
        folder = index_dir()
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, suffix=".db")
        os.close(fd)
        self._path = Path(name)
        self._db = DiskIndex(self._path)
        self._n = 0
        self._finalizer = weakref.finalize(self, _drop, self._db, self._path)

    def close(self) -> None:
        self._finalizer()

    def put(self, rows: Mapping[str, ResultRow]) -> None:
        new = len(rows) - len(self._db.get_many(rows)) if self._n else len(rows)
        self._db.put_many(rows.items())
        self._n += new

    def add(self, pairs: Iterable[str]) -> None:
        self.put({p: {"pair": p} for p in pairs})  # type: ignore[misc]

    def __ior__(self, pairs: Iterable[str]) -> ResultIndex:  # type: ignore[override,misc]
        self.add(pairs)
        return self

    def get_many(self, pairs: Iterable[str]) -> dict[str, ResultRow]:
        return self._db.get_many(pairs)  # type: ignore[return-value]

    def __getitem__(self, pair: str) -> ResultRow:
        found = self._db.get_many([pair])
        if pair not in found:
            raise KeyError(pair)
        return found[pair]

    def __contains__(self, pair: object) -> bool:
        return isinstance(pair, str) and pair in self._db

    def __iter__(self) -> Iterator[str]:
        for chunk in self._db.key_chunks(INDEX_CHUNK):
            for (pair,) in chunk:
                yield pair

    def __len__(self) -> int:
        return self._n

    def values(self) -> Iterator[ResultRow]:  # type: ignore[override]
        """Every row, streamed (one chunk of rows in memory at a time)."""
        for chunk in self._db.key_chunks(INDEX_CHUNK):
            found = self._db.get_many(pair for (pair,) in chunk)
            for (pair,) in chunk:
                yield found[pair]


def index_dir() -> Path:
    """Where this process keeps its result indexes: a task runs alone in its process, and the
    task runtime removes the folder when the task ends (an index not closed is gone then too)."""
    from crm_sync.settings import scratch_dir

    return scratch_dir() / "results" / str(os.getpid())


def _drop(db: DiskIndex, path: Path) -> None:
    db.close()
    path.unlink(missing_ok=True)
