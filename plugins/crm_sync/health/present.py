"""Turn state-store rows into what the pages and the JSON API show, secrets removed.

Everything that leaves the app passes through :func:`redact`: payloads and synced values are
shown as stored, except that the value of any key that looks like a secret (password, secretKey,
token, session ...) becomes ``***``, URLs lose the values of secret query parameters
(:func:`crm_sync.redact.redact_url`) and free text loses known secret shapes
(:func:`crm_sync.redact.redact_text`). Run reports are rendered generically: every numeric leaf
is a counter, grouped by its top-level section, so the reports of other DAGs (opportunities,
engagement) show without code changes here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from crm_sync.health.queries import CategoryGroup, RecordMatches
from crm_sync.redact import REDACTED, SECRET_QUERY_KEYS, redact_text, redact_url
from crm_sync.state.models import HeldItem, Link, LinkEvent, QuarantineItem, Run
from crm_sync.state.store import from_db

# A key is secret when its name contains one of these words (case-insensitive), or it is one of
# the query keys crm_sync.redact already treats as secret ("sid", "session_id", ...).
_SECRET_KEY_RE = re.compile(
    r"(?i)(pass(word|wd|phrase)?$|password|secret|token|session|api[_-]?key|authori[sz]ation"
    r"|credential|private[_-]?key|client[_-]?secret|cookie)"
)
_URL_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
# ``key=value`` pairs in free text whose key crm_sync.redact.redact_text does not cover.
_TEXT_PAIR_RE = re.compile(
    r"(?i)\b((?:access_|refresh_|api_|auth_)?token|session_?id|sid|api_?key|client_secret)"
    r"(\s*=\s*)([^&\s'\",;]+)"
)

# Report sections that are not counters: shown elsewhere (API calls, window) or not numbers.
_NOT_COUNTERS = frozenset(
    {
        "api_calls",
        "window",
        "event_examples",
        "quarantine_examples",
        "reject_rate",
        "max_reject_rate",
        "dag_id",
        "run_id",
        "status",
    }
)
# Sections first in this order (the two systems, then the links), then the rest alphabetically;
# top-level numbers of the report go to "run".
SECTION_ORDER = ("extracted", "salesforce", "leadgen", "links", "run", "events")


def is_secret_key(key: str) -> bool:
    """True when a mapping key names a secret (its value must never be shown)."""
    k = str(key)
    return k.lower() in SECRET_QUERY_KEYS or bool(_SECRET_KEY_RE.search(k))


def _redact_urls_in(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        url = m.group(0)
        try:
            keys = [k for k, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)]
        except ValueError:
            return redact_text(url)
        # Re-encode the query only when it carries a secret, so other URLs show as stored.
        if any(is_secret_key(k) for k in keys):
            url = redact_url(url)
            # redact_url knows a fixed key list; broader secret-looking keys are cut here too.
            url = re.sub(
                r"([?&])([^=&#]+)=([^&#]*)",
                lambda q: (
                    f"{q.group(1)}{q.group(2)}={REDACTED}"
                    if is_secret_key(q.group(2))
                    else q.group(0)
                ),
                url,
            )
        return url

    return _URL_RE.sub(one, text)


def redact_string(text: str) -> str:
    """Free text with secret URL query values and known secret shapes removed."""
    text = _redact_urls_in(text)
    text = _TEXT_PAIR_RE.sub(
        lambda m: m.group(0) if m.group(3) == REDACTED else f"{m.group(1)}{m.group(2)}{REDACTED}",
        text,
    )
    return redact_text(text)


def redact(value: Any) -> Any:
    """A deep copy of ``value`` safe to show: secret keys masked, strings redacted."""
    if isinstance(value, Mapping):
        return {
            str(k): (REDACTED if is_secret_key(str(k)) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_string(value)
    return value


def iso(dt: datetime | None) -> str | None:
    """Stored naive-UTC timestamp -> ISO 8601 with offset (what the JSON API returns)."""
    aware = from_db(dt)
    return aware.isoformat() if aware else None


def short_time(value: datetime | str | None) -> str:
    """Compact UTC time for tables: ``2026-11-27 10:00``."""
    if value is None or value == "":
        return "–"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    aware = from_db(value)
    assert aware is not None
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def short_window(window: Mapping[str, Any]) -> str:
    """``2026-11-27 08:00–09:00`` (the end's date only when it differs from the start's)."""
    start, end = short_time(window.get("start")), short_time(window.get("end"))
    if start == "–" and end == "–":
        return "–"
    if start[:10] == end[:10]:
        return f"{start}–{end[11:]}"
    return f"{start} – {end}"


# -- runs ----------------------------------------------------------------------------------
def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def report_counters(report: Mapping[str, Any] | None) -> dict[str, dict[str, int | float]]:
    """Every numeric leaf of a run report, per top-level section.

    ``{"salesforce": {"created": 3}, "links": {"converted": 1}, "run": {"pairs": 9}}``; nested
    dicts below a section become dotted names (``validation: {"checks.email_format": 2}``).
    """
    out: dict[str, dict[str, int | float]] = {}

    def walk(section: str, prefix: str, node: Any) -> None:
        if _is_number(node):
            out.setdefault(section, {})[prefix] = node
        elif isinstance(node, Mapping):
            for k, v in node.items():
                walk(section, f"{prefix}.{k}" if prefix else str(k), v)

    for key, value in (report or {}).items():
        if key in _NOT_COUNTERS:
            continue
        if _is_number(value):
            out.setdefault("run", {})[key] = value
        elif isinstance(value, Mapping):
            walk(key, "", value)
    ordered = {s: out[s] for s in SECTION_ORDER if s in out}
    ordered.update({s: out[s] for s in sorted(out) if s not in ordered})
    return ordered


def rows_processed(report: Mapping[str, Any] | None) -> int:
    """Records a run looked at: ``pairs`` when the report has it, else the extracted counts."""
    report = report or {}
    if _is_number(report.get("pairs")):
        return int(report["pairs"])
    extracted = report.get("extracted")
    if isinstance(extracted, Mapping):
        return int(sum(v for v in extracted.values() if _is_number(v)))
    return 0


def _number(report: Mapping[str, Any], key: str) -> int | float | None:
    value = report.get(key)
    return value if _is_number(value) else None


def run_dict(run: Run, *, with_report: bool = False) -> dict[str, Any]:
    """One run for the API: window, status, API calls, counters (and the redacted report)."""
    report = run.report or {}
    out: dict[str, Any] = {
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "status": run.status,
        "dry_run": bool(run.dry_run),
        "full_resync": bool(run.full_resync),
        "window": {"start": iso(run.window_start), "end": iso(run.window_end)},
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "api_calls": {
            "salesforce": int(run.sf_api_calls or 0),
            "leadgen": int(run.lg_api_calls or 0),
        },
        "quarantined": int(_number(report, "quarantined") or 0),
        "reject_rate": _number(report, "reject_rate"),
        "max_reject_rate": _number(report, "max_reject_rate"),
        "counters": report_counters(report),
        "message": redact_string(run.message) if run.message else None,
    }
    if with_report:
        out["report"] = redact(report)
    return out


# -- budget and daily usage ----------------------------------------------------------------
def budget_dict(
    *, used: int, budget: int, retry_stop_share: float, now: datetime
) -> dict[str, Any]:
    """Salesforce calls used in the rolling 24 h against the configured budget."""
    share_used = (used / budget) if budget > 0 else 1.0
    retry_stop_at = int(budget * retry_stop_share)
    return {
        "window": {"start": (now - timedelta(hours=24)).isoformat(), "end": now.isoformat()},
        "used": used,
        "budget": budget,
        "remaining": max(budget - used, 0),
        "share_used": round(share_used, 4),
        "retry_stop_share": retry_stop_share,
        "retry_stop_at": retry_stop_at,
        "retries_stopped": used >= retry_stop_at,
        "exhausted": used >= budget,
    }


def daily_usage(runs: Iterable[Run], *, days: int, now: datetime) -> list[dict[str, Any]]:
    """Per UTC day (oldest first, ``days`` days ending today): API calls, runs, rows, quarantined."""
    today = now.astimezone(UTC).date()
    buckets = {
        (today - timedelta(days=i)).isoformat(): {
            "day": (today - timedelta(days=i)).isoformat(),
            "sf_calls": 0,
            "lg_calls": 0,
            "runs": 0,
            "rows": 0,
            "quarantined": 0,
        }
        for i in range(days - 1, -1, -1)
    }
    for run in runs:
        started = from_db(run.started_at)
        if started is None:
            continue
        b = buckets.get(started.date().isoformat())
        if b is None:
            continue
        b["sf_calls"] += int(run.sf_api_calls or 0)
        b["lg_calls"] += int(run.lg_api_calls or 0)
        b["runs"] += 1
        b["rows"] += rows_processed(run.report)
        q = (run.report or {}).get("quarantined")
        b["quarantined"] += int(q) if _is_number(q) else 0
    return list(buckets.values())


@dataclass(frozen=True)
class Bar:
    """One bar of the inline SVG chart (coordinates in the SVG's user units)."""

    x: float
    y: float
    width: float
    height: float
    label: str
    value: int
    series: str


def chart_bars(
    days: list[dict[str, Any]], series: tuple[str, ...], *, width: int = 420, height: int = 120
) -> tuple[list[Bar], int]:
    """Grouped bars of ``series`` per day scaled to the box; returns the bars and the max value."""
    top = max([int(d[s]) for d in days for s in series] + [1])
    slot = width / max(len(days), 1)
    bar_w = max((slot - 6) / len(series), 1)
    bars = []
    for i, d in enumerate(days):
        for j, s in enumerate(series):
            v = int(d[s])
            h = (v / top) * (height - 4)
            bars.append(
                Bar(
                    x=round(i * slot + 3 + j * bar_w, 2),
                    y=round(height - h, 2),
                    width=round(bar_w - 1, 2),
                    height=round(h, 2),
                    label=d["day"],
                    value=v,
                    series=s,
                )
            )
    return bars, top


# -- quarantine, links, held ---------------------------------------------------------------
def quarantine_dict(item: QuarantineItem) -> dict[str, Any]:
    """One quarantine row for the API (payload and message redacted)."""
    return {
        "id": item.id,
        "dag_id": item.dag_id,
        "domain": item.domain,
        "direction": item.direction,
        "record_key": item.record_key,
        "target_object": item.target_object,
        "lg_id": item.lg_id,
        "sf_id": item.sf_id,
        "category": item.category,
        "check": redact_string(item.check or ""),
        "field": item.field,
        "error_code": item.error_code,
        "message": redact_string(item.message or ""),
        "payload": redact(item.payload or {}),
        "attempts": int(item.attempts or 0),
        "status": item.status,
        "first_run_id": item.first_run_id,
        "last_run_id": item.last_run_id,
        "first_seen": iso(item.first_seen),
        "last_seen": iso(item.last_seen),
        "resolved_at": iso(item.resolved_at),
    }


def group_dict(group: CategoryGroup) -> dict[str, Any]:
    return {
        "category": group.category,
        "rows": group.rows,
        "records": group.records,
        "checks": [
            {"check": redact_string(c.check), "error_code": c.error_code, "rows": c.rows}
            for c in group.checks
        ],
    }


def event_dict(ev: LinkEvent) -> dict[str, Any]:
    return {
        "event": ev.event,
        "old_sf_id": ev.old_sf_id,
        "new_sf_id": ev.new_sf_id,
        "detail": redact_string(ev.detail) if ev.detail else None,
        "run_id": ev.run_id,
        "at": iso(ev.at),
    }


def held_dict(item: HeldItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "dag_id": item.dag_id,
        "kind": item.kind,
        "item_key": item.item_key,
        "waiting_for": item.waiting_for,
        "reason": redact_string(item.reason or ""),
        "payload": redact(item.payload or {}),
        "attempts": int(item.attempts or 0),
        "first_seen": iso(item.first_seen),
        "last_seen": iso(item.last_seen),
    }


def _link_dict(link: Link | None, domain: str, lg_id: str) -> dict[str, Any]:
    if link is None:
        # Only the history is left (the link row was removed).
        return {
            "domain": domain,
            "lg_id": lg_id,
            "sf_object": None,
            "sf_id": None,
            "status": "removed",
            "created_at": None,
            "updated_at": None,
            "last_run_id": None,
            "synced_values": {},
        }
    return {
        "domain": link.domain,
        "lg_id": link.lg_id,
        "sf_object": link.sf_object,
        "sf_id": link.sf_id,
        "status": link.status,
        "created_at": iso(link.created_at),
        "updated_at": iso(link.updated_at),
        "last_run_id": link.last_run_id,
        "synced_values": redact(dict(sorted((link.synced_values or {}).items()))),
    }


def lookup_dict(query: str, kind: str, matches: RecordMatches) -> dict[str, Any]:
    """Lookup result: one entry per record (pair, history, values, its quarantine rows), plus
    quarantine rows that belong to no known record (for example a rejected create)."""
    links = {(ln.domain, ln.lg_id): ln for ln in matches.links}
    claimed: set[int] = set()
    records = []
    for domain, lg_id in matches.events:
        link = links.get((domain, lg_id))
        history = matches.events[(domain, lg_id)]
        sf_ids = {link.sf_id} if link else set()
        sf_ids |= {i for e in history for i in (e.old_sf_id, e.new_sf_id) if i}
        rows = [
            q
            for q in matches.quarantine
            if q.domain == domain
            and (
                q.lg_id == lg_id
                or q.record_key == f"lg:{lg_id}"
                or q.sf_id in sf_ids
                or q.record_key in {f"sf:{i}" for i in sf_ids}
            )
        ]
        claimed.update(q.id for q in rows)
        records.append(
            {
                **_link_dict(link, domain, lg_id),
                "history": [event_dict(e) for e in history],
                "quarantine": [quarantine_dict(q) for q in rows],
            }
        )
    return {
        "query": query,
        "kind": kind,
        "records": records,
        "unlinked_quarantine": [
            quarantine_dict(q) for q in matches.quarantine if q.id not in claimed
        ],
    }
