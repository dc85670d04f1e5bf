"""The pair: one Lead Gen & CRM lead, one Salesforce record (either may be missing), the link
between them and what the match stage decided about them, as the reconcile stage reads it."""

from __future__ import annotations

from typing import Any

Pair = dict[str, Any]


def make_pair(
    key: str,
    *,
    lg: dict[str, Any] | None,
    sf: dict[str, Any] | None,
    sf_object: str,
    link: dict[str, Any] | None,
    match: str,
    events: list[dict[str, Any]] | None = None,
    lg_extra: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> Pair:
    """One matched pair as the reconcile stage reads it (``lg_extra``: lifecycle writes to the
    lead decided here, e.g. deactivate; ``skip_fields``: no field sync for this pair)."""
    return {
        "pair": key,
        "lg": lg,
        "sf": sf,
        "sf_object": sf_object,
        "link": link,
        "match": match,
        "events": list(events or []),
        "lg_extra": list(lg_extra or []),
        **extra,
    }


def event(name: str, detail: str, **ids: str) -> dict[str, Any]:
    return {"event": name, "detail": detail, **ids}
