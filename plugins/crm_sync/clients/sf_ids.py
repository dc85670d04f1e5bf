"""Salesforce record ids: the three-character key prefix says which object a record is."""

from __future__ import annotations

KEY_PREFIX = {
    "Lead": "00Q",
    "Contact": "003",
    "Account": "001",
    "Opportunity": "006",
    "OpportunityContactRole": "00K",
    "Task": "00T",
    "User": "005",
}


def is_of(sf_id: str | None, sobject: str) -> bool:
    """True when ``sf_id`` is an id of ``sobject`` (by its key prefix)."""
    return bool(sf_id) and str(sf_id).startswith(KEY_PREFIX[sobject])


def object_of(sf_id: str, among: tuple[str, ...] = tuple(KEY_PREFIX)) -> str | None:
    """The object of ``sf_id`` among ``among`` (None when it is none of them)."""
    return next((o for o in among if is_of(sf_id, o)), None)
