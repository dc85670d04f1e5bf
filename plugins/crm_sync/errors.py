"""Exceptions sorted by what the caller should do next.

* :class:`RetriableError` -- transient: rate limits, lock errors, 5xx, dropped connections.
  Back off and try again (inside the client first, then Airflow task retries).
* :class:`FatalError` -- bad configuration or credentials. Retrying cannot help, so tasks turn it
  into ``AirflowFailException`` (fail at once, no retries). Messages say what to fix and never
  carry a secret.
* :class:`DataQualityError` -- one record is bad (a field breaks a rule). The record is
  quarantined with its reason; the rest of the batch goes on.
* :class:`AmbiguousWriteError` -- a create without a natural key may or may not have been
  applied (the answer was lost). Neither retry nor give up: look the records up by a natural
  key first, then create only what is missing.
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


class AmbiguousWriteError(SyncError):
    """A create call may have been applied although no answer came back.

    Raised for creates the API cannot deduplicate (no natural key: opportunities, accounts,
    deal stages, opportunity leads...) when the request may have reached the server before the
    connection dropped, timed out or answered 5xx/999. Retrying blindly could create the records
    twice, and failing as fatal would hide that they may exist: the caller must look them up
    (by a natural key such as the name plus the Salesforce id it carries) before creating again.
    Deliberately *not* a :class:`RetriableError`, so nothing retries it blindly; an Airflow task
    retry is safe only if the task looks the records up first.

    ``method`` is the API method, ``count`` the number of objects in the ambiguous call,
    ``first_index`` the input position of the first of them; ``partial_results`` (set by the
    client) holds the results of the earlier batches, which were applied for certain.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        count: int,
        first_index: int = 0,
        code: str | int | None = None,
    ):
        super().__init__(message)
        self.method = method
        self.count = count
        self.first_index = first_index
        self.code = code
