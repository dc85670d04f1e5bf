"""Exceptions sorted by what the caller should do next.

* :class:`RetriableError` -- transient: rate limits, lock errors, 5xx, dropped connections.
  Back off and try again (inside the client first, then Airflow task retries).
* :class:`FatalError` -- bad configuration or credentials. Retrying cannot help, so tasks turn it
  into ``AirflowFailException`` (fail at once, no retries). Messages say what to fix and never
  carry a secret.
* :class:`DataQualityError` -- one record is bad (a field breaks a rule). The record is
  quarantined with its reason; the rest of the batch goes on.
"""

from __future__ import annotations


class SyncError(Exception):
    """Base class for every error the sync library raises on purpose."""


class RetriableError(SyncError):
    """A transient failure: the same call may succeed later.

    ``retry_after`` is a hint in seconds when the remote side gave one.
    """

    def __init__(
        self, message: str, *, code: str | int | None = None, retry_after: float | None = None
    ):
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class RateLimitError(RetriableError):
    """The remote API refused the call because a per-second or daily limit was hit."""


class FatalError(SyncError):
    """A failure that retrying cannot fix: the run must stop and a human must act."""


class ConfigError(FatalError):
    """Invalid configuration: a mapping spec, a missing connection, an unknown field."""


class AuthError(FatalError):
    """The remote API rejected our credentials."""


class BudgetExhaustedError(FatalError):
    """The configured API-call budget for this product is spent; writing stops until it refills."""


class DataQualityError(SyncError):
    """One record broke one rule. Names the record, the field and the rule."""

    def __init__(self, record_id: str | None, field: str | None, rule: str, message: str):
        super().__init__(f"record {record_id or '<new>'}: field {field or '-'}: {rule}: {message}")
        self.record_id = record_id
        self.field = field
        self.rule = rule
        self.detail = message
