"""Injected latency and faults, random (seeded) or deterministic, for reliability tests.

Call-level faults are decided before a request reaches its handler:

* ``SERVER_UNAVAILABLE`` -- HTTP 503 ``[{"errorCode": "SERVER_UNAVAILABLE", ...}]``
* ``UNABLE_TO_LOCK_ROW`` -- HTTP 400 ``[{"errorCode": "UNABLE_TO_LOCK_ROW", ...}]``
* ``REQUEST_LIMIT_EXCEEDED`` -- HTTP 403, as when the daily allocation is spent
  ("TotalRequests Limit exceeded.")
* ``CONCURRENT_LIMIT`` -- HTTP 403 ``REQUEST_LIMIT_EXCEEDED`` with the message of the
  concurrent long-request limit ("ConcurrentPerOrgLongTxn Limit exceeded."), which clears in
  seconds
* ``INVALID_SESSION_ID`` -- the caller's session ends and the call gets HTTP 401 (clients log
  in again)
* ``DROP`` -- the TCP connection is closed without any response; nothing was applied
* ``DROP_AFTER`` -- the request is processed and committed, *then* the connection is closed
  without the response (the "lost answer": the client cannot tell it from ``DROP``)

Per-record faults hit single records inside sObject Collections and Bulk ingest jobs:
``UNABLE_TO_LOCK_ROW`` and ``API_TEMPORARILY_UNAVAILABLE`` (the two codes clients re-submit).

Deterministic rules ("fail the next N calls matching path X with fault Y") are consumed in the
order they were added; random faults use one ``random.Random(seed)`` so a run is reproducible.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any

CALL_FAULTS = (
    "SERVER_UNAVAILABLE",
    "UNABLE_TO_LOCK_ROW",
    "REQUEST_LIMIT_EXCEEDED",
    "CONCURRENT_LIMIT",
    "INVALID_SESSION_ID",
    "DROP",
    "DROP_AFTER",
)
# Steps of a Bulk API 2.0 job a rule can target (``step``), see :func:`bulk_step`.
BULK_STEPS = (
    "create", "upload", "close", "poll", "results", "delete",
    "query_create", "query_poll", "query_results",
)  # fmt: skip
_JOBS = re.compile(r"/jobs/(ingest|query)(?:/([^/]+))?(?:/([^/]+))?/?$", re.IGNORECASE)


def bulk_step(method: str, path: str) -> str | None:
    """The Bulk API 2.0 job step of a request (None when it is not a job request)."""
    m = _JOBS.search(path)
    if not m:
        return None
    kind, job, tail = m.group(1).lower(), m.group(2), (m.group(3) or "").lower()
    method = method.upper()
    if kind == "query":
        if job is None:
            return "query_create" if method == "POST" else None
        if tail == "results":
            return "query_results"
        return {"GET": "query_poll", "DELETE": "delete"}.get(method) if not tail else None
    if job is None:
        return "create" if method == "POST" else None
    if tail == "batches":
        return "upload"
    if tail in ("successfulresults", "failedresults", "unprocessedrecords"):
        return "results"
    return {"PATCH": "close", "GET": "poll", "DELETE": "delete"}.get(method) if not tail else None


RECORD_FAULTS = ("UNABLE_TO_LOCK_ROW", "API_TEMPORARILY_UNAVAILABLE")


class FaultConfigError(ValueError):
    pass


@dataclass
class CallRule:
    fault: str
    remaining: int
    path: str | None = None  # regex searched in the request path
    kind: str | None = None  # call kind (query, collections, bulk2, login, ...)
    method: str | None = None
    step: str | None = None  # Bulk API 2.0 job step (create, upload, close, poll, results, ...)

    def matches(self, method: str, path: str, kind: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.kind and self.kind != kind:
            return False
        if self.step and bulk_step(method, path) != self.step:
            return False
        return not (self.path and re.search(self.path, path) is None)

    def to_json(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "remaining": self.remaining,
            "path": self.path,
            "kind": self.kind,
            "method": self.method,
            "step": self.step,
        }


@dataclass
class RecordRule:
    fault: str
    remaining: int
    object: str | None = None
    operation: str | None = None  # insert | update | delete

    def to_json(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "remaining": self.remaining,
            "object": self.object,
            "operation": self.operation,
        }


@dataclass
class FaultSettings:
    """Random fault and latency knobs (also the start-up values restored by reset)."""

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    rate: float = 0.0
    kinds: tuple[str, ...] = ("SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW", "DROP")
    record_rate: float = 0.0
    record_kinds: tuple[str, ...] = ("UNABLE_TO_LOCK_ROW",)
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "latency_jitter_ms": self.latency_jitter_ms,
            "rate": self.rate,
            "kinds": list(self.kinds),
            "record_rate": self.record_rate,
            "record_kinds": list(self.record_kinds),
            "seed": self.seed,
        }


@dataclass
class FaultInjector:
    settings: FaultSettings = field(default_factory=FaultSettings)
    call_rules: list[CallRule] = field(default_factory=list)
    record_rules: list[RecordRule] = field(default_factory=list)
    injected: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.settings.seed)

    # -- configuration
    def configure(self, changes: dict[str, Any]) -> None:
        with self._lock:
            s = self.settings
            for key, value in changes.items():
                if key in ("latency_ms", "latency_jitter_ms"):
                    setattr(s, key, max(0.0, float(value)))
                elif key in ("rate", "record_rate"):
                    rate = float(value)
                    if not 0.0 <= rate <= 1.0:
                        raise FaultConfigError(f"{key} must be between 0 and 1")
                    setattr(s, key, rate)
                elif key == "kinds":
                    s.kinds = _check(value, CALL_FAULTS, key)
                elif key == "record_kinds":
                    s.record_kinds = _check(value, RECORD_FAULTS, key)
                elif key == "seed":
                    s.seed = int(value)
                    self._rng = random.Random(s.seed)
                else:
                    raise FaultConfigError(f"unknown fault setting {key!r}")

    def add_rule(self, spec: dict[str, Any]) -> dict[str, Any]:
        fault = str(spec.get("fault", "")).upper()
        count = int(spec.get("count", 1))
        if count < 1:
            raise FaultConfigError("count must be at least 1")
        scope = spec.get("scope", "call")
        with self._lock:
            if scope == "record":
                if fault not in RECORD_FAULTS:
                    raise FaultConfigError(f"record faults are {RECORD_FAULTS}")
                rule: CallRule | RecordRule = RecordRule(
                    fault, count, spec.get("object"), spec.get("operation")
                )
                self.record_rules.append(rule)
            elif scope == "call":
                if fault not in CALL_FAULTS:
                    raise FaultConfigError(f"call faults are {CALL_FAULTS}")
                path = spec.get("path")
                if path:
                    try:
                        re.compile(path)
                    except re.error as exc:
                        raise FaultConfigError(f"invalid path regex: {exc}") from exc
                step = spec.get("step")
                if step is not None and step not in BULK_STEPS:
                    raise FaultConfigError(f"step is one of {BULK_STEPS}")
                rule = CallRule(fault, count, path, spec.get("kind"), spec.get("method"), step)
                self.call_rules.append(rule)
            else:
                raise FaultConfigError("scope is 'call' or 'record'")
        return rule.to_json()

    def reset(self, settings: FaultSettings) -> None:
        with self._lock:
            self.settings = FaultSettings(**{**settings.__dict__})
            self._rng = random.Random(self.settings.seed)
            self.call_rules.clear()
            self.record_rules.clear()
            self.injected.clear()

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self.settings.to_json(),
                "rules": [r.to_json() for r in self.call_rules],
                "record_rules": [r.to_json() for r in self.record_rules],
                "injected": dict(self.injected),
            }

    # -- decisions
    def latency_seconds(self) -> float:
        with self._lock:
            s = self.settings
            if not s.latency_ms and not s.latency_jitter_ms:
                return 0.0
            jitter = self._rng.uniform(0, s.latency_jitter_ms) if s.latency_jitter_ms else 0.0
            return (s.latency_ms + jitter) / 1000.0

    def call_fault(
        self,
        method: str,
        path: str,
        kind: str,
        *,
        random_allowed: bool,
        applicable: tuple[str, ...] = CALL_FAULTS,
    ) -> str | None:
        """The fault to inject into this call, if any; rules with other faults are not consumed."""
        with self._lock:
            for rule in self.call_rules:
                if rule.fault in applicable and rule.matches(method, path, kind):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self.call_rules.remove(rule)
                    return self._count(rule.fault)
            s = self.settings
            if random_allowed and s.rate and s.kinds and self._rng.random() < s.rate:
                return self._count(self._rng.choice(s.kinds))
        return None

    def record_fault(self, obj: str, operation: str) -> str | None:
        with self._lock:
            for rule in self.record_rules:
                if (rule.object in (None, obj)) and (rule.operation in (None, operation)):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self.record_rules.remove(rule)
                    return self._count("record:" + rule.fault)
            s = self.settings
            if s.record_rate and s.record_kinds and self._rng.random() < s.record_rate:
                return self._count("record:" + self._rng.choice(s.record_kinds))
        return None

    def _count(self, name: str) -> str:
        self.injected[name] = self.injected.get(name, 0) + 1
        return name.removeprefix("record:")


def _check(value: Any, allowed: tuple[str, ...], key: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    out = tuple(str(v).strip().upper() for v in items if str(v).strip())
    bad = [v for v in out if v not in allowed]
    if bad:
        raise FaultConfigError(f"{key}: unknown fault(s) {bad}; choose from {allowed}")
    return out
