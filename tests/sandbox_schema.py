"""The live schema of the sandboxes (every Salesforce object's describe, every Lead Gen & CRM
field), built in process without an API call: for unit tests and benchmarks that plan or
validate without a running sandbox."""

from __future__ import annotations

from crm_sync.mapping.schema import LiveSchema


def sandbox_live_schema() -> LiveSchema:
    from sandbox.leadgen.catalog import FIELDS_BY_RELATIONSHIP
    from sandbox.salesforce.schema import default_objects

    s = LiveSchema()
    for name, obj in default_objects().items():
        s.add_salesforce_describe(name, obj.describe("59.0"))
    s.add_leadgen_fields(
        [
            {
                "relationship": rel,
                "systemName": f.name,
                "dataType": f.data_type,
                "dataLength": f.length,
                "isCustom": "0",
                "isEditableInContactManager": str(int(f.writable)),
            }
            for rel, defs in FIELDS_BY_RELATIONSHIP.items()
            for f in defs
        ]
    )
    return s
