"""Per-record write results shared by both API clients.

Batch writes never raise for a single bad record: they return one :class:`WriteResult` per input
record, in input order, so the caller can load the good rows and quarantine the bad ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The error code of a record whose write may or may not have been applied (the answer was lost).
AMBIGUOUS_WRITE = "AMBIGUOUS_WRITE"

# Record errors that can mean the target's schema changed since it was described (a field
# deleted, renamed, made read-only, shortened, a picklist value removed): a write refused with
# one of them makes the next run describe both systems again (clients/schema_cache.py).
SCHEMA_ERROR_CODES: frozenset[str] = frozenset(
    {
        # Salesforce statusCode values
        "INVALID_FIELD",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "INVALID_TYPE",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "STRING_TOO_LONG",
        "NUMBER_OUTSIDE_VALID_RANGE",
        "FIELD_INTEGRITY_EXCEPTION",
        # Lead Gen & CRM: invalid parameters / incorrect parameter value (an unknown field)
        "205",
        "217",
    }
)


@dataclass(frozen=True)
class RecordError:
    """One error the target system reported for one record.

    ``code`` is the system's own code as a string (Salesforce ``statusCode`` such as
    ``REQUIRED_FIELD_MISSING``; Lead Gen & CRM numeric codes such as ``"301"``).
    """

    code: str
    message: str
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f" [{', '.join(self.fields)}]" if self.fields else ""
        return f"{self.code}: {self.message}{where}"


@dataclass(frozen=True)
class WriteResult:
    """The outcome of writing the record at ``index`` of the input list.

    ``id`` is the record id in the target system when known (always on success for creates and
    upserts). ``created`` is True/False for upserts and creates, None when the API does not say.
    ``unchanged`` is True when the target reported that nothing changed (Lead Gen & CRM 302).
    """

    index: int
    success: bool
    id: str | None = None
    created: bool | None = None
    unchanged: bool = False
    errors: tuple[RecordError, ...] = field(default_factory=tuple)

    @property
    def error_code(self) -> str | None:
        return self.errors[0].code if self.errors else None

    @property
    def error_message(self) -> str:
        return "; ".join(str(e) for e in self.errors)
