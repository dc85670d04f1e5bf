"""The people extract: the window's records plus the quarantined ones, each once."""

from __future__ import annotations

import pytest

from crm_sync.domains.people.extract import with_retries

pytestmark = pytest.mark.unit


def test_retries_the_window_already_returned_are_not_read_again() -> None:
    asked: list[list[str]] = []

    def fetch(ids: list[str]) -> list[dict]:
        asked.append(ids)
        return [{"id": int(i), "from": "retry"} for i in ids]

    window = ({"id": i, "from": "window"} for i in (1, 2, 3))
    out = list(with_retries(window, "id", ["3", "7", "9", "7"], fetch))
    assert [(r["id"], r["from"]) for r in out] == [
        (1, "window"), (2, "window"), (3, "window"), (7, "retry"), (9, "retry"),
    ]  # fmt: skip
    assert asked == [["7", "9"]]


def test_no_read_when_every_retry_was_in_the_window_or_there_is_none() -> None:
    def fetch(ids: list[str]) -> list[dict]:
        raise AssertionError(f"read {ids}")

    assert len(list(with_retries([{"Id": "00Q1"}], "Id", ["00Q1"], fetch))) == 1
    assert list(with_retries([], "Id", [], fetch)) == []
