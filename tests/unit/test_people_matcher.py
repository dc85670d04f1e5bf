"""The people matcher's Lead Gen & CRM lookups by record-link value."""

from __future__ import annotations

from typing import Any

import pytest

from crm_sync.domains.people.matcher import Matcher
from crm_sync.pipeline.files import DiskIndex

pytestmark = pytest.mark.unit


class FakeLeadGen:
    def __init__(self, leads: dict[str, dict[str, Any]]):
        self.leads = leads
        self.asked: list[list[str]] = []

    def get_leads_by_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        self.asked.append(list(ids))
        return [self.leads[i] for i in ids if i in self.leads]


def test_only_values_that_can_be_lead_ids_are_looked_up(make_ctx, tmp_path) -> None:
    """A link field typed by hand can hold anything; what cannot be a 64-bit ASCII id matches
    nothing and is never sent to getLeads (the API overflows on ids beyond BIGINT)."""
    lg = FakeLeadGen({"7": {"id": 7}, "42": {"id": 42}, "9" * 19: {"id": int("9" * 19)}})
    index = DiskIndex(tmp_path / "lg.sqlite")
    index.put_many([("7", {"id": 7, "from": "changed set"})])
    m = Matcher(
        ctx=make_ctx(), sf=None, lg=lg, store=None, specs={},  # type: ignore[arg-type]
        lg_index=index, sf_index=DiskIndex(tmp_path / "sf.sqlite"),
        sf_fetched=DiskIndex(tmp_path / "fetched.sqlite"), covered_sf=set(), covered_lg=set(),
        candidates=None,
    )  # fmt: skip
    values = ["7", " 42 ", "١٢٣", "12345678901234567890", "9" * 19, "00Q000000000001", "", "4.2"]
    found = m.lg_by_ids(values)
    assert found == {"7": {"id": 7, "from": "changed set"}, "9" * 19: {"id": int("9" * 19)}}
    assert lg.asked == [["9" * 19]]  # " 42 " is not how the org stores an id either


class FakeSalesforce:
    def __init__(self, records: dict[str, dict[str, Any]]):
        self.records = records
        self.asked: list[tuple[str, list[str]]] = []

    def query_by_values(self, sobject, fields, field, values, include_deleted=False):
        self.asked.append((sobject, list(values)))
        return [self.records[v] for v in values if v in self.records]


def test_salesforce_records_are_read_once_per_run_and_kept_on_disk(make_ctx, tmp_path) -> None:
    """The changed set answers first; a record read by id is kept in a scratch index (not in
    memory) and not read again; one that does not exist is not asked for twice either."""
    from crm_sync.mapping.loader import load_object_spec
    from crm_sync.settings import mappings_dir

    specs = {
        o: load_object_spec(mappings_dir() / f"{o.lower()}s.yaml") for o in ("Lead", "Contact")
    }
    lead, contact = "00Q000000000001AAA", "003000000000001AAA"
    gone = "00Q000000000009AAA"
    sf = FakeSalesforce({lead: {"Id": lead, "v": "read"}, contact: {"Id": contact, "v": "read"}})
    changed = DiskIndex(tmp_path / "sf.sqlite", columns=("object", "email", "modified"))
    changed.put_many([("00Q000000000002AAA", {"Id": "00Q000000000002AAA", "v": "changed"},
                       "Lead", None, "")])  # fmt: skip
    m = Matcher(
        ctx=make_ctx(), sf=sf, lg=None, store=None, specs=specs,  # type: ignore[arg-type]
        lg_index=DiskIndex(tmp_path / "lg.sqlite"), sf_index=changed,
        sf_fetched=DiskIndex(tmp_path / "fetched.sqlite"), covered_sf=set(), covered_lg=set(),
        candidates=None,
    )  # fmt: skip
    ids = [lead, contact, gone, "00Q000000000002AAA"]
    first = m.sf_by_ids(ids)
    assert {k: v["v"] for k, v in first.items()} == {
        lead: "read", contact: "read", "00Q000000000002AAA": "changed",
    }  # fmt: skip
    assert sorted(sf.asked) == [("Contact", [contact]), ("Lead", [lead, gone])]
    sf.records[lead] = {"Id": lead, "v": "edited meanwhile"}
    assert m.sf_by_ids(ids) == first  # the same version for the whole run, no new read
    assert len(sf.asked) == 2
    kept = m.sf_fetched.get_many([lead, contact, gone, "00Q000000000002AAA"])
    assert kept == {lead: first[lead], contact: first[contact], gone: None}
