"""Where the people match's first-pairing candidates come from (domains/people/candidates.py):
a Salesforce query only for the unlinked leads that neither a complete extract nor a recorded
miss covers; the tail of changes past the window read once per run; misses recorded."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from crm_sync.domains.people.candidates import INDEX_COLUMNS, CandidateSource, index_row
from crm_sync.pipeline.files import DiskIndex
from crm_sync.state.store import SyncStore

pytestmark = pytest.mark.unit

ID_FIELD = "LeadGen_Id__c"
LEAD_A = {"id": 101, "emailAddress": "Ann@Example.com"}
LEAD_B = {"id": 102, "emailAddress": "bob@example.com"}
SF_ANN = {"Id": "00Q000000000001AAA", "Email": "ann@example.com", "IsDeleted": False}
SF_BOB_CONVERTED = {"Id": "00Q000000000002AAA", "Email": "bob@example.com", "IsConverted": True}
SF_BY_EXT = {"Id": "003000000000003AAA", "Email": "other@example.com", ID_FIELD: "102"}


class FakeSalesforce:
    """Answers lookups like the org would (live records whose field holds one of the values)
    and counts every query and tail read."""

    def __init__(self, records: list[dict[str, Any]], tail: list[dict[str, Any]] = ()):  # type: ignore[assignment]
        self.records, self.tail_records = records, list(tail)
        self.lookups: list[tuple[str, str, list[str]]] = []
        self.tails: list[tuple[str, datetime]] = []

    def query_by_values(self, sobject, fields, field, values, where=None, include_deleted=False):
        self.lookups.append((sobject, field, list(values)))
        prefix = "00Q" if sobject == "Lead" else "003"
        wanted = {str(v).lower() for v in values}
        return [
            r
            for r in self.records
            if r["Id"].startswith(prefix)
            and str(r.get(field) or "").lower() in wanted
            and not r.get("IsDeleted")
            and not r.get("IsConverted")
        ]

    def query_window(self, sobject, fields, start, end, **_kw):
        self.tails.append((sobject, start))
        prefix = "00Q" if sobject == "Lead" else "003"
        return [r for r in self.tail_records if r["Id"].startswith(prefix)]


@pytest.fixture
def specs() -> dict[str, Any]:
    from crm_sync.mapping.loader import load_object_spec
    from crm_sync.settings import mappings_dir

    return {o: load_object_spec(mappings_dir() / f"{o.lower()}s.yaml") for o in ("Lead", "Contact")}


@pytest.fixture
def store(tmp_path) -> SyncStore:
    s = SyncStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.dispose()


def _source(make_ctx, tmp_path, specs, store, sf, changed=(), **ctx_kw) -> CandidateSource:
    from crm_sync.domains.people.rules import record_link_field

    assert record_link_field(specs) == ID_FIELD  # the shipped specs map the record link
    index = DiskIndex(tmp_path / f"sf{len(list(tmp_path.iterdir()))}.db", columns=INDEX_COLUMNS)
    index.put_many(index_row(r["Id"][:3] == "003" and "Contact" or "Lead", r, ID_FIELD)
                   for r in changed)  # fmt: skip
    index.index("email", "ext")
    rt = SimpleNamespace(
        run=make_ctx(**ctx_kw), specs=specs, schema=None, salesforce=sf, store=store
    )
    return CandidateSource.of(rt, index, Counter())


def test_a_full_resync_answers_every_lookup_from_its_extract(make_ctx, tmp_path, specs, store):
    """The extract of a full resync holds every live Lead and Contact: no lookup query; deleted
    and converted records never match; the record-link field matches as well as the email."""
    sf = FakeSalesforce([SF_ANN, SF_BOB_CONVERTED, SF_BY_EXT])
    gone = {"Id": "00Q000000000004AAA", "Email": "ann@example.com", "IsDeleted": True}
    src = _source(make_ctx, tmp_path, specs, store, sf,
                  changed=[SF_ANN, SF_BOB_CONVERTED, SF_BY_EXT, gone], full_resync=True)  # fmt: skip
    found = src.find([LEAD_A, LEAD_B])
    assert sorted(found) == [SF_BY_EXT["Id"], SF_ANN["Id"]]
    assert sf.lookups == []
    assert src.counts == Counter(lookups_answered_locally=2)
    # the tail (changes past the window's end) is read once per run, per object
    src.find([{"id": 103, "emailAddress": "new@example.com"}])
    assert [o for o, _ in sf.tails] == ["Lead", "Contact"]


def test_a_record_created_past_the_window_is_found_through_the_tail(
    make_ctx, tmp_path, specs, store
):
    late = {"Id": "003000000000005AAA", "Email": "ANN@example.com"}
    sf = FakeSalesforce([], tail=[late])
    src = _source(make_ctx, tmp_path, specs, store, sf, full_resync=True)
    assert list(src.find([LEAD_A])) == [late["Id"]]
    assert sf.tails[0][1] == src.window_end


def test_a_lookup_that_finds_nothing_is_recorded_and_not_repeated(make_ctx, tmp_path, specs, store):
    """Hour 1 queries and records the miss; hour 2 (its window reads every change since) asks
    nothing and still finds a record that gained the email in the window."""
    sf = FakeSalesforce([])
    hour1 = _source(make_ctx, tmp_path, specs, store, sf)
    before = datetime.now(UTC)
    assert hour1.find([LEAD_A]) == {}
    assert {(o, f) for o, f, _ in sf.lookups} == {
        ("Lead", ID_FIELD), ("Lead", "Email"), ("Contact", ID_FIELD), ("Contact", "Email"),
    }  # fmt: skip
    assert store.misses_since("person", ["101"], before - timedelta(seconds=1)) == {
        "101": "ann@example.com"
    }
    asked = len(sf.lookups)
    # the next hour's window starts (with its lookback) before the miss was checked
    now = datetime.now(UTC)
    window = {"window_start": now - timedelta(minutes=65), "window_end": now}
    hour2 = _source(make_ctx, tmp_path, specs, store, sf, changed=[SF_ANN], **window)
    assert list(hour2.find([LEAD_A])) == [SF_ANN["Id"]]
    assert len(sf.lookups) == asked
    assert hour2.counts["lookups_answered_locally"] == 1


def test_a_miss_is_not_trusted_by_a_window_that_starts_after_it(make_ctx, tmp_path, specs, store):
    """A record could have gained the email between the check and the window: ask again."""
    checked = datetime.now(UTC) - timedelta(minutes=80)
    store.record_lookups("person", ["101"], {"101": "ann@example.com"}, checked)
    sf = FakeSalesforce([SF_ANN])
    now = datetime.now(UTC)
    src = _source(make_ctx, tmp_path, specs, store, sf,
                  window_start=now - timedelta(minutes=65), window_end=now)  # fmt: skip
    assert list(src.find([LEAD_A])) == [SF_ANN["Id"]]
    assert sf.lookups and src.counts["lookups_queried"] == 1
    # found this time: no miss left behind for it
    assert store.misses_since("person", ["101"], now - timedelta(days=1)) == {}


def test_a_scheduled_run_prunes_the_misses_its_window_cannot_use(make_ctx, tmp_path, specs, store):
    now = datetime.now(UTC)
    store.record_lookups("person", [], {"1": "a@x.org"}, now - timedelta(hours=2))
    store.record_lookups("person", [], {"2": "b@x.org"}, now - timedelta(minutes=30))
    window = {"window_start": now - timedelta(minutes=65), "window_end": now}
    _source(make_ctx, tmp_path, specs, store, FakeSalesforce([]), run_kind="backfill", **window)
    assert len(store.misses_since("person", ["1", "2"], now - timedelta(days=1))) == 2
    _source(make_ctx, tmp_path, specs, store, FakeSalesforce([]), **window)
    assert store.misses_since("person", ["1", "2"], now - timedelta(days=1)) == {"2": "b@x.org"}


def test_a_miss_for_another_email_or_a_targeted_run_queries_again(make_ctx, tmp_path, specs, store):
    store.record_lookups("person", ["101"], {"101": "old@example.com"}, datetime.now(UTC))
    now = datetime.now(UTC)
    window = {"window_start": now - timedelta(minutes=65), "window_end": now}
    sf = FakeSalesforce([])
    _source(make_ctx, tmp_path, specs, store, sf, **window).find([LEAD_A])
    assert sf.lookups, "the lead's email changed since the miss"
    sf.lookups.clear()
    targeted = _source(make_ctx, tmp_path, specs, store, sf, run_kind="targeted", **window)
    targeted.find([LEAD_A])  # the miss is now for ann@..., but a targeted run reads no window
    assert sf.lookups


def test_misses_are_pruned_by_age_and_replaced_per_lead(store):
    t0 = datetime(2026, 12, 3, 9, tzinfo=UTC)
    store.record_lookups("person", [], {"1": "a@x.org", "2": "b@x.org"}, t0)
    store.record_lookups("person", ["2"], {"2": "b2@x.org"}, t0 + timedelta(hours=1))
    assert store.misses_since("person", ["1", "2"], t0) == {"1": "a@x.org", "2": "b2@x.org"}
    assert store.prune_misses("person", t0 + timedelta(minutes=30)) == 1
    assert store.misses_since("person", ["1", "2"], t0) == {"2": "b2@x.org"}
    assert store.misses_since("opportunity", ["2"], t0) == {}


def test_a_dry_run_keeps_no_miss(make_ctx, tmp_path, specs, store):
    """A dry run costs what the real run after it will: it leaves no miss behind."""
    sf = FakeSalesforce([])
    _source(make_ctx, tmp_path, specs, store, sf, dry_run=True).find([LEAD_A])
    assert sf.lookups
    assert store.misses_since("person", ["101"], datetime(2000, 1, 1, tzinfo=UTC)) == {}
