"""In-process stand-ins for the two clients, and builders, shared by the checker's unit tests.

The fakes answer only the read methods the checker may call; they have no write method at all, so
a checker that tried to write would fail these tests with AttributeError. Every call is counted.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from crm_sync.mapping.owners import OwnerMap
from crm_sync.state.store import SyncStore
from crm_sync.verify.snapshot import Snapshot
from crm_sync.verify.sources import Sources
from tests.unit.schema_fixtures import (
    CONTACT_ONLY,
    LEAD_ONLY,
    LG_CUSTOM,
    PERSON_FIELDS,
    sandbox_like_schema,
)

pytestmark = pytest.mark.unit

_SOQL = re.compile(r"^SELECT (.+?) FROM (\w+)(?: WHERE (.+))?$")
# Owner ids used by the tests: Lead Gen & CRM user 11 <-> Salesforce user 005A, 12 <-> 005B.
OWNERS = OwnerMap(lg_to_sf={"11": "005A", "12": "005B"}, sf_to_lg={"005A": "11", "005B": "12"})


def _live(rec: dict[str, Any]) -> bool:
    return not rec.get("IsDeleted")


class FakeSalesforce:
    """Records per object; ``query`` understands ``SELECT f FROM X [WHERE AccountId != null]``."""

    def __init__(self, **records: list[dict[str, Any]]):
        self.records: dict[str, list[dict[str, Any]]] = {k: list(v) for k, v in records.items()}
        self.calls: Counter = Counter()

    @property
    def api_calls(self) -> int:
        return sum(self.calls.values())

    def add(self, sobject: str, **fields: Any) -> dict[str, Any]:
        rec = {"IsDeleted": False, **fields}
        self.records.setdefault(sobject, []).append(rec)
        return rec

    def describe(self, sobject: str) -> dict[str, Any]:
        self.calls["describe"] += 1
        extra = {"Lead": LEAD_ONLY, "Contact": CONTACT_ONLY}.get(sobject, [])
        return {"fields": PERSON_FIELDS + extra}

    def query(self, soql: str, *, include_deleted: bool = False):
        self.calls["query"] += 1
        m = _SOQL.match(soql)
        assert m, soql
        where = m.group(3)
        assert where in (None, "AccountId != null"), where
        for rec in self.records.get(m.group(2), []):
            if (include_deleted or _live(rec)) and (where is None or rec.get("AccountId")):
                yield dict(rec)

    def query_by_values(self, sobject, fields, field, values, *, include_deleted=False, where=None):
        self.calls["query"] += 1
        wanted = {str(v).lower() for v in values}
        for rec in self.records.get(sobject, []):
            if (include_deleted or _live(rec)) and str(rec.get(field)).lower() in wanted:
                yield dict(rec)


class FakeLeadGen:
    """Leads (``active`` "1"/"0"), events and the opportunity side, read-only."""

    def __init__(self, leads: list[dict[str, Any]] | None = None, **objects: list[dict[str, Any]]):
        self.leads = list(leads or [])
        self.objects = objects
        self.calls: Counter = Counter()

    @property
    def api_calls(self) -> int:
        return sum(self.calls.values())

    def add(self, lead_id: str, email: str | None = None, **fields: Any) -> dict[str, Any]:
        rec = {"id": lead_id, "emailAddress": email or f"p{lead_id}@x.com", "active": "1"}
        rec.update(fields)
        self.leads.append(rec)
        return rec

    def get_leads(self, where=None, fields=None):
        self.calls["getLeads"] += 1
        assert not where
        return iter([dict(r) for r in self.leads if str(r.get("active", "1")) != "0"])

    def get_leads_by_ids(self, ids, fields=None):
        self.calls["getLeads"] += 1
        wanted = {str(i) for i in ids}
        return [dict(r) for r in self.leads if str(r["id"]) in wanted]

    def get_leads_by_emails(self, emails, fields=None):
        self.calls["getLeads"] += 1
        wanted = {e.lower() for e in emails}
        return [dict(r) for r in self.leads if str(r.get("emailAddress")).lower() in wanted]

    def get_fields(self):
        self.calls["getFields"] += 1
        return list(LG_CUSTOM)

    def get_user_profiles(self):
        self.calls["getUserProfiles"] += 1
        return []

    def get_events(self, since, until=None, *, lead_id=None, event_source=None):
        self.calls["getEvents"] += 1
        lo = since.strftime("%Y-%m-%d %H:%M:%S")
        hi = until.strftime("%Y-%m-%d %H:%M:%S") if until else "9999"
        for ev in self.objects.get("events", []):
            if ev["eventSource"] == event_source and lo <= ev["createTimestamp"] <= hi:
                yield dict(ev)

    def _all(self, name: str):
        self.calls[name] += 1
        return iter([dict(r) for r in self.objects.get(name, [])])

    def get_opportunities(self, where=None):
        return self._all("opportunities")

    def get_accounts(self, where=None):
        return self._all("accounts")

    def get_opportunity_leads(self, where=None):
        return list(self._all("opportunity_leads"))


def lead(lead_id: str, email: str | None = None, **fields: Any) -> dict[str, Any]:
    """A raw Lead Gen & CRM lead as getLeads returns it (strings)."""
    return {
        "id": lead_id,
        "emailAddress": email if email is not None else f"p{lead_id}@x.com",
        "firstName": "Pat",
        "lastName": f"L{lead_id}",
        "companyName": "Acme",
        "active": "1",
        "leadStatus": "open",
        "updateTimestamp": "2026-11-20 09:00:00",
        **fields,
    }


def sf_person(sf_id: str, lg_id: str | None, email: str | None = None, **fields: Any):
    """A raw Salesforce Lead (or Contact, by id prefix) agreeing with :func:`lead`."""
    rec = {
        "Id": sf_id,
        "IsDeleted": False,
        "LeadGen_Id__c": lg_id,
        "Email": email if email is not None else (f"p{lg_id}@x.com" if lg_id else None),
        "FirstName": "Pat",
        "LastName": f"L{lg_id}",
        "LastModifiedDate": "2026-11-20T09:00:00.000+0000",
    }
    if sf_id.startswith("00Q"):
        rec.update(Company="Acme", IsConverted=False, ConvertedContactId=None)
    rec.update(fields)
    return rec


def sf_id(prefix: str, n: int) -> str:
    """A well-formed 18-character id (the checker compares ids in 18-character form)."""
    return f"{prefix}{n:012d}AAA"


@pytest.fixture(name="store")
def store_fixture(tmp_state_url: str) -> Iterator[SyncStore]:
    """A migrated, empty state store for one test (import ``store_fixture`` to use it)."""
    s = SyncStore(tmp_state_url)
    yield s
    s.dispose()


def link(store: SyncStore, lg_id: str, sf: str, domain: str = "person", **kw: Any) -> None:
    sobject = {"00Q": "Lead", "003": "Contact", "006": "Opportunity", "001": "Account"}[sf[:3]]
    store.upsert_link(domain, lg_id, sobject, sf, run_id="t", **kw)


def quarantine(store: SyncStore, dag_id: str, key: str, **kw: Any) -> None:
    row = {
        "dag_id": dag_id,
        "domain": "person",
        "direction": "sf_to_lg" if key.startswith("sf:") else "lg_to_sf",
        "record_key": key,
        "target_object": "Lead",
        "lg_id": None,
        "sf_id": None,
        "category": "format",
        "check": "email_format",
        "field": "Email",
        "error_code": None,
        "message": "Email is not an email address",
        "payload": {},
        "run_id": "t",
        "max_attempts": 5,
    }
    row.update(kw)
    store.quarantine(**row)


def sources(sf: Any, lg: Any, store: Any, *, owners: OwnerMap | None = OWNERS) -> Sources:
    """Sources over an in-memory snapshot, with the test schema and owner map already known."""
    src = Sources(sf, lg, store, Snapshot(":memory:"))
    src._schema = sandbox_like_schema()
    src._owners = owners
    return src


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
