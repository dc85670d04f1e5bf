"""Error types the sandbox turns into Salesforce-shaped responses.

* :class:`ApiError` -- the whole call fails: HTTP status plus the REST error body, a JSON array
  ``[{"message", "errorCode", "fields"}]``.
* :class:`RecordError` -- one record of a batch fails; collections and Bulk API report it per
  record with ``statusCode`` (not ``errorCode``), and the rest of the batch goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ApiError(Exception):
    """A whole-call failure with an HTTP status and a Salesforce ``errorCode``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = headers or {}

    def body(self) -> list[dict[str, Any]]:
        entry: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            entry["fields"] = self.fields
        return [entry]


@dataclass(frozen=True)
class RecordError:
    """One per-record error (``statusCode`` in collections results, ``sf__Error`` in Bulk CSV)."""

    code: str
    message: str
    fields: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields)}

    def to_bulk(self) -> str:
        """Bulk API ``sf__Error`` text, e.g. ``REQUIRED_FIELD_MISSING:Required fields are missing: [Company]:Company --``."""
        return f"{self.code}:{self.message}:{','.join(self.fields)} --"


class RecordFailure(Exception):
    """Raised inside the write engine when one record cannot be saved."""

    def __init__(self, error: RecordError):
        super().__init__(f"{error.code}: {error.message}")
        self.error = error


def fail(code: str, message: str, fields: list[str] | None = None) -> RecordFailure:
    return RecordFailure(RecordError(code, message, list(fields or [])))
