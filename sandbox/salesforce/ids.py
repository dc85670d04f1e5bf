"""Salesforce record ids: 15-character case-sensitive ids and their 18-character form.

An 18-character id is the 15-character id plus a 3-character suffix that encodes, for each
5-character chunk, which characters are upper case. That makes the long form safe for
case-insensitive systems (spreadsheets, SOQL literals typed by hand). The sandbox stores and
returns the 18-character form and accepts either form on input.

Generated ids look like real ones: ``<key prefix><pod "5e"><"0"><9 base-62 digits>``; the digits
are the row's integer key, so ids are unique per object and never reused within a data dir.
"""

from __future__ import annotations

import re

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_POD = "5e0"
_ID_RE = re.compile(r"^[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?$")


def checksum_suffix(id15: str) -> str:
    """Return the 3-character case-checksum suffix of a 15-character id."""
    out = []
    for chunk_start in (0, 5, 10):
        flags = 0
        for bit, ch in enumerate(id15[chunk_start : chunk_start + 5]):
            if "A" <= ch <= "Z":
                flags |= 1 << bit
        out.append(_SUFFIX_ALPHABET[flags])
    return "".join(out)


def make_id(prefix: str, number: int) -> str:
    """Build the 18-character id for row ``number`` of the object with key ``prefix``."""
    if number < 0:
        raise ValueError("id numbers are non-negative")
    digits = []
    n = number
    for _ in range(9):
        n, rem = divmod(n, 62)
        digits.append(BASE62[rem])
    if n:
        raise ValueError(f"id number {number} does not fit in 9 base-62 digits")
    id15 = prefix + _POD + "".join(reversed(digits))
    return id15 + checksum_suffix(id15)


def normalize_id(value: object) -> str | None:
    """Return the canonical 18-character form of ``value``, or None if it is not a valid id.

    15-character ids get their suffix appended. For 18-character ids the suffix is trusted to
    restore the case of the first 15 characters (so ``00q5E...`` typed in any case still finds
    the record), and an id whose suffix does not match any casing is rejected.
    """
    if not isinstance(value, str) or not _ID_RE.match(value):
        return None
    if len(value) == 15:
        return value + checksum_suffix(value)
    head, suffix = value[:15], value[15:].upper()
    chars = list(head)
    for i, code in enumerate(suffix):
        flags = _SUFFIX_ALPHABET.find(code)
        if flags < 0:
            return None
        for bit in range(5):
            pos = i * 5 + bit
            ch = chars[pos]
            if ch.isalpha():
                chars[pos] = ch.upper() if flags & (1 << bit) else ch.lower()
            elif flags & (1 << bit):
                return None  # the suffix claims an upper-case letter where there is a digit
    id15 = "".join(chars)
    return id15 + checksum_suffix(id15)


def key_prefix(record_id: str) -> str:
    """The 3-character key prefix that names the object type of an id."""
    return record_id[:3]
