"""The account clock and the API's timestamp formats.

Every timestamp the sandbox writes comes from :class:`AccountClock`, so tests can freeze time
(``POST /__sandbox__/clock``) and get reproducible ``createTimestamp``/``updateTimestamp``
values. The API (v1.2) reads and writes ``YYYY-MM-DD HH:MM:SS`` with no zone marker; the
sandbox stores UTC and, when the account time zone (config ``account_timezone``) is not UTC,
answers and reads API timestamps in that zone (:func:`to_zone` / :func:`parse_in_zone`).
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TS_FORMAT = "%Y-%m-%d %H:%M:%S"
# getEmailEvents uses its own, minute-precision format (vendor sample: "2016/11/01 16:37").
EMAIL_EVENT_FORMAT = "%Y/%m/%d %H:%M"


def parse_timestamp(value: object) -> datetime:
    """Parse an API or admin timestamp into an aware UTC datetime (seconds precision).

    Accepts the API's own ``YYYY-MM-DD HH:MM:SS``, a date alone (midnight), and ISO 8601
    (``T`` separator, optional fraction and offset; offsets are converted to UTC). Raises
    ``ValueError`` for anything else so callers can answer with a clear error.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a timestamp: {value!r} (expected YYYY-MM-DD HH:MM:SS)") from None
    else:
        raise ValueError(f"not a timestamp: {value!r} (expected YYYY-MM-DD HH:MM:SS)")
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.replace(microsecond=0)


@lru_cache(maxsize=32)
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo called ``name``; ``ValueError`` for an unknown zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as UTC or America/New_York)"
        ) from None


def parse_in_zone(value: object, zone_name: str) -> datetime:
    """An API argument (naive = the account zone) -> aware UTC datetime, seconds precision."""
    if isinstance(value, str) and zone_name != "UTC":
        text = value.strip()
        if text and not text.endswith("Z") and "+" not in text[10:] and "-" not in text[10:]:
            try:
                naive = datetime.fromisoformat(text)
            except ValueError:
                naive = None
            if naive is not None and naive.tzinfo is None:
                return parse_timestamp(naive.replace(tzinfo=zone(zone_name)))
    return parse_timestamp(value)


def to_zone(stored: str | None, zone_name: str, fmt: str = "%Y-%m-%d %H:%M:%S") -> str | None:
    """A stored UTC timestamp -> the API's text in the account zone (``fmt``)."""
    if stored is None or (zone_name == "UTC" and fmt == TS_FORMAT):
        return stored
    try:
        dt = datetime.strptime(stored, TS_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return stored
    return dt.astimezone(zone(zone_name)).strftime(fmt)


def format_timestamp(dt: datetime) -> str:
    """Format an aware or naive-UTC datetime the way the API does."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return dt.strftime(TS_FORMAT)


class AccountClock:
    """Real UTC time, or a frozen instant set through the admin API.

    Frozen time does not tick: every write made while frozen gets the same timestamp, which is
    exactly what a test wants when it asserts on ``updateTimestamp`` or windows. Thread-safe
    because the server runs database work in a thread pool.
    """

    def __init__(self, frozen: datetime | None = None):
        self._lock = threading.Lock()
        self._frozen = frozen

    @property
    def frozen(self) -> datetime | None:
        with self._lock:
            return self._frozen

    def freeze(self, at: datetime | None) -> None:
        with self._lock:
            self._frozen = at.astimezone(UTC).replace(microsecond=0) if at else None

    def advance(self, seconds: float) -> datetime:
        """Move a frozen clock forward (tests use it to separate two writes)."""
        with self._lock:
            if self._frozen is None:
                raise ValueError("the clock is not frozen; freeze it before advancing it")
            self._frozen = self._frozen + timedelta(seconds=seconds)
            return self._frozen

    def now(self) -> datetime:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
        return datetime.now(UTC).replace(microsecond=0)

    def now_str(self) -> str:
        return format_timestamp(self.now())
