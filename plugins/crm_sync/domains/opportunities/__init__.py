"""``sync_opportunities``: Salesforce Opportunities, their Accounts, stages and contact roles ->
Lead Gen & CRM opportunities, accounts and opportunity leads ("memberships"). One way only.

One module per stage this DAG customises — :mod:`.stages` (the stage map; prepare),
:mod:`.extract`, :mod:`.match`, :mod:`.plan` (references, :mod:`.memberships`), :mod:`.validate`,
:mod:`.load`, :mod:`.record` — and :mod:`.rules` for the facts they share. See
``docs/opportunities.md``.
"""

from __future__ import annotations

from crm_sync.definitions import SF_TO_LG, SyncDefinition, lazy
from crm_sync.domains.opportunities.rules import (
    DAG_ID,
    DOMAIN_ACCOUNT,
    DOMAIN_MEMBERSHIP,
    DOMAIN_OPPORTUNITY,
    HELD_KIND,
    SPEC_NAMES,
    STREAM,
)

P = "crm_sync.domains.opportunities"

DEFINITION = SyncDefinition(
    dag_id=DAG_ID,
    stream=STREAM,
    domain=DOMAIN_OPPORTUNITY,
    link_domains=(DOMAIN_OPPORTUNITY, DOMAIN_ACCOUNT, DOMAIN_MEMBERSHIP),
    spec_names=SPEC_NAMES,
    directions=(SF_TO_LG,),
    held_kind=HELD_KIND,
    waits_for="sync_leads_contacts",
    exclusive=("match", "reconcile", "validate", "load_leadgen", "record"),
    stages={
        "prepare": lazy(f"{P}.stages:prepare"),
        "extract": lazy(f"{P}.extract:extract"),
        "match": lazy(f"{P}.match:match"),
        "reconcile": lazy(f"{P}.plan:plan"),
        "validate": lazy(f"{P}.validate:validate"),
        "load_leadgen": lazy(f"{P}.load:load"),
        "record": lazy(f"{P}.record:record"),
    },
)
