"""Quarantine entries: a rejected source record, with the reason a person can act on.

One type for every DAG. A record is rejected either by the quality gate (``from_gate``: the failing
checks of its payload) or by the target system when written (``from_write``: the system's own error
code, sorted into a category by :data:`ERROR_CATEGORIES`). The record stage hands the entries to the
shared apply step, which stores them and retries them next run (see docs/data-quality.md). A run's
entries are a :func:`entry_list`: on disk past a bounded buffer, however many rows fail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.spill import DiskList
from crm_sync.pipeline.transform import json_safe

# Target system error codes -> quarantine categories (see docs/data-quality.md).
ERROR_CATEGORIES = {
    "REQUIRED_FIELD_MISSING": "required field",
    "INVALID_EMAIL_ADDRESS": "format",
    "INVALID_TYPE_ON_FIELD_IN_RECORD": "format",
    "JSON_PARSER_ERROR": "format",
    "MALFORMED_ID": "format",
    "STRING_TOO_LONG": "length",
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": "picklist",
    "DUPLICATE_VALUE": "duplicate",
    "DUPLICATES_DETECTED": "duplicate",
    "301": "duplicate",
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": "validation rule",
    "INSUFFICIENT_ACCESS_OR_READONLY": "permission",
    "INSUFFICIENT_ACCESS": "permission",
    "INVALID_FIELD_FOR_INSERT_UPDATE": "permission",
    "CANNOT_UPDATE_CONVERTED_LEAD": "missing link",
    "ENTITY_IS_DELETED": "missing link",
    "INVALID_CROSS_REFERENCE_KEY": "missing link",
    "INACTIVE_OWNER_OR_USER": "permission",
    "404": "missing link",
    "214": "missing link",
    "205": "format",
    "217": "format",
    "NOT_APPLIED": "not applied",  # the API answered success and changed nothing
}


def category_for(code: str | None) -> str:
    return ERROR_CATEGORIES.get(str(code or ""), "other")


@dataclass(frozen=True)
class Source:
    """Which source record a quarantine entry is about, and what was to be written for it."""

    domain: str
    direction: str  # "lg_to_sf" | "sf_to_lg": a record is quarantined once per direction
    record_key: str  # what a later run re-reads to retry it ("lg:123", "sf:003...", "evt:...")
    target_object: str
    lg_id: str | None
    sf_id: str | None
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class QuarantineEntry:
    dag_id: str
    domain: str
    direction: str
    record_key: str
    target_object: str
    lg_id: str | None
    sf_id: str | None
    category: str
    check: str
    field: str | None
    error_code: str | None
    message: str
    payload: dict[str, Any]
    run_id: str
    max_attempts: int

    @classmethod
    def _of(cls, ctx: RunContext, src: Source, **why: Any) -> QuarantineEntry:
        return cls(
            dag_id=ctx.dag_id,
            domain=src.domain,
            direction=src.direction,
            record_key=src.record_key,
            target_object=src.target_object,
            lg_id=src.lg_id,
            sf_id=src.sf_id,
            payload=json_safe(src.payload),
            run_id=ctx.run_id,
            max_attempts=ctx.max_attempts,
            **why,
        )

    @classmethod
    def from_gate(
        cls, ctx: RunContext, src: Source, failures: Sequence[Mapping[str, Any]]
    ) -> QuarantineEntry:
        """The quality gate refused the payload; the first failing check leads, every message is
        kept."""
        first = failures[0]
        return cls._of(
            ctx,
            src,
            category=first["category"],
            check=first["check"],
            field=first["field"],
            error_code=None,
            message="; ".join(f["message"] for f in failures),
        )

    @classmethod
    def from_write(
        cls, ctx: RunContext, src: Source, result: Mapping[str, Any], *, who: str, op: str
    ) -> QuarantineEntry:
        """The target system refused the write: its own code, sorted into a category."""
        code = result.get("error_code")
        return cls._of(
            ctx,
            src,
            category=category_for(code),
            check=f"{result.get('target') or 'system'}:{code}",
            field=",".join(result.get("error_fields") or []) or None,
            error_code=code,
            message=f"{who} rejected the {op}: {result.get('error_message')}",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def example(self) -> dict[str, Any]:
        """The short form the run report shows."""
        return {
            "record_key": self.record_key,
            "direction": self.direction,
            "category": self.category,
            "check": self.check,
            "field": self.field,
            "message": self.message,
        }


def entry_key(e: QuarantineEntry) -> str:
    """The quarantine row an entry writes (one per DAG, direction and source record)."""
    return "\x1f".join((e.dag_id, e.direction, e.record_key))


def entry_list(buffer: int = 2000) -> DiskList[QuarantineEntry]:
    """A run's quarantine entries, in the order they were found (on disk past ``buffer``)."""
    return DiskList(QuarantineEntry.to_dict, _entry, entry_key, buffer=buffer)


def _entry(data: dict[str, Any]) -> QuarantineEntry:
    return QuarantineEntry(**data)
