"""The change log: entries from plans and write results, idempotency, retention, the before
values a plan carries, and the undo holds reconcile honours."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from crm_sync.pipeline.changelog import ChangeLog, attach_before, before_values
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.reconcile import reconcile
from crm_sync.state._common import utcnow
from crm_sync.state.changes import ChangeFilter
from crm_sync.state.models import ChangeRecord
from crm_sync.state.store import SyncStore
from tests.unit.test_reconcile import LAST, SF_ID, ctx, lg_rec, pair, sf_rec

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path: Path) -> SyncStore:
    s = SyncStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.dispose()


@pytest.fixture
def run(make_ctx: Callable[..., RunContext]) -> RunContext:
    return make_ctx(run_id="manual__undo-me", domain="person")


def sf_update_plan(**extra: Any) -> dict[str, Any]:
    return {
        "pair": "lg:11",
        "lg_id": "11",
        "sf_id": SF_ID,
        "sf_object": "Lead",
        "sf_op": "update",
        "sf_payload": {"Id": SF_ID, "Title": "CTO", "LeadGen_Id__c": "11", "Phone": "2"},
        "sf_before": {
            "Title": {"value": "VP", "key": "title", "canon": "VP"},
            "LeadGen_Id__c": {"value": None, "kept": "record link"},
        },
        "agreed_if_sf": {"title": "CTO", "phoneNumber": "2"},
        **extra,
    }


def row(pair_key: str, op: str, success: bool = True, **kw: Any) -> dict[str, Any]:
    return {"pair": pair_key, "target": "x", "op": op, "success": success, "id": None, **kw}


def entries(store: SyncStore, run_id: str = "manual__undo-me") -> list[ChangeRecord]:
    return list(store.iter_changes(ChangeFilter("sync_leads_contacts", run_id)))


def test_an_update_logs_before_and_after_of_every_field_it_wrote(store, run) -> None:
    log = ChangeLog(store, run, "salesforce", prefix="sf", link_domain="person")
    assert log.log([sf_update_plan()], [row("lg:11", "update", id=SF_ID)], obj="Lead") == 3
    got = {e.field: e for e in entries(store)}
    title = got["Title"]
    assert (title.kind, title.object, title.record_id) == ("update", "Lead", SF_ID)
    assert (title.before, title.after) == ("VP", "CTO")
    assert title.meta == {
        "domain": "person",
        "lg_id": "11",
        "key": "title",
        "before": "VP",
        "after": "CTO",
        "other": "CTO",
    }
    # the record link is logged, never restored; a field without a recorded before value too
    assert (got["LeadGen_Id__c"].kind, got["LeadGen_Id__c"].meta) == (
        "kept",
        {"why": "record link"},
    )
    assert got["Phone"].kind == "kept"
    assert got["Phone"].meta == {"why": "before value not recorded"}


def test_only_successful_writes_are_logged_and_a_retry_logs_nothing_twice(store, run) -> None:
    log = ChangeLog(store, run, "salesforce", prefix="sf", link_domain="person")
    plans = [sf_update_plan(), sf_update_plan(pair="lg:12", lg_id="12")]
    rows = [row("lg:11", "update", id=SF_ID), row("lg:12", "update", success=False)]
    assert log.log(plans, rows, obj="Lead") == 3
    # a retried load (or a retried record of the same batch) logs the same writes again
    again = ChangeLog(store, run, "salesforce", prefix="sf", link_domain="person")
    assert again.log(plans, rows, obj="Lead") == 0
    assert len(entries(store)) == 3


def test_creates_are_logged_when_this_run_made_the_record(store, run) -> None:
    log = ChangeLog(store, run, "leadgen", prefix="lg", link_domain="person")
    plans = [
        {"pair": f"sf:{i}", "lg_op": "create", "lg_payload": {"emailAddress": f"{i}@x.example"}}
        for i in ("a", "b")
    ]
    rows = [
        row("sf:a", "create", id="901", created=True),
        row("sf:b", "create", id="902", created=False, already_existed=True),
    ]
    log.log(plans, rows, obj="lead")
    got = {e.record_id: e for e in entries(store)}
    assert got["901"].kind == "create" and got["901"].field == ""
    assert got["901"].after == {"emailAddress": "a@x.example"}
    assert got["901"].meta == {"domain": "person", "lg_id": "901"}
    assert got["902"].kind == "existing"  # a 301 adopted a lead that was there already


def test_a_create_whose_answer_a_crashed_attempt_lost_is_still_logged_as_created(
    store, run
) -> None:
    plan = {"pair": "lg:11", "lg_id": "11", "sf_op": "create", "sf_payload": {"LastName": "Lee"}}
    first = ChangeLog(store, run, "salesforce", prefix="sf", link_domain="person")
    first.sending([plan])  # ... and the task died before the answer was logged
    retry = ChangeLog(store, run, "salesforce", prefix="sf", link_domain="person")
    assert retry.leftover == {"lg:11"}
    # the retried upsert finds the record the first attempt made
    retry.log([plan], [row("lg:11", "upsert", id=SF_ID, created=False)], obj="Lead")
    [e] = entries(store)
    assert (e.kind, e.record_id, e.meta["lg_id"]) == ("create", SF_ID, "11")


def test_deletes_are_logged_and_reads_or_dry_runs_log_nothing(store, run, make_ctx) -> None:
    log = ChangeLog(store, run, "leadgen", prefix="lg")
    plans = [
        {"pair": "o:1", "lg_op": "delete", "lg_payload": {}},
        {"pair": "t:1", "lg_op": "x", "lg_payload": {}},
    ]
    log.log(
        plans, [row("o:1", "delete", id="77"), row("t:1", "present", id="5")], obj="opportunity"
    )
    assert [(e.kind, e.record_id) for e in entries(store)] == [("deleted", "77")]
    dry = ChangeLog(store, make_ctx(run_id="dry", dry_run=True), "salesforce", prefix="sf")
    dry.sending([sf_update_plan(sf_op="create")])
    assert dry.log([sf_update_plan()], [row("lg:11", "update", id=SF_ID)], obj="Lead") == 0
    assert entries(store, "dry") == []


def test_the_change_log_is_purged_by_age(store, run) -> None:
    log = ChangeLog(store, run, "salesforce", prefix="sf", link_domain="person")
    log.log([sf_update_plan()], [row("lg:11", "update", id=SF_ID)], obj="Lead")
    with store.session() as s:
        s.execute(
            update(ChangeRecord)
            .where(ChangeRecord.field == "Title")
            .values(at=utcnow() - timedelta(days=31))
        )
    assert store.purge_changes(timedelta(days=30)) == 1
    assert sorted(e.field for e in entries(store)) == ["LeadGen_Id__c", "Phone"]


def test_a_plan_carries_the_values_its_writes_overwrite() -> None:
    pairs = [
        pair(
            lg_rec(title="Chief"),
            sf_rec(Title="VP", LeadGen_Id__c=None),
            last={**LAST, "title": "VP"},
        )
    ]
    plans = [p.to_dict() for p in reconcile(pairs, ctx())]
    attach_before(plans, pairs, ctx())
    [plan] = plans
    assert plan["sf_payload"]["Title"] == "Chief"
    assert plan["sf_before"]["Title"] == {"value": "VP", "key": "title", "canon": "VP"}
    assert plan["sf_before"]["LeadGen_Id__c"] == {"value": None, "kept": "record link"}
    assert "lg_before" not in plan
    assert before_values({"id": "1", "title": "x"}, {"id": "1", "title": "y"}) == {
        "title": {"value": "y"}
    }


HOLD = {"title": {"leadgen": "Chief", "salesforce": "VP", "run_id": "undo1"}}


def held(lg: dict, sf: dict) -> Any:
    p = pair(lg, sf, last={**LAST, "title": "VP"})
    p["link"]["held"] = HOLD
    [plan] = reconcile([p], ctx())
    return plan


def test_reconcile_writes_neither_side_of_a_field_an_undo_holds() -> None:
    plan = held(lg_rec(title="Chief"), sf_rec(Title="VP"))
    assert plan.sf_op is None and plan.lg_op is None
    assert [e["event"] for e in plan.events] == ["undo_held"]


def test_a_change_on_one_side_releases_the_hold_and_flows_from_that_side() -> None:
    lg_changed = held(lg_rec(title="Founder"), sf_rec(Title="VP"))
    assert lg_changed.sf_payload["Title"] == "Founder" and not lg_changed.conflicts
    sf_changed = held(lg_rec(title="Chief"), sf_rec(Title="SVP"))
    assert sf_changed.lg_payload["title"] == "SVP" and not sf_changed.conflicts
    for plan in (lg_changed, sf_changed):
        released = [e for e in plan.events if e["event"] == "undo_hold_released"]
        assert [e["key"] for e in released] == ["title"]


def test_upserts_keyed_otherwise_are_remembered_in_flight_too(store, run) -> None:
    plan = {"key": "LG-EVT-9", "sf_op": "upsert", "sf_payload": {"Subject": "Form"}}
    ChangeLog(store, run, "salesforce", prefix="sf", key="key").sending([plan])
    retry = ChangeLog(store, run, "salesforce", prefix="sf", key="key")
    assert retry.leftover == {"LG-EVT-9"}
    retry.log([plan], [row("LG-EVT-9", "upsert", id="00T1", created=False)], obj="Task")
    [e] = entries(store)
    assert (e.kind, e.object, e.meta) == ("create", "Task", {})
