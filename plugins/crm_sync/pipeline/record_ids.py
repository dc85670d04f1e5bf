"""The ``record_ids`` run parameter: which records a targeted run syncs (docs/sync-rules.md,
"Targeted runs").

Given as a list of strings or as one string of entries separated by commas, semicolons or line
breaks (what people paste from a spreadsheet column), up to :data:`MAX_RECORD_IDS` distinct
entries. Each entry is one of:

* a **Lead Gen & CRM id**: ASCII digits without a leading zero, a 64-bit integer (``1001``);
* a **Salesforce Lead or Contact id**: 15 or 18 letters and digits starting with ``00Q`` (Lead) or
  ``003`` (Contact); an 18-character id's last three characters must be the checksum of the
  first fifteen (a changed case shows there). Kept in the 18-character form;
* an **email address** (anything with an ``@``): written the way the sync compares emails
  (``canonical_email``, then lower case) and checked like the quality gate checks them.

:func:`parse_record_ids` is pure; every bad entry is named in one :class:`RecordIdsError`, a
:class:`~crm_sync.errors.ConfigError`, so the run fails at once, before anything is read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crm_sync.clients.salesforce.util import to_18
from crm_sync.clients.sf_ids import KEY_PREFIX
from crm_sync.errors import ConfigError
from crm_sync.pipeline.transform import canonical_email
from crm_sync.pipeline.validate import EMAIL_RE

MAX_RECORD_IDS = 1000
SHOWN_PROBLEMS = 20  # bad entries named in the error; the rest are counted
MAX_LG_ID = 2**63 - 1
PERSON_OBJECTS = ("Lead", "Contact")
_SEPARATORS = re.compile(r"[,;\r\n]+")
# Lead Gen & CRM ids never start with 0; Salesforce Contact ids do (003...), and may be all digits.
_LG_ID = re.compile(r"[1-9][0-9]{0,18}")
_SF_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_EMAIL = re.compile(EMAIL_RE)


@dataclass(frozen=True)
class RecordIds:
    """The records a targeted run syncs, by kind, each in its canonical form, in the order given
    (without repeats)."""

    lg_ids: tuple[str, ...] = ()
    sf_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.lg_ids) + len(self.sf_ids) + len(self.emails)

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "lg_ids": list(self.lg_ids),
            "sf_ids": list(self.sf_ids),
            "emails": list(self.emails),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[str]] | None) -> RecordIds | None:
        """The inverse of :meth:`to_dict` (``RunContext.record_ids``); None stays None."""
        if data is None:
            return None
        return cls(
            lg_ids=tuple(data.get("lg_ids") or ()),
            sf_ids=tuple(data.get("sf_ids") or ()),
            emails=tuple(data.get("emails") or ()),
        )


class RecordIdsError(ConfigError):
    """``record_ids`` holds entries that are none of the three kinds, or too many."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        shown = self.problems[:SHOWN_PROBLEMS]
        more = len(self.problems) - len(shown)
        text = "record_ids: " + "; ".join(shown)
        super().__init__(text + (f"; and {more} more" if more > 0 else ""))


def _entries(value: Any) -> list[str]:
    """The raw entries of the parameter (blank ones dropped)."""
    if value is None:
        return []
    if isinstance(value, str):
        parts: list[Any] = _SEPARATORS.split(value)
    elif isinstance(value, Sequence):
        parts = list(value)
    else:
        raise RecordIdsError(
            [f"expected a list of ids or a text of ids, got {type(value).__name__}"]
        )
    out = []
    for i, part in enumerate(parts, 1):
        if isinstance(part, bool) or not isinstance(part, str | int):
            raise RecordIdsError([f"entry {i} is {type(part).__name__}, not text"])
        text = str(part).strip()
        if text:
            out.append(text)
    return out


def _sf_id(text: str) -> tuple[str | None, str | None]:
    """(18-character id, None) or (None, what is wrong)."""
    if not any(text.startswith(KEY_PREFIX[o]) for o in PERSON_OBJECTS):
        kinds = ", ".join(f"{KEY_PREFIX[o]} ({o})" for o in PERSON_OBJECTS)
        return None, f"a Salesforce id of neither a Lead nor a Contact (they start {kinds})"
    full = to_18(text[:15])
    if len(text) == 18 and full != text:
        return None, f"the last three characters should be {full[15:]!r} (was the case changed?)"
    return full, None


def _classify(text: str) -> tuple[str, str | None, str | None]:
    """(kind, canonical value, problem) of one entry."""
    if "@" in text:
        email = canonical_email(text)
        if email is None or not _EMAIL.match(email):
            return "emails", None, "not a valid email address"
        return "emails", email.lower(), None
    if _LG_ID.fullmatch(text):
        if int(text) > MAX_LG_ID:
            return "lg_ids", None, "a Lead Gen & CRM id is a 64-bit number"
        return "lg_ids", text, None
    if _SF_ID.fullmatch(text):
        sf_id, problem = _sf_id(text)
        return "sf_ids", sf_id, problem
    return (
        "",
        None,
        "not a Lead Gen & CRM id (digits), a Salesforce Lead/Contact id (15 or 18 letters and "
        "digits) or an email address",
    )


def parse_record_ids(value: Any) -> RecordIds:
    """``record_ids`` as given (None, a list, or a separated text) -> :class:`RecordIds`.

    Raises :class:`RecordIdsError` naming every bad entry (its position and text), or when more
    than :data:`MAX_RECORD_IDS` distinct records are given. An empty value gives an empty
    ``RecordIds`` (falsy): not a targeted run.
    """
    found: dict[str, dict[str, None]] = {"lg_ids": {}, "sf_ids": {}, "emails": {}}
    problems = []
    for i, text in enumerate(_entries(value), 1):
        kind, canonical, problem = _classify(text)
        if problem is not None or canonical is None:
            problems.append(f"entry {i} {text[:80]!r}: {problem}")
        else:
            found[kind][canonical] = None
    if problems:
        raise RecordIdsError(problems)
    ids = RecordIds(**{kind: tuple(values) for kind, values in found.items()})
    if len(ids) > MAX_RECORD_IDS:
        raise RecordIdsError(
            [f"{len(ids):,} records given; a targeted run syncs at most {MAX_RECORD_IDS:,}"]
        )
    return ids
