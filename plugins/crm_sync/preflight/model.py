"""What a preflight reports: one :class:`Check` per requirement, collected in a :class:`Report`.

A check says whether one requirement holds (``pass``), holds with something to look at
(``warn``), does not hold (``fail``: the sync must not write until it is fixed) or could not be
looked at because what it needs did not answer (``skip``: the connection check that failed says
why). Every ``fail`` carries a ``fix``: what to change, where.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    """The verdict on one requirement. ``fix`` is empty when there is nothing to change."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        return cls(data["name"], Status(data["status"]), data["detail"], data.get("fix", ""))


def passed(name: str, detail: str) -> Check:
    return Check(name, Status.PASS, detail)


def warned(name: str, detail: str, fix: str = "") -> Check:
    return Check(name, Status.WARN, detail, fix)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.FAIL, detail, fix)


_MARK = {Status.PASS: "pass", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "skip"}


@dataclass
class Report:
    """Every check of one preflight, in the order they ran, and what was checked against."""

    checks: list[Check] = field(default_factory=list)
    started_at: str = ""
    finished_at: str = ""
    target: dict[str, Any] = field(default_factory=dict)  # org id, edition, user, account id
    # Reads that failed for a passing reason (outage, rate limit): the verdict may change by
    # itself, so a gate retries rather than blaming the configuration.
    transient: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No check failed and none was skipped (a skipped check is not a passed one)."""
        return not any(c.status in (Status.FAIL, Status.SKIP) for c in self.checks)

    def with_status(self, *statuses: Status) -> list[Check]:
        return [c for c in self.checks if c.status in statuses]

    def counts(self) -> dict[str, int]:
        n = Counter(c.status.value for c in self.checks)
        return {s.value: n.get(s.value, 0) for s in Status}

    def summary(self) -> str:
        n = self.counts()
        verdict = "PASSED" if self.ok else "FAILED"
        parts = [f"{n[s.value]} {s.value}" for s in Status if n[s.value]]
        return f"preflight {verdict}: " + ", ".join(parts)

    def lines(self) -> Iterator[str]:
        """The checklist, human-readable: one line per check, then ``fix:`` lines."""
        who = ", ".join(f"{k}={v}" for k, v in self.target.items() if v)
        yield f"Preflight checklist ({who})" if who else "Preflight checklist"
        width = max((len(c.name) for c in self.checks), default=0)
        for c in self.checks:
            yield f"  [{_MARK[c.status]}] {c.name:<{width}}  {c.detail}"
            if c.fix and c.status is not Status.PASS:
                yield f"         {'':<{width}}  fix: {c.fix}"
        yield self.summary()

    def text(self) -> str:
        return "\n".join(self.lines())

    def failure_text(self) -> str:
        """The failed and skipped checks with their fixes (the gate's error message)."""
        out = [self.summary() + "; nothing was written. Fix:"]
        for c in self.with_status(Status.FAIL, Status.SKIP):
            out.append(f"- {c.name}: {c.detail}" + (f" -> {c.fix}" if c.fix else ""))
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": self.counts(),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "target": dict(self.target),
            "transient": list(self.transient),
            "checks": [c.to_dict() for c in self.checks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        return cls(
            checks=[Check.from_dict(c) for c in data.get("checks", [])],
            started_at=data.get("started_at", ""),
            finished_at=data.get("finished_at", ""),
            target=dict(data.get("target") or {}),
            transient=list(data.get("transient") or []),
        )
