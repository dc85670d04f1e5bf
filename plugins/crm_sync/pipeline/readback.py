"""Read back what a write changed: an API that answers "success" for a change it did not make
must not have that change recorded as synced.

Lead Gen & CRM is such an API: ``updateLeads`` answers success but changes nothing when the new
email belongs to another lead (reference §8.1). If the record stage stored the new values as
synced, the next run would see the other side's unchanged value as a change and overwrite the
edit that could not be applied — silently. A load stage therefore reads the written records
back (by id, in batches) and turns every field that did not land into a failed result, with the
reason, which the record stage quarantines.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

NOT_APPLIED = "NOT_APPLIED"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _number(v: str) -> Decimal | None:
    try:
        return Decimal(v.replace(",", ""))
    except InvalidOperation:
        return None


def same_value(written: Any, read: Any) -> bool:
    """Whether a value read back is the value written, as the API stores it: whitespace around
    text, case of emails, number formatting (``20`` / ``20.0``) and a date written as
    ``YYYY-MM-DD`` read back with a time do not count as differences."""
    w = "" if written is None else str(written).strip()
    r = "" if read is None else str(read).strip()
    if w == r or w.lower() == r.lower() and "@" in w:
        return True
    nw, nr = _number(w), _number(r)
    if nw is not None and nr is not None:
        return nw == nr
    return bool(_DATE.match(w)) and len(w) == 10 and r.startswith(w)


def not_applied(
    payload: Mapping[str, Any], record: Mapping[str, Any] | None, *, key: str = "id"
) -> list[str]:
    """The fields of ``payload`` (a write) that ``record`` (read back after it) does not hold;
    every field when the record is gone."""
    fields = [k for k in payload if k != key]
    if record is None:
        return fields
    return [k for k in fields if not same_value(payload[k], record.get(k))]
