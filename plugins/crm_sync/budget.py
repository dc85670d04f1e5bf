"""The API budgets of this product: a cap on calls per rolling 24 hours, per system.

The org's daily allocation is shared by every integration; when it is gone, everything stops.
So the sync keeps to its own cap on each side: ``CRM_SYNC_SF_API_BUDGET`` for Salesforce,
``CRM_SYNC_LG_API_BUDGET`` for Lead Gen & CRM (whose account allows 50,000 calls a day):

* every task adds its Salesforce calls to its run row as it finishes, so "used in the last 24 h"
  includes the run in progress;
* a hard guard on the client refuses any call past the cap (:class:`BudgetExhaustedError`); the
  load stage catches it between batches, stops writing cleanly and defers the rest to the next
  run (the watermark does not advance, so the next run picks the rest up);
* above ``CRM_SYNC_RETRY_STOP_SHARE`` of the cap, automatic retries stop: a flaky hour must not
  burn what is left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from requests.adapters import HTTPAdapter

from crm_sync.errors import BudgetExhaustedError
from crm_sync.settings import lg_api_budget, sf_api_budget, sf_retry_stop_share

if TYPE_CHECKING:
    from crm_sync.state.store import SyncStore


log = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Budget:
    cap: int
    used: int
    retry_stop_share: float
    system: str = "Salesforce"
    setting: str = "CRM_SYNC_SF_API_BUDGET"

    @property
    def remaining(self) -> int:
        return max(0, self.cap - self.used)

    @property
    def retries_allowed(self) -> bool:
        return self.used < self.cap * self.retry_stop_share

    def to_dict(self) -> dict[str, Any]:
        return {
            "cap": self.cap,
            "used_24h": self.used,
            "remaining": self.remaining,
            "retries_allowed": self.retries_allowed,
        }


def current_budget(store: SyncStore, now: datetime | None = None) -> Budget:
    """Salesforce calls recorded in the state store for the last 24 h (every DAG)."""
    now = now or datetime.now(UTC)
    return Budget(
        cap=sf_api_budget(),
        used=store.sf_calls_since(now - WINDOW),
        retry_stop_share=sf_retry_stop_share(),
    )


def current_lg_budget(store: SyncStore, now: datetime | None = None) -> Budget:
    """Lead Gen & CRM calls recorded in the state store for the last 24 h (every DAG)."""
    now = now or datetime.now(UTC)
    return Budget(
        cap=lg_api_budget(),
        used=store.lg_calls_since(now - WINDOW),
        retry_stop_share=sf_retry_stop_share(),
        system="Lead Gen & CRM",
        setting="CRM_SYNC_LG_API_BUDGET",
    )


def eta(remaining_work: int, calls_per_unit: float, budget: Budget) -> dict[str, Any]:
    """How long ``remaining_work`` units (records to write) take at ``calls_per_unit`` calls
    each when the budget allows ``budget.cap`` calls per 24 h: what a load that must spread
    over days reports (progress and ETA in the log and the run report)."""
    calls = int(remaining_work * calls_per_unit + 0.999)
    days = calls / budget.cap if budget.cap else float("inf")
    return {
        "remaining": remaining_work,
        "calls_needed": calls,
        "calls_per_day": budget.cap,
        "eta_days": round(days, 2),
        "eta_hours": round(days * 24, 1),
    }


class _GuardAdapter(HTTPAdapter):
    """Refuses to send once the client has used its allowance in this task."""

    def __init__(self, client: Any, allowance: int, budget: Budget, **kw: Any):
        super().__init__(**kw)
        self._client = client
        self._allowance = allowance
        self._budget = budget

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if self._client.api_calls >= self._allowance:
            b = self._budget
            raise BudgetExhaustedError(
                f"{b.system} API budget reached: {b.used + self._client.api_calls:,} of "
                f"{b.cap:,} calls in the last 24 h ({b.setting}); "
                "writing stops here and resumes on the next run"
            )
        return super().send(request, *args, **kwargs)


def guard(client: Any, budget: Budget) -> Any:
    """Make ``client`` refuse calls beyond the budget and stop retrying near the cap."""
    allowance = budget.remaining
    session = client.session
    adapter = _GuardAdapter(client, allowance, budget)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if not budget.retries_allowed:
        client.max_retries = 0
        log.warning(
            "%s API budget: %d of %d calls used in 24 h (>= %.0f%%): automatic retries are off",
            budget.system,
            budget.used,
            budget.cap,
            budget.retry_stop_share * 100,
        )
    return client
