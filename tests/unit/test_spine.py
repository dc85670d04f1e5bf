"""The shared spine: run tally and report, quarantine entries, the apply step (one transaction,
threshold, watermark), the run folder and the on-disk index."""

from __future__ import annotations

from typing import Any

import pytest

from crm_sync.definitions import LG_TO_SF, SF_TO_LG
from crm_sync.pipeline.apply import StateChanges, ThresholdExceeded, record_run
from crm_sync.pipeline.quarantine import QuarantineEntry, Source, category_for
from crm_sync.pipeline.tally import OUTCOMES, RunTally, build_report
from crm_sync.state.store import SyncStore

pytestmark = pytest.mark.unit


def source(key: str = "lg:1", direction: str = LG_TO_SF) -> Source:
    return Source(
        domain="person",
        direction=direction,
        record_key=key,
        target_object="Lead",
        lg_id="1",
        sf_id=None,
        payload={"LastName": None},
    )


GATE_FAILURE = {
    "category": "required field",
    "check": "required",
    "field": "LastName",
    "message": "Salesforce Lead (new) (lead 1): field LastName is required [check required]",
}


# -- quarantine entries --------------------------------------------------------------------------


def test_a_quarantined_payload_is_stored_as_json_whatever_it_held(make_ctx, tmp_path) -> None:
    """NaN (refused by Postgres' JSON), the unparseable marker, dates, decimals and nested
    values: the entry holds JSON and the state store keeps it as it was shown."""
    import json
    import math
    from datetime import date
    from decimal import Decimal

    from crm_sync.pipeline.transform import INVALID

    raw = {
        "AnnualRevenue": math.nan,
        "NumberOfEmployees": f"{INVALID} twelve",
        "Birthdate": date(1990, 1, 2),
        "Amount": Decimal("12.50"),
        "Tags": ["a", math.nan, {"b": Decimal("1")}],
        "LastName": "Zoë",
    }
    src = Source(
        domain="person", direction=LG_TO_SF, record_key="lg:9", target_object="Lead",
        lg_id="9", sf_id=None, payload=raw,
    )  # fmt: skip
    e = QuarantineEntry.from_gate(make_ctx(), src, [GATE_FAILURE])
    expected = {
        "AnnualRevenue": None,
        "NumberOfEmployees": "twelve",
        "Birthdate": "1990-01-02",
        "Amount": "12.50",
        "Tags": ["a", None, {"b": "1"}],
        "LastName": "Zoë",
    }
    assert e.payload == expected
    assert json.loads(json.dumps(e.payload, allow_nan=False)) == expected
    store = SyncStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.quarantine_many([e.to_dict()])
    [row] = store.quarantined()
    assert row.payload == expected


def test_a_gate_entry_leads_with_the_first_failing_check_and_keeps_every_message(make_ctx) -> None:
    ctx = make_ctx(max_attempts=3)
    second = {**GATE_FAILURE, "check": "max_length", "category": "length", "message": "too long"}
    e = QuarantineEntry.from_gate(ctx, source(), [GATE_FAILURE, second])
    assert (e.category, e.check, e.field, e.error_code) == (
        "required field",
        "required",
        "LastName",
        None,
    )
    assert e.message.endswith("[check required]; too long")
    assert (e.dag_id, e.run_id, e.max_attempts, e.record_key) == (
        ctx.dag_id,
        ctx.run_id,
        3,
        "lg:1",
    )
    assert e.payload == {"LastName": None}


def test_a_write_entry_names_the_system_code_and_sorts_it_into_a_category(make_ctx) -> None:
    result = {
        "target": "leadgen",
        "error_code": "214",
        "error_message": "lead does not exist",
        "error_fields": ["leadID"],
    }
    e = QuarantineEntry.from_write(
        make_ctx(), source("sf:003A", SF_TO_LG), result, who="X", op="update"
    )
    assert (e.check, e.category, e.field, e.error_code) == (
        "leadgen:214",
        "missing link",
        "leadID",
        "214",
    )
    assert e.message == "X rejected the update: lead does not exist"
    assert category_for("UNHEARD_OF") == "other" and category_for(None) == "other"


# -- run tally and report --------------------------------------------------------------------------


def entry(make_ctx, key: str, run_id: str = "manual__1") -> QuarantineEntry:
    return QuarantineEntry.from_gate(make_ctx(run_id=run_id), source(key), [GATE_FAILURE])


def test_each_row_has_one_outcome_and_the_report_adds_up(make_ctx) -> None:
    t = RunTally(prior=frozenset({(LG_TO_SF, "lg:old")}))
    assert t.row(writes=True) == "loaded"
    assert t.row(writes=False) == "unchanged"
    assert t.row(writes=True, rejected=[entry(make_ctx, "lg:new")]) == "rejected"
    assert t.row(writes=True, rejected=[entry(make_ctx, "lg:old")]) == "still_quarantined"
    assert t.row(writes=True, attempted=False) == "deferred"
    assert t.row(writes=False, outcome="held") == "held"
    assert t.row(writes=False, outcome="skipped") == "skipped"
    assert t.row(writes=True, outcome="unchanged") == "unchanged"
    assert t.pairs == 8 == sum(t.rows_block().values())
    assert set(t.rows_block()) == set(OUTCOMES)
    # planned: every row that planned a write; the rate counts first-time rejections only
    assert (t.planned, t.rejected_new) == (5, 1)
    assert t.reject_rate == pytest.approx(1 / 5)
    report = build_report(make_ctx(), t, extracted={}, summaries={}, resolved=0)
    assert report["pairs"] == (
        report["loaded_rows"]
        + report["unchanged"]
        + report["rejected_rows"]
        + report["still_quarantined_rows"]
        + sum(report["rows"][k] for k in ("deferred", "would_write", "held", "skipped"))
    )
    assert report["quarantined"] == 2 and len(report["quarantine_examples"]) == 2


def test_a_dry_run_row_that_would_write_is_counted_so() -> None:
    t = RunTally(dry_run=True)
    assert t.row(writes=True) == "would_write"
    assert t.rows["loaded"] == 0 and t.planned == 1


def test_a_domain_cannot_force_an_outcome_that_hides_a_write() -> None:
    with pytest.raises(ValueError):
        RunTally().row(writes=True, outcome="loaded")


def test_api_calls_are_summed_over_tasks_in_all_and_by_kind(make_ctx) -> None:
    summaries = {
        "extract": {"sf_api_calls": 3, "sf_calls_by_kind": {"query": 3}},
        "load": {"sf_api_calls": 2, "sf_calls_by_kind": {"query": 1, "upsert": 1}},
        "other": {"lg_api_calls": 4, "lg_calls_by_kind": {"getLeads": 4}},
        "prepare": "not a summary",
    }
    report = build_report(make_ctx(), RunTally(), extracted={}, summaries=summaries, resolved=0)
    assert report["api_calls"] == {"salesforce": 5, "leadgen": 4}
    assert report["api_calls_by_kind"] == {
        "salesforce": {"query": 4, "upsert": 1},
        "leadgen": {"getLeads": 4},
    }


# -- the apply step -------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_state_url: str) -> SyncStore:
    return SyncStore(tmp_state_url)


def walk_with(
    make_ctx,
    *,
    link: bool = True,
    reject: str | None = None,
    boom: bool = False,
    run_id: str = "manual__1",
):
    def walk(t: RunTally, ch: StateChanges) -> None:
        if link:
            ch.add_link("person", "1", "Lead", "00Q1", {"email": "a@b.c"}, "created")
            t.links["created"] += 1
        t.row(writes=True)
        t.passed_key(LG_TO_SF, "lg:1")
        if reject:
            t.row(writes=True, rejected=[entry(make_ctx, reject, run_id)])
        if boom:
            raise RuntimeError("the record stage crashed")

    return walk


def run(make_ctx, store: SyncStore, walk: Any, **ctx_kw: Any) -> dict[str, Any]:
    ctx = make_ctx(**ctx_kw)
    store.start_run(
        ctx.dag_id,
        ctx.run_id,
        window_start=ctx.window_start,
        window_end=ctx.window_end,
        dry_run=ctx.dry_run,
        full_resync=False,
    )
    return record_run(
        ctx,
        store,
        stream="people",
        directions=(LG_TO_SF, SF_TO_LG),
        summaries={},
        walk=walk,
        extracted={},
    )


def test_a_successful_run_applies_its_changes_and_moves_the_watermark(make_ctx, store) -> None:
    store.quarantine(**entry(make_ctx, "lg:1").to_dict())  # failed in an earlier run
    report = run(make_ctx, store, walk_with(make_ctx), run_id="r2")
    assert report["status"] == "success" and report["quarantine_resolved"] == 1
    assert set(store.links_by_lg("person", ["1"])) == {"1"}
    assert store.quarantined("sync_leads_contacts") == []
    assert store.get_watermark("sync_leads_contacts", "people") == make_ctx().window_end
    assert store.get_run("sync_leads_contacts", "r2").status == "success"


def test_a_crash_in_the_record_stage_leaves_no_change_behind(make_ctx, store) -> None:
    with pytest.raises(RuntimeError):
        run(make_ctx, store, walk_with(make_ctx, reject="lg:9", boom=True))
    assert store.links_by_lg("person", ["1"]) == {}  # all or nothing: one transaction
    assert store.quarantined("sync_leads_contacts") == []
    assert store.get_watermark("sync_leads_contacts", "people") is None


def test_a_dry_run_changes_nothing(make_ctx, store) -> None:
    report = run(make_ctx, store, walk_with(make_ctx, reject="lg:9"), dry_run=True)
    assert report["status"] == "dry_run" and report["rows"]["would_write"] == 1
    assert report["rejected_rows"] == 1 and report["quarantined"] == 1
    assert store.links_by_lg("person", ["1"]) == {} and store.quarantined() == []
    assert store.get_watermark("sync_leads_contacts", "people") is None


def test_a_threshold_breach_fails_after_applying_and_the_window_is_done(make_ctx, store) -> None:
    with pytest.raises(ThresholdExceeded, match="1 of 2 rows rejected"):
        run(make_ctx, store, walk_with(make_ctx, reject="lg:9"), max_reject_rate=0.3)
    assert set(store.links_by_lg("person", ["1"])) == {"1"}  # the good row was loaded
    [q] = store.quarantined("sync_leads_contacts")
    assert q.record_key == "lg:9" and q.attempts == 1
    # the rejected row lives in the quarantine and is retried from there: the next run must not
    # re-read this window (and every later one) again, which would grow without bound
    assert store.get_watermark("sync_leads_contacts", "people") == make_ctx().window_end


def test_a_backfill_never_moves_the_watermark(make_ctx, store) -> None:
    report = run(make_ctx, store, walk_with(make_ctx), run_kind="backfill", run_type="backfill")
    assert report["status"] == "success" and report["run_kind"] == "backfill"
    assert store.get_watermark("sync_leads_contacts", "people") is None


def test_rows_already_quarantined_do_not_breach_the_threshold_again(make_ctx, store) -> None:
    store.quarantine(**entry(make_ctx, "lg:9").to_dict())  # rejected by an earlier run
    walk = walk_with(make_ctx, reject="lg:9", run_id="r2")
    report = run(make_ctx, store, walk, max_reject_rate=0.3, run_id="r2")
    assert report["status"] == "success"
    assert (report["rejected_rows"], report["still_quarantined_rows"]) == (0, 1)
    assert store.quarantined("sync_leads_contacts")[0].attempts == 2


def test_first_pairings_are_written_in_bulk_and_never_steal_a_link(make_ctx, store) -> None:
    store.add_links("person", [{"lg_id": "7", "sf_object": "Lead", "sf_id": "00Q7"}], "r0")
    ctx = make_ctx()
    t = RunTally()
    ch = StateChanges(ctx, store, t)
    ch.FLUSH = 2  # several bulk operations
    pairs = (("1", "00Q1"), ("2", "00Q2"), ("7", "00Q8"), ("9", "00Q7"), ("3", "00Q3"))
    for lid, sid in pairs:
        ch.add_link("person", lid, "Lead", sid, {}, "created")
    ch.synced_values("person", "1", {"email": "a"})
    assert store.links_by_lg("person", ["1"]) == {}  # nothing written while walking
    assert ch.apply() == 4  # 3 bulk link operations, 1 of synced values
    links = store.links_by_lg("person", ["1", "2", "3", "7", "9"])
    assert {k: v.sf_id for k, v in links.items()} == {
        "1": "00Q1",
        "2": "00Q2",
        "3": "00Q3",
        "7": "00Q7",  # lead 7 stays with its record
    }  # and lead 9 does not take 00Q7 from lead 7
    assert links["1"].synced_values == {"email": "a"}
    assert t.links["refused_duplicate"] == 2


def test_changes_are_applied_once_even_when_the_record_task_runs_again(make_ctx, store) -> None:
    ctx = make_ctx()
    for _ in range(2):  # the record task's first attempt, then its retry
        ch = StateChanges(ctx, store, RunTally())
        ch.add_link("person", "1", "Lead", "00Q1", {"a": "1"}, "created")
        ch.call("set_link_status", "person", "1", "deleted", event="deactivated", run_id=ctx.run_id)
        ch.call("hold", ctx.dag_id, "event", "e1", payload={}, reason="r", run_id=ctx.run_id)
        ch.apply()
    assert [e.event for e in store.link_events("person", lg_id="1")] == ["created", "deactivated"]
    [held] = store.held(ctx.dag_id, "event")
    assert held.attempts == 1


def test_the_walk_never_holds_the_write_lock(make_ctx, store, tmp_state_url) -> None:
    """Another DAG's task writes while this run's record stage walks its plans."""
    other = SyncStore(tmp_state_url)

    def walk(t: RunTally, ch: StateChanges) -> None:
        ch.add_link("person", "1", "Lead", "00Q1", {}, "created")
        t.row(writes=True)
        # SQLite waits for the lock up to busy_timeout and then fails: with the lock held by
        # this stage, the other writer would fail here.
        with other.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA busy_timeout=100")
            conn.exec_driver_sql(
                "INSERT INTO watermarks (dag_id, stream, high_water, updated_at) "
                "VALUES ('other', 's', '2026-01-01', '2026-01-01')"
            )
            conn.commit()

    report = run(make_ctx, store, walk)
    assert report["status"] == "success"
    assert set(store.links_by_lg("person", ["1"])) == {"1"}
