"""Realistic seed data, deterministic for a given random seed, loaded on a fast path.

``seed_org(org, n=1_000_000)`` writes accounts, contacts, leads (some converted, some in the
recycle bin), opportunities with contact roles and tasks, owned by the org's salespeople. Rows
are generated as tuples and inserted with one ``executemany`` per object inside one
transaction; for big loads the secondary indexes are dropped first and rebuilt once at the end,
which is what keeps a million records well under two minutes.

The fast path writes rows directly, so it does not run the org's validation; with
``defects=True`` it deliberately adds rows a sync must cope with: duplicate and badly formatted
emails, missing emails, a restricted-picklist value that is no longer in the picklist, records
owned by the inactive user, placeholder names. Without the flag every row passes the org rules.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .ids import make_id
from .schema import (
    INDUSTRIES,
    LEAD_SOURCES,
    OPPORTUNITY_STAGES,
    PRODUCT_INTERESTS,
    TASK_STATUSES,
)
from .storage import q, table_name

if TYPE_CHECKING:
    from .org import Org

log = logging.getLogger(__name__)

# Share of N per object when only a total is given.
SHARES = {
    "Account": 0.10,
    "Contact": 0.30,
    "Lead": 0.45,
    "Opportunity": 0.08,
    "OpportunityContactRole": 0.04,
    "Task": 0.03,
}
ORDER = ("Account", "Contact", "Lead", "Opportunity", "OpportunityContactRole", "Task")
FAST_PATH_THRESHOLD = 20_000
SEED_CHUNK = 50_000  # above this many rows, rebuild indexes once instead of per row

FIRST = (
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy "
    "Matthew Betty Anthony Sandra Mark Margaret Donald Ashley Steven Kimberly Andrew Emily "
    "Paul Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa Aisha Wei Sofia "
    "Mateo Chloé Björn Zoë Siobhán Ngozi Hiroshi Priya Omar Léa Jürgen"
).split()
LAST = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
    "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
    "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott "
    "Torres Nguyen Hill Flores O'Brien D'Angelo O'Neil Müller Schäfer García Núñez Kowalski "
    "Van der Berg MacDonald Okafor Tanaka Chen Singh Haddad Dubois Rossi Novak"
).split()
ADJ = "Blue Red Summit Pioneer Bright Global North Apex Silver Quantum Green Harbor Iron Nova Prime Urban Rapid Stellar Clear Bold".split()
NOUN = "Logistics Analytics Foods Health Energy Systems Media Labs Works Partners Dynamics Retail Capital Robotics Studios Networks Solutions Holdings Foundry Outfitters".split()
SUFFIX = ("Inc.", "LLC", "Corp.", "Ltd.", "GmbH", "& Co.", "Group", "")
CITIES = (
    ("Boston", "MA", "02108", "USA"), ("Austin", "TX", "73301", "USA"), ("Denver", "CO", "80202", "USA"),
    ("Seattle", "WA", "98101", "USA"), ("Chicago", "IL", "60601", "USA"), ("Toronto", "ON", "M5H 2N2", "Canada"),
    ("London", "", "EC1A 1BB", "United Kingdom"), ("Berlin", "", "10115", "Germany"), ("Paris", "", "75001", "France"),
    ("Sydney", "NSW", "2000", "Australia"), ("Atlanta", "GA", "30301", "USA"), ("Portland", "OR", "97201", "USA"),
)  # fmt: skip
TITLES = (
    "CEO",
    "CTO",
    "VP Marketing",
    "Marketing Manager",
    "Director of Sales",
    "Engineer",
    "Analyst",
    "Head of Growth",
    "Operations Lead",
    "",
)
TIERS = ("Gold", "Silver", "Bronze", None, None)
LEAD_STATUSES_OPEN = ("Open - Not Contacted", "Working - Contacted", "Closed - Not Converted")


def _counts(n: int, counts: Mapping[str, int] | None) -> dict[str, int]:
    if counts:
        out = {k: int(v) for k, v in counts.items()}
        unknown = set(out) - set(ORDER)
        if unknown:
            raise ValueError(f"seed counts for unknown objects: {sorted(unknown)}")
        return {k: out.get(k, 0) for k in ORDER}
    out = {k: int(n * share) for k, share in SHARES.items()}
    out["Lead"] += n - sum(out.values())
    return out


def seed_org(
    org: Org,
    *,
    n: int = 0,
    counts: Mapping[str, int] | None = None,
    seed: int = 42,
    defects: bool = False,
    end_at: Any = None,
    days: float = 365.0,
) -> dict[str, Any]:
    """Load realistic records; returns counts per object (and per defect kind)."""
    started = time.perf_counter()
    plan = _counts(n, counts)
    total = sum(plan.values())
    if total <= 0:
        raise ValueError("nothing to seed: give n > 0 or counts")
    rng = random.Random(seed)
    end_ms = org.parse_at(end_at)
    span_ms = max(1, int(days * 86_400_000))
    users = org.users()
    active = [u["Id"] for u in users if u["IsActive"] and u["Id"] != org.integration_user_id]
    inactive = [u["Id"] for u in users if not u["IsActive"]]
    integration = org.integration_user_id
    gen = _Generator(rng, end_ms, span_ms, active or [integration], inactive, integration, defects)
    objs = {name: org.schema.get(name) for name in ORDER}
    fast = total >= FAST_PATH_THRESHOLD
    with org.db.write_lock:
        if fast:
            for obj in objs.values():
                org.db.drop_indexes(obj)  # type: ignore[arg-type]
        try:
            with org.db.write() as c:
                for name in ORDER:
                    count = plan[name]
                    if not count:
                        continue
                    first_pk = org.db.allocate_pk(name, count)
                    factory = getattr(gen, name.lower())
                    prefix = objs[name].key_prefix  # type: ignore[union-attr]
                    # Generate and insert in chunks so memory stays flat for a million rows.
                    for offset in range(0, count, SEED_CHUNK):
                        n_rows = min(SEED_CHUNK, count - offset)
                        cols, rows = factory(prefix, first_pk + offset, n_rows)
                        sql = (
                            f"INSERT INTO {q(table_name(name))} (pk, {', '.join(q(col) for col in cols[1:])}) "
                            f"VALUES ({', '.join('?' for _ in cols)})"
                        )
                        c.executemany(sql, rows)
        finally:
            if fast:
                for obj in objs.values():
                    org.db.ensure_table(obj)  # type: ignore[arg-type]
                with org.db.write() as c:
                    c.execute("ANALYZE")
    seconds = round(time.perf_counter() - started, 3)
    log.info("seeded %d records in %.1fs (seed=%d, defects=%s)", total, seconds, seed, defects)
    return {
        "created": {k: v for k, v in plan.items() if v},
        "total": total,
        "defects": gen.defect_counts,
        "seconds": seconds,
    }


class _Generator:
    """Row factories per object; each returns (columns, rows) with ``pk`` first."""

    def __init__(
        self,
        rng: random.Random,
        end_ms: int,
        span_ms: int,
        owners: list[str],
        inactive: list[str],
        integration: str,
        defects: bool,
    ):
        self.rng = rng
        self.end_ms = end_ms
        self.span_ms = span_ms
        self.owners = owners
        self.inactive = inactive
        self.integration = integration
        self.defects = defects
        self.defect_counts: dict[str, int] = {}
        self.account_ids: list[str] = []
        self.account_names: list[str] = []
        self.contact_ids: list[str] = []
        self.contact_accounts: list[str | None] = []
        self.lead_ids: list[str] = []
        self.opp_ids: list[str] = []
        self.emails: list[str] = []
        self._people = 0

    def _next_person(self) -> int:
        self._people += 1
        return self._people

    # -- small helpers
    def _stamps(self) -> tuple[int, int]:
        r = self.rng.random
        created = self.end_ms - int(r() * self.span_ms)
        modified = created if r() < 0.6 else created + int(r() * (self.end_ms - created))
        return created, modified

    def _owner(self) -> str:
        r = self.rng.random()
        if self.defects and self.inactive and r < 0.01:
            self._defect("owner_inactive")
            return self.rng.choice(self.inactive)
        if r < 0.03:
            return self.integration
        return self.owners[int(self.rng.random() * len(self.owners))]

    def _defect(self, kind: str) -> None:
        self.defect_counts[kind] = self.defect_counts.get(kind, 0) + 1

    def _company(self) -> str:
        rng = self.rng
        return " ".join(p for p in (rng.choice(ADJ), rng.choice(NOUN), rng.choice(SUFFIX)) if p)

    @staticmethod
    def _domain(company: str) -> str:
        slug = "".join(
            ch
            for ch in company.lower().split(" ")[0] + company.lower().split(" ")[1]
            if ch.isalnum()
        )
        return f"{slug}.example.com"

    def _person(self, company: str, idx: int) -> tuple[str, str, str | None]:
        """A person at ``company``; ``idx`` (position within this seed run) keeps emails unique."""
        rng = self.rng
        first, last = rng.choice(FIRST), rng.choice(LAST)
        local = "".join(
            ch for ch in f"{first}.{last}".lower() if ch.isascii() and (ch.isalnum() or ch == ".")
        )
        email: str | None = f"{local}{idx}@{self._domain(company)}"
        if self.defects:
            r = rng.random()
            if r < 0.01 and self.emails:
                email = rng.choice(self.emails)
                self._defect("duplicate_email")
            elif r < 0.02:
                email = f"  {email.upper()} "
                self._defect("email_case_whitespace")
            elif r < 0.03:
                email = None
                self._defect("missing_email")
            elif r < 0.035:
                first, last = "", "[not provided]"
                self._defect("placeholder_name")
        elif rng.random() < 0.02:
            email = None
        if email and len(self.emails) < 100_000:
            self.emails.append(email)
        return first, last, email

    def _leadgen(self) -> tuple[str | None, str | None, float | None, str | None, str | None]:
        rng = self.rng
        if rng.random() < 0.4:
            return None, None, None, None, None
        lg_id = f"{rng.getrandbits(128):032x}"
        interest = rng.choice((*PRODUCT_INTERESTS, None))
        if self.defects and rng.random() < 0.01:
            interest = "Legacy Suite"
            self._defect("stale_picklist_value")
        return (
            lg_id,
            f"https://app.leadgen.example/contacts/{lg_id}",
            float(int(rng.random() * 101)),
            interest,
            rng.choice(TIERS),
        )

    def _phone(self) -> str | None:
        rng = self.rng
        if self.defects and rng.random() < 0.01:
            self._defect("bad_phone")
            return "call me maybe"
        return f"+1 {rng.randint(200, 989)}-{rng.randint(200, 999)}-{rng.randint(1000, 9999)}"

    # -- objects
    _SYS = ["CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", "SystemModstamp"]

    def account(
        self, prefix: str, first_pk: int, count: int
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        rng = self.rng
        cols = ["pk", "Id", "OwnerId", "IsDeleted", *self._SYS, "Name", "Type", "Industry", "Phone", "Website",
                "BillingStreet", "BillingCity", "BillingState", "BillingPostalCode", "BillingCountry",
                "AnnualRevenue", "NumberOfEmployees"]  # fmt: skip
        rows = []
        for i in range(count):
            pk = first_pk + i
            rid = make_id(prefix, pk)
            created, modified = self._stamps()
            owner = self._owner()
            name = self._company()
            city = rng.choice(CITIES)
            self.account_ids.append(rid)
            self.account_names.append(name)
            rows.append((
                pk, rid, owner, 0, created, owner, modified, owner, modified, name,
                rng.choice(("Prospect", "Customer - Direct", "Customer - Channel", None)),
                rng.choice(INDUSTRIES), self._phone(), f"https://www.{self._domain(name)}",
                f"{rng.randint(1, 9999)} Main St", city[0], city[1] or None, city[2], city[3],
                float(rng.randint(1, 500) * 100_000), rng.randint(1, 5000),
            ))  # fmt: skip
        return cols, rows

    def contact(
        self, prefix: str, first_pk: int, count: int
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        rng = self.rng
        cols = ["pk", "Id", "OwnerId", "IsDeleted", "_deleted_at", *self._SYS, "AccountId", "FirstName",
                "LastName", "Name", "Email", "Title", "Phone", "MailingCity", "MailingState",
                "MailingPostalCode", "MailingCountry", "LeadSource", "HasOptedOutOfEmail",
                "LeadGen_Id__c", "LeadGen_URL__c", "LeadGen_Score__c", "Product_Interest__c",
                "Customer_Tier__c"]  # fmt: skip
        rows = []
        n_acc = len(self.account_ids)
        for i in range(count):
            pk = first_pk + i
            rid = make_id(prefix, pk)
            created, modified = self._stamps()
            owner = self._owner()
            acc_idx = int(rng.random() * n_acc) if n_acc and rng.random() < 0.9 else None
            company = self.account_names[acc_idx] if acc_idx is not None else self._company()
            first, last, email = self._person(company, self._next_person())
            city = rng.choice(CITIES)
            deleted = rng.random() < 0.01
            self.contact_ids.append(rid)
            self.contact_accounts.append(self.account_ids[acc_idx] if acc_idx is not None else None)
            rows.append((
                pk, rid, owner, int(deleted), modified if deleted else None, created, owner, modified,
                owner, modified, self.account_ids[acc_idx] if acc_idx is not None else None, first or None,
                last, " ".join(p for p in (first, last) if p), email, rng.choice(TITLES) or None, self._phone(),
                city[0], city[1] or None, city[2], city[3], rng.choice((*LEAD_SOURCES, None)),
                int(rng.random() < 0.05), *self._leadgen(),
            ))  # fmt: skip
        return cols, rows

    def lead(
        self, prefix: str, first_pk: int, count: int
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        rng = self.rng
        cols = ["pk", "Id", "OwnerId", "IsDeleted", "_deleted_at", *self._SYS, "FirstName", "LastName",
                "Name", "Company", "Email", "Title", "Phone", "City", "State", "PostalCode", "Country",
                "Industry", "LeadSource", "Status", "Rating", "HasOptedOutOfEmail", "IsConverted",
                "ConvertedDate", "ConvertedAccountId", "ConvertedContactId", "LeadGen_Id__c",
                "LeadGen_URL__c", "LeadGen_Score__c", "Product_Interest__c", "Customer_Tier__c"]  # fmt: skip
        rows = []
        n_con = len(self.contact_ids)
        for i in range(count):
            pk = first_pk + i
            rid = make_id(prefix, pk)
            created, modified = self._stamps()
            owner = self._owner()
            company = self._company()
            if self.defects and rng.random() < 0.005:
                company = "[not provided]"
                self._defect("placeholder_company")
            first, last, email = self._person(company, self._next_person())
            city = rng.choice(CITIES)
            converted = n_con > 0 and rng.random() < 0.03
            deleted = not converted and rng.random() < 0.01
            conv = (None, None, None)
            status = rng.choice(LEAD_STATUSES_OPEN)
            if converted:
                ci = int(rng.random() * n_con)
                conv = (_date(modified), self.contact_accounts[ci], self.contact_ids[ci])
                status = "Closed - Converted"
            self.lead_ids.append(rid)
            rows.append((
                pk, rid, owner, int(deleted), modified if deleted else None, created, owner, modified,
                owner, modified, first or None, last, " ".join(p for p in (first, last) if p), company,
                email, rng.choice(TITLES) or None, self._phone(), city[0], city[1] or None, city[2],
                city[3], rng.choice(INDUSTRIES), rng.choice((*LEAD_SOURCES, None)), status,
                rng.choice(("Hot", "Warm", "Cold", None)), int(rng.random() < 0.05), int(converted),
                conv[0], conv[1], conv[2], *self._leadgen(),
            ))  # fmt: skip
        return cols, rows

    def opportunity(
        self, prefix: str, first_pk: int, count: int
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        rng = self.rng
        stages = list(OPPORTUNITY_STAGES.items())
        cols = ["pk", "Id", "OwnerId", "IsDeleted", *self._SYS, "AccountId", "Name", "StageName",
                "CloseDate", "Amount", "Probability", "IsClosed", "IsWon", "LeadSource", "Type"]  # fmt: skip
        rows = []
        n_acc = len(self.account_ids)
        for i in range(count):
            pk = first_pk + i
            rid = make_id(prefix, pk)
            created, modified = self._stamps()
            owner = self._owner()
            acc_idx = int(rng.random() * n_acc) if n_acc else None
            acc_name = self.account_names[acc_idx] if acc_idx is not None else self._company()
            stage, (prob, closed, won) = stages[int(rng.random() * len(stages))]
            self.opp_ids.append(rid)
            rows.append((
                pk, rid, owner, 0, created, owner, modified, owner, modified,
                self.account_ids[acc_idx] if acc_idx is not None else None,
                f"{acc_name} - {rng.choice(PRODUCT_INTERESTS)}", stage,
                _date(created + rng.randint(7, 180) * 86_400_000), float(rng.randint(5, 500) * 1000),
                float(prob), int(closed), int(won), rng.choice((*LEAD_SOURCES, None)),
                rng.choice(("New Customer", "Existing Customer - Upgrade", None)),
            ))  # fmt: skip
        return cols, rows

    def opportunitycontactrole(
        self, prefix: str, first_pk: int, count: int
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        rng = self.rng
        cols = [
            "pk",
            "Id",
            "IsDeleted",
            *self._SYS,
            "OpportunityId",
            "ContactId",
            "Role",
            "IsPrimary",
        ]
        rows = []
        if not self.opp_ids or not self.contact_ids:
            return cols, rows
        for i in range(count):
            pk = first_pk + i
            rid = make_id(prefix, pk)
            created, modified = self._stamps()
            who = self.owners[int(rng.random() * len(self.owners))]
            rows.append((
                pk, rid, 0, created, who, modified, who, modified,
                self.opp_ids[int(rng.random() * len(self.opp_ids))],
                self.contact_ids[int(rng.random() * len(self.contact_ids))],
                rng.choice(("Decision Maker", "Economic Buyer", "Evaluator", "Influencer", "Technical Buyer")),
                int(i % 3 == 0),
            ))  # fmt: skip
        return cols, rows

    def task(
        self, prefix: str, first_pk: int, count: int
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        rng = self.rng
        cols = ["pk", "Id", "OwnerId", "IsDeleted", *self._SYS, "WhoId", "WhatId", "Subject",
                "ActivityDate", "Status", "Priority", "Type", "TaskSubtype", "IsClosed", "CompletedDateTime"]  # fmt: skip
        rows = []
        people = self.lead_ids[:50_000] + self.contact_ids[:50_000]
        things = self.account_ids[:50_000] + self.opp_ids[:50_000]
        for i in range(count):
            pk = first_pk + i
            rid = make_id(prefix, pk)
            created, modified = self._stamps()
            owner = self._owner()
            status = rng.choice(TASK_STATUSES)
            closed = status == "Completed"
            who = people[int(rng.random() * len(people))] if people else None
            what = (
                things[int(rng.random() * len(things))]
                if things and (who is None or who[:3] == "003") and rng.random() < 0.5
                else None
            )
            rows.append((
                pk, rid, owner, 0, created, owner, modified, owner, modified, who, what,
                rng.choice(("Call", "Follow-up email", "Demo", "Send proposal", "Marketing email opened")),
                _date(created + rng.randint(0, 30) * 86_400_000), status,
                rng.choice(("High", "Normal", "Normal", "Low")), rng.choice(("Call", "Email", "Meeting", None)),
                rng.choice(("Task", "Email", "Call")), int(closed), modified if closed else None,
            ))  # fmt: skip
        return cols, rows


def _date(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))
