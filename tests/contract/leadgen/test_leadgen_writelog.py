"""The sandbox's write log (``/__sandbox__/writes``): what the API wrote with success, per
method, with ids; the chaos tests read it to prove no object was created twice."""

from __future__ import annotations

import pytest

from crm_sync.errors import AmbiguousWriteError

pytestmark = pytest.mark.contract


def test_the_write_log_counts_committed_api_writes_only_with_their_ids(fast_client, admin):
    admin.post("/forms/submit", {"emailAddress": "byhand@example.com"})  # not an API write
    [ann, dup] = fast_client.create_leads(
        [{"emailAddress": "ann@example.com"}, {"emailAddress": "byhand@example.com"}]
    )
    assert ann.success and not dup.success  # 301: nothing written
    [same] = fast_client.update_leads([{"id": ann.id, "emailAddress": "ann@example.com"}])
    assert same.unchanged  # 302: nothing written
    fast_client.update_leads([{"id": ann.id, "title": "CTO"}])
    admin.fault("createAccounts", "drop_after")  # committed, then the answer is lost
    with pytest.raises(AmbiguousWriteError):
        fast_client.create_accounts([{"accountName": "Acme"}])

    log = admin.get("/writes?entries=1")
    assert log["by_method"] == {"createAccounts": 1, "createLeads": 1, "updateLeadsV2": 1}
    assert log["total"] == 3
    [account] = fast_client.get_accounts()
    assert log["entries"] == [
        {"method": "createLeads", "id": str(ann.id)},
        {"method": "updateLeadsV2", "id": str(ann.id)},
        {"method": "createAccounts", "id": str(account["id"])},
    ]
    assert admin.get("/writes?entries=1&method=createleads")["entries"] == log["entries"][:1]
    assert admin.get("/stats")["accounts"] == 1


def test_the_write_log_is_emptied_by_delete_and_by_reset(fast_client, admin):
    fast_client.create_leads([{"emailAddress": "a@example.com"}])
    assert admin.request("DELETE", "/writes") == {"by_method": {}, "total": 0}
    fast_client.create_leads([{"emailAddress": "b@example.com"}])
    admin.reset()
    assert admin.get("/writes") == {"by_method": {}, "total": 0}
