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
    )  # fmt: skip
    values = ["7", " 42 ", "١٢٣", "12345678901234567890", "9" * 19, "00Q000000000001", "", "4.2"]
    found = m.lg_by_ids(values)
    assert found == {"7": {"id": 7, "from": "changed set"}, "9" * 19: {"id": int("9" * 19)}}
    assert lg.asked == [["9" * 19]]  # " 42 " is not how the org stores an id either
