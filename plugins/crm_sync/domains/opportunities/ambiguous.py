"""Creates whose answer was lost: find what the API did before creating again.

Lead Gen & CRM opportunities, accounts and opportunity leads have no external id, so a create
whose connection dropped after the server applied it cannot simply be retried: it would make the
records twice. The client raises :class:`~crm_sync.errors.AmbiguousWriteError` instead, the load
records the batch as ``AMBIGUOUS_WRITE`` (so a task retry knows too; a create is so marked before
it is sent, so a retry after the task was killed mid-call knows as well), and this module looks
the records up by a natural key:

* an opportunity lead by (opportunity, lead) — unique in Lead Gen & CRM;
* an opportunity or an account by every field the create sent (name, stage, account, amount,
  close date, owner...), among the records created around this run (``*DateRange`` on the create
  timestamp) that no link claims yet.

Found records are adopted (linked as if the create had answered); the others are created again,
now known to be missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from crm_sync.clients.results import AMBIGUOUS_WRITE
from crm_sync.domains.opportunities.rules import KIND_MEMBERSHIP, LINK_DOMAIN, lg_id
from crm_sync.pipeline.readback import not_applied

if TYPE_CHECKING:
    from crm_sync.clients.leadgen import LeadGenClient
    from crm_sync.pipeline.context import RunContext
    from crm_sync.state.store import SyncStore

AMBIGUOUS = AMBIGUOUS_WRITE
# How far around the run's window and the present a lost create may have landed (API clocks are
# the account's, and a backfill writes now for an old window).
MARGIN = timedelta(days=1)

Plan = dict[str, Any]


def _created_around(lg: LeadGenClient, ctx: RunContext, kind: str) -> Iterable[dict[str, Any]]:
    now = datetime.now(UTC)
    lo = min(ctx.window_start, now) - MARGIN
    hi = max(ctx.window_end, now) + MARGIN
    read = lg.get_opportunities_date_range if kind == "opportunity" else lg.get_accounts_date_range
    return read(lo, hi, timestamp="create")


def find_created(
    lg: LeadGenClient, store: SyncStore, ctx: RunContext, plans: list[Plan]
) -> dict[str, str]:
    """Plan pair -> the id of the record its lost create made (absent: not made)."""
    if not plans:
        return {}
    if plans[0]["kind"] == KIND_MEMBERSHIP:
        return _memberships(lg, plans)
    kind = plans[0]["kind"]
    candidates = list(_created_around(lg, ctx, kind))
    claimed = set(store.links_by_lg(LINK_DOMAIN[kind], [lg_id(c.get("id")) for c in candidates]))
    found: dict[str, str] = {}
    for plan in plans:
        for c in candidates:
            cid = lg_id(c.get("id"))
            if cid and cid not in claimed and not not_applied(plan["lg_payload"], c):
                found[plan["pair"]] = cid
                claimed.add(cid)
                break
    return found


def _memberships(lg: LeadGenClient, plans: list[Plan]) -> dict[str, str]:
    opps = sorted({lg_id(p["lg_payload"]["opportunityID"]) for p in plans})
    existing = {
        (lg_id(r.get("opportunityID")), lg_id(r.get("leadID"))): lg_id(r.get("id"))
        for r in lg.get_opportunity_leads_by_opportunity_ids(opps)
    }
    out = {}
    for p in plans:
        key = (lg_id(p["lg_payload"]["opportunityID"]), lg_id(p["lg_payload"]["leadID"]))
        if key in existing:
            out[p["pair"]] = existing[key]
    return out
