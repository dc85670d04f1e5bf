"""Wire values of the Lead Gen & CRM client: HTML entities, time zones, blanks on write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from crm_sync.clients.leadgen.codec import (
    account_zone,
    clean_row,
    decode_text,
    format_for_api,
    to_utc_text,
    write_object,
)
from crm_sync.errors import ConfigError

pytestmark = pytest.mark.unit


def test_decode_undoes_the_api_lt_quirk():
    # written through the API, read back: only a "<" that is not last became &lt;
    assert decode_text("a &lt; b <") == "a < b <"
    assert decode_text("Smith & Sons") == "Smith & Sons"


def test_decode_undoes_ui_encoding_of_standard_and_custom_fields():
    # RMUIT typed  & < > " \ '`+=?/#%$@!*()~_ &amp; &lt; <  in the UI; the live API returned:
    standard = "&amp; &amp;lt; &gt; &quot; \\ &#039;`+=?/#%$@!*()~_ &amp;amp; &amp;lt; &amp;lt;"
    custom = "& &lt; > \" \\ '`+=?/#%$@!*()~_ &amp; &lt; &lt;"
    # typed "<" and typed "&lt;" read the same in a standard field: both decode to "<"
    assert decode_text(standard) == "& < > \" \\ '`+=?/#%$@!*()~_ &amp; < <"
    assert decode_text(custom) == "& < > \" \\ '`+=?/#%$@!*()~_ & < <"
    assert decode_text("Archer &amp; Co") == "Archer & Co"


def test_clean_row_decodes_strings_converts_timestamps_and_leaves_event_data():
    ny = account_zone("America/New_York")
    row = {
        "id": "1",
        "companyName": "Archer &amp; Co",
        "updateTimestamp": "2026-07-01 12:00:00",  # EDT, UTC-4
        "createTimestamp": "2026-01-15 07:30:00",  # EST, UTC-5
        "eventData": '{"subject": "Q&amp;A"}',
        "leadScore": None,
    }
    assert clean_row(row, ny) == {
        "id": "1",
        "companyName": "Archer & Co",
        "updateTimestamp": "2026-07-01 16:00:00",
        "createTimestamp": "2026-01-15 12:30:00",
        "eventData": '{"subject": "Q&amp;A"}',
        "leadScore": None,
    }
    email_row = clean_row({"createDate": "2026/07/01 12:00"}, ny)
    assert email_row == {"createDate": "2026/07/01 16:00"}
    utc_row = {"updateTimestamp": "2026-07-01 12:00:00"}
    assert clean_row(utc_row, account_zone("UTC")) == {"updateTimestamp": "2026-07-01 12:00:00"}


def test_local_times_around_daylight_saving_changes():
    ny = account_zone("America/New_York")
    # 01:30 happens twice on 2026-11-01: the first (EDT) is taken
    assert to_utc_text("2026-11-01 01:30:00", ny) == "2026-11-01 05:30:00"
    assert to_utc_text("not a time", ny) == "not a time"


def test_date_arguments_go_out_in_the_account_zone():
    ny = account_zone("America/New_York")
    at = datetime(2026, 7, 1, 16, 0, tzinfo=UTC)
    assert format_for_api(at, "start", ny) == "2026-07-01 12:00:00"
    assert (
        format_for_api(at.astimezone(timezone(timedelta(hours=2))), "start")
        == "2026-07-01 16:00:00"
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        format_for_api(datetime(2026, 7, 1), "start", ny)


def test_output_timezone_setting_is_checked():
    assert account_zone(None) is UTC and account_zone("utc") is UTC
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        account_zone("Mars/Olympus")


def test_write_rule_clears_text_with_empty_string_and_ids_with_null():
    obj = {
        "id": "7",
        "companyName": None,  # standard text: null is refused (205) -> ""
        "product_interest_5f1a2b3c4d5e6": None,  # custom: "" too
        "ownerID": "",  # id reference: "" is refused -> null
        "campaignID": None,
        "accountID": "40210001",
        "active": None,  # nullable flag: kept
        "isUnsubscribed": "0",
        "leadScore": "",  # a number: "" is refused like in id columns -> null
        "amount": None,
    }
    assert write_object(obj) == {
        "id": "7",
        "companyName": "",
        "product_interest_5f1a2b3c4d5e6": "",
        "ownerID": None,
        "campaignID": None,
        "accountID": "40210001",
        "active": None,
        "isUnsubscribed": "0",
        "leadScore": None,
        "amount": None,
    }
