"""How an undo reads, restores and removes records in each system, through the existing clients.

One :class:`System` per side, batched the way each API allows: Salesforce 200 records per query
(``Id IN``) and per sObject Collections call; Lead Gen & CRM 500 per call. Every write is read back
(:func:`written`): a record whose restored values did not land counts as failed, with the fields.

Removing a record the undone run created: Salesforce records are deleted (to the recycle bin);
Lead Gen & CRM leads are deactivated (``active=0``, never hard-deleted); opportunities, accounts
and opportunity leads are deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crm_sync.clients.results import WriteResult
from crm_sync.pipeline.changelog import LEADGEN, SALESFORCE
from crm_sync.pipeline.readback import not_applied
from crm_sync.undo.decide import inactive

Record = dict[str, Any]


@dataclass(frozen=True)
class LgObject:
    """The client methods of one Lead Gen & CRM object (``remove``: None = deactivate)."""

    read: str
    update: str | None
    remove: str | None


LG_OBJECTS = {
    "lead": LgObject("get_leads_by_ids", "update_leads", None),
    "opportunity": LgObject(
        "get_opportunities_by_ids", "update_opportunities", "delete_opportunities"
    ),
    "account": LgObject("get_accounts_by_ids", "update_accounts", "delete_accounts"),
    "opportunityLead": LgObject("get_opportunity_leads_by_ids", None, "delete_opportunity_leads"),
}
DEACTIVATE = {"active": "0"}


class UnsupportedObject(ValueError):
    """An object the undo has no client methods for (the change is reported, not undone)."""


class System:
    """Reads, restores and removes records of one system (see the module docstring)."""

    name: str
    batch: int  # records per read and per write call
    id_key: str

    def read(self, obj: str, ids: Sequence[str], fields: Sequence[str]) -> dict[str, Record]:
        raise NotImplementedError

    def restore(self, obj: str, payloads: Sequence[Record]) -> list[WriteResult]:
        raise NotImplementedError

    def remove(self, obj: str, ids: Sequence[str]) -> list[WriteResult]:
        raise NotImplementedError

    def written(
        self, obj: str, payloads: Sequence[Record], results: Sequence[WriteResult]
    ) -> dict[str, str | None]:
        """Record id -> None when the write landed (read back), else why not."""
        out: dict[str, str | None] = {}
        ok = []
        for p, r in zip(payloads, results, strict=True):
            rid = str(p[self.id_key])
            out[rid] = None if r.success else (r.error_message or "refused")
            if r.success:
                ok.append(p)
        fields = sorted({f for p in ok for f in p if f != self.id_key})
        now = self.read(obj, [str(p[self.id_key]) for p in ok], fields) if ok else {}
        for p in ok:
            missing = not_applied(p, now.get(str(p[self.id_key])), key=self.id_key)
            if missing:
                out[str(p[self.id_key])] = (
                    f"answered success but did not change {', '.join(missing)}"
                )
        return out


class SalesforceSystem(System):
    name, batch, id_key = SALESFORCE, 200, "Id"

    def __init__(self, sf: Any):
        self.sf = sf

    def read(self, obj: str, ids: Sequence[str], fields: Sequence[str]) -> dict[str, Record]:
        wanted = ["Id", *sorted(set(fields) - {"Id"})]
        out: dict[str, Record] = {}
        for i in range(0, len(ids), self.batch):
            for r in self.sf.query_by_values(obj, wanted, "Id", list(ids[i : i + self.batch])):
                out[str(r["Id"])] = r
        return out

    def restore(self, obj: str, payloads: Sequence[Record]) -> list[WriteResult]:
        return list(self.sf.update(obj, list(payloads)))

    def remove(self, obj: str, ids: Sequence[str]) -> list[WriteResult]:
        return list(self.sf.delete(list(ids)))


class LeadGenSystem(System):
    name, batch, id_key = LEADGEN, 500, "id"

    def __init__(self, lg: Any):
        self.lg = lg

    def _methods(self, obj: str) -> LgObject:
        try:
            return LG_OBJECTS[obj]
        except KeyError:
            raise UnsupportedObject(f"Lead Gen & CRM object {obj!r}") from None

    def read(self, obj: str, ids: Sequence[str], fields: Sequence[str]) -> dict[str, Record]:
        reader = getattr(self.lg, self._methods(obj).read)
        out: dict[str, Record] = {}
        for i in range(0, len(ids), self.batch):
            for r in reader(list(ids[i : i + self.batch])):
                out[str(r.get("id"))] = r
        return out

    def restore(self, obj: str, payloads: Sequence[Record]) -> list[WriteResult]:
        method = self._methods(obj).update
        if method is None:
            raise UnsupportedObject(f"Lead Gen & CRM {obj} records cannot be updated")
        return list(getattr(self.lg, method)(list(payloads)))

    def remove(self, obj: str, ids: Sequence[str]) -> list[WriteResult]:
        method = self._methods(obj).remove
        if method is None:  # leads are deactivated, never deleted
            return self.restore(obj, [{"id": i, **DEACTIVATE} for i in ids])
        return list(getattr(self.lg, method)(list(ids)))


def removal_landed(
    system: System, obj: str, ids: Sequence[str], results: Sequence[WriteResult]
) -> dict[str, str | None]:
    """Record id -> None when the record is gone (deleted, or a lead now inactive), else why not:
    a removal is read back like a restore."""
    out = {
        str(i): (None if r.success else (r.error_message or "refused"))
        for i, r in zip(ids, results, strict=True)
    }
    done = [i for i, why in out.items() if why is None]
    now = (
        system.read(obj, done, ["active"] if system.name == LEADGEN and obj == "lead" else [])
        if done
        else {}
    )
    for i in done:
        rec = now.get(i)
        if rec is not None and not (system.name == LEADGEN and obj == "lead" and inactive(rec)):
            out[i] = "answered success but the record is still there"
    return out
