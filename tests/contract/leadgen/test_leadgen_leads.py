"""Leads through the client: batching, paging, typing, the update quirks, inactive leads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_sync.clients.leadgen import LeadGenApiError, LeadGenClient

pytestmark = pytest.mark.contract

LEAD_KEYS = [
    "id", "accountID", "ownerID", "companyName", "title", "firstName", "lastName", "street", "city",
    "country", "state", "zipcode", "emailAddress", "website", "phoneNumber", "officePhoneNumber",
    "phoneNumberExtension", "mobilePhoneNumber", "faxNumber", "description", "campaignID",
    "trackingID", "industry", "active", "isQualified", "isContact", "isCustomer", "status",
    "updateTimestamp", "createTimestamp", "leadScoreWeighted", "leadScore", "isUnsubscribed",
    "leadStatus", "persona",
    "product_interest_5f1a2b3c4d5e6", "customer_tier_5f1a2b3c4d5e7", "salesforce_url_5f1a2b3c4d5e8",
]  # fmt: skip


def _create(client: LeadGenClient, *objs: dict) -> list[str]:
    results = client.create_leads(objs)
    assert all(r.success for r in results), [r.error_message for r in results]
    return [r.id for r in results]


def test_1201_creates_take_exactly_three_calls_and_keep_input_order(client, admin):
    objs = [{"emailAddress": f"bulk{i}@example.com", "firstName": f"N{i}"} for i in range(1201)]
    results = client.create_leads(objs)
    assert client.calls["createLeads"] == 3
    assert admin.calls()["by_method"] == {"createLeads": 3}
    assert [r.index for r in results] == list(range(1201))
    assert all(r.success and r.created and r.id and r.id.isdigit() for r in results)
    # ids come back in input order: the lead at index i has the email of object i
    sample = client.get_leads_by_ids([results[0].id, results[600].id, results[1200].id])
    assert [lead["emailAddress"] for lead in sample] == [
        "bulk0@example.com",
        "bulk600@example.com",
        "bulk1200@example.com",
    ]


def test_reading_1000_leads_takes_two_full_pages_and_one_empty_page(client, admin):
    admin.seed(1000, activity_leads=0)
    leads = list(client.get_leads())
    assert len(leads) == 1000
    assert len({lead["id"] for lead in leads}) == 1000
    assert client.calls["getLeads"] == 3
    assert admin.calls()["by_method"] == {"getLeads": 3}


def test_paging_is_lazy(client, admin):
    admin.seed(600, activity_leads=0)
    pages = client.get_leads()
    assert client.api_calls == 0
    first = next(pages)
    assert client.api_calls == 1 and first["id"]


def test_lead_typing_standard_custom_and_derived_fields(client, admin):
    admin.freeze("2026-11-27 09:10:00")
    lead_id = _create(
        client,
        {
            "emailAddress": "typed@example.com",
            "firstName": "Ty",
            "leadScore": 42,
            "ownerID": 313361053,
            "isUnsubscribed": True,
            "leadStatus": "contactWithOpp",
            "product_interest_5f1a2b3c4d5e6": "CRM",
        },
    )[0]
    lead = client.get_lead(lead_id)
    assert list(lead) == LEAD_KEYS
    assert all(v is None or isinstance(v, str) for v in lead.values())
    assert lead["id"] == lead_id and lead["leadScore"] == "42" and lead["ownerID"] == "313361053"
    assert lead["isUnsubscribed"] == "1" and lead["active"] == "1" and lead["status"] == "0"
    assert lead["createTimestamp"] == lead["updateTimestamp"] == "2026-11-27 09:10:00"
    # unset standard string -> null, unset custom -> "", persona "" when unset
    assert (
        lead["lastName"] is None
        and lead["customer_tier_5f1a2b3c4d5e7"] == ""
        and lead["persona"] == ""
    )
    assert lead["product_interest_5f1a2b3c4d5e6"] == "CRM"
    # contactWithOpp is a contact, and a qualified one, but not a customer
    assert (lead["isContact"], lead["isQualified"], lead["isCustomer"]) == ("1", "1", "0")
    assert lead["leadStatus"] == "contactWithOpp"


def test_new_lead_defaults_to_unqualified_and_is_not_a_contact(client):
    lead = client.get_lead(_create(client, {"emailAddress": "d@example.com"})[0])
    assert (lead["leadStatus"], lead["isContact"], lead["leadScore"]) == ("unqualified", "0", "0")


def test_duplicate_email_is_object_error_301_and_other_objects_still_succeed(client):
    _create(client, {"emailAddress": "dup@example.com"})
    results = client.create_leads(
        [
            {"emailAddress": "new1@example.com"},
            {"emailAddress": "DUP@example.com"},
            {"firstName": "no email"},
        ]
    )
    assert [r.success for r in results] == [True, False, False]
    assert results[1].error_code == "301" and results[1].errors[0].fields == ("emailAddress",)
    assert results[2].error_code == "206"


def test_partial_write_envelope_has_error_array_of_copies(client):
    _create(client, {"emailAddress": "dup@example.com"})
    raw = client.call(
        "createLeads",
        {"objects": [{"emailAddress": "ok@example.com"}, {"emailAddress": "dup@example.com"}]},
    )
    creates = raw["creates"]
    assert creates[0]["success"] is True and isinstance(
        creates[0]["id"], int
    )  # created ids are JSON numbers
    assert creates[1] == {
        "success": False,
        "error": {
            "code": 301,
            "message": creates[1]["error"]["message"],
            "data": {"field": "emailAddress"},
        },
    }


def test_update_no_change_is_302_reported_as_unchanged_success(client, admin):
    lead_id = _create(client, {"emailAddress": "same@example.com", "firstName": "Same"})[0]
    admin.freeze("2030-01-01 00:00:00")
    result = client.update_leads([{"id": lead_id, "firstName": "Same"}])[0]
    assert result.success and result.unchanged
    assert (
        client.get_lead(lead_id)["updateTimestamp"] != "2030-01-01 00:00:00"
    )  # a 302 bumps nothing
    changed = client.update_leads([{"id": lead_id, "firstName": "Other"}])[0]
    assert changed.success and not changed.unchanged
    assert client.get_lead(lead_id)["updateTimestamp"] == "2030-01-01 00:00:00"


def test_update_unknown_id_fails_404_via_v2_but_updateLeads_is_silent(client):
    result = client.update_leads([{"id": "999999999999", "firstName": "Ghost"}])[0]
    assert not result.success and result.error_code == "404"
    assert client.calls["updateLeadsV2"] == 1
    raw = client.call("updateLeads", {"objects": [{"id": "999999999999", "firstName": "Ghost"}]})
    assert raw == {"updates": [{"success": True, "error": None}]}


def test_update_by_email_when_no_id(client):
    lead_id = _create(client, {"emailAddress": "byemail@example.com"})[0]
    assert client.update_leads([{"emailAddress": "byemail@example.com", "title": "CTO"}])[0].success
    assert client.get_lead(lead_id)["title"] == "CTO"
    missing = client.update_leads([{"emailAddress": "nobody@example.com", "title": "CTO"}])[0]
    assert missing.error_code == "404"


def test_update_with_email_of_another_lead_only_bumps_timestamp(client, admin):
    admin.freeze("2026-01-01 00:00:00")
    a, b = _create(
        client,
        {"emailAddress": "a@example.com", "firstName": "A"},
        {"emailAddress": "b@example.com"},
    )
    admin.freeze("2026-02-01 00:00:00")
    result = client.update_leads(
        [{"id": a, "emailAddress": "b@example.com", "firstName": "Changed"}]
    )[0]
    assert result.success and not result.unchanged
    lead = client.get_lead(a)
    assert (lead["emailAddress"], lead["firstName"]) == ("a@example.com", "A")
    assert lead["updateTimestamp"] == "2026-02-01 00:00:00"
    # id + a new, unused email does change the email
    assert client.update_leads([{"id": a, "emailAddress": "a2@example.com"}])[0].success
    assert client.get_lead(a)["emailAddress"] == "a2@example.com"


def test_lead_status_picklist_and_contact_with_opp_quirk(client):
    lead_id = _create(client, {"emailAddress": "s@example.com", "leadStatus": "contactWithOpp"})[0]
    bad = client.update_leads([{"id": lead_id, "leadStatus": "prospect"}])[0]
    assert not bad.success and bad.error_code == "217" and bad.errors[0].fields == ("leadStatus",)
    # contactWithOpp -> contact is silently ignored by the real API
    quirk = client.update_leads([{"id": lead_id, "leadStatus": "contact"}])[0]
    assert quirk.success
    assert client.get_lead(lead_id)["leadStatus"] == "contactWithOpp"
    assert client.update_leads([{"id": lead_id, "leadStatus": "customer"}])[0].success
    lead = client.get_lead(lead_id)
    assert (lead["leadStatus"], lead["isCustomer"], lead["isContact"]) == ("customer", "1", "1")


def test_field_rules_null_unknown_field_too_long_bad_owner(client):
    lead_id = _create(client, {"emailAddress": "rules@example.com"})[0]
    results = client.update_leads(
        [
            {"id": lead_id, "emailAddress": None},
            {"id": lead_id, "favouriteColour": "red"},
            {"id": lead_id, "firstName": "x" * 51},
            {"id": lead_id, "ownerID": 1},
            {"id": lead_id, "lastName": None, "firstName": "Ok"},  # nullable standard field
        ]
    )
    assert [r.error_code for r in results] == ["205", "205", "205", "217", None]
    assert results[1].errors[0].fields == ("favouriteColour",)


def test_inactive_leads_are_hidden_unless_asked_by_id_or_email(client):
    keep, gone = _create(
        client, {"emailAddress": "keep@example.com"}, {"emailAddress": "gone@example.com"}
    )
    assert client.update_leads([{"id": gone, "active": 0}])[0].success
    assert [lead["id"] for lead in client.get_leads()] == [keep]
    assert client.get_leads_by_ids([gone])[0]["active"] == "0"
    assert client.get_leads_by_emails(["GONE@example.com"])[0]["id"] == gone
    assert client.get_lead(gone)["active"] == "0"
    now = datetime.now(UTC)
    window = list(
        client.get_leads_date_range(now.replace(year=now.year - 1), now.replace(year=now.year + 1))
    )
    assert [lead["id"] for lead in window] == [keep]


def test_get_leads_where_lists_order_and_fields(client):
    ids = _create(
        client, *({"emailAddress": f"w{i}@example.com", "firstName": f"W{i}"} for i in range(5))
    )
    by_ids = client.get_leads_by_ids([ids[3], ids[1], "123"], fields=["firstName"])
    assert by_ids == [{"id": ids[3], "firstName": "W3"}, {"id": ids[1], "firstName": "W1"}]
    where = list(
        client.get_leads(
            {"emailAddress": ["w0@example.com", "w4@example.com"]}, fields=["id", "emailAddress"]
        )
    )
    assert where == [
        {"id": ids[0], "emailAddress": "w0@example.com"},
        {"id": ids[4], "emailAddress": "w4@example.com"},
    ]
    with pytest.raises(LeadGenApiError) as err:
        list(client.get_leads({"ownerID": "1"}))
    assert err.value.code == 205


def test_get_leads_by_ids_chunks_at_500(client, admin):
    seeded = admin.seed(750, activity_leads=0)
    first = int(seeded["first_lead_id"])
    leads = client.get_leads_by_ids([str(first + i) for i in range(750)])
    assert len(leads) == 750 and leads[0]["id"] == str(first)
    assert client.calls["getLeads"] == 2


def test_date_range_bounds_are_inclusive_and_ordered(client, admin):
    for stamp, email in (
        ("2026-03-01 10:00:00", "early"),
        ("2026-03-01 11:00:00", "mid"),
        ("2026-03-01 12:00:00", "late"),
    ):
        admin.freeze(stamp)
        _create(client, {"emailAddress": f"{email}@example.com"})
    admin.freeze("2026-03-05 00:00:00")
    client.update_leads([{"emailAddress": "early@example.com", "title": "touched"}])
    start = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
    end = datetime(2026, 3, 5, 0, 0, tzinfo=UTC)
    updated = [lead["emailAddress"] for lead in client.get_leads_date_range(start, end)]
    assert updated == [
        "mid@example.com",
        "late@example.com",
        "early@example.com",
    ]  # by updateTimestamp
    created = [
        lead["emailAddress"] for lead in client.get_leads_date_range(start, end, timestamp="create")
    ]
    assert created == ["mid@example.com", "late@example.com"]
    exact = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert [
        lead["emailAddress"] for lead in client.get_leads_date_range(exact, exact, "create")
    ] == ["late@example.com"]
    with pytest.raises(ValueError):
        list(client.get_leads_date_range(datetime(2026, 3, 1), end))  # naive datetimes are refused


def test_date_range_larger_than_a_page_is_split_until_each_part_fits(client, admin):
    admin.seed(1100, activity_leads=0)
    client.page_size = 500  # pages of 500 (the default, 5000, would hold all 1100)
    start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    leads = list(client.get_leads_date_range(start, end))
    assert sorted(lead["id"] for lead in leads) == sorted(lead["id"] for lead in client.get_leads())
    assert len({lead["id"] for lead in leads}) == 1100
    # every call but the full ones returns its whole range; splits at the newest timestamp of a
    # full page keep the count near 2 calls per page of results
    assert 3 <= client.calls["getLeadsDateRange"] <= 8
    stamps = [(lead["updateTimestamp"], int(lead["id"])) for lead in leads]
    assert stamps == sorted(stamps)


def test_delete_leads_by_id(client):
    a, b = _create(client, {"emailAddress": "x@example.com"}, {"emailAddress": "y@example.com"})
    results = client.delete_leads([a, "999999999999"])
    assert [r.success for r in results] == [True, False] and results[1].error_code == "404"
    assert client.get_lead(a) is None
    by_email = client.call("deleteLeads", {"objects": [{"emailAddress": "y@example.com"}]})
    assert by_email["deletes"][0]["error"]["code"] == 205
    assert client.get_lead(b) is not None
