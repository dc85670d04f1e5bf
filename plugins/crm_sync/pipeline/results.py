"""Write results: one row per record a load stage attempted, in one shape for every DAG.

A load stage appends the rows of each batch as soon as the batch returns (``results/<side>.jsonl``),
so a retried task skips what is done and the record stage sees every outcome, including those of
an attempt that crashed later. Rows are keyed by the plan's ``pair``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    """The results of one side of one run (``results/<name>.jsonl``), appended batch by batch."""

    def __init__(self, folder: RunFolder, name: str):
        self.folder = folder
        self.name = f"results/{name}.jsonl"

    def append(self, rows: Sequence[ResultRow]) -> None:
        self.folder.append_jsonl(self.name, list(rows))  # type: ignore[arg-type]

    def rows(self) -> Iterable[ResultRow]:
        return self.folder.read_jsonl(self.name)  # type: ignore[return-value]

    def done(self, *, success_only: bool = False) -> set[str]:
        """Pairs a retried load must not write again (all answered ones, or only successes)."""
        return {r["pair"] for r in self.rows() if r["success"] or not success_only}

    def latest(self) -> dict[str, ResultRow]:
        """One row per pair: a success wins over failures; otherwise the last answer."""
        out: dict[str, ResultRow] = {}
        for r in self.rows():
            if _supersedes(r, out.get(r["pair"])):
                out[r["pair"]] = r
        return out

    def latest_index(self, path: Path) -> DiskIndex:
        """:meth:`latest` in a task-local on-disk index (``path``), for a stage that must not
        hold one result per record of a large run in memory; the caller closes it."""
        index = DiskIndex(path)
        for chunk in chunked(self.rows(), 2000):
            earlier = index.get_many({r["pair"] for r in chunk})
            for r in chunk:
                if _supersedes(r, earlier.get(r["pair"])):
                    earlier[r["pair"]] = r
            index.put_many((r["pair"], r) for r in earlier.values())
        return index


def _supersedes(row: ResultRow, prev: ResultRow | None) -> bool:
    """Whether ``row`` is a pair's answer over ``prev``: a success wins over failures, otherwise
    the later answer counts."""
    return prev is None or row["success"] or not prev["success"]
