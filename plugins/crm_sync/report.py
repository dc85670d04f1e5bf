"""Human-readable summaries of run reports (for the demo, alerts and logs)."""

from __future__ import annotations

from typing import Any


def _counts(d: dict[str, Any] | None) -> str:
    items = [(k, v) for k, v in (d or {}).items() if isinstance(v, int | float) and v]
    return ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in items) or "nothing"


def summarize(report: dict[str, Any]) -> list[str]:
    """A few lines saying what a run did: window, status, writes per side, links, quarantine,
    notable events and API calls. Works for every DAG's report (unknown sections are listed
    generically)."""
    window = report.get("window") or {}
    lines = [
        f"{report.get('dag_id', '?')}  window [{window.get('start', '?')}, {window.get('end', '?')})"
        f"  status {report.get('status', '?')}{'  (dry run)' if report.get('dry_run') else ''}"
        f"{'  (full resync)' if report.get('full_resync') else ''}"
    ]
    if window.get("caught_up_from"):
        lines.append(f"  caught up from {window['caught_up_from']} (an earlier run had failed)")
    extracted = report.get("extracted") or {}
    if extracted:
        lines.append(
            f"  extracted: {_counts({k: v for k, v in extracted.items() if not k.endswith('_retried')})}"
        )
    known = {"salesforce": "Salesforce", "leadgen": "Lead Gen & CRM", "links": "links"}
    for key, label in known.items():
        if report.get(key):
            lines.append(f"  {label}: {_counts(report.get(key))}")
    for key, value in report.items():
        if key in known or key in (
            "extracted",
            "api_calls",
            "events",
            "validation",
            "window",
            "rows",
            "api_calls_by_kind",
        ):
            continue
        if (
            isinstance(value, dict)
            and value
            and all(isinstance(v, int | float) for v in value.values())
        ):
            lines.append(f"  {key.replace('_', ' ')}: {_counts(value)}")
    unchanged = report.get("unchanged")
    if unchanged is not None:
        lines.append(f"  unchanged pairs: {unchanged:,}")
    q = report.get("quarantined", 0)
    if q or report.get("quarantine_resolved"):
        cats: dict[str, int] = {}
        for ex in report.get("quarantine_examples") or []:
            cats[ex["category"]] = cats.get(ex["category"], 0) + 1
        lines.append(
            f"  quarantined: {q:,} rows (reject rate {report.get('reject_rate', 0):.1%}, limit "
            f"{report.get('max_reject_rate', 0):.0%}); resolved from earlier runs: {report.get('quarantine_resolved', 0):,}"
        )
        for ex in (report.get("quarantine_examples") or [])[:3]:
            lines.append(f"    - [{ex['category']}] {ex['message'][:150]}")
    events = report.get("events") or {}
    if events:
        lines.append(f"  events: {_counts(events)}")
    api = report.get("api_calls") or {}
    lines.append(
        f"  API calls: Salesforce {api.get('salesforce', 0):,}, Lead Gen & CRM {api.get('leadgen', 0):,}"
    )
    return lines


def writes(report: dict[str, Any]) -> int:
    """Number of writes a run made to either system (0 for an idle run)."""
    total = 0
    for side in ("salesforce", "leadgen"):
        for k, v in (report.get(side) or {}).items():
            # (de)activations are counted as updates already; "would_*" (dry runs) are not writes
            if isinstance(v, int) and k.split("_")[0] in (
                "created",
                "updated",
                "deleted",
                "adopted",
            ):
                total += v
    for section in ("opportunities", "accounts", "memberships", "activities"):
        for k, v in (report.get(section) or {}).items():
            if isinstance(v, int) and k.split("_")[0] in ("created", "updated", "deleted"):
                total += v
    return total
