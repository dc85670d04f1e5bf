"""``sync_engagement_activities``: Lead Gen & CRM marketing events -> completed Salesforce Tasks,
exactly once each.

One module per stage this DAG customises — :mod:`.spec` (the spec; prepare), :mod:`.extract`,
:mod:`.plan` (each event's fate), :mod:`.validate`, :mod:`.load`, :mod:`.record` — plus
:mod:`.events` (identity, first click, templates, Task payloads) and :mod:`.rules` (vocabulary).
It writes one way only, so it has no reconcile. See ``docs/engagement.md``.
"""

from __future__ import annotations

from crm_sync.definitions import LG_TO_SF, SyncDefinition, lazy
from crm_sync.domains.engagement.rules import DAG_ID, DOMAIN, HELD_KIND

P = "crm_sync.domains.engagement"

DEFINITION = SyncDefinition(
    dag_id=DAG_ID,
    stream="engagement",
    domain=DOMAIN,
    link_domains=(),
    spec_names={},
    directions=(LG_TO_SF,),
    held_kind=HELD_KIND,
    waits_for="sync_leads_contacts",
    exclusive=("plan", "validate", "load", "record"),
    stages={
        "prepare": lazy(f"{P}.spec:prepare"),
        "extract": lazy(f"{P}.extract:extract"),
        "plan": lazy(f"{P}.plan:plan"),
        "validate": lazy(f"{P}.validate:validate"),
        "load": lazy(f"{P}.load:load"),
        "record": lazy(f"{P}.record:record"),
    },
)
