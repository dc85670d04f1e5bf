"""Targeted runs: the ``record_ids`` parameter parsed, the run kind it makes, its window, and why
it never moves the watermark nor counts as synced time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_sync.errors import ConfigError
from crm_sync.pipeline.apply import StateChanges, record_run
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.prepare import build_context, prepare
from crm_sync.pipeline.record_ids import (
    MAX_RECORD_IDS,
    RecordIds,
    RecordIdsError,
    parse_record_ids,
)
from crm_sync.pipeline.tally import RunTally
from crm_sync.pipeline.window import (
    BACKFILL,
    EPOCH,
    NOW,
    SCHEDULED,
    TARGETED,
    compute_window,
    covers_window,
    moves_watermark,
    run_kind,
)
from crm_sync.state.store import SyncStore
from tests.unit.test_preflight_fakes import FakeLeadGen, FakeSalesforce

pytestmark = pytest.mark.unit

LEAD_15 = "00Q000000000001"
LEAD_18 = "00Q000000000001EAA"
CONTACT_15 = "0035e00000AbCdE"
CONTACT_18 = "0035e00000AbCdEAAV"  # the checksum of the 15 characters above
H9 = datetime(2026, 11, 27, 9, tzinfo=UTC)
H10 = datetime(2026, 11, 27, 10, tzinfo=UTC)


# -- the parameter --------------------------------------------------------------------------------
def test_each_kind_is_recognised_and_written_in_its_canonical_form() -> None:
    ids = parse_record_ids(
        ["1001", LEAD_15, CONTACT_18, " Ann.Archer@Example.COM ", "1001", "ann.archer@example.com."]
    )
    assert ids == RecordIds(
        lg_ids=("1001",),
        sf_ids=(LEAD_18, CONTACT_18),
        emails=("ann.archer@example.com",),  # one address: case and the root dot are not part
    )
    assert len(ids) == 4


def test_a_separated_text_works_like_a_list() -> None:
    text = f"1001, 1002\n{LEAD_18};\r\n\n ann@example.com ,"
    assert parse_record_ids(text) == parse_record_ids(["1001", "1002", LEAD_18, "ann@example.com"])


@pytest.mark.parametrize("empty", [None, "", " , \n", []])
def test_nothing_given_is_not_a_targeted_run(empty: Any) -> None:
    ids = parse_record_ids(empty)
    assert not ids and ids == RecordIds()


def test_a_contact_id_made_of_digits_is_not_taken_for_a_lead_gen_id() -> None:
    assert parse_record_ids("003000000000001").sf_ids == ("003000000000001AAA",)


BAD = [
    ("abc", "not a Lead Gen & CRM id (digits), a Salesforce Lead/Contact id"),
    ("0012", "not a Lead Gen & CRM id (digits)"),  # Lead Gen & CRM ids have no leading zero
    ("١٢٣", "not a Lead Gen & CRM id"),  # Arabic-Indic digits are not ASCII digits
    ("12345678901234567890", "not a Lead Gen & CRM id"),  # 20 digits
    ("9223372036854775808", "a Lead Gen & CRM id is a 64-bit number"),
    (
        "001000000000001AAA",
        "a Salesforce id of neither a Lead nor a Contact (they start 00Q (Lead)",
    ),
    ("00q000000000001AAA", "a Salesforce id of neither a Lead nor a Contact"),
    ("00Q000000000001AAA", "the last three characters should be 'EAA' (was the case changed?)"),
    ("00Q00000000000", "not a Lead Gen & CRM id"),  # 14 characters
    ("ann@", "not a valid email address"),
    ("ann@example", "not a valid email address"),
    ("a b@example.com", "not a valid email address"),
    ("1001 1002", "not a Lead Gen & CRM id"),  # a blank is not a separator
]


@pytest.mark.parametrize("entry,reason", BAD)
def test_a_bad_entry_is_named_with_its_position_and_reason(entry: str, reason: str) -> None:
    with pytest.raises(RecordIdsError) as exc:
        parse_record_ids(["1001", entry])
    assert isinstance(exc.value, ConfigError)  # the run fails at once, no retries
    assert f"record_ids: entry 2 {entry!r}: {reason}" in str(exc.value)


def test_every_bad_entry_is_named_in_one_error() -> None:
    with pytest.raises(RecordIdsError) as exc:
        parse_record_ids("x1, 1001, x2\nx3")
    assert [p.split(":")[0] for p in exc.value.problems] == [
        "entry 1 'x1'",
        "entry 3 'x2'",
        "entry 4 'x3'",
    ]


def test_a_long_list_of_bad_entries_is_cut_in_the_message() -> None:
    with pytest.raises(RecordIdsError) as exc:
        parse_record_ids([f"bad{i}" for i in range(25)])
    assert len(exc.value.problems) == 25
    assert "entry 20 'bad19'" in str(exc.value) and "entry 21" not in str(exc.value)
    assert str(exc.value).endswith("; and 5 more")


def test_at_most_a_thousand_distinct_records() -> None:
    ids = [str(1000 + i) for i in range(MAX_RECORD_IDS)]
    assert len(parse_record_ids(ids + ids[:10])) == MAX_RECORD_IDS  # repeats are one record
    with pytest.raises(
        RecordIdsError, match="1,001 records given; a targeted run syncs at most 1,000"
    ):
        parse_record_ids([*ids, "ann@example.com"])


@pytest.mark.parametrize(
    "value,problem",
    [(42, "expected a list of ids or a text of ids, got int"), ([1001, True], "entry 2 is bool")],
)
def test_values_of_other_types_are_refused(value: Any, problem: str) -> None:
    with pytest.raises(RecordIdsError, match=problem):
        parse_record_ids(value)


def test_record_ids_round_trip_through_the_run_context() -> None:
    ids = parse_record_ids(["1001", LEAD_15, "a@b.co"])
    assert RecordIds.from_dict(ids.to_dict()) == ids
    assert RecordIds.from_dict(None) is None


# -- the run kind and its window ------------------------------------------------------------------
@pytest.mark.parametrize("run_type", ["scheduled", "manual", "backfill", "asset_triggered"])
def test_record_ids_make_any_run_targeted(run_type: str) -> None:
    assert run_kind(run_type, has_logical_date=True, targeted=True) == TARGETED
    assert run_kind(run_type, has_logical_date=False, targeted=True) == TARGETED


def test_a_targeted_window_ignores_interval_watermark_and_lookback() -> None:
    w = compute_window(
        kind=TARGETED,
        interval_start=H9,
        interval_end=H10,
        run_after=H10 + timedelta(minutes=17, microseconds=5),
        lookback=timedelta(minutes=5),
        watermark=H9 - timedelta(days=3),
        full_resync=False,
    )
    assert (w.start, w.end, w.caught_up_from, w.kind) == (
        EPOCH,
        H10 + timedelta(minutes=17),
        None,
        TARGETED,
    )
    assert not w.moves_watermark


@pytest.mark.parametrize(
    "kind,moves,covers",
    [(SCHEDULED, True, True), (NOW, True, True), (BACKFILL, False, True), (TARGETED, False, False)],
)
def test_which_kinds_move_the_watermark_and_count_as_synced_time(kind, moves, covers) -> None:
    assert (moves_watermark(kind), covers_window(kind)) == (moves, covers)


def context(store: SyncStore, **params: Any) -> RunContext:
    return build_context(
        dag_id="sync_leads_contacts",
        run_id="manual__resync",
        domain="person",
        interval_start=None,
        interval_end=None,
        run_after=H10,
        run_type="manual",
        has_logical_date=False,
        params=params,
        store=store,
        stream="people",
        conn_ids={},
    )


def test_build_context_makes_a_targeted_context(tmp_state_url: str) -> None:
    store = SyncStore(tmp_state_url)
    ctx = context(store, record_ids=f"1001\n{LEAD_15}", dry_run=True)
    assert ctx.run_kind == TARGETED and (ctx.window_start, ctx.window_end) == (EPOCH, H10)
    assert ctx.record_ids == {"lg_ids": ["1001"], "sf_ids": [LEAD_18], "emails": []}
    assert "record_ids" not in ctx.options  # parsed once, not carried twice
    back = RunContext.from_dict(ctx.to_dict())
    assert RecordIds.from_dict(back.record_ids) == parse_record_ids(["1001", LEAD_18])
    plain = context(store, record_ids=[])
    assert plain.run_kind == NOW and plain.record_ids is None


def test_build_context_refuses_bad_ids_and_record_ids_with_full_resync(tmp_state_url: str) -> None:
    store = SyncStore(tmp_state_url)
    with pytest.raises(RecordIdsError, match="entry 1 'nope'"):
        context(store, record_ids="nope")
    with pytest.raises(ConfigError, match="record_ids syncs those records only"):
        context(store, record_ids="1001", full_resync=True)


# -- what a targeted run leaves in the state store ------------------------------------------------
def test_a_targeted_run_records_no_window_and_never_moves_the_watermark(
    tmp_state_url: str, make_ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_SYNC_SCHEMA_TTL_MINUTES", "0")  # the fakes have no cache identity
    store = SyncStore(tmp_state_url)
    store.advance_watermark("sync_leads_contacts", "people", H9, "scheduled__1")
    ctx = make_ctx(
        run_id="manual__resync",
        run_type="manual",
        run_kind=TARGETED,
        window_start=EPOCH,
        window_end=H10,
        record_ids={"lg_ids": ["1001"], "sf_ids": [], "emails": []},
    )
    prepare(
        ctx,
        spec_names={"Lead": "leads", "Contact": "contacts"},
        sf=FakeSalesforce(),  # type: ignore[arg-type]
        lg=FakeLeadGen(),  # type: ignore[arg-type]
        store=store,
    )
    row = store.get_run("sync_leads_contacts", "manual__resync")
    assert (row.window_start, row.window_end) == (None, None)

    def walk(t: RunTally, ch: StateChanges) -> None:
        t.row(writes=True)

    report = record_run(
        ctx, store, stream="people", directions=(), summaries={}, walk=walk, extracted={}
    )
    assert report["status"] == "success" and report["run_kind"] == TARGETED
    assert store.get_watermark("sync_leads_contacts", "people") == H9  # not EPOCH..now
    # A dependent DAG waiting for an hour after the watermark keeps waiting.
    assert not store.window_done("sync_leads_contacts", H9, H10)
    assert store.synced_until("sync_leads_contacts", "people") == H9
