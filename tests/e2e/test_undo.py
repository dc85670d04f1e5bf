"""Undo end to end: a real sync run overwrites fields on both sides and creates records, a rep
edits one of them afterwards, and the ``crm_sync_undo`` DAG (dry run, then for real) restores
every other field, reports the conflict, removes the created records; the sync after it writes
nothing, and a second undo writes nothing either.

All runs are "now" runs (no logical date: each gets its own run id) inside the hour after
``H``, with both sandbox clocks frozen at the moment each step happens.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from crm_sync.pipeline.readback import same_value
from crm_sync.state.changes import ChangeFilter
from tests.e2e.helpers import (
    H,
    RunOutcome,
    freeze,
    lg_get,
    lg_lead,
    reset_calls,
    run_dag,
    sf_create,
    sf_find,
    sf_get,
    sf_patch,
    state_store,
    write_calls,
)

pytestmark = pytest.mark.e2e

DAG = "sync_leads_contacts"
UNDO = "crm_sync_undo"
H2 = H + timedelta(hours=1)
NOTHING = {"salesforce": {}, "leadgen": {}}


def sync(dags: dict[str, Any], minutes_after_h: int) -> RunOutcome:
    out = run_dag(dags, DAG, H + timedelta(minutes=minutes_after_h), now=True)
    assert out.state == "success", out.task_states
    return out


def undo(dags: dict[str, Any], minutes_after_h: int, run_id: str, **conf: Any) -> RunOutcome:
    out = run_dag(
        dags,
        UNDO,
        H + timedelta(minutes=minutes_after_h),
        {"run_id": run_id, "dag_id": DAG, **conf},
        now=True,
    )
    assert out.state == "success", out.task_states
    return out


def current(fresh: Any, system: str, obj: str, record_id: str) -> dict[str, Any]:
    return sf_get(fresh, obj, record_id) if system == "salesforce" else lg_get(fresh, record_id)


def seeded(fresh: Any, dags: dict[str, Any]) -> dict[str, str]:
    """Two leads and a Contact, linked by a first sync (ids of both sides)."""
    freeze(fresh, 40)
    ids = {
        "ann": lg_lead(
            fresh,
            emailAddress="ann@undo.example",
            firstName="Ann",
            lastName="Lee",
            companyName="Acme",
            title="CTO",
            phoneNumber="+1 555 0001",
        ),
        "bob": lg_lead(
            fresh,
            emailAddress="bob@undo.example",
            firstName="Bob",
            lastName="Byrd",
            companyName="Byrd Co",
            title="Engineer",
        ),
        "cole_sf": sf_create(
            fresh,
            "Contact",
            LastName="Cole",
            Email="cole@undo.example",
            Title="VP",
            Phone="+1 555 0003",
        ),
    }
    sync(dags, 0)
    links = state_store().all_links("person")
    by_lg = {lk.lg_id: lk.sf_id for lk in links}
    ids["ann_sf"], ids["bob_sf"] = by_lg[ids["ann"]], by_lg[ids["bob"]]
    ids["cole"] = next(lk.lg_id for lk in links if lk.sf_id == ids["cole_sf"])
    return ids


def test_undo_restores_both_sides_reports_the_conflict_and_the_next_sync_writes_nothing(
    fresh, dags
) -> None:
    ids = seeded(fresh, dags)
    # The run to undo: edits on both sides flow across, and two new people are created.
    freeze(fresh, 40, H2)
    fresh.lg.post(
        f"leads/{ids['ann']}",
        {"fields": {"title": "Chief Technology Officer", "phoneNumber": "+1 555 1001"}},
    )
    sf_patch(fresh, "Contact", ids["cole_sf"], {"Title": "SVP", "Phone": "+1 555 1003"})
    sf_patch(fresh, "Lead", ids["bob_sf"], {"Title": "Lead Engineer"})
    nora = lg_lead(
        fresh, emailAddress="nora@undo.example", firstName="Nora", lastName="New", companyName="N"
    )
    mia_sf = sf_create(fresh, "Contact", LastName="Mia", Email="mia@undo.example", Title="CFO")
    bad = sync(dags, 25)
    assert bad.report["salesforce"]["created"] == 1 and bad.report["leadgen"]["created"] == 1
    logged = list(state_store().iter_changes(ChangeFilter(DAG, bad.run_id)))
    updates = {(c.system, c.record_id, c.field) for c in logged if c.kind == "update"}
    assert {
        ("salesforce", ids["ann_sf"], "Title"),
        ("salesforce", ids["ann_sf"], "Phone"),
        ("leadgen", ids["cole"], "title"),
        ("leadgen", ids["cole"], "phoneNumber"),
        ("leadgen", ids["bob"], "title"),
    } <= updates
    created = {(c.system, c.object) for c in logged if c.kind == "create"}
    assert created == {("salesforce", "Lead"), ("leadgen", "lead")}
    mia = next(c.record_id for c in logged if c.kind == "create" and c.system == "leadgen")

    # A rep edits a field the run wrote; the next sync takes the edit across.
    freeze(fresh, 30, H2)
    sf_patch(fresh, "Lead", ids["ann_sf"], {"Title": "CEO"})
    sync(dags, 35)
    assert lg_get(fresh, ids["ann"])["title"] == "CEO"

    freeze(fresh, 20, H2)
    reset_calls(fresh)
    preview = undo(dags, 41, bad.run_id, dry_run=True, delete_created=True).report
    assert write_calls(fresh) == NOTHING
    restorable = len(updates) - 1
    assert preview["undo"]["would_restore"] == restorable
    assert preview["undo"]["would_remove"] == 2
    [conflict] = preview["entries"]["conflict"]
    assert (conflict["record_id"], conflict["field"]) == (ids["ann_sf"], "Title")
    assert (conflict["after"], conflict["now"]) == ("Chief Technology Officer", "CEO")

    done = undo(dags, 42, bad.run_id, dry_run=False, delete_created=True).report
    assert done["status"] == "success"
    assert done["undo"]["restored"] == restorable and done["undo"]["conflict"] == 1
    assert done["undo"]["removed"] == 2
    for c in logged:
        if c.kind != "update":
            continue
        now = current(fresh, c.system, c.object, c.record_id).get(c.field)
        expected = "CEO" if (c.record_id, c.field) == (ids["ann_sf"], "Title") else c.before
        assert same_value(expected, now), (c.system, c.record_id, c.field, c.before, now)
    assert sf_find(fresh, "Lead", "nora@undo.example") == []
    assert str(lg_get(fresh, mia)["active"]) == "0"
    assert lg_get(fresh, nora)["active"] in ("1", 1)  # the lead the Salesforce record came from
    assert sf_get(fresh, "Contact", mia_sf)["LastName"] == "Mia"

    # The sync does not write the undone values back, and a second undo finds nothing to do.
    freeze(fresh, 15, H2)
    reset_calls(fresh)
    after = sync(dags, 45)
    assert write_calls(fresh) == NOTHING
    assert after.report["planned_rows"] == 0
    assert after.report["events"].get("undo_held", 0) >= 1
    again = undo(dags, 46, bad.run_id, dry_run=False, delete_created=True).report
    assert write_calls(fresh) == NOTHING
    assert again["undo"].get("restored", 0) == 0 and again["undo"].get("removed", 0) == 0
    assert again["undo"]["already_restored"] == restorable
    assert again["undo"]["already_removed"] == 2
    assert again["undo"]["conflict"] == 1


def test_an_undo_can_be_undone_and_the_pair_agrees_again(fresh, dags) -> None:
    ids = seeded(fresh, dags)
    freeze(fresh, 40, H2)
    fresh.lg.post(f"leads/{ids['ann']}", {"fields": {"title": "Chief Technology Officer"}})
    bad = sync(dags, 25)
    freeze(fresh, 30, H2)
    first = undo(dags, 31, bad.run_id, dry_run=False)
    assert sf_get(fresh, "Lead", ids["ann_sf"])["Title"] == "CTO"
    second = undo(dags, 32, first.run_id, dag_id=UNDO, dry_run=False).report
    assert second["undo"]["restored"] == 1
    assert sf_get(fresh, "Lead", ids["ann_sf"])["Title"] == "Chief Technology Officer"
    assert state_store().undo_holds("person", [ids["ann"]]) == {}
    freeze(fresh, 25, H2)
    reset_calls(fresh)
    after = sync(dags, 40)
    assert write_calls(fresh) == NOTHING
    assert after.report["planned_rows"] == 0
