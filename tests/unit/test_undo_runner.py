"""Undo: the decision per change-log entry, and the undo run over a real state store with
in-memory systems (restore, conflict, already restored, created records, batching, read-back,
the sync state, idempotency, undo of an undo)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from crm_sync.clients.results import RecordError, WriteResult
from crm_sync.errors import ConfigError
from crm_sync.state.changes import ChangeFilter
from crm_sync.state.store import SyncStore
from crm_sync.undo import UNDO_DAG
from crm_sync.undo.decide import Entry, decide
from crm_sync.undo.runner import Undo, UndoJob, inverse_meta
from crm_sync.undo.service import UndoIncomplete, execute
from crm_sync.undo.systems import System

pytestmark = pytest.mark.unit

DAG, RUN = "sync_leads_contacts", "manual__bad"


def entry(kind: str = "update", **kw: Any) -> Entry:
    base: dict[str, Any] = {
        "system": "salesforce",
        "object": "Lead",
        "record_id": "00Q1",
        "field": "Title",
        "kind": kind,
        "before": "VP",
        "after": "CTO",
        "meta": {},
    }
    base.update(kw)
    return Entry(**base)


@pytest.mark.parametrize(
    "now,action",
    [("CTO", "restore"), (" cto ", "conflict"), ("VP", "already_restored"), ("CEO", "conflict")],
)
def test_a_field_is_restored_only_where_it_still_holds_what_the_run_wrote(now, action) -> None:
    d = decide(entry(), {"Id": "00Q1", "Title": now}, delete_created=False)
    assert d.action == action and d.now == now


def test_a_field_of_a_record_gone_since_is_reported() -> None:
    assert decide(entry(), None, delete_created=False).action == "gone"


def test_created_records_are_reported_or_removed_unless_edited_since() -> None:
    created = entry("create", field="", before=None, after={"LastName": "Lee", "Title": "CTO"})
    rec = {"Id": "00Q1", "LastName": "Lee", "Title": "CTO"}
    assert decide(created, rec, delete_created=False).action == "keep_created"
    assert decide(created, rec, delete_created=True).action == "remove"
    edited = decide(created, {**rec, "Title": "CEO"}, delete_created=True)
    assert (edited.action, edited.now) == ("created_changed", ["Title"])
    assert decide(created, None, delete_created=True).action == "already_removed"
    lead = entry("create", system="leadgen", object="lead", field="", after={"lastName": "L"})
    assert decide(lead, {"id": "9", "active": "0"}, delete_created=True).action == "already_removed"


@pytest.mark.parametrize("kind", ["kept", "existing", "deleted", "removed"])
def test_what_cannot_be_undone_is_said_so(kind) -> None:
    d = decide(entry(kind), {"Id": "00Q1", "Title": "CTO"}, delete_created=True)
    assert d.action == "not_undoable" and d.why


# -- the undo run over in-memory systems --------------------------------------------------------


class FakeSystem(System):
    """A system of dicts: reads, restores and removes records, counting the calls' sizes."""

    def __init__(self, name: str, records: dict[str, dict[str, Any]], batch: int):
        self.name, self.batch = name, batch
        self.id_key = "Id" if name == "salesforce" else "id"
        self.records = records
        self.reads: list[int] = []
        self.writes: list[list[dict[str, Any]]] = []
        self.removes: list[list[str]] = []
        self.refuse: set[str] = set()
        self.ignore: set[str] = set()  # answer success, change nothing

    def read(self, obj: str, ids: Sequence[str], fields: Sequence[str]) -> dict[str, Any]:
        self.reads.append(len(ids))
        return {i: dict(self.records[i]) for i in ids if i in self.records}

    def restore(self, obj: str, payloads: Sequence[dict[str, Any]]) -> list[WriteResult]:
        self.writes.append([dict(p) for p in payloads])
        out = []
        for n, p in enumerate(payloads):
            rid = p[self.id_key]
            if rid in self.refuse:
                out.append(WriteResult(n, False, rid, errors=(RecordError("LOCKED", "locked"),)))
                continue
            if rid not in self.ignore:
                self.records[rid].update(p)
            out.append(WriteResult(n, True, rid))
        return out

    def remove(self, obj: str, ids: Sequence[str]) -> list[WriteResult]:
        self.removes.append(list(ids))
        for i in ids:
            if self.name == "leadgen":
                self.records[i]["active"] = "0"
            else:
                self.records.pop(i)
        return [WriteResult(n, True, i) for n, i in enumerate(ids)]


@pytest.fixture
def store(tmp_path: Path) -> SyncStore:
    s = SyncStore(f"sqlite:///{tmp_path / 'state.db'}")
    s.start_run(DAG, RUN, window_start=None, window_end=None, dry_run=False, full_resync=False)
    s.finish_run(DAG, RUN, status="success", report={})
    yield s
    s.dispose()


def meta(lg_id: str, key: str, before: str, after: str) -> dict[str, Any]:
    return {
        "domain": "person",
        "lg_id": lg_id,
        "key": key,
        "before": before,
        "after": after,
        "other": after,
    }


def logged(
    store: SyncStore, system: str, obj: str, rid: str, fld: str, kind: str, **kw: Any
) -> None:
    store.log_changes(
        [
            {
                "dag_id": DAG,
                "run_id": RUN,
                "system": system,
                "object": obj,
                "record_id": rid,
                "field": fld,
                "kind": kind,
                "before": kw.get("before"),
                "after": kw.get("after"),
                "meta": kw.get("meta") or {},
            }
        ]
    )


@pytest.fixture
def world(store: SyncStore) -> dict[str, FakeSystem]:
    """A run that overwrote a Salesforce Title and Phone (Phone edited since), a lead's title,
    and created a Salesforce Lead and a lead; the records as they are now."""
    store.add_links(
        "person",
        [
            {
                "lg_id": "11",
                "sf_object": "Lead",
                "sf_id": "00Q1",
                "synced_values": {"title": "CTO"},
            },
            {"lg_id": "12", "sf_object": "Lead", "sf_id": "00Q2", "synced_values": {"title": "VP"}},
            {"lg_id": "13", "sf_object": "Lead", "sf_id": "00Q3", "synced_values": {}},
        ],
        run_id=RUN,
    )
    logged(
        store,
        "salesforce",
        "Lead",
        "00Q1",
        "Title",
        "update",
        before="VP",
        after="CTO",
        meta=meta("11", "title", "VP", "CTO"),
    )
    logged(store, "salesforce", "Lead", "00Q1", "Phone", "update", before="1", after="2")
    logged(
        store,
        "salesforce",
        "Lead",
        "00Q1",
        "LeadGen_Id__c",
        "kept",
        after="11",
        meta={"why": "record link"},
    )
    logged(
        store,
        "leadgen",
        "lead",
        "12",
        "title",
        "update",
        before="Eng",
        after="VP",
        meta=meta("12", "title", "Eng", "VP"),
    )
    logged(
        store,
        "salesforce",
        "Lead",
        "00Q3",
        "",
        "create",
        after={"LastName": "New"},
        meta={"domain": "person", "lg_id": "13"},
    )
    logged(
        store,
        "leadgen",
        "lead",
        "14",
        "",
        "create",
        after={"lastName": "Mia"},
        meta={"domain": "person", "lg_id": "14"},
    )
    sf = FakeSystem(
        "salesforce",
        {
            "00Q1": {"Id": "00Q1", "Title": "CTO", "Phone": "3"},
            "00Q3": {"Id": "00Q3", "LastName": "New"},
        },
        200,
    )
    lg = FakeSystem(
        "leadgen",
        {"12": {"id": "12", "title": "VP"}, "14": {"id": "14", "lastName": "Mia", "active": "1"}},
        500,
    )
    return {"salesforce": sf, "leadgen": lg}


def job(**kw: Any) -> UndoJob:
    return UndoJob(**{"target_dag": DAG, "target_run": RUN, "run_id": "manual__undo1", **kw})


def test_a_dry_run_reports_everything_and_writes_nothing(store, world) -> None:
    report = execute(job(delete_created=True), store, world)
    assert report["status"] == "dry_run"
    assert report["undo"] == {
        "conflict": 1,
        "not_undoable": 1,
        "would_remove": 2,
        "would_restore": 2,
    }
    [conflict] = report["entries"]["conflict"]
    assert conflict == {
        "system": "salesforce",
        "object": "Lead",
        "record_id": "00Q1",
        "field": "Phone",
        "before": "1",
        "after": "2",
        "now": "3",
        "why": "changed since the run",
    }
    assert world["salesforce"].writes == world["leadgen"].writes == []
    assert list(store.iter_changes(ChangeFilter(UNDO_DAG, "manual__undo1"))) == []
    assert store.get_run(UNDO_DAG, "manual__undo1").status == "dry_run"


def test_an_undo_restores_removes_and_sets_the_sync_state(store, world) -> None:
    report = execute(job(dry_run=False, delete_created=True), store, world)
    assert report["undo"] == {"conflict": 1, "not_undoable": 1, "removed": 2, "restored": 2}
    sf, lg = world["salesforce"], world["leadgen"]
    assert sf.records["00Q1"] == {"Id": "00Q1", "Title": "VP", "Phone": "3"}  # Phone: conflict
    assert sf.writes == [[{"Id": "00Q1", "Title": "VP"}]]
    assert lg.records["12"]["title"] == "Eng" and lg.records["14"]["active"] == "0"
    assert "00Q3" not in sf.records
    links = store.links_by_lg("person", ["11", "12", "13", "14"])
    assert (
        links["11"].synced_values["title"] == "VP" and links["12"].synced_values["title"] == "Eng"
    )
    assert links["13"].status == "undone"
    holds = store.undo_holds("person", ["11", "12"])
    assert holds["11"]["title"] == {"leadgen": "CTO", "salesforce": "VP", "run_id": "manual__undo1"}
    assert holds["12"]["title"] == {"leadgen": "Eng", "salesforce": "VP", "run_id": "manual__undo1"}
    own = {
        (c.record_id, c.field): c
        for c in store.iter_changes(ChangeFilter(UNDO_DAG, "manual__undo1"))
    }
    assert (own["00Q1", "Title"].before, own["00Q1", "Title"].after) == ("CTO", "VP")
    assert (
        own["00Q1", "Title"].meta["before"] == "CTO" and own["00Q1", "Title"].meta["after"] == "VP"
    )
    assert own["00Q3", ""].kind == "removed" and own["14", ""].kind == "removed"


def test_a_second_undo_finds_nothing_to_do(store, world) -> None:
    execute(job(dry_run=False, delete_created=True), store, world)
    for system in world.values():
        system.writes.clear()
        system.removes.clear()
    again = execute(job(run_id="manual__undo2", dry_run=False, delete_created=True), store, world)
    assert again["undo"] == {
        "already_removed": 2,
        "already_restored": 2,
        "conflict": 1,
        "not_undoable": 1,
    }
    assert all(not s.writes and not s.removes for s in world.values())


def test_an_undo_of_the_undo_puts_the_values_back_and_releases_the_holds(store, world) -> None:
    execute(job(dry_run=False), store, world)
    store.start_run(
        UNDO_DAG,
        "manual__undo1",
        window_start=None,
        window_end=None,
        dry_run=False,
        full_resync=False,
    )
    store.finish_run(
        UNDO_DAG, "manual__undo1", status="success", report={"target": {"dag_id": DAG}}
    )
    back = execute(UndoJob(UNDO_DAG, "manual__undo1", "manual__undo2", dry_run=False), store, world)
    assert back["undo"] == {"restored": 2}
    assert world["salesforce"].records["00Q1"]["Title"] == "CTO"
    assert world["leadgen"].records["12"]["title"] == "VP"
    assert store.undo_holds("person", ["11", "12"]) == {}
    assert store.links_by_lg("person", ["11"])["11"].synced_values["title"] == "CTO"
    assert inverse_meta({"key": "k", "before": "a", "after": "b", "other": "b"})["before"] == "b"


def test_a_write_that_did_not_land_fails_the_undo_and_is_not_logged(store, world) -> None:
    world["salesforce"].ignore.add("00Q1")  # answers success, changes nothing
    world["leadgen"].refuse.add("12")
    with pytest.raises(UndoIncomplete, match="2 writes failed"):
        execute(job(dry_run=False), store, world)
    run = store.get_run(UNDO_DAG, "manual__undo1")
    assert run.status == "failed"
    failed = {f["record_id"]: f["why"] for f in run.report["entries"]["failed"]}
    assert failed["00Q1"] == "answered success but did not change Title"
    assert failed["12"].startswith("LOCKED")
    own = list(store.iter_changes(ChangeFilter(UNDO_DAG, "manual__undo1")))
    assert own == []
    assert store.undo_holds("person", ["11", "12"]) == {}


def test_records_are_read_and_written_in_batches_of_the_api_limit(store) -> None:
    store.log_changes(
        [
            {
                "dag_id": DAG,
                "run_id": RUN,
                "system": "salesforce",
                "object": "Lead",
                "record_id": f"00Q{i:04d}",
                "field": f,
                "kind": "update",
                "before": "old",
                "after": "new",
                "meta": {},
            }
            for i in range(450)
            for f in ("Title", "Phone")
        ]
    )
    sf = FakeSystem(
        "salesforce",
        {f"00Q{i:04d}": {"Id": f"00Q{i:04d}", "Title": "new", "Phone": "new"} for i in range(450)},
        200,
    )
    report = Undo(store, {"salesforce": sf}, job(dry_run=False)).run()
    assert report.counts["restored"] == 900
    assert max(len(w) for w in sf.writes) == 200 and sum(len(w) for w in sf.writes) == 450
    assert all(n <= 200 for n in sf.reads)


def test_an_unknown_run_or_an_object_without_an_undo_is_refused_or_reported(store) -> None:
    with pytest.raises(ConfigError, match="no run"):
        execute(job(target_run="nope"), store, {})
    logged(store, "leadgen", "dealStage", "5", "name", "update", before="a", after="b")
    from crm_sync.undo.systems import LeadGenSystem

    report = Undo(store, {"leadgen": LeadGenSystem(object())}, job()).run()
    assert report.counts["not_undoable"] == 1
    assert "dealStage" in report.examples["not_undoable"][0]["why"]


def test_a_real_undo_checks_the_backup_first_and_holds_the_sync_dags_lease(store, world) -> None:
    steps: list[str | None] = []
    sf = world["salesforce"]
    read = sf.read

    def probing(obj: str, ids: Sequence[str], fields: Sequence[str]) -> dict[str, Any]:
        holder = store.acquire_lease(DAG, "probe", timedelta(hours=1))
        if holder is None:
            store.release_lease(DAG, "probe")
        steps.append(holder)
        return read(obj, ids, fields)

    sf.read = probing  # type: ignore[method-assign]
    execute(job(), store, world, before_write=lambda: steps.append("backup"))
    assert "backup" not in steps and set(steps) == {None}  # a dry run needs neither
    steps.clear()
    execute(
        job(run_id="manual__undo2", dry_run=False),
        store,
        world,
        before_write=lambda: steps.append("backup"),
    )
    assert steps[0] == "backup" and set(steps[1:]) == {"manual__undo2"}
    assert store.acquire_lease(DAG, "next-run", timedelta(hours=1)) is None  # released
