"""Marketing activity: the event vocabulary and the one function that records an event.

Every marketing event (form submission, email send/open/click, page visit, import) is one row
of the ``events`` table with a stable integer id. ``getEvents`` serves the rows with their ids,
``getLeadTimeline`` the same rows without ids (like the real timeline), and
``getEmailJobs``/``getEmailEvents`` the email rows per send. One source of truth keeps the three
views consistent.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

# eventSource -> (whatType, eventName template); names are the real timeline strings
# (reference 7.10, observed in 6,655 captured rows).
EVENT_VOCABULARY: dict[str, tuple[str | None, str | None]] = {
    "formSubmit": ("form", "Filled out the form {formName}"),
    "emailSent": ("email", "Lead was sent an email."),
    "emailOpened": ("email", "Lead opened an email."),
    "emailClick": ("email", "Lead clicked from an email."),
    "emailVisit": ("email", "User visited page from email."),
    "emailBounce": ("email", "Lead bounced on an email."),
    "emailUnsubscribe": ("email", "Lead unsubscribed from email."),
    "emailSpamComplaint": ("email", "Lead filed a spam complaint on an email."),
    "pageVisit": ("pageVisit", "User visited page."),
    "leadCreation": ("import", "Added via Import"),
    "changeLeadStatus": (None, None),
    "leadOwnerChange": (None, "owner changed by automation"),
}

# The five kinds the vendor's Salesforce sync can push as activities.
SYNCABLE_SOURCES = ("formSubmit", "emailSent", "emailOpened", "emailClick", "pageVisit")

# getEmailEvents eventType -> eventSource.
EMAIL_EVENT_TYPES: dict[str, str] = {
    "sends": "emailSent",
    "opens": "emailOpened",
    "clicks": "emailClick",
    "bounces": "emailBounce",
    "unsubscribes": "emailUnsubscribe",
}

INSERT_EVENT = (
    "INSERT INTO events(leadID, eventName, whatID, whatType, eventData, eventSource, createTimestamp,"
    " emailID, emailJobID) VALUES (?,?,?,?,?,?,?,?,?)"
)


def event_row(
    lead_id: int,
    source: str,
    at: str,
    *,
    what_id: int | None = None,
    data: dict[str, Any] | None = None,
    email_id: int | None = None,
    job_id: int | None = None,
) -> tuple:
    """The INSERT_EVENT parameters for one event (also used by the bulk seed)."""
    what_type, template = EVENT_VOCABULARY[source]
    name = template.format(**(data or {})) if template else None
    payload = json.dumps(data, separators=(",", ":")) if data is not None else None
    return (lead_id, name, what_id, what_type, payload, source, at, email_id, job_id)


def record_event(conn: sqlite3.Connection, lead_id: int, source: str, at: str, **kw: Any) -> int:
    """Insert one event and return its id (the stable identity the sync keys Tasks on)."""
    cur = conn.execute(INSERT_EVENT, event_row(lead_id, source, at, **kw))
    return int(cur.lastrowid)


def form_id(conn: sqlite3.Connection, name: str, at: str) -> int:
    """Forms are created on first use, by name."""
    row = conn.execute("SELECT id FROM forms WHERE name=?", (name,)).fetchone()
    if row:
        return int(row["id"])
    return int(
        conn.execute("INSERT INTO forms(name, createTimestamp) VALUES (?, ?)", (name, at)).lastrowid
    )
