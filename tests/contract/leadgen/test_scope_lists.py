"""A Lead Gen & CRM scope on real API answers: list membership through getListMembers, the
prepare stage's list check, and in_scope on leads as getLeads returns them (all text)."""

from __future__ import annotations

import pytest

from crm_sync.errors import ConfigError
from crm_sync.mapping.schema import LiveSchema
from crm_sync.pipeline.scope import bind_scope, check_scopes, in_scope, read_list_members
from tests.unit.scope_fixtures import person_spec

pytestmark = pytest.mark.contract


def test_list_members_and_field_conditions_on_real_leads(client, admin) -> None:
    rows = [
        ("in-hot@example.com", "open", "Gold"),
        ("in-cold@example.com", "unqualified", "Gold"),
        ("in-blank@example.com", "qualified", ""),
        ("out-hot@example.com", "open", "Gold"),
    ]
    ids = {}
    for email, status, tier in rows:
        [result] = client.create_leads(
            [{"emailAddress": email, "leadStatus": status, "customer_tier_5f1a2b3c4d5e7": tier}]
        )
        assert result.success, result.error_message
        ids[email.split("@")[0]] = result.id
    members = [ids["in-hot"], ids["in-cold"], ids["in-blank"]]
    vip = admin.post("/lists", {"name": "VIP", "leadIDs": members})["listID"]
    other = admin.post("/lists", {"name": "Other", "leadIDs": [ids["in-hot"]]})["listID"]

    spec = person_spec(
        leadgen={
            "where": [
                {"field": "leadStatus", "op": "not_in", "values": ["unqualified"]},
                {"field": "customer_tier_5f1a2b3c4d5e7", "op": "ne", "value": "silver"},
            ],
            "lists": [int(vip), int(other)],
        }
    )
    schema = LiveSchema()
    schema.add_leadgen_fields(client.get_fields())
    assert check_scopes({"Lead": spec}, schema, client) == []

    found = read_list_members(client, [int(vip), int(other)])
    assert found == {str(i) for i in members}
    scope = bind_scope(spec, "leadgen", schema, members=found)
    leads = list(client.get_leads({"id": list(ids.values())}))
    assert len(leads) == 4
    kept = {lead["emailAddress"].split("@")[0] for lead in leads if in_scope(scope, lead)}
    assert kept == {"in-hot", "in-blank"}  # in-cold is unqualified, out-hot in no list


def test_prepare_refuses_a_list_the_account_does_not_have(client, admin) -> None:
    real = admin.post("/lists", {"name": "Newsletter", "leadIDs": []})["listID"]
    spec = person_spec(leadgen={"lists": [int(real), 987654]})
    schema = LiveSchema()
    schema.add_leadgen_fields(client.get_fields())
    with pytest.raises(ConfigError, match=r"scope.leadgen.lists\[1\]: Lead Gen & CRM list 987654"):
        check_scopes({"Lead": spec}, schema, client)
