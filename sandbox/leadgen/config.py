"""Runtime configuration: limits, latency and random faults, changeable through the admin API.

Start-up values come from command-line flags; ``POST /__sandbox__/config`` changes them live and
``POST /__sandbox__/reset`` puts the start-up values back.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any

from .clock import zone

# "drop_after" processes the call (a write is committed) and then drops the connection without
# answering: the case where a client cannot know whether its write was applied.
FAULT_KINDS = ("999", "drop", "drop_after", "500", "107")
# The real API's limits (reference 4), for `limits real`.
REAL_LIMITS = {"per_second_limit": 10, "daily_limit": 50000}


@dataclass
class RuntimeConfig:
    """Live knobs of the sandbox.

    * ``per_second_limit`` -- calls accepted in any sliding 1-second window (API: 10); 0 = off.
    * ``daily_limit`` -- calls per UTC day of the account clock (API default 50,000); 0 = off.
    * ``max_objects`` -- objects per batch write and values per where-list (API: 500) -> 209.
    * ``page_cap`` -- the most rows one read returns, whatever ``limit`` says (getLeads: 500).
    * ``date_range_page_cap`` -- getLeadsDateRange accepts larger pages (RMUIT used 5,000).
    * ``latency_ms`` / ``latency_jitter_ms`` -- added to every API call (not admin calls).
    * ``fault_rate`` -- probability that an API call fails with one of ``fault_kinds``,
      drawn from a RNG seeded with ``fault_seed`` (reproducible runs).
    * ``account_timezone`` -- the account's time zone (IANA name). API timestamps are answered,
      and date arguments read, in this zone; storage stays UTC. ``UTC`` is the v1.2 behaviour
      the reference assumes; another zone reproduces an account whose API speaks local time.
    """

    per_second_limit: int = 10
    daily_limit: int = 50000
    max_objects: int = 500
    page_cap: int = 500
    date_range_page_cap: int = 5000
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: list[str] = field(default_factory=lambda: ["999"])
    fault_seed: int = 0
    account_timezone: str = "UTC"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def update(self, changes: dict[str, Any]) -> list[str]:
        """Apply ``changes`` after checking them all; returns the keys changed.

        Raises ``ValueError`` naming the bad key so the admin API can answer 400.
        """
        known = {f.name: f for f in dataclasses.fields(self)}
        checked: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown config key {key!r}; known: {', '.join(sorted(known))}")
            if key == "fault_kinds":
                kinds = [value] if isinstance(value, str) else list(value)
                bad = [k for k in kinds if k not in FAULT_KINDS]
                if bad or not kinds:
                    raise ValueError(f"fault_kinds must be a non-empty subset of {FAULT_KINDS}")
                checked[key] = [str(k) for k in kinds]
                continue
            if key == "account_timezone":
                zone(str(value))  # ValueError names the bad zone
                checked[key] = str(value)
                continue
            current = getattr(self, key)
            try:
                number = float(value) if isinstance(current, float) else int(value)
            except (TypeError, ValueError):
                raise ValueError(f"{key} must be a number, got {value!r}") from None
            if number < 0:
                raise ValueError(f"{key} must not be negative")
            if key == "fault_rate" and number > 1:
                raise ValueError("fault_rate is a probability between 0 and 1")
            if key in ("max_objects", "page_cap", "date_range_page_cap") and number < 1:
                raise ValueError(f"{key} must be at least 1")
            checked[key] = number
        for key, value in checked.items():
            setattr(self, key, value)
        return list(checked)


class ConfigHolder:
    """The live config plus the start-up copy that reset restores."""

    def __init__(self, initial: RuntimeConfig):
        self._initial = dataclasses.replace(initial, fault_kinds=list(initial.fault_kinds))
        self.current = dataclasses.replace(initial, fault_kinds=list(initial.fault_kinds))
        self.lock = threading.Lock()

    def restore(self) -> None:
        """Put the start-up values back, in place (method contexts hold ``current``)."""
        with self.lock:
            for f in dataclasses.fields(self._initial):
                value = getattr(self._initial, f.name)
                setattr(self.current, f.name, list(value) if isinstance(value, list) else value)
