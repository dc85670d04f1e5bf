"""Match: changed records of both sides -> pairs (Lead Gen & CRM lead, Salesforce record, link).

Identity rules:

* A link in the state store wins, following the Salesforce record through its lifecycle (see
  :mod:`.lifecycle`).
* First pairing (:mod:`.pairing`, :mod:`.matcher`): by the record-link external id on the
  Salesforce record (it holds the Lead Gen & CRM id), else by email (case-insensitive). Several
  Salesforce matches -> prefer a Contact, then the most recently modified; the ambiguity is
  reported. Converted and deleted Salesforce records never match; neither does one already
  linked to another lead.
* Otherwise the record is new and is created on the other side.

The counterpart of a changed record is fetched by id when it did not change itself, so every
pair carries both sides' current values. Output: ``pairs/pairs.jsonl``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from crm_sync.domains.people.candidates import INDEX_COLUMNS, CandidateSource
from crm_sync.domains.people.matcher import Matcher, sf_index_rows
from crm_sync.domains.people.pairing import pairs_from_leadgen, pairs_from_salesforce
from crm_sync.domains.people.pairs import Pair
from crm_sync.domains.people.rules import record_link_field
from crm_sync.domains.people.scope import LEFT_SCOPE, OUT_OF_SCOPE, PeopleScope
from crm_sync.pipeline.files import DiskIndex
from crm_sync.pipeline.spill import DiskSet

if TYPE_CHECKING:
    from crm_sync.tasks import TaskRuntime

log = logging.getLogger(__name__)


def match(rt: TaskRuntime) -> dict[str, Any]:
    """Build ``pairs/pairs.jsonl`` from the extract files; return counts."""
    ctx, specs = rt.run, rt.specs
    folder = ctx.folder
    lg_index = DiskIndex(ctx.scratch("match/lg.db"))
    sf_index = DiskIndex(ctx.scratch("match/sf.db"), columns=INDEX_COLUMNS)
    sf_fetched = DiskIndex(ctx.scratch("match/sf_fetched.db"))
    covered_sf, covered_lg = (DiskSet(ctx.scratch(f"match/covered_{s}.db")) for s in ("sf", "lg"))
    candidates: CandidateSource | None = None
    try:
        lg_index.put_many((str(r["id"]), r) for r in folder.read_jsonl("extract/lg.jsonl"))
        id_field = record_link_field(specs)
        for sobject in specs:
            rows = folder.read_jsonl(f"extract/sf_{sobject}.jsonl")
            sf_index.put_many(sf_index_rows(sobject, rows, id_field))
        sf_index.index("email", "ext")
        counts: Counter = Counter()
        candidates = CandidateSource.of(rt, sf_index, counts)
        m = Matcher(
            ctx, rt.salesforce, rt.leadgen, rt.store, specs, lg_index, sf_index,
            sf_fetched, covered_sf, covered_lg, candidates, counts,
        )  # fmt: skip
        m.preferred = m.preferred_by_email()
        scope = PeopleScope.of(specs, rt.schema, rt.leadgen)
        events: Counter = Counter()

        def counted() -> Iterator[Pair]:
            for source in (pairs_from_leadgen, pairs_from_salesforce):
                for p in map(scope.apply, source(m)):
                    m.counts["pairs"] += 1
                    if p["match"] in (OUT_OF_SCOPE, LEFT_SCOPE):
                        m.counts[p["match"]] += 1
                    events.update(e["event"] for e in p.get("events") or [])
                    yield p

        n = folder.write_jsonl("pairs/pairs.jsonl", counted())
    finally:
        if candidates is not None:
            candidates.close()
        for resource in (lg_index, sf_index, sf_fetched, covered_sf, covered_lg):
            resource.close()
    log.info(
        "match: pairs=%d %s events=%s sf_api_calls=%d lg_api_calls=%d ids_spilled_to_disk=%d",
        n,
        " ".join(f"{k}={v}" for k, v in sorted(m.counts.items()) if k != "pairs"),
        dict(events),
        m.sf.api_calls,
        m.lg.api_calls,
        covered_sf.spilled + covered_lg.spilled,
    )
    return {"pairs": n, "counts": dict(m.counts), "events": dict(events)}
