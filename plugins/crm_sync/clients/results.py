"""Per-record write results shared by both API clients.

Batch writes never raise for a single bad record: they return one :class:`WriteResult` per input
record, in input order, so the caller can load the good rows and quarantine the bad ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The error code of a record whose write may or may not have been applied (the answer was lost).
AMBIGUOUS_WRITE = "AMBIGUOUS_WRITE"


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
