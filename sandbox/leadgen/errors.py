"""Error codes and messages of the Lead Gen & CRM API (reference section 3).

:class:`ApiError` fails a whole call (top-level ``error`` object); :class:`ObjectError` fails one
object of a batch write (its entry in ``creates``/``updates``/``deletes``), and the rest of the
batch goes on.
"""

from __future__ import annotations

from typing import Any

MESSAGES: dict[int, str] = {
    101: "Invalid request data format",
    102: "Request ID missing",
    103: "Header missing account ID",
    104: "Header missing Secret Key",
    105: "User authentication failed",
    106: "Exceeded daily call limit",
    107: "Exceeded query limit per second",
    201: "Method missing",
    202: "Params missing",
    203: "Header array missing",
    204: "Invalid method",
    205: "Invalid parameters",
    206: "Missing parameters",
    207: "Objects array missing",
    208: "Object is not an array",
    209: "Too many queries in one request",
    210: "Array given where a scalar was expected",
    211: "Only custom fields may be deleted",
    212: "Object not owned by company",
    213: "Lead is already a member",
    214: "Lead does not exist for this account",
    215: "Invalid country code",
    216: "Company not found",
    217: "Incorrect parameter value",
    219: "Invalid eventSource",
    220: "Invalid whoID",
    301: "Entry already exists",
    302: "No table rows affected",
    303: "Foreign key constraint failed",
    404: "Record with that ID does not exist",
    999: "System temporarily unavailable, please try again later",
}


def error_object(code: int, message: str | None = None, data: Any = None) -> dict[str, Any]:
    """The API's error shape: ``{"code": int, "message": str, "data": object|array}``."""
    return {
        "code": code,
        "message": message or MESSAGES.get(code, "Unknown error"),
        "data": data if data is not None else [],
    }


class ApiError(Exception):
    """Fails the whole call: the response carries ``error`` as an object and ``result`` null."""

    def __init__(self, code: int, message: str | None = None, data: Any = None):
        self.code = code
        self.message = message or MESSAGES.get(code, "Unknown error")
        self.data = data
        super().__init__(f"{code}: {self.message}")

    def to_json(self) -> dict[str, Any]:
        return error_object(self.code, self.message, self.data)


class ObjectError(ApiError):
    """Fails one object of a batch write; raised by per-object handlers and caught per object."""
