"""What a marketer does in the product UI, as functions the admin API exposes.

Edits go through the same lead rules as the API (one code path, one set of quirks). Form fills
and re-imports are the two ways the vendor names to *reactivate* a deactivated lead; email
sends/opens/clicks and page visits record marketing events with stable ids. Every function takes
the timestamp ``at`` to write with, so tests can backdate activity (``"_at"`` in admin payloads).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .activity import form_id, record_event
from .errors import ObjectError
from .methods.leads import (
    COL_INDEX,
    CustomCatalog,
    changes_for,
    create_lead,
    get_lead_row,
    get_lead_row_by_email,
    insert_lead,
    lead_to_api,
    prepare_values,
    write_changes,
)
from .storage import Database
from .values import TEXT_API


class AdminError(Exception):
    """A refused admin request: HTTP ``status`` plus a message (and the API error, if any)."""

    def __init__(self, status: int, message: str, error: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error


def _object_error(exc: ObjectError) -> AdminError:
    return AdminError(400, exc.message, exc.to_json())


def _lead_or_404(conn: sqlite3.Connection, lead_id: Any) -> tuple:
    try:
        row = get_lead_row(conn, int(lead_id))
    except (TypeError, ValueError):
        row = None
    if row is None:
        raise AdminError(404, f"lead {lead_id} does not exist")
    return row


def read_lead(db: Database, lead_id: Any) -> dict[str, Any]:
    """The lead as getLead would return it, active or not."""
    with db.read() as conn:
        row = _lead_or_404(conn, lead_id)
        return lead_to_api(row, CustomCatalog(conn).names)


def edit_lead(
    db: Database, lead_id: Any, fields: dict[str, Any], at: str, text_mode: str = TEXT_API
) -> dict[str, Any]:
    """A marketer edits fields (any writable field, including ``active`` and scores).

    Text is stored as an API write stores it, or, with ``text_mode=TEXT_UI``, the way the UI
    saves what a marketer types (HTML-encoded; ``values.ui_text``).
    """
    with db.tx() as conn:
        row = _lead_or_404(conn, lead_id)
        custom = CustomCatalog(conn)
        try:
            std, cust = prepare_values(conn, fields, custom, text_mode)
        except ObjectError as exc:
            raise _object_error(exc) from None
        if "emailAddress" in std:
            other = get_lead_row_by_email(conn, std["emailAddress"])
            if other is not None and other[COL_INDEX["id"]] != row[COL_INDEX["id"]]:
                raise AdminError(
                    409, f"{std['emailAddress']} belongs to lead {other[COL_INDEX['id']]}"
                )
        std, cust = changes_for(row, std, cust)
        if std or cust:
            write_changes(conn, row, std, cust, at)
        return {"leadID": str(row[COL_INDEX["id"]]), "changed": sorted([*std, *cust])}


def touch_lead(db: Database, lead_id: Any, fields: dict[str, Any], at: str) -> None:
    """A test hook's edit: apply ``fields`` (may be empty) and always bump updateTimestamp."""
    with db.tx() as conn:
        row = _lead_or_404(conn, lead_id)
        try:
            std, cust = prepare_values(conn, fields, CustomCatalog(conn))
        except ObjectError as exc:
            raise _object_error(exc) from None
        write_changes(conn, row, *changes_for(row, std, cust), at)


def form_submit(
    db: Database,
    email: str,
    form_name: str,
    fields: dict[str, Any],
    at: str,
    url: str | None = None,
) -> dict[str, Any]:
    """A lead fills out a form: creates the lead if the email is new, reactivates an inactive
    one, applies the submitted values, and records a ``formSubmit`` event."""
    if not isinstance(email, str) or not email.strip():
        raise AdminError(400, "emailAddress is required")
    with db.tx() as conn:
        custom = CustomCatalog(conn)
        form = form_id(conn, form_name, at)
        row = get_lead_row_by_email(conn, email)
        created = reactivated = False
        try:
            if row is None:
                lead_id = create_lead(conn, {**fields, "emailAddress": email}, custom, at)
                created = True
            else:
                lead_id = int(row[COL_INDEX["id"]])
                std, cust = prepare_values(
                    conn, {k: v for k, v in fields.items() if k != "emailAddress"}, custom
                )
                if row[COL_INDEX["active"]] == 0:
                    std["active"] = 1
                    reactivated = True
                std, cust = changes_for(row, std, cust)
                if std or cust:
                    write_changes(conn, row, std, cust, at)
        except ObjectError as exc:
            raise _object_error(exc) from None
        data = {"formID": form, "formName": form_name}
        if url:
            data["url"] = url
        event_id = record_event(conn, lead_id, "formSubmit", at, what_id=form, data=data)
        return {
            "leadID": str(lead_id),
            "created": created,
            "reactivated": reactivated,
            "eventID": str(event_id),
            "formID": str(form),
        }


def import_leads(db: Database, rows: list[dict[str, Any]], at: str) -> list[dict[str, Any]]:
    """The Import Tool: upsert by email; re-importing a deactivated lead reactivates it.

    New and reactivated leads get a ``leadCreation`` ("Added via Import") timeline event. A row
    that breaks a rule is reported in its result entry and the others still import.
    """
    out: list[dict[str, Any]] = []
    with db.tx() as conn:
        custom = CustomCatalog(conn)
        for item in rows:
            email = item.get("emailAddress") if isinstance(item, dict) else None
            conn.execute("SAVEPOINT imp")
            try:
                if not isinstance(email, str) or not email.strip():
                    raise ObjectError(
                        206,
                        "Missing parameters: emailAddress is required",
                        {"field": "emailAddress"},
                    )
                row = get_lead_row_by_email(conn, email)
                created = reactivated = False
                if row is None:
                    lead_id = insert_lead(
                        conn,
                        *prepare_values(conn, {k: v for k, v in item.items() if k != "id"}, custom),
                        at,
                    )
                    created = True
                else:
                    lead_id = int(row[COL_INDEX["id"]])
                    std, cust = prepare_values(
                        conn,
                        {k: v for k, v in item.items() if k not in ("id", "emailAddress")},
                        custom,
                    )
                    if row[COL_INDEX["active"]] == 0:
                        std["active"] = 1
                        reactivated = True
                    std, cust = changes_for(row, std, cust)
                    if std or cust:
                        write_changes(conn, row, std, cust, at)
                if created or reactivated:
                    record_event(conn, lead_id, "leadCreation", at, data={"source": "import"})
            except ObjectError as exc:
                conn.execute("ROLLBACK TO imp")
                conn.execute("RELEASE imp")
                out.append({"emailAddress": email, "success": False, "error": exc.to_json()})
                continue
            conn.execute("RELEASE imp")
            out.append(
                {
                    "emailAddress": email,
                    "success": True,
                    "leadID": str(lead_id),
                    "created": created,
                    "reactivated": reactivated,
                }
            )
    return out


def create_email(db: Database, title: str, subject: str, at: str) -> int:
    with db.tx() as conn:
        return _insert_email(conn, title, subject, at)


def _insert_email(conn: sqlite3.Connection, title: str, subject: str, at: str) -> int:
    cur = conn.execute(
        "INSERT INTO emails(title, subject, thumbnail, createTimestamp) VALUES (?,?,?,?)",
        (title, subject, None, at),
    )
    email_id = int(cur.lastrowid)
    conn.execute(
        "UPDATE emails SET thumbnail=? WHERE id=?",
        (f"https://sandbox.invalid/email/{email_id}/thumbnail.png", email_id),
    )
    return email_id


def _email(conn: sqlite3.Connection, email_id: Any) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM emails WHERE id=?", (email_id,)).fetchone()
    if row is None:
        raise AdminError(404, f"email {email_id} does not exist")
    return row


def _job(conn: sqlite3.Connection, job_id: Any) -> sqlite3.Row:
    row = conn.execute(
        "SELECT j.*, e.subject FROM email_jobs j JOIN emails e ON e.id=j.emailID WHERE j.id=?",
        (job_id,),
    ).fetchone()
    if row is None:
        raise AdminError(404, f"email job {job_id} does not exist")
    return row


def email_send(
    db: Database,
    at: str,
    *,
    email_id: Any = None,
    subject: str | None = None,
    lead_ids: list[Any] | None = None,
    list_id: Any = None,
) -> dict[str, Any]:
    """Send an email (an existing ``email_id``, or a new one made from ``subject``) to leads or a
    list: one email job, one ``emailSent`` event per recipient."""
    with db.tx() as conn:
        if email_id is None:
            if not subject:
                raise AdminError(400, "give emailID, or subject to create a new email")
            email_id = _insert_email(conn, subject, subject, at)
        email = _email(conn, email_id)
        if list_id is not None:
            recipients = [
                r[0]
                for r in conn.execute(
                    "SELECT m.leadID FROM list_members m JOIN leads l ON l.id=m.leadID"
                    " WHERE m.listID=? AND m.removed=0 AND l.active=1 ORDER BY m.id",
                    (list_id,),
                )
            ]
        else:
            recipients = [int(_lead_or_404(conn, lid)[COL_INDEX["id"]]) for lid in (lead_ids or [])]
        if not recipients:
            raise AdminError(400, "no recipients: give leadIDs or a listID with active members")
        cur = conn.execute(
            "INSERT INTO email_jobs(emailID, isList, isActive, recipientID, sendCount, createTimestamp)"
            " VALUES (?,?,?,?,?,?)",
            (email["id"], int(list_id is not None), 1, list_id, len(recipients), at),
        )
        job_id = int(cur.lastrowid)
        data = {"emailID": email["id"], "emailJobID": job_id, "subject": email["subject"]}
        event_ids = [
            record_event(
                conn,
                lead,
                "emailSent",
                at,
                what_id=email["id"],
                data=data,
                email_id=email["id"],
                job_id=job_id,
            )
            for lead in recipients
        ]
        return {
            "emailJobID": str(job_id),
            "emailID": str(email["id"]),
            "eventIDs": [str(e) for e in event_ids],
        }


def email_interaction(
    db: Database, source: str, lead_id: Any, job_id: Any, at: str, url: str | None = None
) -> dict[str, Any]:
    """An open (``emailOpened``) or a click (``emailClick``; a lead may click many times)."""
    with db.tx() as conn:
        lead = int(_lead_or_404(conn, lead_id)[COL_INDEX["id"]])
        job = _job(conn, job_id)
        data: dict[str, Any] = {
            "emailID": job["emailID"],
            "emailJobID": job["id"],
            "subject": job["subject"],
        }
        if source == "emailClick":
            if not url:
                raise AdminError(400, "a click needs the url that was clicked")
            data["url"] = url
        event_id = record_event(
            conn,
            lead,
            source,
            at,
            what_id=job["emailID"],
            data=data,
            email_id=job["emailID"],
            job_id=job["id"],
        )
        return {"eventID": str(event_id)}


def page_visit(
    db: Database, lead_id: Any, url: str, at: str, referrer: str | None = None
) -> dict[str, Any]:
    if not url:
        raise AdminError(400, "a page visit needs a url")
    with db.tx() as conn:
        lead = int(_lead_or_404(conn, lead_id)[COL_INDEX["id"]])
        data = {"url": url}
        if referrer:
            data["referrer"] = referrer
        return {"eventID": str(record_event(conn, lead, "pageVisit", at, data=data))}


def create_list(
    db: Database, name: str, lead_ids: list[Any], at: str, description: str | None = None
) -> dict[str, Any]:
    with db.tx() as conn:
        list_id = int(
            conn.execute(
                "INSERT INTO lists(name, description, createTimestamp) VALUES (?,?,?)",
                (name, description, at),
            ).lastrowid
        )
        for lid in lead_ids:
            lead = int(_lead_or_404(conn, lid)[COL_INDEX["id"]])
            conn.execute(
                "INSERT OR IGNORE INTO list_members(listID, leadID, createTimestamp) VALUES (?,?,?)",
                (list_id, lead, at),
            )
        return {"listID": str(list_id), "members": len(lead_ids)}
