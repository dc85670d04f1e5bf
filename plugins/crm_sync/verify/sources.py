"""Reading both systems and the state store, read-only, into the snapshot; lookups for the checks.

Every part is read once, on first use, and only by the checks that need it: the people checks
never page through opportunities, the engagement check never reads every lead. Each read is
counted in ``read`` (the report's summary shows it).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import crm_sync.verify._lib as _lib
from crm_sync.verify.snapshot import Snapshot, batches, blank_to_none, norm_email

log = logging.getLogger(__name__)

TS_FORMAT = "%Y-%m-%d %H:%M:%S"  # Lead Gen & CRM event timestamps (UTC)


def _truthy(v: Any) -> bool:
    return v is True or str(v).strip().lower() in ("1", "true")


def _is_contact(rec: dict[str, Any]) -> bool:
    status = str(rec.get("leadStatus") or "")
    return status in _lib.LG_CONTACT_STATUSES or str(rec.get("isContact")) == "1"


class Sources:
    """Clients, store and snapshot of one check run, plus what was derived from them once."""

    def __init__(self, sf: Any, lg: Any, store: Any, snap: Snapshot):
        self.sf = sf
        self.lg = lg
        self.store = store
        self.snap = snap
        self.read: Counter = Counter()
        self._specs: dict[str, Any] | None = None
        self._schema: Any = None
        self._owners: Any = None
        self._open_keys: dict[str, set[str]] = {}
        self._held: dict[tuple[str, str], dict[str, str]] = {}
        self.notes: list[str] = []

    # -- configuration read from the specs and the live schemas ----------------------------
    @property
    def specs(self) -> dict[str, Any]:
        """Salesforce object -> its person spec (``Lead`` -> leads.yaml, ``Contact`` -> contacts)."""
        if self._specs is None:
            self._specs = {
                sobject: _lib.load_object_spec(_lib.spec_path(name))
                for sobject, name in _lib.PERSON_SPECS.items()
            }
        return self._specs

    @property
    def schema(self) -> Any:
        """Field types of both systems (describe, getFields), as the sync reads them."""
        if self._schema is None:
            self._schema = _lib.read_live_schema(self.specs, self.sf, self.lg)
        return self._schema

    @property
    def owners(self) -> Any:
        """The owner map, built from owners.yaml and both user lists, as the sync builds it."""
        if self._owners is None:
            self._owners = _lib.resolve_owners(self.sf, self.lg)
        return self._owners

    # -- loading into the snapshot ---------------------------------------------------------
    def _once(self, part: str) -> bool:
        if part in self.snap.loaded:
            return False
        self.snap.loaded.add(part)
        return True

    def load_leads(self) -> None:
        """Every active lead. getLeads without a filter returns active leads only; the filter
        here keeps that true should an account answer otherwise."""
        if not self._once("leads"):
            return
        rows = (
            (str(r["id"]), norm_email(r.get("emailAddress")), int(_is_contact(r)), json.dumps(r))
            for r in self.lg.get_leads(where={})
            if str(r.get("active", "1")).strip() != "0"
        )
        n = self.snap.insert("lg_lead", ("id", "email", "is_contact", "rec"), rows)
        self.read["leadgen_leads"] += n

    def load_people(self) -> None:
        """Every live Salesforce Lead and Contact (deleted ones are not returned by ``query``)."""
        if not self._once("people"):
            return
        for sobject, spec in self.specs.items():
            fields = _lib.sf_fields(spec)
            id_field = spec.record_link.id_field if spec.record_link else None
            soql = f"SELECT {', '.join(fields)} FROM {sobject}"
            rows = (self._person_row(r, sobject, id_field) for r in self.sf.query(soql))
            cols = ("id", "object", "lgid", "email", "converted", "converted_to", "rec")
            self.read[f"salesforce_{sobject.lower()}s"] += self.snap.insert("sf_person", cols, rows)

    @staticmethod
    def _person_row(r: dict[str, Any], sobject: str, id_field: str | None) -> tuple[Any, ...]:
        converted_to = blank_to_none(r.get("ConvertedContactId"))
        return (
            _lib.to_18(r["Id"]),
            sobject,
            blank_to_none(r.get(id_field)) if id_field else None,
            norm_email(r.get("Email")),
            int(_truthy(r.get("IsConverted"))),
            _lib.to_18(converted_to) if converted_to else None,
            json.dumps(r),
        )

    def load_links(self) -> None:
        """Every link of every domain and status from the state store."""
        if not self._once("links"):
            return

        def rows() -> Iterator[tuple[Any, ...]]:
            for lk in _lib.iter_links(self.store):
                sv = lk.synced_values or {}
                member = lk.domain == _lib.DOMAIN_MEMBERSHIP
                yield (
                    lk.domain,
                    str(lk.lg_id),
                    _lib.to_18(str(lk.sf_id)),
                    lk.sf_object,
                    lk.status,
                    blank_to_none(sv.get("lead")) if member else None,
                    blank_to_none(sv.get("opportunity")) if member else None,
                    json.dumps(sv) if lk.domain == _lib.DOMAIN_PERSON else None,
                )

        cols = ("domain", "lg_id", "sf_id", "sf_object", "status", "lead", "opp_lg", "synced")
        self.read["state_links"] += self.snap.insert("link", cols, rows())

    def load_opportunity_side(self) -> None:
        """Live Opportunities, contact roles and Accounts; every Lead Gen & CRM opportunity,
        account and opportunity lead (ids only)."""
        if not self._once("opportunities"):
            return
        opps = self.sf.query("SELECT Id, StageName, AccountId FROM Opportunity")
        self.read["salesforce_opportunities"] += self.snap.insert(
            "sf_opp",
            ("id", "stage", "account"),
            ((_lib.to_18(r["Id"]), r.get("StageName"), _id18(r.get("AccountId"))) for r in opps),
        )
        roles = self.sf.query("SELECT Id, OpportunityId, ContactId FROM OpportunityContactRole")
        self.read["salesforce_contact_roles"] += self.snap.insert(
            "sf_role",
            ("id", "opp", "contact"),
            (
                (_lib.to_18(r["Id"]), _id18(r.get("OpportunityId")), _id18(r.get("ContactId")))
                for r in roles
            ),
        )
        contacts = self.sf.query("SELECT Id, AccountId FROM Contact WHERE AccountId != null")
        self.read["salesforce_contacts_with_account"] += self.snap.insert(
            "sf_contact_account",
            ("id", "account"),
            ((_lib.to_18(r["Id"]), _id18(r.get("AccountId"))) for r in contacts),
        )
        accounts = self.sf.query("SELECT Id FROM Account")
        self.read["salesforce_accounts"] += self.snap.insert(
            "sf_account", ("id",), ((_lib.to_18(r["Id"]),) for r in accounts)
        )
        for kind, counter, rows in (
            ("opportunity", "leadgen_opportunities", self.lg.get_opportunities()),
            ("account", "leadgen_accounts", self.lg.get_accounts()),
            ("opportunity_lead", "leadgen_opportunity_leads", self.lg.get_opportunity_leads()),
        ):
            n = self.snap.insert("lg_obj", ("kind", "id"), ((kind, str(r["id"])) for r in rows))
            self.read[counter] += n

    def load_events(self, types: Iterable[str], since: datetime, until: datetime) -> None:
        """Marketing events of ``types`` created in ``[since, until)``, with their Task keys."""
        if not self._once("events"):
            return
        until_text = until.astimezone(UTC).strftime(TS_FORMAT)

        def rows() -> Iterator[tuple[Any, ...]]:
            for etype in types:
                for raw in self.lg.get_events(since, until, event_source=_lib.EVENT_SOURCES[etype]):
                    ev = _lib.normalize_event(raw)
                    if ev is None or ev["type"] != etype or ev["at"] >= until_text:
                        continue
                    yield ev["id"], ev["type"], ev["lead_id"], ev["at"], _lib.task_key(ev)

        self.read["leadgen_events"] += self.snap.insert(
            "event", ("id", "type", "lead_id", "at", "key"), rows()
        )

    # -- lookups for explanations ----------------------------------------------------------
    def open_quarantine(self, dag_id: str) -> set[str]:
        """Record keys (``lg:<id>``, ``sf:<id>``, ``evt:<key>``) of ``dag_id``'s open, retried
        or parked quarantine rows, both directions."""
        if dag_id not in self._open_keys:
            keys: set[str] = set()
            for direction in ("lg_to_sf", "sf_to_lg"):
                keys.update(self.store.retry_keys(dag_id, direction, include_parked=True))
            self._open_keys[dag_id] = keys
        return self._open_keys[dag_id]

    def quarantined(self, dag_id: str, *keys: str) -> str | None:
        """The first of ``keys`` that has an open quarantine row in ``dag_id``, or None."""
        open_keys = self.open_quarantine(dag_id)
        return next((k for k in keys if k in open_keys), None)

    def held(self, dag_id: str, kind: str) -> dict[str, str]:
        """Held items of ``dag_id``/``kind`` not delivered: item key -> status."""
        if (dag_id, kind) not in self._held:
            out: dict[str, str] = {}
            for status in _lib.HELD_NOT_DELIVERED:
                for item in self.store.held(dag_id, kind=kind, status=status):
                    out[str(item.item_key)] = status
            self._held[(dag_id, kind)] = out
        return self._held[(dag_id, kind)]

    def leads_anywhere(
        self, ids: Iterable[str] = (), emails: Iterable[str] = ()
    ) -> dict[str, dict[str, Any]]:
        """Leads by id or email, inactive ones included, in batched calls; keyed by id and by
        ``email:<address>``."""
        out: dict[str, dict[str, Any]] = {}
        id_list = sorted({i for i in ids if str(i).strip().isdigit()})
        for chunk in batches(id_list, 500):
            for r in self.lg.get_leads_by_ids(chunk):
                out[str(r["id"])] = r
        for chunk in batches(sorted({e for e in emails if e}), 500):
            for r in self.lg.get_leads_by_emails(chunk):
                if e := norm_email(r.get("emailAddress")):
                    out[f"email:{e}"] = r
        return out


def _id18(v: Any) -> str | None:
    s = blank_to_none(v)
    return _lib.to_18(s) if s else None
