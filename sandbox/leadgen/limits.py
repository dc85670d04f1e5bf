"""Call accounting, rate limits and fault injection for API calls (never for admin calls).

* Per-second limit: a sliding window over real (monotonic) time -- at most N accepted calls in
  any 1-second window, else 107. Real time, not the account clock: a frozen clock must not
  freeze the limiter.
* Daily cap: accepted calls per UTC day *of the account clock* (so a test can move the clock to
  tomorrow to refill it), else 106. ``callCount``/``queryLimit`` in every envelope come from here.
* Faults: deterministic ("fail the next N calls of method M with fault F") or random at a rate
  from a seeded RNG, so a failing run can be replayed.
"""

from __future__ import annotations

import collections
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .config import FAULT_KINDS


class SlidingWindowLimiter:
    """At most ``limit`` accepted events in any ``window`` seconds."""

    def __init__(self, window: float = 1.0, clock=time.monotonic):
        self.window = window
        self._clock = clock
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def try_acquire(self, limit: int) -> bool:
        if limit <= 0:
            return True
        with self._lock:
            now = self._clock()
            while self._times and self._times[0] <= now - self.window:
                self._times.popleft()
            if len(self._times) >= limit:
                return False
            self._times.append(now)
            return True

    def clear(self) -> None:
        with self._lock:
            self._times.clear()


@dataclass
class CallStats:
    """What the admin API reports: every authenticated API request, by method and outcome."""

    total: int = 0
    by_method: collections.Counter = field(default_factory=collections.Counter)
    rejected: collections.Counter = field(default_factory=collections.Counter)
    daily_day: str = ""
    daily_count: int = 0

    def to_dict(self, daily_limit: int) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_method": dict(sorted(self.by_method.items())),
            "rejected": dict(sorted(self.rejected.items())),
            "daily": {
                "day": self.daily_day,
                "callCount": self.daily_count,
                "queryLimit": daily_limit,
            },
        }


@dataclass
class ScheduledFault:
    method: str  # API method name or "*"
    fault: str
    remaining: int
    skip: int = 0  # matching calls to let through first ("fail the 2nd batch")


class FaultInjector:
    """Deterministic fault queue plus a seeded random fault rate."""

    def __init__(self, seed: int = 0):
        self._lock = threading.Lock()
        self._queue: list[ScheduledFault] = []
        self._rng = random.Random(seed)
        self._seed = seed

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed)
            self._seed = seed

    def schedule(self, method: str, fault: str, count: int, after: int = 0) -> None:
        """Fail ``count`` calls of ``method`` ("*" = any) with ``fault``, after letting the next
        ``after`` matching calls through."""
        if fault not in FAULT_KINDS:
            raise ValueError(f"fault must be one of {FAULT_KINDS}, got {fault!r}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if after < 0:
            raise ValueError("after must not be negative")
        with self._lock:
            self._queue.append(ScheduledFault(method or "*", fault, count, after))

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"method": f.method, "fault": f.fault, "remaining": f.remaining, "after": f.skip}
                for f in self._queue
            ]

    def draw(self, method: str, rate: float, kinds: list[str]) -> str | None:
        """The fault for this call, if any; scheduled faults first, in the order scheduled."""
        with self._lock:
            for item in self._queue:
                if item.method in ("*", method):
                    if item.skip > 0:
                        item.skip -= 1
                        return None
                    item.remaining -= 1
                    if item.remaining <= 0:
                        self._queue.remove(item)
                    return item.fault
            if rate > 0 and self._rng.random() < rate:
                return self._rng.choice(kinds)
        return None

    def jitter(self, spread_ms: float) -> float:
        with self._lock:
            return self._rng.uniform(0, spread_ms) if spread_ms > 0 else 0.0
