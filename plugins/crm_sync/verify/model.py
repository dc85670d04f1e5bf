"""What the checker reports: violation kinds, one violation, and the report that collects them.

A violation names its kind, the DAG whose invariant it breaks, the record ids on each side and a
sentence saying why. Violations are kept in the run's SQLite work file (not in memory), so a badly
drifted org produces a long report, not an out-of-memory error.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import crm_sync.verify._lib as _lib

# kind -> (DAG whose invariant it is, what it means). The DAG of double links and quarantine
# rows depends on the row, so those say "by domain" / "by row".
KINDS: dict[str, tuple[str, str]] = {
    "missing_in_salesforce": (
        _lib.DAG_PEOPLE,
        "an active lead with no linked, live, unconverted Salesforce Lead or Contact",
    ),
    "missing_in_leadgen": (
        _lib.DAG_PEOPLE,
        "a live, unconverted Salesforce Lead or Contact with no linked lead",
    ),
    "duplicate_record_link": (
        _lib.DAG_PEOPLE,
        "two live Salesforce Leads/Contacts carry the same record-link id (LeadGen_Id__c)",
    ),
    "duplicate_email_salesforce": (
        _lib.DAG_PEOPLE,
        "two linked Salesforce Leads/Contacts share one email",
    ),
    "duplicate_email_leadgen": (_lib.DAG_PEOPLE, "two active leads share one email"),
    "double_link": ("", "two active links in the state store point at one record"),
    "field_mismatch": (
        _lib.DAG_PEOPLE,
        "a linked pair disagrees on a synced field in a way the spec does not explain",
    ),
    "record_link_mismatch": (
        _lib.DAG_PEOPLE,
        "a linked Salesforce record's LeadGen_Id__c is not its lead's id",
    ),
    "task_missing": (_lib.DAG_ENGAGEMENT, "a synced marketing event has no Task"),
    "task_duplicate": (_lib.DAG_ENGAGEMENT, "a marketing event has two or more Tasks"),
    "opportunity_missing": (
        _lib.DAG_OPPORTUNITIES,
        "a live Salesforce Opportunity with a mapped stage has no linked Lead Gen & CRM opportunity",
    ),
    "opportunity_orphan": (
        _lib.DAG_OPPORTUNITIES,
        "an active opportunity link whose Salesforce Opportunity is deleted or gone",
    ),
    "account_missing": (
        _lib.DAG_OPPORTUNITIES,
        "a referenced Salesforce Account has no linked Lead Gen & CRM account",
    ),
    "account_orphan": (
        _lib.DAG_OPPORTUNITIES,
        "an active account link whose Salesforce Account is deleted or gone",
    ),
    "membership_missing": (
        _lib.DAG_OPPORTUNITIES,
        "a contact role of a linked contact has no Lead Gen & CRM opportunity lead",
    ),
    "membership_orphan": (
        _lib.DAG_OPPORTUNITIES,
        "an active membership link that no live contact role asks for",
    ),
    "quarantine_without_reason": ("", "a quarantine row with an empty message, check or category"),
}


@dataclass(frozen=True)
class Violation:
    """One broken invariant: ``kind`` (a key of :data:`KINDS`), the record ids on each side
    (``leadgen``, ``salesforce``), ``why`` in words, the responsible DAG and, for field
    mismatches, the mapping key."""

    kind: str
    why: str
    leadgen: tuple[str, ...] = ()
    salesforce: tuple[str, ...] = ()
    dag: str = ""
    field: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown violation kind {self.kind!r}")
        if not self.dag:
            object.__setattr__(self, "dag", KINDS[self.kind][0])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "dag": self.dag,
            "leadgen": list(self.leadgen),
            "salesforce": list(self.salesforce),
            "why": self.why,
        }
        if self.field:
            out["field"] = self.field
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Violation:
        return cls(
            kind=d["kind"],
            why=d["why"],
            leadgen=tuple(d.get("leadgen") or ()),
            salesforce=tuple(d.get("salesforce") or ()),
            dag=d.get("dag") or "",
            field=d.get("field"),
        )

    def line(self) -> str:
        """One human-readable line."""
        lg = ",".join(self.leadgen) or "-"
        sf = ",".join(self.salesforce) or "-"
        return f"{self.kind:<27} leadgen={lg} salesforce={sf}  {self.why}"


@dataclass
class Report:
    """Violations of one check run (kept in ``db``), counts per kind and what was read."""

    db: sqlite3.Connection
    counts: Counter = field(default_factory=Counter)
    checks: list[str] = field(default_factory=list)
    read: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    api_calls: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS violation (seq INTEGER PRIMARY KEY, kind TEXT, body TEXT)"
        )

    def add(self, v: Violation) -> None:
        self.db.execute(
            "INSERT INTO violation (kind, body) VALUES (?, ?)",
            (v.kind, json.dumps(v.to_dict(), ensure_ascii=False)),
        )
        self.counts[v.kind] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def violations(self) -> Iterator[Violation]:
        """Every violation, grouped by kind in :data:`KINDS` order, then as found."""
        order = {k: i for i, k in enumerate(KINDS)}
        kinds = sorted(self.counts, key=lambda k: order[k])
        for kind in kinds:
            cur = self.db.execute("SELECT body FROM violation WHERE kind = ? ORDER BY seq", (kind,))
            while rows := cur.fetchmany(1000):
                for (body,) in rows:
                    yield Violation.from_dict(json.loads(body))

    def summary(self) -> dict[str, Any]:
        return {
            "violations": self.total,
            "by_kind": {k: self.counts[k] for k in KINDS if self.counts[k]},
            "checks": list(self.checks),
            "read": dict(sorted(self.read.items())),
            "api_calls": dict(self.api_calls),
            "notes": list(self.notes),
        }

    def text(self) -> Iterator[str]:
        """The human-readable report: a summary, then one line per violation."""
        s = self.summary()
        verdict = "no violations" if not self.total else f"{self.total} violation(s)"
        yield f"crm_sync.verify: {verdict} (checks: {', '.join(s['checks'])})"
        read = ", ".join(f"{k}={v}" for k, v in s["read"].items())
        if read:
            yield f"  read: {read}"
        if s["api_calls"]:
            yield "  api calls: " + ", ".join(f"{k}={v}" for k, v in s["api_calls"].items())
        for note in s["notes"]:
            yield f"  note: {note}"
        for kind, n in s["by_kind"].items():
            yield f"  {kind:<27} {n:>6}  {KINDS[kind][1]}"
        for v in self.violations():
            yield v.line()

    def json_lines(self) -> Iterator[str]:
        """JSON Lines: one object per violation, then ``{"summary": {...}}``."""
        for v in self.violations():
            yield json.dumps(v.to_dict(), ensure_ascii=False)
        yield json.dumps({"summary": self.summary()}, ensure_ascii=False)
