"""Sandbox fidelity rules found by running public PHP clients against it (issue 15), and the
client rules that go with them: single getters, null vs "" on write, the API's "<" quirk and
the UI's entity encoding, list values in ``where``."""

from __future__ import annotations

import pytest

from crm_sync.clients.leadgen import LeadGenClient

pytestmark = pytest.mark.contract


def _lead(client: LeadGenClient, **fields) -> str:
    [result] = client.create_leads([{"emailAddress": "fidelity@example.com", **fields}])
    assert result.success, result.error_message
    return result.id


def _error(envelope: dict, key: str = "updates") -> int | None:
    entry = envelope["result"][key][0]
    return None if entry["success"] else entry["error"]["code"]


def test_single_record_getters_answer_like_get_lead(client, raw):
    [stage] = client.create_deal_stages([{"dealStageName": "Discovery"}])
    [account] = client.create_accounts([{"accountName": "Summit Dental"}])
    lead_id = _lead(client)
    [opp] = client.create_opportunities(
        [{"opportunityName": "Summit", "dealStageID": stage.id, "accountID": account.id}]
    )
    [link] = client.create_opportunity_leads([{"opportunityID": opp.id, "leadID": lead_id}])
    assert client.get_deal_stage(stage.id)["dealStageName"] == "Discovery"
    assert client.get_account(account.id)["accountName"] == "Summit Dental"
    assert client.get_opportunity(opp.id)["dealStageID"] == stage.id
    assert client.get_opportunity_lead(link.id) == {
        "id": link.id,
        "opportunityID": opp.id,
        "leadID": lead_id,
    }
    assert client.get_account("1") is None
    # the envelope keys are the singular ones (DLL), getOpportunityLead's unlike its list's
    assert raw("getOpportunityLead", {"id": link.id})["result"] == {
        "opportunityLead": [{"id": link.id, "opportunityID": opp.id, "leadID": lead_id}]
    }
    assert raw("getCampaign", {"id": "1"})["result"] == {"campaign": []}
    assert raw("getAccount", {})["error"]["code"] == 206


def test_null_in_a_standard_text_field_is_refused_and_the_client_sends_empty_string(client, raw):
    lead_id = _lead(client, title="CTO", companyName="Acme")
    for field in ("title", "description", "persona"):
        refused = raw("updateLeadsV2", {"objects": [{"id": lead_id, field: None}]})
        assert (
            _error(refused) == 205
            and "empty string" in refused["result"]["updates"][0]["error"]["message"]
        )
    [opp_stage] = client.create_deal_stages([{"dealStageName": "S"}])
    assert (
        _error(raw("updateDealStages", {"objects": [{"id": opp_stage.id, "description": None}]}))
        == 205
    )
    # the client clears with "" (a transport rule), so the same intent succeeds
    assert client.update_leads([{"id": lead_id, "title": None}])[0].success
    assert client.get_lead(lead_id)["title"] == ""


def test_empty_string_in_an_id_reference_is_refused_and_null_clears_it(client, raw):
    lead_id = _lead(client, ownerID="313361052")
    for field in ("ownerID", "accountID", "campaignID"):
        assert _error(raw("updateLeadsV2", {"objects": [{"id": lead_id, field: ""}]})) == 205
    assert _error(raw("updateLeadsV2", {"objects": [{"id": lead_id, "ownerID": None}]})) is None
    assert client.get_lead(lead_id)["ownerID"] is None
    assert client.update_leads([{"id": lead_id, "ownerID": "313361053"}])[0].success
    assert client.update_leads([{"id": lead_id, "ownerID": ""}])[0].success  # sent as null
    assert client.get_lead(lead_id)["ownerID"] is None


def test_active_and_is_unsubscribed_are_nullable(client, raw):
    lead_id = _lead(client)
    answer = raw(
        "updateLeadsV2", {"objects": [{"id": lead_id, "active": None, "isUnsubscribed": None}]}
    )
    assert _error(answer) is None
    lead = client.get_lead(lead_id)
    assert (lead["active"], lead["isUnsubscribed"]) == (None, None)
    assert _error(raw("updateLeadsV2", {"objects": [{"id": lead_id, "active": ""}]})) == 205


def test_api_written_lt_reads_back_encoded_unless_last_and_the_client_decodes(client, raw):
    lead_id = _lead(client, companyName="A<B & C<", title="x < y  <  ")
    stored = raw("getLead", {"id": lead_id})["result"]["lead"][0]
    assert stored["companyName"] == "A&lt;B & C<"
    assert stored["title"] == "x &lt; y  <  "  # last non-blank "<" stays
    lead = client.get_lead(lead_id)
    assert (lead["companyName"], lead["title"]) == ("A<B & C<", "x < y  <  ")
    # writing back what was read is a no-op (302), not an endless change
    assert client.update_leads([{"id": lead_id, "companyName": lead["companyName"]}])[0].unchanged


def test_values_typed_in_the_ui_are_entity_encoded_and_the_client_decodes(client, admin, raw):
    lead_id = _lead(client)
    typed = {"companyName": "Archer & Co <Intl>", "customer_tier_5f1a2b3c4d5e7": "Gold & <Plus>"}
    admin.post(f"/leads/{lead_id}", {"fields": typed, "typed_in_ui": True})
    stored = raw("getLead", {"id": lead_id})["result"]["lead"][0]
    assert stored["companyName"] == "Archer &amp; Co &amp;lt;Intl&gt;"
    assert stored["customer_tier_5f1a2b3c4d5e7"] == "Gold & &lt;Plus>"
    lead = client.get_lead(lead_id)
    assert lead["companyName"] == typed["companyName"]
    assert lead["customer_tier_5f1a2b3c4d5e7"] == typed["customer_tier_5f1a2b3c4d5e7"]
    assert [row["companyName"] for row in client.get_leads()] == [typed["companyName"]]


def test_where_lists_take_precedence_over_scalars_ids_first(client, raw):
    ids = [
        r.id for r in client.create_leads([{"emailAddress": f"w{i}@example.com"} for i in range(4)])
    ]

    def got(where: dict) -> list[str]:
        return [lead["id"] for lead in raw("getLeads", {"where": where})["result"]["lead"]]

    assert got({"id": ids[0], "emailAddress": ["w2@example.com"]}) == [ids[2]]  # scalar ignored
    assert got({"id": [ids[3]], "emailAddress": ["w0@example.com", "W1@example.com"]}) == [
        ids[3], ids[0], ids[1],
    ]  # fmt: skip
    assert got({"id": ids[1], "emailAddress": "w2@example.com"}) == []  # scalars: both apply
    [stage] = client.create_deal_stages([{"dealStageName": "S"}])
    opps = client.create_opportunities(
        [{"opportunityName": f"O{i}", "dealStageID": stage.id} for i in range(3)]
    )
    listed = raw(
        "getOpportunities", {"where": {"id": [opps[2].id, opps[0].id], "dealStageID": "1"}}
    )
    assert [o["id"] for o in listed["result"]["opportunity"]] == [opps[0].id, opps[2].id]
    too_many = raw("getOpportunities", {"where": {"id": [str(i) for i in range(501)]}})
    assert too_many["error"]["code"] == 209


def test_batched_lookups_by_ids_for_sales_objects(client):
    [stage] = client.create_deal_stages([{"dealStageName": "S"}])
    accounts = client.create_accounts([{"accountName": f"A{i}"} for i in range(3)])
    opps = client.create_opportunities(
        [
            {"opportunityName": f"O{i}", "dealStageID": stage.id, "accountID": accounts[i].id}
            for i in range(3)
        ]
    )
    leads = [
        r.id for r in client.create_leads([{"emailAddress": f"m{i}@example.com"} for i in range(2)])
    ]
    links = client.create_opportunity_leads(
        [{"opportunityID": o.id, "leadID": lead} for o in opps[:2] for lead in leads]
    )
    client.calls.clear()
    asked = [opps[2].id, opps[0].id, "1"]
    assert [o["id"] for o in client.get_opportunities_by_ids(asked)] == [opps[2].id, opps[0].id]
    assert [a["accountName"] for a in client.get_accounts_by_ids([accounts[1].id])] == ["A1"]
    members = client.get_opportunity_leads_by_opportunity_ids([opps[0].id, opps[1].id, opps[2].id])
    assert sorted(m["id"] for m in members) == sorted(link.id for link in links)
    assert [m["id"] for m in client.get_opportunity_leads_by_ids([links[3].id])] == [links[3].id]
    assert client.calls == {"getOpportunities": 1, "getAccounts": 1, "getOpportunityLeads": 2}
