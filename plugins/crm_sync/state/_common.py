"""Time and chunking helpers shared by the store's parts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime


def utcnow() -> datetime:
    """Naive UTC 'now' as stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_db(dt: datetime | None) -> datetime | None:
    """Aware datetime -> naive UTC for storage."""
    if dt is None:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def from_db(dt: datetime | None) -> datetime | None:
    """Naive UTC from storage -> aware UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _chunks(values: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]
