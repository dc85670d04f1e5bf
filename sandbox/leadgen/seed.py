"""Realistic, reproducible seed data.

``seed(n, seed=42)`` adds ``n`` leads and contacts (owners among the account's users, including
the inactive one; statuses from unqualified to customer; custom field values), the campaigns,
emails, deal stages, forms and lists they refer to, and a history of marketing activity for the
first ``activity_leads`` of them. The same seed, on a reset account with a frozen clock, always
produces identical rows and ids.

Defective rows (malformed emails, missing last name or company, values longer than the column,
a picklist value outside the options) are added only when ``defects`` is true: they model what
UI typing and old imports leave behind, which the API would refuse today.

Speed matters (a 1M-lead seed should take about a minute): rows are built as tuples in column
order, inserted with ``executemany`` in one transaction, and for large seeds the secondary lead
indexes are dropped and rebuilt once at the end.
"""

from __future__ import annotations

import json
import logging
import random
import time
from datetime import datetime, timedelta
from typing import Any

from .activity import INSERT_EVENT, event_row, form_id
from .catalog import ID_BASES
from .clock import format_timestamp
from .methods.leads import LEAD_COLUMNS
from .storage import LEAD_INDEXES, Database

log = logging.getLogger(__name__)

BULK_THRESHOLD = 50_000
CHUNK = 20_000

FIRST_NAMES = (
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan "
    "Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty Anthony Sandra "
    "Mark Margaret Donald Ashley Steven Kimberly Andrew Emily Paul Donna Joshua Michelle Kenneth Carol "
    "Kevin Amanda Brian Melissa George Deborah Timothy Stephanie Ronald Rebecca Jason Sharon Edward Laura "
    "Jeffrey Cynthia Ryan Amy Jacob Kathleen Gary Angela Nicholas Shirley Eric Brenda Jonathan Emma "
    "Stephen Anna Larry Pamela Justin Nicole Scott Samantha Brandon Katherine Benjamin Christine Samuel "
    "Helen Gregory Debra Alexander Rachel Patrick Carolyn Frank Janet Raymond Maria Jack Olivia Dennis "
    "Heather Jerry Catherine Tyler Diane Aaron Julie Jose Joyce Adam Victoria Nathan Kelly Henry Christina "
    "Zachary Ruth Douglas Joan Peter Lauren Kyle Evelyn Noah Judith Ethan Megan Jeremy Andrea Walter "
    "Cheryl Christian Hannah Keith Jacqueline Roger Martha Terry Madison Austin Teresa Sean Gloria Aisha "
    "Wei Priya Hiroshi Fatima Mateo Sofia Lukas Ingrid Omar Chloe Rahul Mei Diego Lucia Kwame Zoe"
).split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
    "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
    "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker "
    "Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper "
    "Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James "
    "Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster "
    "Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Fisher Vasquez "
    "Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West "
    "Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens "
    "O'Brien Schmidt Müller Novak Kowalski Yamamoto Chen Okafor Haddad Lindqvist"
).split()
COMPANY_PREFIXES = (
    "Acme Blue Harbor Summit Northwind Pioneer Silver Oak Granite Bright Redwood Atlas Vertex Cascade "
    "Lakeside Ironclad Evergreen Horizon Keystone Meridian Quantum Beacon Copper Falcon Crescent Sterling "
    "Orchard Tidewater Bluebird Riverbend"
).split()
COMPANY_SUFFIXES = (
    "Analytics Logistics Health Software Foods Manufacturing Consulting Dental Realty Labs Media "
    "Partners Systems Energy Outfitters Insurance Robotics Bakery Legal Ventures"
).split()
COMPANY_FORMS = ("Inc.", "LLC", "Co.", "Group", "Ltd.", "")
TITLES = (
    "Marketing Manager", "VP of Sales", "Owner", "Office Manager", "CEO", "Operations Director",
    "Account Executive", "IT Manager", "Procurement Specialist", "CFO", "Marketing Coordinator",
    "Head of Growth", "Practice Manager", "Founder", "Sales Representative", None,
)  # fmt: skip
INDUSTRIES = (
    "Software", "Healthcare", "Manufacturing", "Retail", "Financial Services", "Education",
    "Real Estate", "Hospitality", "Construction", "Nonprofit", "Legal", "Agriculture", None,
)  # fmt: skip
PLACES = (
    ("Boston", "MA", "021"), ("Austin", "TX", "787"), ("Denver", "CO", "802"), ("Seattle", "WA", "981"),
    ("Chicago", "IL", "606"), ("Atlanta", "GA", "303"), ("Phoenix", "AZ", "850"), ("Portland", "OR", "972"),
    ("Miami", "FL", "331"), ("Columbus", "OH", "432"), ("Raleigh", "NC", "276"), ("Nashville", "TN", "372"),
    ("San Diego", "CA", "921"), ("Minneapolis", "MN", "554"), ("Salt Lake City", "UT", "841"),
    ("Gainesville", "FL", "326"), ("Pittsburgh", "PA", "152"), ("Madison", "WI", "537"),
)  # fmt: skip
CANADA = (("Toronto", "ON", "M5V"), ("Vancouver", "BC", "V6B"), ("Montreal", "QC", "H2Y"))
UK = (("London", None, "EC1A"), ("Manchester", None, "M1"), ("Leeds", None, "LS1"))
STREETS = "Main Oak Maple Cedar Elm Pine Washington Lake Hill Park River Market Spring Church Mill".split()
STREET_KINDS = ("St", "Ave", "Rd", "Blvd", "Ln", "Way", "Dr")
PERSONAS = ("", "", "", "Marketing Mary", "Owner Oscar", "IT Ian", "Finance Fiona")
STATUS_WEIGHTS = (
    ("unqualified", 30), ("open", 22), ("qualified", 15), ("contact", 15), ("contactWithOpp", 6), ("customer", 12),
)  # fmt: skip
PRODUCT_INTERESTS = ("Analytics", "CRM", "Email Marketing", "Automation")
TIERS = ("Gold", "Silver", "Bronze")
FORMS = (
    "Contact Us",
    "Download the 2026 Benchmark Report",
    "Webinar Registration",
    "Request a Demo",
    "Newsletter Signup",
)
EMAIL_SUBJECTS = (
    "Welcome to Northwind - here is what happens next",
    "Your 2026 marketing benchmark report",
    "Webinar: five automations that pay for themselves",
    "Customer story: how Summit Dental doubled bookings",
    "Product update: smarter lead scoring",
    "Last chance: early pricing ends Friday",
)
PAGES = (
    "https://www.northwind-sandbox.example/", "https://www.northwind-sandbox.example/pricing",
    "https://www.northwind-sandbox.example/features/automation", "https://www.northwind-sandbox.example/blog/lead-scoring",
    "https://www.northwind-sandbox.example/customers", "https://www.northwind-sandbox.example/contact",
)  # fmt: skip
CAMPAIGNS = (
    ("Spring Webinar Series", "Webinar", "Webinar"), ("Benchmark Report 2026", "Content", "Content"),
    ("Trade Show - SaaS Connect", "Event", "Tradeshow"), ("Google Ads - Automation", "Paid Search", "PPC"),
    ("Partner Referrals", "Referral", "Referral"),
)  # fmt: skip
DEAL_STAGES = (
    ("Prospecting", 10), ("Qualification", 20), ("Needs Analysis", 40), ("Proposal", 60),
    ("Negotiation", 80), ("Closed Won", 100), ("Closed Lost", 0),
)  # fmt: skip
LISTS = (
    ("Newsletter", "Monthly newsletter subscribers"),
    ("Webinar attendees", None),
    ("Customers", "All paying customers"),
)
USER_IDS_ACTIVE = (313361052, 313361053, 313361054, 313361055)
USER_INACTIVE = 313361056


def _ensure_reference_data(conn: Any, rng: random.Random, now: datetime) -> dict[str, list[int]]:
    """Campaigns, deal stages, emails and lists: created once, reused by later seeds."""
    ts = format_timestamp(now - timedelta(days=400))
    out: dict[str, list[int]] = {}
    if not conn.execute("SELECT 1 FROM campaigns LIMIT 1").fetchone():
        for i, (name, ctype, alias) in enumerate(CAMPAIGNS):
            start = (now - timedelta(days=300 - 50 * i)).strftime("%Y-%m-%d")
            end = (now + timedelta(days=30 + 20 * i)).strftime("%Y-%m-%d")
            conn.execute(
                "INSERT INTO campaigns(campaignName, campaignType, campaignAlias, campaignOrigin, qty, price, goal,"
                " otherCosts, startDate, endDate, isActive, ownerID, createTimestamp) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (name, ctype, alias, "SharpSpring", "1", f"{1000 * (i + 1)}.00", f"{50 * (i + 1)}", "0.00",
                 start, end, 1, USER_IDS_ACTIVE[i % 4], ts),
            )  # fmt: skip
    if not conn.execute("SELECT 1 FROM deal_stages LIMIT 1").fetchone():
        for weight, (name, prob) in enumerate(DEAL_STAGES):
            conn.execute(
                "INSERT INTO deal_stages(dealStageName, description, defaultProbability, weight, isEditable,"
                " createTimestamp, updateTimestamp) VALUES (?,?,?,?,?,?,?)",
                (name, None, prob, weight, 1, ts, ts),
            )
    if not conn.execute("SELECT 1 FROM emails LIMIT 1").fetchone():
        for i, subject in enumerate(EMAIL_SUBJECTS):
            created = format_timestamp(now - timedelta(days=200 - 30 * i))
            cur = conn.execute(
                "INSERT INTO emails(title, subject, thumbnail, createTimestamp) VALUES (?,?,?,?)",
                (subject.split(":")[0][:60], subject, None, created),
            )
            conn.execute(
                "UPDATE emails SET thumbnail=? WHERE id=?",
                (f"https://sandbox.invalid/email/{cur.lastrowid}/thumbnail.png", cur.lastrowid),
            )
    if not conn.execute("SELECT 1 FROM lists LIMIT 1").fetchone():
        for name, description in LISTS:
            conn.execute(
                "INSERT INTO lists(name, description, createTimestamp) VALUES (?,?,?)",
                (name, description, ts),
            )
    for table in ("campaigns", "deal_stages", "emails", "lists"):
        out[table] = [r[0] for r in conn.execute(f"SELECT id FROM {table} ORDER BY id")]
    return out


class _LeadFactory:
    """Builds lead tuples in ``LEAD_COLUMNS`` order from one RNG."""

    def __init__(self, rng: random.Random, now: datetime, campaigns: list[int]):
        self.rng = rng
        self.now_epoch = int(now.timestamp())
        self.campaigns = campaigns
        self.companies = [
            (f"{p} {s} {f}".strip(), f"{p.lower()}{s.lower()}.example")
            for p in COMPANY_PREFIXES
            for s in COMPANY_SUFFIXES
            for f in COMPANY_FORMS[:2]
        ]
        statuses, weights = zip(*STATUS_WEIGHTS, strict=True)
        self.status_table = [s for s, w in zip(statuses, weights, strict=True) for _ in range(w)]
        owners = [u for u in USER_IDS_ACTIVE for _ in range(24)] + [USER_INACTIVE] * 3 + [None] * 3
        self.owners = owners
        self.columns = LEAD_COLUMNS
        self.index = {c: i for i, c in enumerate(LEAD_COLUMNS)}

    def timestamps(self) -> tuple[int, int]:
        rng = self.rng
        created = self.now_epoch - rng.randrange(60, 400 * 86400)
        updated = (
            created
            if rng.random() < 0.4
            else created + rng.randrange(0, self.now_epoch - created + 1)
        )
        return created, updated

    def lead(self, lead_id: int, n: int) -> tuple[tuple, int]:
        """One lead row (tuple + custom JSON) and its create epoch."""
        rng = self.rng
        rnd = rng.random
        first = rng.choice(FIRST_NAMES)
        last = rng.choice(LAST_NAMES)
        company, domain = rng.choice(self.companies)
        r = rnd()
        if r < 0.85:
            city, state, zip3 = rng.choice(PLACES)
            country, zipcode = "United States", f"{zip3}{rng.randrange(10, 99)}"
        elif r < 0.95:
            city, state, zip3 = rng.choice(CANADA)
            country, zipcode = "Canada", f"{zip3} {rng.randrange(1, 9)}A{rng.randrange(1, 9)}"
        else:
            city, state, zip3 = rng.choice(UK)
            country, zipcode = "United Kingdom", f"{zip3} {rng.randrange(1, 9)}AB"
        status = rng.choice(self.status_table)
        score = int(rnd() ** 2 * 150)
        created, updated = self.timestamps()
        local = f"{first}.{last}".lower().replace("'", "")
        phone = f"+1 {rng.randrange(201, 989)}-555-{rng.randrange(0, 10000):04d}"
        custom: dict[str, str] = {}
        if rnd() < 0.6:
            custom["product_interest_5f1a2b3c4d5e6"] = rng.choice(PRODUCT_INTERESTS)
        if status == "customer":
            custom["customer_tier_5f1a2b3c4d5e7"] = rng.choice(TIERS)
        row = (
            lead_id,
            None,  # accountID
            rng.choice(self.owners),
            company,
            rng.choice(TITLES),
            first,
            last,
            f"{rng.randrange(1, 9999)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}",
            city,
            country,
            state,
            zipcode,
            f"{local}{n}@{domain}",
            f"https://www.{domain}",
            phone,
            phone if rnd() < 0.3 else None,
            str(rng.randrange(100, 999)) if rnd() < 0.1 else None,
            f"+1 {rng.randrange(201, 989)}-555-{rng.randrange(0, 10000):04d}"
            if rnd() < 0.4
            else None,
            None,  # faxNumber
            None,  # description
            rng.choice(self.campaigns) if self.campaigns and rnd() < 0.4 else None,
            f"{rng.getrandbits(64):016x}" if rnd() < 0.3 else None,
            rng.choice(INDUSTRIES),
            1,  # active
            0,  # status
            _fmt(updated),
            _fmt(created),
            int(score * (0.5 + rnd())),
            score,
            1 if rnd() < 0.05 else 0,
            status,
            rng.choice(PERSONAS),
            json.dumps(custom, separators=(",", ":")) if custom else None,
        )
        return row, created


def _fmt(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


DEFECTS = (
    ("malformed_email", {"emailAddress": "not-an-email"}),
    ("malformed_email", {"emailAddress": "jane.doe@@broken-domain"}),
    ("missing_last_name", {"lastName": None}),
    ("missing_company", {"companyName": None}),
    ("too_long", {"firstName": "Maximilian-Alexander-Bartholomew-Christopher-Dieter-Emanuel"}),
    ("too_long", {"companyName": "The International Consolidated Amalgamated " * 4}),
    ("bad_picklist", {"custom:product_interest_5f1a2b3c4d5e6": "Widgets"}),
)


def seed(
    db: Database,
    now: datetime,
    *,
    leads: int,
    seed: int = 42,
    defects: bool = False,
    activity_leads: int = 1000,
    inactive: int = 0,
) -> dict[str, Any]:
    """Add ``leads`` leads (and reference data and activity); returns a summary with the ids a
    test needs (first/last id, inactive ids, defective ids with their defect)."""
    if leads < 0 or activity_leads < 0 or inactive < 0:
        raise ValueError("leads, activity_leads and inactive must not be negative")
    if inactive > leads:
        raise ValueError("inactive cannot exceed leads")
    started = time.perf_counter()
    rng = random.Random(seed)
    with db.tx() as conn:
        ref = _ensure_reference_data(conn, rng, now)
        factory = _LeadFactory(rng, now, ref["campaigns"])
        seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='leads'").fetchone()
        next_id = int(seq[0] if seq else ID_BASES["leads"]) + 1
        first_id = next_id
        bulk = leads >= BULK_THRESHOLD
        if bulk:
            for name, _ in LEAD_INDEXES:
                conn.execute(f"DROP INDEX IF EXISTS {name}")
        cols = ", ".join(f'"{c}"' for c in LEAD_COLUMNS) + ", custom"
        insert = f"INSERT INTO leads ({cols}) VALUES ({', '.join('?' * (len(LEAD_COLUMNS) + 1))})"
        activity: list[tuple[int, int]] = []  # (lead id, create epoch) of the active history set
        done = 0
        while done < leads:
            batch = []
            for _ in range(min(CHUNK, leads - done)):
                row, created = factory.lead(next_id, next_id - ID_BASES["leads"])
                batch.append(row)
                if len(activity) < activity_leads:
                    activity.append((next_id, created))
                next_id += 1
            conn.executemany(insert, batch)
            done += len(batch)
        last_id = next_id - 1
        defect_rows = _insert_defects(conn, factory, insert, next_id) if defects else []
        if bulk:
            for _, sql in LEAD_INDEXES:
                conn.execute(sql)
        inactive_ids = (
            sorted(rng.sample(range(first_id, last_id + 1), inactive)) if inactive else []
        )
        if inactive_ids:
            conn.executemany("UPDATE leads SET active=0 WHERE id=?", [(i,) for i in inactive_ids])
        events = _insert_activity(conn, rng, now, activity, ref) if activity else 0
        _fill_lists(conn, rng, activity, ref["lists"], now)
    elapsed = time.perf_counter() - started
    log.info(
        "seeded %d leads (%d defective, %d events) in %.1f s",
        leads,
        len(defect_rows),
        events,
        elapsed,
    )
    return {
        "leads": leads,
        "first_lead_id": str(first_id) if leads else None,
        "last_lead_id": str(last_id) if leads else None,
        "inactive_ids": [str(i) for i in inactive_ids],
        "defects": defect_rows,
        "activity_leads": len(activity),
        "events": events,
        "campaigns": [str(i) for i in ref["campaigns"]],
        "deal_stages": [str(i) for i in ref["deal_stages"]],
        "emails": [str(i) for i in ref["emails"]],
        "lists": [str(i) for i in ref["lists"]],
        "users": [str(u) for u in (*USER_IDS_ACTIVE, USER_INACTIVE)],
        "inactive_user": str(USER_INACTIVE),
        "elapsed_seconds": round(elapsed, 2),
    }


def _insert_defects(
    conn: Any, factory: _LeadFactory, insert: str, next_id: int
) -> list[dict[str, str]]:
    out = []
    index = factory.index
    for n, (kind, change) in enumerate(DEFECTS):
        lead_id = next_id + n
        row, _ = factory.lead(lead_id, lead_id - ID_BASES["leads"])
        values = list(row)
        values[index["emailAddress"]] = f"defect{lead_id - ID_BASES['leads']}@defects.example"
        for key, value in change.items():
            if key.startswith("custom:"):
                values[-1] = json.dumps({key[len("custom:") :]: value}, separators=(",", ":"))
            else:
                values[index[key]] = value
        conn.execute(insert, values)
        out.append(
            {"id": str(lead_id), "emailAddress": values[index["emailAddress"]], "defect": kind}
        )
    return out


def _insert_activity(
    conn: Any,
    rng: random.Random,
    now: datetime,
    leads: list[tuple[int, int]],
    ref: dict[str, list[int]],
) -> int:
    """Forms, email sends/opens/clicks and page visits over the leads' lifetimes, inserted in
    time order so event ids increase with time (as a live system's would)."""
    now_epoch = int(now.timestamp())
    rows: list[tuple[int, tuple]] = []  # (epoch, event_row params)
    forms = {name: form_id(conn, name, _fmt(now_epoch - 400 * 86400)) for name in FORMS}
    for lead_id, created in leads:
        if rng.random() < 0.5:
            name = rng.choice(FORMS)
            data = {"formID": forms[name], "formName": name}
            rows.append(
                (
                    created,
                    event_row(lead_id, "formSubmit", _fmt(created), what_id=forms[name], data=data),
                )
            )
        for _ in range(rng.randrange(0, 4)):
            at = rng.randrange(created, now_epoch + 1)
            rows.append(
                (at, event_row(lead_id, "pageVisit", _fmt(at), data={"url": rng.choice(PAGES)}))
            )
    subjects = {r[0]: r[1] for r in conn.execute("SELECT id, subject FROM emails")}
    for i, email_id in enumerate(ref["emails"]):
        sent = now_epoch - (180 - 30 * i) * 86400 + rng.randrange(0, 3600)
        recipients = [lead for lead, created in leads if created < sent and rng.random() < 0.6]
        if not recipients:
            continue
        job_id = int(
            conn.execute(
                "INSERT INTO email_jobs(emailID, isList, isActive, recipientID, sendCount, createTimestamp)"
                " VALUES (?,?,?,?,?,?)",
                (email_id, 1, 1, ref["lists"][0], len(recipients), _fmt(sent)),
            ).lastrowid
        )
        base = {"emailID": email_id, "emailJobID": job_id, "subject": subjects[email_id]}
        common = {"what_id": email_id, "email_id": email_id, "job_id": job_id}
        for lead in recipients:
            rows.append((sent, event_row(lead, "emailSent", _fmt(sent), data=base, **common)))
            if rng.random() < 0.35:
                opened = min(sent + rng.randrange(300, 2 * 86400), now_epoch)
                rows.append(
                    (opened, event_row(lead, "emailOpened", _fmt(opened), data=base, **common))
                )
                if rng.random() < 0.3:
                    clicked = opened
                    for _ in range(rng.randrange(1, 4)):  # some leads click several links/times
                        clicked = min(clicked + rng.randrange(5, 600), now_epoch)
                        data = {**base, "url": rng.choice(PAGES)}
                        rows.append(
                            (
                                clicked,
                                event_row(lead, "emailClick", _fmt(clicked), data=data, **common),
                            )
                        )
    rows.sort(key=lambda r: r[0])
    conn.executemany(INSERT_EVENT, [r[1] for r in rows])
    return len(rows)


def _fill_lists(
    conn: Any, rng: random.Random, leads: list[tuple[int, int]], lists: list[int], now: datetime
) -> None:
    if not leads or not lists:
        return
    ts = format_timestamp(now)
    members = []
    for lead_id, _ in leads:
        for list_id, share in zip(lists, (0.6, 0.2, 0.15), strict=False):
            if rng.random() < share:
                members.append((list_id, lead_id, ts))
    conn.executemany(
        "INSERT OR IGNORE INTO list_members(listID, leadID, createTimestamp) VALUES (?,?,?)",
        members,
    )
