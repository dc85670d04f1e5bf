"""Scope in the people match: which pairs are set aside, and how they are reported."""

from __future__ import annotations

from typing import Any

import pytest

from crm_sync.domains.people.pairs import make_pair
from crm_sync.domains.people.rules import sf_fields
from crm_sync.domains.people.scope import LEFT_SCOPE, OUT_OF_SCOPE, PeopleScope
from crm_sync.mapping.loader import load_object_spec
from crm_sync.settings import MAPPINGS_DIR_DEFAULT

pytestmark = pytest.mark.unit

LEAD, CONTACT = "00Q000000000001AAA", "003000000000001AAA"
SCOPE = """scope:
  salesforce:
    where:
      - {field: LeadSource, op: in, values: [Web]}
  leadgen:
    where:
      - {field: leadStatus, op: ne, value: qualified}
    lists: [7]
fields:
"""


class Lists:
    def __init__(self) -> None:
        self.calls = 0

    def get_list_members(self, list_id: int) -> list[dict[str, Any]]:
        self.calls += 1
        return [{"leadID": "1"}, {"leadID": "2"}]


@pytest.fixture
def specs(tmp_path):
    text = (MAPPINGS_DIR_DEFAULT / "leads.yaml").read_text().replace("fields:\n", SCOPE)
    (tmp_path / "leads.yaml").write_text(text)
    return {
        "Lead": load_object_spec(tmp_path / "leads.yaml"),
        "Contact": load_object_spec(MAPPINGS_DIR_DEFAULT / "contacts.yaml"),
    }


def lead(i: str, **kw: Any) -> dict[str, Any]:
    return {"id": i, "leadStatus": "open", **kw}


def record(sf_id: str, **kw: Any) -> dict[str, Any]:
    return {"Id": sf_id, "LeadSource": "Web", **kw}


def pair(lg=None, sf=None, sobject="Lead", link=None, **kw):
    return make_pair("p", lg=lg, sf=sf, sf_object=sobject, link=link, match="m", **kw)


def test_the_salesforce_scope_fields_are_read_with_every_record(specs) -> None:
    assert "LeadSource" in sf_fields(specs["Lead"])
    assert "LeadSource" not in sf_fields(specs["Contact"])


def test_pairs_outside_scope_are_set_aside_and_named(specs, sandbox_schema) -> None:
    lists = Lists()
    scope = PeopleScope.of(specs, sandbox_schema, lists)  # type: ignore[arg-type]
    assert lists.calls == 1  # list members read once per run
    keep = pair(lead("1"), record(LEAD))
    assert scope.apply(keep) is keep
    not_listed = scope.apply(pair(lead("3"), None))
    assert not_listed["match"] == OUT_OF_SCOPE and not_listed["skip_fields"]
    assert not_listed["events"][0]["detail"].startswith("lead 3 is outside the scope of leads")
    qualified = scope.apply(pair(lead("2", leadStatus="Qualified"), None))  # no case in text
    assert qualified["match"] == OUT_OF_SCOPE
    by_email = scope.apply(pair(lead("1"), record(LEAD, LeadSource="Phone Inquiry")))
    assert by_email["match"] == OUT_OF_SCOPE  # never paired with an out-of-scope record
    linked = {"lg_id": "1", "sf_id": LEAD, "status": "active"}
    left = scope.apply(
        pair(lead("1"), record(LEAD, LeadSource=None), link=linked, lg_extra=[{"active": "0"}])
    )
    assert left["match"] == LEFT_SCOPE and left["lg_extra"] == [] and left["link"] == linked
    assert f"Lead {LEAD} left the scope of leads" in left["events"][0]["detail"]


def test_what_a_scope_does_not_cover_is_left_alone(specs, sandbox_schema) -> None:
    scope = PeopleScope.of(specs, sandbox_schema, Lists())  # type: ignore[arg-type]
    contact = pair(lead("9", leadStatus="qualified"), record(CONTACT, LeadSource=None), "Contact")
    assert scope.apply(contact) is contact  # contacts.yaml has no scope
    purged = pair(lead("1"), {"Id": LEAD, "IsDeleted": True}, link={"lg_id": "1"})
    assert scope.apply(purged) is purged  # known by its id alone: its lifecycle goes on
    skipped = pair(lead("3"), None, skip_fields=True)
    assert scope.apply(skipped) is skipped
    blank_status = pair({"id": "1"}, None)  # the API leaves blank fields out
    assert scope.apply(blank_status) is blank_status


def test_without_any_scope_nothing_is_read_or_changed(sandbox_schema) -> None:
    plain = {
        o: load_object_spec(MAPPINGS_DIR_DEFAULT / f"{o.lower()}s.yaml")
        for o in ("Lead", "Contact")
    }
    lists = Lists()
    scope = PeopleScope.of(plain, sandbox_schema, lists)  # type: ignore[arg-type]
    assert not scope.active and lists.calls == 0
    p = pair(lead("3", leadStatus="qualified"), record(LEAD, LeadSource="Other"))
    assert scope.apply(p) is p
