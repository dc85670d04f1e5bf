"""The Salesforce API budget of this product: a cap on calls per rolling 24 hours.

The org's daily allocation is shared by every integration; when it is gone, everything stops.
So the sync keeps to its own cap (``CRM_SYNC_SF_API_BUDGET``):

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
from crm_sync.settings import sf_api_budget, sf_retry_stop_share

if TYPE_CHECKING:
    from crm_sync.state.store import SyncStore


log = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Budget:
    cap: int
    used: int
    retry_stop_share: float

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
    """Calls recorded in the state store for the last 24 h (every DAG of this product)."""
    now = now or datetime.now(UTC)
    return Budget(
        cap=sf_api_budget(),
        used=store.sf_calls_since(now - WINDOW),
        retry_stop_share=sf_retry_stop_share(),
    )


class _GuardAdapter(HTTPAdapter):
    """Refuses to send once the client has used its allowance in this task."""

    def __init__(self, client: Any, allowance: int, budget: Budget, **kw: Any):
        super().__init__(**kw)
        self._client = client
        self._allowance = allowance
        self._budget = budget

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if self._client.api_calls >= self._allowance:
            raise BudgetExhaustedError(
                f"Salesforce API budget reached: {self._budget.used + self._client.api_calls:,} of "
                f"{self._budget.cap:,} calls in the last 24 h (CRM_SYNC_SF_API_BUDGET); "
                "writing stops here and resumes on the next run"
            )
        return super().send(request, *args, **kwargs)


def guard(client: Any, budget: Budget) -> Any:
    """Make ``client`` refuse calls beyond the budget and stop retrying near the cap."""
    allowance = budget.remaining
    session = client.session
    adapter = _GuardAdapter(client, allowance, budget)
    session.mount("https://", adapter)
    if not budget.retries_allowed:
        client.max_retries = 0
        log.warning(
            "Salesforce API budget: %d of %d calls used in 24 h (>= %.0f%%): automatic retries are off",
            budget.used,
            budget.cap,
            budget.retry_stop_share * 100,
        )
    return client
