"""Fields, users, accounts, opportunities, opportunity leads, deal stages, campaigns."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from crm_sync.clients.leadgen import LeadGenApiError

pytestmark = pytest.mark.contract

DEFAULT_CUSTOM = {
    "product_interest_5f1a2b3c4d5e6": ("Product Interest", "picklist"),
    "customer_tier_5f1a2b3c4d5e7": ("Customer Tier", "string"),
    "salesforce_url_5f1a2b3c4d5e8": ("Salesforce URL", "url"),
}


def test_get_fields_lists_standard_and_exactly_the_default_custom_fields(client):
    fields = client.get_fields()
    custom = {f["systemName"]: (f["label"], f["dataType"]) for f in fields if f["isCustom"] == "1"}
    assert custom == DEFAULT_CUSTOM
    standard = {(f["relationship"], f["systemName"]) for f in fields if f["isCustom"] == "0"}
    assert {
        ("lead", "emailAddress"),
        ("lead", "leadStatus"),
        ("account", "accountName"),
        ("opportunity", "amount"),
    } <= standard
    assert all(isinstance(v, str) for f in fields for v in f.values() if v is not None)
    assert set(fields[0]) == {
        "id", "relationship", "systemName", "label", "source", "dataType", "dataLength", "isRequired",
        "isCustom", "isAvailableInContactManager", "isEditableInContactManager", "isAvailableInForms", "isActive",
    }  # fmt: skip


def test_create_fields_generates_system_names_with_the_real_rule(client):
    results = client.create_fields(
        [
            {
                "relationship": "lead",
                "label": "How often do you shoot a firearm?",
                "dataType": "string",
            },
            {"relationship": "opportunity", "label": "Renewal Date", "dataType": "date"},
            {
                "relationship": "lead",
                "label": "Product Interest",
                "dataType": "string",
            },  # duplicate label
            {"relationship": "lead", "label": "Bad", "dataType": "hologram"},
        ]
    )
    assert [r.success for r in results] == [True, True, False, False]
    assert [r.error_code for r in results[2:]] == ["301", "217"]
    names = {f["label"]: f["systemName"] for f in client.get_fields() if f["isCustom"] == "1"}
    assert re.fullmatch(
        r"how_often_do_you_shoot_a_firearm__[0-9a-f]{13}",
        names["How often do you shoot a firearm?"],
    )
    assert re.fullmatch(r"renewal_date_[0-9a-f]{13}", names["Renewal Date"])
    # the new lead field is immediately readable ("" when unset) and writable by systemName
    system_name = names["How often do you shoot a firearm?"]
    lead_id = client.create_leads([{"emailAddress": "cf@example.com", system_name: "weekly"}])[0].id
    assert client.get_lead(lead_id)[system_name] == "weekly"
    other = client.create_leads([{"emailAddress": "cf2@example.com"}])[0].id
    assert client.get_lead(other)[system_name] == ""


def test_custom_fields_are_reset_to_the_default_catalogue(client, admin):
    client.create_fields([{"label": "Temporary", "dataType": "string"}])
    admin.reset()
    assert {f["systemName"] for f in client.get_fields() if f["isCustom"] == "1"} == set(
        DEFAULT_CUSTOM
    )


def test_user_profiles_include_one_inactive_user(client):
    users = client.get_user_profiles()
    assert len(users) == 5
    assert [u["isActive"] for u in users].count("0") == 1
    assert set(users[0]) == {
        "id", "firstName", "lastName", "displayName", "emailAddress", "isActive", "isReseller", "userTimezone", "phone",
    }  # fmt: skip


def test_accounts_crud_and_date_range(client, admin):
    admin.freeze("2026-05-01 08:00:00")
    created = client.create_accounts(
        [
            {"accountName": "Summit Dental", "ownerID": "313361052", "numberOfEmployees": 12},
            {"industry": "no name"},
        ]
    )
    assert created[0].success and created[1].error_code == "206"
    account_id = created[0].id
    account = next(client.get_accounts({"id": account_id}))
    assert account["accountName"] == "Summit Dental" and account["numberOfEmployees"] == "12"
    assert "createTimestamp" not in account  # server-side only, like the vendor samples
    admin.freeze("2026-05-02 08:00:00")
    updated = client.update_accounts(
        [{"id": account_id, "industry": "Healthcare"}, {"id": account_id, "industry": "Healthcare"}]
    )
    assert updated[0].success and updated[1].unchanged
    window = list(
        client.get_accounts_date_range(
            datetime(2026, 5, 2, tzinfo=UTC), datetime(2026, 5, 3, tzinfo=UTC)
        )
    )
    assert [a["id"] for a in window] == [account_id]
    assert client.delete_accounts([account_id])[0].success
    assert list(client.get_accounts()) == []


def test_opportunities_deal_stages_and_opportunity_leads(client, admin):
    stages = client.create_deal_stages(
        [
            {"dealStageName": "Discovery", "defaultProbability": 20, "weight": 0},
            {"dealStageName": "Won", "weight": 1},
        ]
    )
    stage_id = stages[0].id
    assert [s["dealStageName"] for s in client.get_deal_stages()] == ["Discovery", "Won"]
    lead_id = client.create_leads([{"emailAddress": "buyer@example.com"}])[0].id
    opp = client.create_opportunities(
        [
            {
                "opportunityName": "Summit Dental - annual",
                "dealStageID": stage_id,
                "amount": "12000",
                "closeDate": "2026-12-31",
                "primaryLeadID": lead_id,
                "ownerID": 313361054,
            },
            {"opportunityName": "Bad stage", "dealStageID": 1},
            {"opportunityName": "Bad lead", "primaryLeadID": 1},
        ]
    )
    assert [r.error_code for r in opp] == [None, "217", "214"]
    opp_id = opp[0].id
    row = next(client.get_opportunities({"id": opp_id}))
    assert row["closeDate"] == "2026-12-31 00:00:00" and row["amount"] == "12000"
    assert (row["isClosed"], row["isWon"], row["isActive"]) == ("0", "0", "1")
    assert client.update_opportunities([{"id": opp_id, "isWon": True, "isClosed": 1}])[0].success

    links = client.create_opportunity_leads(
        [{"opportunityID": opp_id, "leadID": lead_id}, {"opportunityID": opp_id, "leadID": lead_id}]
    )
    assert links[0].success and links[1].error_code == "301"
    raw = client.call("getOpportunityLeads", {"where": {"opportunityID": opp_id}})
    assert list(raw) == ["getWhereopportunityLeads"]  # the generator's key, reproduced
    assert client.get_opportunity_leads({"leadID": lead_id}) == [
        {"id": links[0].id, "opportunityID": opp_id, "leadID": lead_id}
    ]
    # a stage in use cannot go; deleting the opportunity removes its lead links
    assert client.delete_deal_stages([stage_id])[0].error_code == "303"
    assert client.delete_opportunities([opp_id])[0].success
    assert client.get_opportunity_leads() == []


def test_campaigns_from_seed(client, admin):
    admin.seed(10, activity_leads=0)
    campaigns = client.get_campaigns()
    assert len(campaigns) == 5
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", campaigns[0]["startDate"])  # date-only, as observed
    assert campaigns[0]["price"].endswith(".00")


def test_where_on_unknown_key_is_refused(client):
    with pytest.raises(LeadGenApiError) as err:
        list(client.get_opportunities({"stage": "x"}))
    assert err.value.code == 205
