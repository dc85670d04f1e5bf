"""Linked pairs that disagree (``sync_leads_contacts``): ``field_mismatch``, ``record_link_mismatch``.

Both records of every active person link are turned into canonical values with the sync's own
transform (``canonicalize_leadgen`` / ``canonicalize_salesforce``, the spec of the Salesforce
object, the live schemas and the owner map), then compared row by row. A difference is reported
unless the spec explains it:

* ``none`` rows are not compared;
* ``blank: keep`` explains a blank on the side that may not overwrite: the Lead Gen & CRM side of
  a ``push`` row, the Salesforce side of a ``pull`` row, either side of a ``two-way`` row;
* an owner that maps to nobody (no active Salesforce user for the Lead Gen & CRM owner, no Lead
  Gen & CRM user for the Salesforce owner) is never written, in the direction(s) of the row;
* an open quarantine row of either record explains every difference of the pair.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pandas as pd

import crm_sync.verify._lib as _lib
from crm_sync.verify.model import Violation
from crm_sync.verify.snapshot import batches
from crm_sync.verify.sources import Sources

PAIRS = """
SELECT k.lg_id, k.sf_id, s.object
FROM link k
JOIN lg_lead l ON l.id = k.lg_id
JOIN sf_person s ON s.id = k.sf_id
WHERE k.domain = 'person' AND k.status = 'active' AND s.converted = 0
ORDER BY s.object, k.lg_id
"""
CHUNK = 500


def _value(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return str(v)


def _show(v: str | None) -> str:
    if v is None:
        return "(blank)"
    if v == _lib.INVALID:
        return "(unparseable)"
    return repr(v if len(v) <= 60 else v[:59] + "…")


def explained(row: Any, a: str | None, b: str | None, owners: Any) -> bool:
    """True when the spec row explains Lead Gen & CRM canonical ``a`` != Salesforce ``b``."""
    d = row.direction
    if "owner" in row.transform:
        lg_unmapped = a is None  # blank, or no active Salesforce user for it
        sf_unmapped = b is None or owners is None or b not in owners.sf_to_lg
        if d is _lib.Direction.PUSH:
            return lg_unmapped
        if d is _lib.Direction.PULL:
            return sf_unmapped
        return lg_unmapped or sf_unmapped
    if row.blank is not _lib.BlankPolicy.KEEP:
        return False
    if d is _lib.Direction.PUSH:
        return a is None
    if d is _lib.Direction.PULL:
        return b is None
    return a is None or b is None


def compare_pair(
    spec: Any, lg_row: Any, sf_row: Any, owners: Any
) -> Iterator[tuple[str, str, str | None, str | None]]:
    """``(key, direction, lg value, sf value)`` of every synced row the pair disagrees on in a
    way ``spec`` does not explain."""
    for row in spec.synced_fields:
        a, b = _value(lg_row[row.key]), _value(sf_row[row.key])
        if a != b and not explained(row, a, b, owners):
            yield row.key, row.direction.value, a, b


def field_mismatches(src: Sources) -> Iterator[Violation]:
    """Every unexplained difference of every linked pair, one violation per field."""
    src.load_leads()
    src.load_people()
    src.load_links()
    for chunk in batches(src.snap.rows(PAIRS), CHUNK):
        by_object: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for lg_id, sf_id, sobject in chunk:
            if not src.quarantined(_lib.DAG_PEOPLE, f"lg:{lg_id}", f"sf:{sf_id}"):
                by_object[sobject].append((lg_id, sf_id))
        for sobject, pairs in by_object.items():
            yield from _compare_object(src, sobject, pairs)


def _compare_object(
    src: Sources, sobject: str, pairs: list[tuple[str, str]]
) -> Iterator[Violation]:
    spec = src.specs[sobject]
    lg_recs = src.snap.records("lg_lead", [p[0] for p in pairs])
    sf_recs = src.snap.records("sf_person", [p[1] for p in pairs])
    lg = _lib.canonicalize_leadgen(
        pd.DataFrame(list(lg_recs.values())), spec, src.schema, src.owners
    )
    sf = _lib.canonicalize_salesforce(pd.DataFrame(list(sf_recs.values())), spec, src.schema)
    lg_rows = {str(i): r for i, r in zip(lg["_lg_id"], lg.to_dict("records"), strict=True)}
    sf_rows = {
        _lib.to_18(str(i)): r for i, r in zip(sf["_sf_id"], sf.to_dict("records"), strict=True)
    }
    for lg_id, sf_id in pairs:
        a, b = lg_rows[lg_id], sf_rows[sf_id]
        for key, direction, va, vb in compare_pair(spec, a, b, src.owners):
            why = (
                f"{key} ({direction}, {sobject}.{spec.row(key).salesforce}): "
                f"Lead Gen & CRM {_show(va)} vs Salesforce {_show(vb)}"
            )
            yield Violation("field_mismatch", why, (lg_id,), (sf_id,), field=key)
        if spec.record_link and _value(b["_sf_lgid"]) != lg_id:
            why = (
                f"{sobject}.{spec.record_link.id_field} is {_show(_value(b['_sf_lgid']))}, "
                f"not the linked lead's id {lg_id}"
            )
            yield Violation("record_link_mismatch", why, (lg_id,), (sf_id,))
