"""Scope in the people match: a pair whose lead or Salesforce record is outside its spec's scope
is set aside before anything is planned for it.

The rules (docs/sync-rules.md, "Scope"): a record outside scope is never created on the other
side and an unlinked one is never paired (``out_of_scope``); a linked pair one of whose records
left scope is left as it is on both sides, link kept, until it comes back (``left_scope``). Both
are run-report events. Which spec's scope applies is the pair's Salesforce object's: a lead that
would become (or is linked to) a Contact is tested against ``contacts.yaml``'s scope.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crm_sync.domains.people.pairs import Pair, event, make_pair
from crm_sync.domains.people.rules import sf_object_of
from crm_sync.pipeline.scope import LEADGEN, SALESFORCE, ScopeFilter, bind_scope, in_scope
from crm_sync.pipeline.scope import read_list_members as _read_list_members

if TYPE_CHECKING:
    from crm_sync.clients.leadgen import LeadGenClient
    from crm_sync.mapping.models import ObjectSpec
    from crm_sync.mapping.schema import LiveSchema

log = logging.getLogger(__name__)

OUT_OF_SCOPE, LEFT_SCOPE = "out_of_scope", "left_scope"


@dataclass(frozen=True)
class PeopleScope:
    """Each Salesforce object's scope filters, one per system (None: that side syncs all)."""

    salesforce: Mapping[str, ScopeFilter | None]
    leadgen: Mapping[str, ScopeFilter | None]

    @classmethod
    def of(
        cls, specs: Mapping[str, ObjectSpec], schema: LiveSchema, lg: LeadGenClient
    ) -> PeopleScope:
        """Bind every spec's scope; the members of the Lead Gen & CRM lists a scope names are
        read once per run (``getListMembers``), only when one does."""
        lists = sorted(
            {
                list_id
                for spec in specs.values()
                if spec.scope is not None and spec.scope.leadgen is not None
                for list_id in spec.scope.leadgen.lists
            }
        )
        members = _read_list_members(lg, lists) if lists else None
        return cls(
            salesforce={o: bind_scope(s, SALESFORCE, schema) for o, s in specs.items()},
            leadgen={
                o: bind_scope(s, LEADGEN, schema, members=members if lists else None)
                for o, s in specs.items()
            },
        )

    @property
    def active(self) -> bool:
        return any(f is not None for f in (*self.salesforce.values(), *self.leadgen.values()))

    def lead_in(self, sobject: str, lead: Mapping[str, Any]) -> bool:
        f = self.leadgen.get(sobject)
        if f is None:
            return True
        # The API leaves out fields a lead has no value for: absent is blank.
        return in_scope(f, {**dict.fromkeys(f.fields), **lead})

    def record_in(self, record: Mapping[str, Any]) -> bool:
        f = self.salesforce.get(sf_object_of(record["Id"]))
        if f is None:
            return True
        if any(name not in record for name in f.fields):
            # A record purged from the recycle bin is known by its id alone: nothing to test,
            # its link's lifecycle (deactivating the lead) goes on.
            return True
        return in_scope(f, record)

    def apply(self, pair: Pair) -> Pair:
        """``pair``, or the set-aside pair when one of its records is outside scope."""
        if pair.get("skip_fields") or not self.active:
            return pair
        outside = []
        lead, record = pair.get("lg"), pair.get("sf")
        if lead is not None and not self.lead_in(pair["sf_object"], lead):
            outside.append(f"lead {lead['id']}")
        if record is not None and not self.record_in(record):
            outside.append(f"{sf_object_of(record['Id'])} {record['Id']}")
        if not outside:
            return pair
        name = LEFT_SCOPE if pair.get("link") else OUT_OF_SCOPE
        what = " and ".join(outside)
        detail = (
            f"{what} left the scope of {pair['sf_object'].lower()}s: the pair is not synced "
            "(nothing written, link kept) until it is back in scope"
            if name == LEFT_SCOPE
            else f"{what} is outside the scope of {pair['sf_object'].lower()}s: not synced, "
            "not created on the other side"
        )
        return make_pair(
            pair["pair"],
            lg=lead,
            sf=record,
            sf_object=pair["sf_object"],
            link=pair.get("link"),
            match=name,
            skip_fields=True,
            events=[event(name, detail)],
        )
