"""A write whose answer is lost after the server applied it (fault ``drop_after``): creates
without a natural key are not repeated (AmbiguousWriteError), keyed writes are, and nothing is
created twice."""

from __future__ import annotations

import pytest

from crm_sync.clients.leadgen import LeadGenClient
from crm_sync.errors import AmbiguousWriteError, RetriableError
from sandbox.process import free_port

pytestmark = pytest.mark.contract


def test_lost_answer_to_create_opportunities_raises_ambiguous_and_creates_once(fast_client, admin):
    [stage] = fast_client.create_deal_stages([{"dealStageName": "Discovery"}])
    admin.fault("createOpportunities", "drop_after")
    with pytest.raises(AmbiguousWriteError) as err:
        fast_client.create_opportunities(
            [{"opportunityName": "Summit Dental - annual", "dealStageID": stage.id}]
        )
    assert (err.value.method, err.value.count) == ("createOpportunities", 1)
    assert fast_client.calls["createOpportunities"] == 1 and fast_client.retries == 0
    # the server did apply it: exactly one, which the caller finds by its name
    names = [o["opportunityName"] for o in fast_client.get_opportunities()]
    assert names == ["Summit Dental - annual"]
    assert admin.calls()["rejected"] == {"fault:drop_after": 1}


@pytest.mark.parametrize("method", ["createAccounts", "createDealStages", "createOpportunityLeads"])
def test_every_non_keyed_create_is_ambiguous_after_a_lost_answer(fast_client, admin, method):
    lead = fast_client.create_leads([{"emailAddress": "m@example.com"}])[0].id
    [stage] = fast_client.create_deal_stages([{"dealStageName": "S"}])
    [opp] = fast_client.create_opportunities([{"opportunityName": "O", "dealStageID": stage.id}])
    objects = {
        "createAccounts": [{"accountName": "Acme"}],
        "createDealStages": [{"dealStageName": "Won"}],
        "createOpportunityLeads": [{"opportunityID": opp.id, "leadID": lead}],
    }[method]
    admin.fault(method, "drop_after")
    before = fast_client.calls[method]
    writer = {
        "createAccounts": fast_client.create_accounts,
        "createDealStages": fast_client.create_deal_stages,
        "createOpportunityLeads": fast_client.create_opportunity_leads,
    }[method]
    with pytest.raises(AmbiguousWriteError):
        writer(objects)
    assert fast_client.calls[method] == before + 1  # sent once, not repeated


def test_lost_answer_to_create_leads_is_retried_and_the_duplicate_answers_301(fast_client, admin):
    admin.fault("createLeads", "drop_after")
    [result] = fast_client.create_leads([{"emailAddress": "once@example.com"}])
    assert fast_client.calls["createLeads"] == 2
    assert not result.success and result.error_code == "301"  # the sync resolves 301 by email
    assert [lead["emailAddress"] for lead in fast_client.get_leads()] == ["once@example.com"]


def test_lost_answer_to_a_delete_is_retried_and_404_counts_as_done(fast_client, admin):
    lead = fast_client.create_leads([{"emailAddress": "bye@example.com"}])[0].id
    admin.fault("deleteLeads", "drop_after")
    [result] = fast_client.delete_leads([lead])
    assert result.success and result.unchanged and fast_client.calls["deleteLeads"] == 2
    assert fast_client.get_lead(lead) is None


def test_lost_answer_to_an_update_is_retried_and_302_counts_as_done(fast_client, admin):
    lead = fast_client.create_leads([{"emailAddress": "u@example.com"}])[0].id
    admin.fault("updateLeadsV2", "drop_after")
    [result] = fast_client.update_leads([{"id": lead, "title": "CEO"}])
    assert result.success and result.unchanged and fast_client.calls["updateLeadsV2"] == 2


def test_107_before_a_non_keyed_create_is_retried(fast_client, admin):
    admin.fault("createAccounts", "107")
    [result] = fast_client.create_accounts([{"accountName": "Acme"}])
    assert result.success and fast_client.calls["createAccounts"] == 2
    assert [a["accountName"] for a in fast_client.get_accounts()] == ["Acme"]


def test_refused_connection_is_retried_for_a_non_keyed_create():
    url = f"http://127.0.0.1:{free_port()}/pubapi/v1.2/"  # nothing listens there
    client = LeadGenClient(url, "SANDBOXACCOUNT", "SANDBOXSECRET", max_retries=2, backoff_base=0.01)
    with pytest.raises(RetriableError) as err:
        client.create_opportunities([{"opportunityName": "O"}])
    assert err.value.code == "refused" and client.calls["createOpportunities"] == 3
