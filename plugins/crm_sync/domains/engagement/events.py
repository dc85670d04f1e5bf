"""Events and their Tasks, as pure functions: normalisation of ``getEvents`` rows, the task key and
the first-click rule, templates, the Task payload, and the Task owner.

Unit tests call these directly; the stages (:mod:`.plan` and the others) call them with the run's
data.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from crm_sync.clients.sf_ids import is_of
from crm_sync.domains.engagement.rules import (
    KEY_PREFIX_CLICK,
    KEY_PREFIX_EVENT,
    LABELS,
    TS_FORMAT,
    TYPE_BY_SOURCE,
    TYPE_LABELS,
    URL_LABELS,
)
from crm_sync.mapping.models import EngagementSpec, EventTaskSpec


def normalize_event(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """A ``getEvents`` row -> the event as the sync keeps it (JSON-able, values as strings).

    Returns None for event sources the sync never turns into Tasks (imports, bounces, ...).
    ``eventData`` arrives as a JSON string (sometimes single-quoted); it is parsed here once.
    """
    from crm_sync.clients.leadgen import parse_event_data

    etype = TYPE_BY_SOURCE.get(str(raw.get("eventSource") or ""))
    if etype is None or raw.get("id") in (None, ""):
        return None
    data = parse_event_data(raw.get("eventData"))
    return {
        "id": str(raw["id"]),
        "type": etype,
        "lead_id": str(raw.get("leadID") or "").strip(),
        "at": str(raw.get("createTimestamp") or ""),
        "name": str(raw.get("eventName") or ""),
        "data": {str(k): "" if v is None else str(v) for k, v in data.items()},
    }


def task_key(event: Mapping[str, Any]) -> str:
    """The Task external id for ``event`` (see the module docstring).

    A click without an email job id (malformed eventData) cannot be grouped with the others of
    its email, so it falls back to its own event id.
    """
    if event["type"] == "email_click":
        job = str((event.get("data") or {}).get("emailJobID") or "").strip()
        if job and event.get("lead_id"):
            return f"{KEY_PREFIX_CLICK}{event['lead_id']}-{job}"
    return f"{KEY_PREFIX_EVENT}{event['id']}"


def event_order(event: Mapping[str, Any]) -> tuple[str, int, str]:
    """Sort key "earliest first": ``(createTimestamp, id)``, ids compared as numbers."""
    eid = str(event["id"])
    return (str(event.get("at") or ""), int(eid) if eid.isdigit() else -1, eid)


def first_click_orders(events: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, int, str]]:
    """For every click key (lead, email send), the order of its first click: the lowest
    ``(createTimestamp, id)``. Non-click events are ignored."""
    best: dict[str, tuple[str, int, str]] = {}
    for ev in events:
        if ev["type"] != "email_click":
            continue
        key, order = task_key(ev), event_order(ev)
        if key not in best or order < best[key]:
            best[key] = order
    return best


def first_per_task(
    events: Iterable[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The first-click rule on a list: ``(kept, superseded)``.

    Of several clicks by one lead on one email send, the lowest ``(createTimestamp, id)``
    stands for all of them; every other event is kept as it is. Input order is preserved.
    """
    events = list(events)
    firsts = first_click_orders(events)
    kept, superseded = [], []
    for ev in events:
        first = firsts.get(task_key(ev)) if ev["type"] == "email_click" else None
        (superseded if first is not None and first != event_order(ev) else kept).append(ev)
    return kept, superseded


def short_page(url: str, limit: int = 100) -> str:
    """``https://www.example.com/pricing/?utm=x`` -> ``www.example.com/pricing``, cut to ``limit``."""
    parts = urlsplit(url.strip())
    text = (parts.netloc + parts.path).rstrip("/") if parts.netloc else url.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_fields(event: Mapping[str, Any]) -> dict[str, str]:
    """Every name a template may use for ``event``, with its value ('' when absent)."""
    at = str(event.get("at") or "")
    fields = {k: v for k, v in (event.get("data") or {}).items()}
    fields.update(
        id=str(event["id"]),
        leadID=str(event.get("lead_id") or ""),
        eventName=str(event.get("name") or ""),
        createTimestamp=at,
        date=at[:10],
        time=at[11:19],
    )
    if fields.get("url"):
        fields["page"] = short_page(fields["url"])
    return fields


class _Blank(dict):
    """A mapping that renders a missing field as '' instead of raising KeyError."""

    def __missing__(self, key: str) -> str:
        return ""


def template_names(template: str) -> list[str]:
    """The field names a ``str.format`` template uses. Raises ValueError for anything but plain
    ``{name}`` / ``{name:format}`` placeholders (no attribute access, indexing or conversions:
    templates only ever see flat string values)."""
    names = []
    for _literal, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if not name or not name.isidentifier():
            raise ValueError(f"placeholder {{{name}}} must be a plain field name")
        if conversion:
            raise ValueError(f"placeholder {{{name}!{conversion}}}: conversions are not allowed")
        if spec and "{" in spec:
            raise ValueError(f"placeholder {{{name}}}: nested placeholders are not allowed")
        names.append(name)
    return names


def render_template(template: str, fields: Mapping[str, str]) -> str:
    """Fill ``template``; missing values render empty and runs of whitespace collapse."""
    return " ".join(template.format_map(_Blank(fields)).split())


def field_label(name: str, etype: str) -> str:
    if name == "url":
        return URL_LABELS.get(etype, LABELS["url"])
    return LABELS.get(name, name)


def build_description(event: Mapping[str, Any], tspec: EventTaskSpec) -> str:
    """The Task comments: one ``Label: value`` line per configured field that has a value, then a
    line naming the event and its exact time (Task.CompletedDateTime is set by Salesforce when
    the Task is written, so the comments are where the exact moment of the event survives)."""
    fields = event_fields(event)
    etype = event["type"]
    lines = [
        f"{field_label(name, etype)}: {fields[name]}"
        for name in tspec.description
        if fields.get(name)
    ]
    lines.append(
        f"Lead Gen & CRM {TYPE_LABELS[etype]}, event {event['id']}, at {event.get('at')} UTC."
    )
    return "\n".join(lines)


def activity_date(at: str, tz: str = "UTC") -> str:
    """The calendar date of an API timestamp (UTC) in zone ``tz``, ``YYYY-MM-DD``."""
    moment = datetime.strptime(at, TS_FORMAT).replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(tz)).date().isoformat()


def build_task(
    event: Mapping[str, Any],
    spec: EngagementSpec,
    *,
    who_id: str,
    owner_id: str | None,
    set_completed_at: bool = False,
) -> dict[str, Any]:
    """The Salesforce Task for one (first) event: completed, on ``who_id``, dated by the event.

    ``owner_id`` None leaves the owner to Salesforce (the integration user). ``set_completed_at``
    also sends ``CompletedDateTime`` (only where the org lets the API set it; read-only in
    standard orgs).
    """
    tspec = spec.events[event["type"]]
    payload: dict[str, Any] = {
        spec.external_id_field: task_key(event),
        "WhoId": who_id,
        "Subject": render_template(tspec.subject, event_fields(event)),
        "ActivityDate": activity_date(event["at"], spec.activity_timezone),
        "Status": spec.status,
        "Priority": spec.priority,
        "Description": build_description(event, tspec),
    }
    if tspec.type:
        payload["Type"] = tspec.type
    if tspec.subtype:
        payload["TaskSubtype"] = tspec.subtype
    if owner_id:
        payload["OwnerId"] = owner_id
    if set_completed_at:
        moment = datetime.strptime(event["at"], TS_FORMAT).replace(tzinfo=UTC)
        payload["CompletedDateTime"] = moment.isoformat().replace("+00:00", "Z")
    return payload


def pick_owner(record: Mapping[str, Any], active_users: set[str]) -> str | None:
    """The Task owner: the person record's owner when it is an active user, else None (the
    Task then belongs to the integration user; a queue cannot own a Task)."""
    owner = str(record.get("OwnerId") or "")
    return owner if is_of(owner, "User") and owner in active_users else None


def valid_ts(text: Any) -> bool:
    try:
        datetime.strptime(str(text), TS_FORMAT)
    except ValueError:
        return False
    return True


def ts_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TS_FORMAT)
