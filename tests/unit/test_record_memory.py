"""What grows with a run stays bounded in the record and validate stages (issue 16): the run's
quarantine entries (DiskList), the state changes waiting to be applied, the quarantine written
in chunks inside its one transaction, and the GX context of the quality gate."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from crm_sync.definitions import LG_TO_SF, SF_TO_LG
from crm_sync.pipeline import apply
from crm_sync.pipeline.apply import StateChanges, record_run
from crm_sync.pipeline.quarantine import QuarantineEntry, Source, entry_list
from crm_sync.pipeline.spill import DiskList
from crm_sync.pipeline.tally import RunTally
from crm_sync.state.models import QuarantineItem
from crm_sync.state.store import SyncStore

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_state_url: str) -> SyncStore:
    return SyncStore(tmp_state_url)


def entry(
    make_ctx, key: str, message: str = "refused", run_id: str = "manual__1"
) -> QuarantineEntry:
    src = Source("person", LG_TO_SF, key, "Lead", key.split(":")[1], None, {"LastName": None})
    failure = {"category": "required field", "check": "required", "field": "LastName"}
    return QuarantineEntry.from_gate(
        make_ctx(run_id=run_id), src, [{**failure, "message": message}]
    )


# -- DiskList ------------------------------------------------------------------------------------


def test_a_disk_list_keeps_its_order_past_the_buffer_and_leaves_nothing_behind(make_ctx) -> None:
    items = DiskList(dict, dict, lambda d: d["k"], buffer=3)
    items.extend({"k": str(i % 4), "n": i} for i in range(8))
    assert items.spilled == 6 and len(items) == 8  # two spills of 3; 2 still in memory
    assert [d["n"] for d in items] == list(range(8))
    assert items[0] == {"k": "0", "n": 0} and items[7]["n"] == 7 and items[-2]["n"] == 6
    assert [d["n"] for d in items[2:5]] == [2, 3, 4]
    assert items == [{"k": str(i % 4), "n": i} for i in range(8)] and items != []
    with pytest.raises(IndexError):
        items[8]
    # one item per key, the last one, in the order of each key's first item (as a dict keeps)
    chunks = list(items.last_per_key(3))
    assert [len(c) for c in chunks] == [3, 1]
    assert [d["n"] for c in chunks for d in c] == [4, 5, 6, 7]
    path = items.path
    assert path is not None and path.exists()
    items.close()
    assert not path.exists()


def test_a_small_disk_list_never_touches_the_disk(make_ctx) -> None:
    items = DiskList(dict, dict, lambda d: d["k"], buffer=10)
    items.extend([{"k": "a", "n": 1}, {"k": "b", "n": 2}, {"k": "a", "n": 3}])
    assert items.spilled == 0 and items._db is None
    assert [[d["n"] for d in c] for c in items.last_per_key(10)] == [[3, 2]]


def test_quarantine_entries_come_back_from_disk_as_they_went(make_ctx) -> None:
    entries = entry_list(buffer=2)
    found = [entry(make_ctx, f"lg:{i}") for i in range(5)]
    entries.extend(found)
    assert entries.spilled == 4 and list(entries) == found and entries[1] == found[1]


# -- the state changes: rows held before they go to the scratch file ------------------------------


def test_the_changes_held_in_memory_are_bounded_by_rows_not_operations(make_ctx, store) -> None:
    ctx = make_ctx()
    t = RunTally()
    ch = StateChanges(ctx, store, t)
    ch.FLUSH, ch.SPILL = 50, 120  # a bulk operation of 50 rows; at most 120 rows held
    held = []
    for i in range(1000):
        ch.add_link("person", str(i), "Lead", f"00Q{i}", {"email": f"{i}@x.example"}, "created")
        ch.call("release_holds", "person", str(i), [])
        held.append(sum(op["rows"] for op in ch._ops))
    assert max(held) < ch.SPILL + ch.FLUSH  # never more than one spill's worth (+ the last op)
    assert ch.spills >= (1000 + 1000) // (ch.SPILL + ch.FLUSH)
    ch.apply()
    assert len(store.links_by_lg("person", [str(i) for i in range(1000)])) == 1000


# -- the quarantine: one transaction, written in bounded chunks -----------------------------------


def run(make_ctx, store: SyncStore, walk: Any, run_id: str = "manual__1") -> dict[str, Any]:
    ctx = make_ctx(run_id=run_id, max_reject_rate=1.0)
    store.start_run(
        ctx.dag_id, ctx.run_id, window_start=ctx.window_start, window_end=ctx.window_end,
        dry_run=False, full_resync=True,
    )  # fmt: skip
    return record_run(
        ctx,
        store,
        stream="people",
        directions=(LG_TO_SF, SF_TO_LG),
        summaries={},
        walk=walk,
        extracted={},
    )


def test_the_quarantine_is_written_in_chunks_one_row_per_record(
    make_ctx, store, monkeypatch
) -> None:
    store.quarantine(**entry(make_ctx, "lg:0", run_id="r0").to_dict())  # an earlier run's
    store.quarantine(**entry(make_ctx, "lg:999", run_id="r0").to_dict())  # passes in this run
    monkeypatch.setattr(apply, "QUARANTINE_CHUNK", 40)
    calls: list[int] = []
    write = store.quarantine_many

    def spy(entries: Any) -> int:
        calls.append(len(entries))
        return write(entries)

    monkeypatch.setattr(store, "quarantine_many", spy)

    def walk(t: RunTally, ch: StateChanges) -> None:
        t.quarantine = entry_list(buffer=25)  # the run's entries go to disk
        for i in range(100):
            t.row(writes=True, rejected=[entry(make_ctx, f"lg:{i}", "first")])
        for i in range(0, 100, 10):  # refused twice in one run: the last entry wins
            t.row(writes=True, rejected=[entry(make_ctx, f"lg:{i}", "second")])
        t.passed_key(LG_TO_SF, "lg:0")  # passed on one side, refused on another: stays
        t.passed_key(LG_TO_SF, "lg:999")
        t.row(writes=True)

    report = run(make_ctx, store, walk)
    assert calls == [40, 40, 20]  # 100 records, never more than a chunk per call
    assert report["quarantined"] == 110 and report["quarantine_resolved"] == 1
    rows = {q.record_key: q for q in store.quarantined("sync_leads_contacts")}
    assert len(rows) == 100 and "lg:999" not in rows
    assert rows["lg:10"].message.endswith("second") and rows["lg:11"].message.endswith("first")
    assert rows["lg:0"].attempts == 2 and rows["lg:1"].attempts == 1
    assert len(report["quarantine_examples"]) == 20


def test_quarantine_rows_are_let_go_inside_the_transaction(make_ctx, store) -> None:
    with store.batch():
        store.quarantine_many([entry(make_ctx, f"lg:{i}").to_dict() for i in range(30)])
        session = store._batch
        assert session is not None
        assert not [o for o in session.identity_map.values() if isinstance(o, QuarantineItem)]
        assert not session.new
        store.quarantine_many(
            [entry(make_ctx, f"lg:{i}", "again", "r2").to_dict() for i in range(30)]
        )
    rows = store.quarantined("sync_leads_contacts")
    assert {(q.attempts, q.message.endswith("again")) for q in rows} == {(2, True)}


# -- the quality gate's GX context -----------------------------------------------------------------


def test_the_gate_keeps_no_frame_metric_or_result_of_a_chunk_it_checked() -> None:
    from crm_sync.pipeline.validate import Validator, email_check, length_check

    v = Validator()
    for n in range(3):
        df = pd.DataFrame(
            {"Email": ["a@b.example", "bad", "c@d.example"], "Title": ["ok", "x" * 30, "ok"]}
        ).astype(object)
        df["__row"] = [0, 1, 2]
        found = v.run(f"chunk{n}", df, [email_check("Email"), length_check("Title", 20)])
        assert sorted((row, c.name) for row, c, _ in found) == [
            (1, "email_format"),
            (1, "max_length"),
        ]
        assert v.cached_batches() == 0
    assert v.summary()["chunk0:email_format:Email"]["failed"] == 1


# -- the opportunities record: what it keeps of the roles of a run ---------------------------------


def test_opportunities_keep_only_the_delivered_roles_that_were_held(make_ctx) -> None:
    from crm_sync.domains.opportunities import record

    ctx = make_ctx("sync_opportunities", domain="opportunity")
    plans = [
        {"pair": "opp:1", "kind": "opportunity", "sf_id": "0061", "lg_op": None,
         "roles_covered": ["00K1", "00K2", "00K7"]},
        *({"pair": f"role:00P{i}", "kind": "role_pending", "sf_id": f"00P{i}",
           "opportunity_sf": "0061", "contact_sf": f"003{i}"} for i in range(5)),
    ]  # fmt: skip
    s = record.Sections(held=frozenset({"00K2", "00K9"}))
    s.pending.buffer = 2  # the roles waiting for their contact go to disk past the buffer
    for plan in plans:
        record.count_plan(ctx, RunTally(), s, plan, {})
    assert s.delivered == {"00K2"}  # the run covered three roles; one of them was held
    assert s.pending.spilled == 4 and [p["sf_id"] for p in s.pending] == [
        f"00P{i}" for i in range(5)
    ]
