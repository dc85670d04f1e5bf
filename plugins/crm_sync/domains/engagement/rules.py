"""The vocabulary of the engagement sync: event types and their sources, what a Task template may
name, the labels of its description, the Task key prefixes and the stage constants.

Identity (see ``docs/engagement.md``): an event is a ``getEvents`` row; its ``id`` is stable
across reads and pages, so it is the event identity. The Task's external id
(``LeadGen_Event_Id__c``) is the **task key**: ``LG-EVT-<event id>``, except for email clicks,
where it is ``LG-CLICK-<lead id>-<email job id>``: every click of one lead on one email send maps
to the same key, so "only the first click" holds across runs.
"""

from __future__ import annotations

DAG_ID = "sync_engagement_activities"

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
HELD_KIND = "event"
SPEC_NAME = "engagement"
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
