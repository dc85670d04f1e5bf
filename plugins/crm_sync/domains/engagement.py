"""Marketing engagement -> completed Salesforce Tasks: the rules of ``sync_engagement_activities``.

The module has two halves. Pure functions (event normalisation, identity, first-click choice,
templates, Task payloads, spec checks) that unit tests call directly; and one function per stage
(prepare, extract, plan, validate, load, record) that the flow calls with clients and the run
context. Stages hand off through JSON-lines files in the run folder, like the people spine.

Identity (see ``docs/engagement.md``)
-------------------------------------
* An event is a ``getEvents`` row; its ``id`` is stable across reads and pages, so it is the
  event identity. The timeline has no ids, and ``getEmailEvents`` has minute precision.
* The Task's external id (``LeadGen_Event_Id__c``) is the **task key**: ``LG-EVT-<event id>``,
  except for email clicks, where it is ``LG-CLICK-<lead id>-<email job id>``. Every click of one
  lead on one email send maps to the same key, so "only the first click" holds across runs: a
  later click of an already-synced email lands on the existing Task and is never a second one.
* Before writing, the load stage reads which keys already exist in Salesforce (``queryAll``, so
  Tasks a rep deleted are seen too and not resurrected); only missing keys are upserted, and the
  upsert on the external id makes even a race with another run harmless.
"""

from __future__ import annotations

import logging
import string
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_sync.errors import BudgetExhaustedError, ConfigError
from crm_sync.mapping.models import EngagementSpec, EventTaskSpec
from crm_sync.mapping.schema import LiveSchema
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.files import chunked, read_json, read_jsonl, write_json, write_jsonl

log = logging.getLogger(__name__)

# -- vocabulary ---------------------------------------------------------------------------

# Spec event type -> getEvents eventSource.
EVENT_SOURCES: dict[str, str] = {
    "form_submission": "formSubmit",
    "email_send": "emailSent",
    "email_open": "emailOpened",
    "email_click": "emailClick",
    "page_visit": "pageVisit",
}
TYPE_BY_SOURCE: dict[str, str] = {v: k for k, v in EVENT_SOURCES.items()}
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_SOURCES)

# What a subject template or a description line may name, per event type. The common names come
# from the getEvents row itself, the others from its eventData (``page`` is derived from ``url``).
COMMON_FIELDS: tuple[str, ...] = ("id", "leadID", "eventName", "createTimestamp", "date", "time")
TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "form_submission": ("formID", "formName", "url", "page"),
    "email_send": ("emailID", "emailJobID", "subject"),
    "email_open": ("emailID", "emailJobID", "subject"),
    "email_click": ("emailID", "emailJobID", "subject", "url", "page"),
    "page_visit": ("url", "referrer", "page"),
}
LABELS: dict[str, str] = {
    "id": "Lead Gen & CRM event id",
    "leadID": "Lead Gen & CRM lead id",
    "eventName": "Event",
    "createTimestamp": "When (UTC)",
    "date": "Date (UTC)",
    "time": "Time (UTC)",
    "formID": "Form id",
    "formName": "Form",
    "emailID": "Email id",
    "emailJobID": "Email send id",
    "subject": "Email subject",
    "referrer": "Referrer",
    "page": "Page",
    "url": "URL",
}
URL_LABELS: dict[str, str] = {
    "form_submission": "Form page",
    "email_click": "Link URL",
    "page_visit": "Page URL",
}
TYPE_LABELS: dict[str, str] = {
    "form_submission": "form submission",
    "email_send": "marketing email send",
    "email_open": "marketing email open",
    "email_click": "first click in a marketing email",
    "page_visit": "page visit",
}

KEY_PREFIX_EVENT = "LG-EVT-"
KEY_PREFIX_CLICK = "LG-CLICK-"
# The longest key we build ("LG-CLICK-" + two ids) must fit the external-id field.
MIN_KEY_LENGTH = 40

TASK = "Task"
PERSON_OBJECTS = ("Lead", "Contact")
PERSON_DOMAIN = "person"  # links written by sync_leads_contacts
DOMAIN = "engagement"  # quarantine rows of this DAG
DIRECTION = "lg_to_sf"
HELD_KIND = "event"
SPEC_NAME = "engagement"
USER_PREFIX = "005"
TS_FORMAT = "%Y-%m-%d %H:%M:%S"
# Tasks per load batch: one Bulk API 2.0 job (about 7 calls) or, at or below the client's bulk
# threshold, sObject Collections of 200. Results are appended per batch, so a retried load
# task redoes at most one batch (whose keys it then finds in Salesforce).
LOAD_CHUNK = 10_000
VALIDATE_CHUNK = 5_000
PLAN_CHUNK = 5_000  # events whose links and Salesforce records are looked up together
MAX_EXAMPLES = 5

# Counters every enabled type shows in the report, zero or not (others appear when they occur:
# not_first_click, rejected, failed, delivered_from_hold, deleted_in_salesforce, would_create).
TYPE_COUNTERS = ("extracted", "created", "already_present", "held", "dropped")

# Outcomes of the plan stage, one per event.
DELIVER, HOLD, DROP, SUPERSEDED = "deliver", "hold", "drop", "superseded"

# -- pure functions -----------------------------------------------------------------------


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


def check_spec(spec: EngagementSpec) -> list[tuple[str, str]]:
    """Problems of the spec on its own (templates, description fields, time zone), as
    ``(path, message)`` pairs. Disabled types are checked too: switching one on must not be the
    moment a typo surfaces."""
    problems: list[tuple[str, str]] = []
    try:
        ZoneInfo(spec.activity_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            ("activity_timezone", f"unknown time zone {spec.activity_timezone!r} (IANA name)")
        )
    for etype, tspec in spec.events.items():
        allowed = set(COMMON_FIELDS) | set(TYPE_FIELDS[etype])
        try:
            names = template_names(tspec.subject)
        except ValueError as exc:
            problems.append((f"events.{etype}.subject", str(exc)))
            names = []
        for name in names:
            if name not in allowed:
                problems.append(
                    (
                        f"events.{etype}.subject",
                        f"unknown field {{{name}}} for {etype}; use one of {sorted(allowed)}",
                    )
                )
        for i, name in enumerate(tspec.description):
            if name not in allowed:
                problems.append(
                    (
                        f"events.{etype}.description[{i}]",
                        f"unknown field {name!r} for {etype}; use one of {sorted(allowed)}",
                    )
                )
    return problems


def check_spec_against_schema(spec: EngagementSpec, schema: LiveSchema) -> list[tuple[str, str]]:
    """What in the spec cannot work against the org's Task describe, as ``(path, message)``."""
    if TASK not in schema.salesforce:
        return [("", "Salesforce object Task is not available to the integration user")]
    problems: list[tuple[str, str]] = []
    ext = schema.sf(TASK, spec.external_id_field)
    if ext is None:
        problems.append(
            ("external_id_field", f"Task.{spec.external_id_field} does not exist or is not visible")
        )
    else:
        if not ext.external_id:
            problems.append(
                ("external_id_field", f"Task.{ext.name} is not marked External ID in Salesforce")
            )
        if not ext.createable:
            problems.append(("external_id_field", f"Task.{ext.name} is not createable"))
        if ext.length and ext.length < MIN_KEY_LENGTH:
            problems.append(
                (
                    "external_id_field",
                    f"Task.{ext.name} holds {ext.length} characters; event keys need {MIN_KEY_LENGTH}",
                )
            )
    for name in ("WhoId", "Subject", "ActivityDate", "Description", "OwnerId"):
        f = schema.sf(TASK, name)
        if f is None or not f.createable:
            problems.append(("", f"Task.{name} does not exist or is not createable"))
    values: list[tuple[str, str, str]] = [
        ("status", "Status", spec.status),
        ("priority", "Priority", spec.priority),
    ]
    for etype in spec.enabled_types():
        tspec = spec.events[etype]
        if tspec.type:
            values.append((f"events.{etype}.type", "Type", tspec.type))
        if tspec.subtype:
            values.append((f"events.{etype}.subtype", "TaskSubtype", tspec.subtype))
    for path, name, value in values:
        f = schema.sf(TASK, name)
        if f is None or not f.createable:
            problems.append((path, f"Task.{name} does not exist or is not createable"))
        elif f.restricted_picklist and f.picklist_values and value not in f.picklist_values:
            problems.append(
                (path, f"{value!r} is not a value of Task.{name} (one of {f.picklist_values})")
            )
    return problems


def pick_owner(record: Mapping[str, Any], active_users: set[str]) -> str | None:
    """The Task owner: the person record's owner when it is an active user, else None (the
    Task then belongs to the integration user; a queue cannot own a Task)."""
    owner = str(record.get("OwnerId") or "")
    return owner if owner.startswith(USER_PREFIX) and owner in active_users else None


def _valid_ts(text: Any) -> bool:
    try:
        datetime.strptime(str(text), TS_FORMAT)
    except ValueError:
        return False
    return True


def ts_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TS_FORMAT)


# -- spec loading -------------------------------------------------------------------------


def load_spec() -> EngagementSpec:
    """``engagement.yaml`` from the mappings folder, checked; SpecError names file and path."""
    from crm_sync.mapping.loader import (
        SpecError,
        display_path,
        load_engagement_spec,
        spec_path,
    )

    path = spec_path(SPEC_NAME)
    spec = load_engagement_spec(path)
    problems = check_spec(spec)
    if problems:
        raise SpecError(display_path(path), problems)
    return spec


def run_spec(ctx: RunContext) -> EngagementSpec:
    """The spec as ``prepare`` read it: every task of one run works from the same snapshot."""
    return EngagementSpec.model_validate(read_json(ctx.run_dir / "engagement_spec.json"))


def run_schema(ctx: RunContext) -> LiveSchema:
    return LiveSchema.from_dict(read_json(ctx.run_dir / "schema.json", {}) or {})


def _calls(sf: Any = None, lg: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if sf is not None:
        out["sf_api_calls"] = sf.api_calls
        out["sf_calls_by_kind"] = {k: v for k, v in sf.calls.items() if k != "login"}
    if lg is not None:
        out["lg_api_calls"] = lg.api_calls
        out["lg_calls_by_kind"] = dict(lg.calls)
    return out


# -- stages -------------------------------------------------------------------------------


def prepare_stage(ctx: RunContext, *, sf: Any, lg: Any, store: Any) -> dict[str, Any]:
    """Spec loaded and checked against the Task describe, active users read, run recorded.

    Every configuration problem fails here, before any record is read or written. The rest is
    the shared :func:`crm_sync.pipeline.prepare.prepare` (run folder, schema facts, run row).
    """
    from crm_sync.mapping.loader import display_path, spec_path
    from crm_sync.pipeline.prepare import prepare as prepare_run

    spec = load_spec()
    schema = LiveSchema()
    for sobject in (TASK, *PERSON_OBJECTS):
        schema.add_salesforce_describe(sobject, sf.describe(sobject))
    problems = check_spec_against_schema(spec, schema)
    if problems:
        source = display_path(spec_path(SPEC_NAME))
        raise ConfigError(
            "engagement spec does not match the Salesforce Task object (nothing was written):\n"
            + "\n".join(f"{source}: {p}: {m}" if p else f"{source}: {m}" for p, m in problems)
        )
    active = sorted(
        str(u["Id"]) for u in sf.query("SELECT Id, IsActive FROM User") if u.get("IsActive")
    )
    # Describes are cached on the client, so the shared prepare spends no second call on them.
    summary = prepare_run(
        ctx,
        spec_names={},
        sf=sf,
        lg=lg,
        store=store,
        extra_sf_objects=(TASK, *PERSON_OBJECTS),
        with_owners=False,
    )
    write_json(ctx.path("engagement_spec.json"), spec.model_dump(mode="json"))
    write_json(ctx.path("users.json"), {"active": active})
    enabled = spec.enabled_types()
    log.info(
        "prepare engagement: enabled=%s disabled=%s active_users=%d",
        ",".join(enabled) or "-",
        ",".join(t for t in EVENT_TYPES if t not in enabled) or "-",
        len(active),
    )
    return {**summary, "enabled_types": enabled, **_calls(sf, lg)}


def extract_stage(ctx: RunContext, lg: Any, store: Any) -> dict[str, Any]:
    """Events of each enabled type in the window -> ``events/extracted.jsonl``; events held by
    earlier runs -> ``events/held.jsonl``; quarantined ones to retry -> ``events/retry.jsonl``.

    ``getEvents`` is read once per enabled type (``where.eventSource``), so a disabled type costs
    nothing. Its lower bound is inclusive; the upper bound is applied here as ``< window end`` so
    consecutive windows (lookback aside) do not share a second.
    """
    spec = run_spec(ctx)
    start, end = ctx.window_start, ctx.window_end
    end_text = ts_text(end)
    extracted: Counter = Counter()
    ignored: Counter = Counter()

    def window_events() -> Iterator[dict[str, Any]]:
        for etype in spec.enabled_types():
            for raw in lg.get_events(start, end, event_source=EVENT_SOURCES[etype]):
                ev = normalize_event(raw)
                if ev is None or ev["type"] != etype:
                    ignored["other_source"] += 1
                    continue
                if ev["at"] >= end_text:
                    ignored["after_window"] += 1
                    continue
                extracted[etype] += 1
                yield ev

    write_jsonl(ctx.path("events", "extracted.jsonl"), window_events())
    held = [
        item.payload.get("event")
        for item in store.held(ctx.dag_id, kind=HELD_KIND)
        if isinstance(item.payload, dict) and item.payload.get("event")
    ]
    write_jsonl(ctx.path("events", "held.jsonl"), held)
    statuses = ("open", "retry", "parked") if ctx.retry_quarantined else ("open", "retry")
    retry = [
        item.payload.get("event")
        for item in store.quarantined(ctx.dag_id, statuses=statuses, direction=DIRECTION)
        if isinstance(item.payload, dict) and item.payload.get("event")
    ]
    write_jsonl(ctx.path("events", "retry.jsonl"), retry)
    log.info(
        "extract engagement: window [%s, %s) extracted=%s held_in=%d quarantine_retry=%d ignored=%s lg_api_calls=%d",
        start.isoformat(),
        end.isoformat(),
        dict(extracted),
        len(held),
        len(retry),
        dict(ignored),
        lg.api_calls,
    )
    return {
        "extracted": {t: extracted.get(t, 0) for t in spec.enabled_types()},
        "held_in": len(held),
        "retry_in": len(retry),
        **_calls(lg=lg),
    }


def _candidates(ctx: RunContext) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """Every event of this run once, with where it came from (``window``, ``held``, ``retry``).

    The window's events stream from their file (``getEvents`` pages in id order, so each comes
    once); held and quarantined events are few and are merged in from memory.
    """
    side: dict[str, dict[str, Any]] = {}
    side_origins: dict[str, set[str]] = defaultdict(set)
    for origin in ("held", "retry"):
        for ev in read_jsonl(ctx.run_dir / "events" / f"{origin}.jsonl"):
            side.setdefault(ev["id"], ev)
            side_origins[ev["id"]].add(origin)
    seen: set[str] = set()
    for ev in read_jsonl(ctx.run_dir / "events" / "extracted.jsonl"):
        if ev["id"] in side:
            seen.add(ev["id"])
        yield ev, sorted({"window"} | side_origins.get(ev["id"], set()))
    for eid, ev in side.items():
        if eid not in seen:
            yield ev, sorted(side_origins[eid])


class _People:
    """Person links and the linked Salesforce records (owner, conversion), looked up once per
    run and cached: a chunk of events only asks for the leads and records not seen before."""

    FIELDS = {
        "Lead": ["Id", "OwnerId", "IsConverted", "ConvertedContactId"],
        "Contact": ["Id", "OwnerId"],
    }

    def __init__(self, sf: Any, store: Any):
        self.sf = sf
        self.store = store
        self.links: dict[str, Any] = {}
        self.looked_up: set[str] = set()
        self.records: dict[str, dict[str, Any]] = {}  # by 18-character id; absent = not found
        self.queried: set[str] = set()

    def load(self, lead_ids: Iterable[str]) -> None:
        from crm_sync.clients.salesforce import to_18

        new = {i for i in lead_ids if i and i not in self.looked_up}
        if new:
            self.links.update(self.store.links_by_lg(PERSON_DOMAIN, new))
            self.looked_up |= new
        wanted: dict[str, set[str]] = {"Lead": set(), "Contact": set()}
        for lead in new:
            link = self.links.get(lead)
            if link is not None and link.status == "active" and link.sf_object in wanted:
                wanted[link.sf_object].add(to_18(link.sf_id))
        self._query("Lead", wanted["Lead"])
        converted = {
            to_18(r["ConvertedContactId"])
            for r in self.records.values()
            if r.get("IsConverted") and r.get("ConvertedContactId")
        }
        self._query("Contact", wanted["Contact"] | converted)

    def _query(self, sobject: str, ids: set[str]) -> None:
        from crm_sync.clients.salesforce import to_18

        todo = sorted(ids - self.queried)
        if not todo:
            return
        self.queried.update(todo)
        for rec in self.sf.query_by_values(sobject, self.FIELDS[sobject], "Id", todo):
            self.records[to_18(rec["Id"])] = rec

    def record(self, sf_id: str | None) -> dict[str, Any] | None:
        from crm_sync.clients.salesforce import to_18

        return self.records.get(to_18(sf_id)) if sf_id else None


def plan_stage(ctx: RunContext, sf: Any, store: Any) -> dict[str, Any]:
    """Decide each event's fate and build its Task -> ``plans/plans.jsonl``.

    * one event per task key: the first click per lead and email send (the others are
      ``superseded``), and each event once even when the window, the hold and the quarantine
      all bring it;
    * lead not linked yet -> **hold**; its link marked deleted -> **drop** with the reason;
      linked record not found in Salesforce (deleted or merged since the last people run) ->
      **hold** until sync_leads_contacts updates the link;
    * otherwise **deliver**: WhoId from the link (a converted Lead's Contact), OwnerId read from
      that record.

    Two passes over the events (the first finds each email's first click), the second in chunks
    of :data:`PLAN_CHUNK`, so memory holds the run's first-click keys and people, not its events.
    """
    spec = run_spec(ctx)
    schema = run_schema(ctx)
    active_users = set((read_json(ctx.run_dir / "users.json", {}) or {}).get("active", []))
    completed = schema.sf(TASK, "CompletedDateTime")
    set_completed_at = bool(completed and completed.createable)
    enabled = set(spec.enabled_types())
    firsts = first_click_orders(ev for ev, _ in _candidates(ctx) if ev["type"] in enabled)
    people = _People(sf, store)
    counts: Counter = Counter()
    seen = 0

    def row(
        ev: dict[str, Any], origins: list[str], outcome: str, reason: str = "", **extra: Any
    ) -> dict[str, Any]:
        counts[f"{ev['type']}:{outcome}"] += 1
        return {
            "key": task_key(ev),
            "type": ev["type"],
            "event": ev,
            "lead_id": ev.get("lead_id") or None,
            "origins": origins,
            "outcome": outcome,
            "reason": reason,
            **extra,
        }

    def decide(ev: dict[str, Any], origins: list[str]) -> dict[str, Any]:
        lead = ev["lead_id"]
        link = people.links.get(lead)
        if link is None:
            return row(
                ev, origins, HOLD, f"lead {lead} is not linked to a Salesforce Lead or Contact yet"
            )
        if link.status == "deleted":
            reason = f"the Salesforce {link.sf_object} {link.sf_id} of lead {lead} was deleted"
            return row(ev, origins, DROP, reason, sf_object=link.sf_object)
        if link.status != "active":
            return row(ev, origins, HOLD, f"the link of lead {lead} is {link.status}")
        rec = people.record(link.sf_id)
        who_object = link.sf_object
        if rec is not None and rec.get("IsConverted"):
            rec = people.record(rec.get("ConvertedContactId"))
            who_object = "Contact"
        if rec is None:
            return row(
                ev,
                origins,
                HOLD,
                f"Salesforce {link.sf_object} {link.sf_id} of lead {lead} was not found "
                "(deleted or merged); waiting for sync_leads_contacts to update the link",
            )
        owner = pick_owner(rec, active_users)
        return row(
            ev,
            origins,
            DELIVER,
            sf_object=who_object,
            who_id=rec["Id"],
            owner_fallback=None if owner else (rec.get("OwnerId") or "(none)"),
            payload=build_task(
                ev, spec, who_id=rec["Id"], owner_id=owner, set_completed_at=set_completed_at
            ),
        )

    def plans() -> Iterator[dict[str, Any]]:
        nonlocal seen
        pending: list[tuple[dict[str, Any], list[str]]] = []

        def flush() -> Iterator[dict[str, Any]]:
            people.load(ev["lead_id"] for ev, _ in pending)
            for ev, origins in pending:
                yield decide(ev, origins)
            pending.clear()

        for ev, origins in _candidates(ctx):
            seen += 1
            if ev["type"] not in enabled:
                # A held event of a type switched off is let go; a quarantined one stays put.
                if "held" in origins:
                    yield row(ev, origins, DROP, f"{ev['type']} is switched off in engagement.yaml")
                continue
            first = firsts.get(task_key(ev)) if ev["type"] == "email_click" else None
            if first is not None and first != event_order(ev):
                yield row(
                    ev,
                    origins,
                    SUPERSEDED,
                    f"not the first click of lead {ev['lead_id']} on email send "
                    f"{ev['data'].get('emailJobID')}: event {first[2]} stands for it",
                )
            elif not ev.get("lead_id"):
                yield row(ev, origins, DROP, "the event names no lead")
            elif not _valid_ts(ev.get("at")):
                yield row(ev, origins, DROP, f"the event has no valid timestamp ({ev.get('at')!r})")
            else:
                pending.append((ev, origins))
                if len(pending) >= PLAN_CHUNK:
                    yield from flush()
        yield from flush()

    write_jsonl(ctx.path("plans", "plans.jsonl"), plans())
    by_outcome = Counter(k.split(":")[1] for k in counts.elements())
    log.info(
        "plan engagement: events=%d deliver=%d hold=%d drop=%d superseded=%d links=%d sf_api_calls=%d",
        seen,
        by_outcome[DELIVER],
        by_outcome[HOLD],
        by_outcome[DROP],
        by_outcome[SUPERSEDED],
        len(people.links),
        sf.api_calls,
    )
    return {"counts": dict(counts), **_calls(sf=sf)}


def task_checks(columns: Iterable[str], spec: EngagementSpec, schema: LiveSchema) -> list[Any]:
    """The quality gate for Task payloads: WhoId, Subject and the external id required; text
    no longer than the field; restricted picklists (from describe) hold a listed value."""
    from crm_sync.pipeline.validate import length_check, picklist_check, required_check

    checks = [required_check(name) for name in ("WhoId", "Subject", spec.external_id_field)]
    for name in sorted(set(columns)):
        f = schema.sf(TASK, name)
        if f is None:
            continue
        if f.length and f.type in ("string", "textarea", "combobox", "url", "email", "phone"):
            checks.append(length_check(name, f.length))
        if f.restricted_picklist and f.picklist_values:
            checks.append(picklist_check(name, f.picklist_values))
    return checks


def validate_tasks(
    plans: list[dict[str, Any]], spec: EngagementSpec, schema: LiveSchema, validator: Any
) -> dict[int, list[Any]]:
    """Run the gate on the deliverable plans of a chunk; failures by position in ``plans``."""
    from crm_sync.pipeline.validate import Failure, explain, frame

    idx = [i for i, p in enumerate(plans) if p["outcome"] == DELIVER]
    failures: dict[int, list[Any]] = defaultdict(list)
    if not idx:
        return failures
    payloads = [plans[i]["payload"] for i in idx]
    required = ("WhoId", "Subject", spec.external_id_field)
    # A blank string is as missing as no value: an empty Subject must fail "required".
    df = frame(payloads, idx, ensure=required, empty_is_blank=True)
    columns = [c for c in df.columns if not c.startswith("__")]
    for pos, check, value in validator.run(
        "sf_Task_upsert", df, task_checks(columns, spec, schema)
    ):
        p = plans[pos]
        who = f"Task {p['key']} ({p['type']}, lead {p.get('lead_id')})"
        failures[pos].append(
            Failure(
                "salesforce", p["key"], check.name, check.column, value, explain(who, check, value)
            )
        )
    return failures


def validate_stage(ctx: RunContext) -> dict[str, Any]:
    """``plans/plans.jsonl`` -> ``plans/validated.jsonl`` with ``rejected`` on failing Tasks;
    the per-check summary goes to ``validation.json`` (the people report's shape)."""
    from crm_sync.pipeline.validate import run_gate

    spec = run_spec(ctx)
    schema = run_schema(ctx)

    def mark(plan: dict[str, Any], found: list[Any], counts: Counter) -> None:
        plan["rejected"] = [f.to_dict() for f in found]
        if plan["outcome"] == DELIVER:
            counts["checked"] += 1
            counts["rejected"] += bool(found)

    return run_gate(
        ctx,
        lambda chunk, validator: validate_tasks(chunk, spec, schema, validator),
        mark,
        label="engagement",
        chunk_size=VALIDATE_CHUNK,
    )


def _existing(sf: Any, field: str, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Tasks already carrying one of ``keys`` (deleted ones included), by lower-cased key."""
    found: dict[str, dict[str, Any]] = {}
    if not keys:
        return found
    for rec in sf.query_by_values(
        TASK, ["Id", field, "IsDeleted"], field, keys, include_deleted=True
    ):
        key = str(rec.get(field) or "").lower()
        # A live Task wins over a deleted one carrying the same key.
        if key not in found or found[key].get("IsDeleted"):
            found[key] = rec
    return found


def _matched_existing(res: Any) -> bool:
    """An upsert that met an existing Task on its update path and refused TaskSubtype (which
    Salesforce only sets on create): another writer created the Task between our read and our
    write. The activity exists: that is 'already present', not a failure."""
    return (
        not res.success
        and res.error_code == "INVALID_FIELD_FOR_INSERT_UPDATE"
        and any("TaskSubtype" in e.fields for e in res.errors)
    )


def load_stage(ctx: RunContext, sf: Any) -> dict[str, Any]:
    """Write the Tasks that Salesforce does not have yet, in batches, keeping every result.

    Per batch of :data:`LOAD_CHUNK`: one read of the keys already in Salesforce (``queryAll``,
    IN lists of up to 300 keys), then one upsert on the external id of the rest (the client uses
    sObject Collections up to the spec's ``bulk_threshold``, Bulk API 2.0 above). Results go to
    ``results/sf.jsonl`` after each batch; a retried task skips keys already there. A dry run does
    the read (so it can say what would be created) and writes nothing.
    """
    spec = run_spec(ctx)
    ext = spec.external_id_field
    sf.bulk_threshold = spec.bulk_threshold
    results_path = ctx.path("results", "sf.jsonl")
    done = {r["key"] for r in read_jsonl(results_path)}
    todo = (
        p
        for p in read_jsonl(ctx.run_dir / "plans" / "validated.jsonl")
        if p["outcome"] == DELIVER and not p.get("rejected") and p["key"] not in done
    )
    counts: Counter = Counter(skipped_already_done=len(done))
    try:
        _load_batches(ctx, sf, ext, todo, results_path, counts)
    except BudgetExhaustedError as exc:
        # Stop cleanly: written Tasks are recorded; the rest waits for the next run (the
        # watermark does not advance, so the window is read again).
        log.warning("load engagement: %s", exc)
        return {"counts": dict(counts), **_calls(sf=sf), "budget_exhausted": str(exc)}
    log.info(
        "load engagement%s: %s sf_api_calls=%d",
        " (dry run: nothing written)" if ctx.dry_run else "",
        " ".join(f"{k}={v}" for k, v in sorted(counts.items())),
        sf.api_calls,
    )
    return {"counts": dict(counts), **_calls(sf=sf)}


def _load_batches(
    ctx: RunContext,
    sf: Any,
    ext: str,
    todo: Iterable[dict[str, Any]],
    results_path: Any,
    counts: Counter,
) -> None:
    for batch in chunked(todo, LOAD_CHUNK):
        present = _existing(sf, ext, [p["key"] for p in batch])
        rows: list[dict[str, Any]] = []
        to_write: list[dict[str, Any]] = []
        for p in batch:
            hit = present.get(p["key"].lower())
            if hit is not None:
                deleted = bool(hit.get("IsDeleted"))
                rows.append(
                    {
                        "key": p["key"],
                        "op": "present",
                        "success": True,
                        "id": hit["Id"],
                        "deleted": deleted,
                    }
                )
                counts["deleted_in_salesforce" if deleted else "already_present"] += 1
            elif ctx.dry_run:
                rows.append({"key": p["key"], "op": "dry_run", "success": True, "id": None})
                counts["would_create"] += 1
            else:
                to_write.append(p)
        if to_write:
            results = sf.upsert(TASK, ext, [p["payload"] for p in to_write])
            for p, res in zip(to_write, results, strict=True):
                if _matched_existing(res):
                    rows.append(
                        {
                            "key": p["key"],
                            "op": "present",
                            "success": True,
                            "id": res.id,
                            "deleted": False,
                        }
                    )
                    counts["already_present"] += 1
                    continue
                rows.append(
                    {
                        "key": p["key"],
                        "op": "upsert",
                        "success": bool(res.success),
                        "id": res.id,
                        "created": res.created,
                        "error_code": res.error_code,
                        "error_message": res.error_message,
                        "error_fields": [f for e in res.errors for f in e.fields],
                    }
                )
                if res.success:
                    counts["created" if res.created is not False else "already_present"] += 1
                else:
                    counts["failed"] += 1
        write_jsonl(results_path, rows, append=True)


def _sum_calls(summaries: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Each task builds its own clients, so the run's calls are the sum over tasks."""
    total = {"salesforce": 0, "leadgen": 0}
    kinds: dict[str, Counter] = {"salesforce": Counter(), "leadgen": Counter()}
    for s in summaries.values():
        if not isinstance(s, Mapping):
            continue
        total["salesforce"] += int(s.get("sf_api_calls", 0))
        total["leadgen"] += int(s.get("lg_api_calls", 0))
        kinds["salesforce"].update(s.get("sf_calls_by_kind") or {})
        kinds["leadgen"].update(s.get("lg_calls_by_kind") or {})
    return total, {k: dict(v) for k, v in kinds.items()}


def _example(examples: dict[str, list[str]], name: str, text: str) -> None:
    bucket = examples.setdefault(name, [])
    if len(bucket) < MAX_EXAMPLES:
        bucket.append(text)


def record_stage(ctx: RunContext, store: Any, summaries: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the run to the state store and build the run report.

    Held items: events waiting for a link are held (or stay held, counting attempts); held
    events that were delivered, dropped, superseded or quarantined are released with that
    status. Quarantine: Tasks the gate or Salesforce rejected go in with reason and payload (the
    event, so a later run can rebuild the Task); delivered keys leave it. A dry run changes no
    state. The report has the people report's top-level shape plus ``by_type``.
    """
    from crm_sync.pipeline.record import category_for, run_header

    spec = run_spec(ctx)
    results = {r["key"]: r for r in read_jsonl(ctx.run_dir / "results" / "sf.jsonl")}
    extracted = dict((summaries.get("extract") or {}).get("extracted") or {})
    by_type: dict[str, Counter] = {t: Counter() for t in spec.enabled_types()}
    for t, n in extracted.items():
        by_type.setdefault(t, Counter())["extracted"] = n
    sf_counts: Counter = Counter()
    events: Counter = Counter()
    examples: dict[str, list[str]] = {}
    quarantined: list[dict[str, Any]] = []
    delivered_keys: set[str] = set()
    closed_keys: set[str] = set()
    to_hold: list[dict[str, Any]] = []
    releases: dict[tuple[str, str], list[str]] = defaultdict(list)  # (status, reason) -> keys
    planned = rejected = plans_seen = 0

    for plan in read_jsonl(ctx.run_dir / "plans" / "validated.jsonl"):
        plans_seen += 1
        ev = plan["event"]
        etype = plan["type"]
        tc = by_type.setdefault(etype, Counter())
        was_held = "held" in plan["origins"]
        who = f"event {ev['id']} ({etype}, lead {plan.get('lead_id') or '-'})"
        outcome = plan["outcome"]
        if outcome == HOLD:
            tc["held"] += 1
            events["held"] += 1
            _example(examples, "held", f"{who}: {plan['reason']}")
            to_hold.append(plan)
            continue
        if outcome == DROP:
            tc["dropped"] += 1
            events["dropped"] += 1
            _example(examples, "dropped", f"{who}: {plan['reason']}")
            if was_held:
                releases[("dropped", plan["reason"])].append(ev["id"])
            if "retry" in plan["origins"]:
                # A quarantined event that can no longer be delivered leaves the retry loop.
                closed_keys.add(plan["key"])
            continue
        if outcome == SUPERSEDED:
            tc["not_first_click"] += 1
            events["not_first_click"] += 1
            if was_held:
                releases[("superseded", plan["reason"])].append(ev["id"])
            continue
        # DELIVER
        planned += 1
        base_q = {
            "dag_id": ctx.dag_id,
            "domain": DOMAIN,
            "direction": DIRECTION,
            "record_key": f"evt:{plan['key']}",
            "target_object": TASK,
            "lg_id": plan.get("lead_id"),
            "sf_id": plan.get("who_id"),
            "payload": {"event": ev, "task": plan["payload"]},
            "run_id": ctx.run_id,
            "max_attempts": ctx.max_attempts,
        }
        if plan.get("owner_fallback"):
            sf_counts["owner_fallback"] += 1
            _example(
                examples,
                "owner_fallback",
                f"{who}: owner {plan['owner_fallback']} of {plan.get('who_id')} is not an active "
                "user; the Task belongs to the integration user",
            )
        if plan.get("rejected"):
            rejected += 1
            tc["rejected"] += 1
            sf_counts["rejected_by_gate"] += 1
            first = plan["rejected"][0]
            quarantined.append(
                {
                    **base_q,
                    "category": first["category"],
                    "check": first["check"],
                    "field": first["field"],
                    "error_code": None,
                    "message": "; ".join(f["message"] for f in plan["rejected"]),
                }
            )
            if was_held:
                releases[("quarantined", "rejected by the quality gate")].append(ev["id"])
            continue
        res = results.get(plan["key"])
        if res is None:
            tc["not_attempted"] += 1
            sf_counts["not_attempted"] += 1
            continue
        if res["op"] == "dry_run":
            tc["would_create"] += 1
            sf_counts["would_create"] += 1
            continue
        if res["op"] == "present":
            tc["already_present"] += 1
            sf_counts["already_present"] += 1
            if res.get("deleted"):
                tc["deleted_in_salesforce"] += 1
                sf_counts["deleted_in_salesforce"] += 1
            delivered_keys.add(plan["key"])
        elif res["success"]:
            name = "created" if res.get("created") is not False else "already_present"
            tc[name] += 1
            sf_counts[name] += 1
            delivered_keys.add(plan["key"])
        else:
            rejected += 1
            tc["failed"] += 1
            sf_counts["failed"] += 1
            quarantined.append(
                {
                    **base_q,
                    "category": category_for(res.get("error_code")),
                    "check": f"salesforce:{res.get('error_code')}",
                    "field": ",".join(res.get("error_fields") or []) or None,
                    "error_code": res.get("error_code"),
                    "message": f"Salesforce refused Task {plan['key']} ({etype}, lead "
                    f"{plan.get('lead_id')}, {plan.get('sf_object')} {plan.get('who_id')}): "
                    f"{res.get('error_message')}",
                }
            )
            if was_held:
                releases[("quarantined", "refused by Salesforce")].append(ev["id"])
            continue
        if was_held:
            tc["delivered_from_hold"] += 1
            events["delivered_from_hold"] += 1
            releases[("delivered", "delivered once the lead was linked")].append(ev["id"])

    resolved = 0
    if not ctx.dry_run:
        for plan in to_hold:
            store.hold(
                ctx.dag_id,
                HELD_KIND,
                plan["event"]["id"],
                payload={"event": plan["event"], "key": plan["key"]},
                reason=plan["reason"],
                waiting_for=f"person link of lead {plan.get('lead_id')}"[:120],
            )
        for (status, reason), ids in releases.items():
            store.release(ctx.dag_id, HELD_KIND, ids, status=status, reason=reason)
        q_keys = set()
        for q in quarantined:
            store.quarantine(**q)
            q_keys.add(q["record_key"])
        resolved = store.resolve_quarantine(
            ctx.dag_id,
            DIRECTION,
            {f"evt:{k}" for k in delivered_keys | closed_keys} - q_keys,
            ctx.run_id,
        )
    api_calls, api_by_kind = _sum_calls(summaries)
    validation = read_json(ctx.run_dir / "validation.json", {}) or {}
    reject_rate = (rejected / planned) if planned else 0.0
    report = {
        **run_header(ctx),
        "extracted": extracted,
        "pairs": plans_seen,
        "salesforce": dict(sf_counts),
        "leadgen": {},
        "links": {},
        "unchanged": sf_counts["already_present"],
        "quarantined": len(quarantined),
        "quarantine_resolved": resolved,
        "events": dict(events),
        "event_examples": examples,
        "rejected_rows": rejected,
        "planned_rows": planned,
        "reject_rate": round(reject_rate, 4),
        "max_reject_rate": ctx.max_reject_rate,
        "validation": {
            "checks": validation.get("checks", {}),
            "top_failures": validation.get("top_failures", {}),
        },
        "quarantine_examples": [
            {k: q[k] for k in ("record_key", "direction", "category", "check", "field", "message")}
            for q in quarantined[:20]
        ],
        "api_calls": api_calls,
        "by_type": {
            t: {**dict.fromkeys(TYPE_COUNTERS, 0), **by_type[t]}
            for t in EVENT_TYPES
            if t in by_type
        },
        "api_calls_by_kind": api_by_kind,
        "enabled_types": spec.enabled_types(),
    }
    write_json(ctx.path("report.json"), report)
    log.info(
        "record engagement: by_type=%s held=%d dropped=%d quarantined=%d resolved=%d",
        report["by_type"],
        events["held"],
        events["dropped"],
        len(quarantined),
        resolved,
    )
    return report
