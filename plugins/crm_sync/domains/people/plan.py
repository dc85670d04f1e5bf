"""Reconcile (plan): matched pairs -> planned writes on both sides, field by field.

The per-field rules are the spine's (:mod:`crm_sync.pipeline.reconcile`: directions, conflicts,
blank policy, echo suppression); what is the people sync's own is the status a new lead gets (a
Contact's lead is a contact, a Lead's lead gets the spec's ``leadgen_status_for_new``).

Every plan that updates a record carries the record's values before the write (``sf_before`` /
``lg_before``, for the change log), and a linked pair carries the fields an undo holds
(``link["held"]``: reconcile writes neither side of them until one changes).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from crm_sync.domains.people.rules import DOMAIN
from crm_sync.mapping.models import ObjectSpec
from crm_sync.pipeline.changelog import attach_before
from crm_sync.pipeline.files import chunked
from crm_sync.pipeline.reconcile import ReconcileContext, reconcile

if TYPE_CHECKING:
    from crm_sync.tasks import TaskRuntime

log = logging.getLogger(__name__)

CHUNK = 2000


def new_lead_fields(spec: ObjectSpec) -> dict[str, Any]:
    """Fields every lead created from a Salesforce record carries."""
    if spec.person is None:
        return {}
    status = (
        "contact" if spec.salesforce_object == "Contact" else spec.person.leadgen_status_for_new
    )
    return {"leadStatus": status}


def reconcile_context(rt: TaskRuntime) -> ReconcileContext:
    from crm_sync.runtime import app_base_url

    return ReconcileContext(
        specs=rt.specs,
        schema=rt.schema,
        owners=rt.owners,
        app_base_url=app_base_url(rt.run.conn_ids["leadgen"]),
        create_defaults=new_lead_fields,
    )


def with_holds(rt: TaskRuntime, pairs: list[dict[str, Any]]) -> None:
    """Put the undo holds of the chunk's linked pairs into their links (one query per 500)."""
    linked = [p["link"] for p in pairs if p.get("link") and p["link"].get("lg_id")]
    holds = rt.store.undo_holds(DOMAIN, [lk["lg_id"] for lk in linked]) if linked else {}
    for link in linked:
        if str(link["lg_id"]) in holds:
            link["held"] = holds[str(link["lg_id"])]


def plan(rt: TaskRuntime) -> dict[str, Any]:
    """``pairs/pairs.jsonl`` -> ``plans/plans.jsonl``; return counts of planned writes."""
    folder = rt.run.folder
    rctx = reconcile_context(rt)
    counts: Counter = Counter()

    holds = rt.store.has_undo_holds(DOMAIN)  # else no chunk needs the lookup

    def plans() -> Iterator[dict[str, Any]]:
        for chunk in chunked(folder.read_jsonl("pairs/pairs.jsonl"), CHUNK):
            if holds:
                with_holds(rt, chunk)
            planned = [p.to_dict() for p in reconcile(chunk, rctx)]
            attach_before(planned, chunk, rctx)
            for p in planned:
                counts["pairs"] += 1
                if p["sf_op"]:
                    counts[f"sf_{p['sf_op']}"] += 1
                if p["lg_op"]:
                    counts[f"lg_{p['lg_op']}"] += 1
                if not p["sf_op"] and not p["lg_op"]:
                    counts["unchanged"] += 1
                counts["conflicts"] += len(p["conflicts"])
                yield p

    folder.write_jsonl("plans/plans.jsonl", plans())
    log.info(
        "reconcile: pairs=%d sf_create=%d sf_update=%d lg_create=%d lg_update=%d unchanged=%d conflicts=%d",
        counts["pairs"],
        counts["sf_create"],
        counts["sf_update"],
        counts["lg_create"],
        counts["lg_update"],
        counts["unchanged"],
        counts["conflicts"],
    )
    return dict(counts)
