"""``sync_leads_contacts``: Lead Gen & CRM leads <-> Salesforce Leads and Contacts, both ways.

One module per stage this DAG customises (extract, match + lifecycle + pairing, plan, validate,
load, record) and :mod:`.rules` for what a person is. The declaration below is all the runner
needs; the DAG file is wiring only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crm_sync.definitions import LG_TO_SF, SF_TO_LG, SyncDefinition, lazy
from crm_sync.domains.people.rules import DAG_ID, DOMAIN, SPEC_NAMES, STREAM

if TYPE_CHECKING:
    from crm_sync.tasks import TaskRuntime


def prepare(rt: TaskRuntime) -> dict[str, Any]:
    """Specs checked against both live schemas, owners resolved, run recorded."""
    from crm_sync.pipeline.prepare import prepare as prepare_run

    return prepare_run(
        rt.run, spec_names=SPEC_NAMES, sf=rt.salesforce, lg=rt.leadgen, store=rt.store
    )


P = "crm_sync.domains.people"

DEFINITION = SyncDefinition(
    dag_id=DAG_ID,
    stream=STREAM,
    domain=DOMAIN,
    link_domains=(DOMAIN,),
    spec_names=SPEC_NAMES,
    directions=(LG_TO_SF, SF_TO_LG),
    exclusive=("match", "reconcile", "validate", "load_leadgen", "load_salesforce", "record"),
    stages={
        "prepare": prepare,
        "extract_leadgen": lazy(f"{P}.extract:extract_leadgen"),
        "extract_salesforce": lazy(f"{P}.extract:extract_salesforce"),
        "match": lazy(f"{P}.match:match"),
        "reconcile": lazy(f"{P}.plan:plan"),
        "validate": lazy(f"{P}.validate:validate"),
        "load_leadgen": lazy(f"{P}.load:load_leadgen"),
        "load_salesforce": lazy(f"{P}.load:load_salesforce"),
        "record": lazy(f"{P}.record:record"),
    },
)
