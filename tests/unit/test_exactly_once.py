"""Nothing lost, nothing doubled (issue 14), at unit level: read-back of what an update changed,
creates whose answer was lost, one run of a DAG at a time, held items that expire, the API calls
of failed attempts, and the record stage's bookkeeping order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_sync.clients.results import AMBIGUOUS_WRITE, RecordError, WriteResult
from crm_sync.errors import AmbiguousWriteError, RetriableError
from crm_sync.pipeline.readback import not_applied, same_value
from crm_sync.state.store import SyncStore

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_state_url: str) -> SyncStore:
    return SyncStore(tmp_state_url)


# -- read-back -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "read", "same"),
    [
        ("ann@x.com", "Ann@X.com", True),
        (" CTO ", "CTO", True),
        ("20", "20.0", True),
        ("1,234.5", "1234.50", True),
        ("2026-11-27", "2026-11-27 00:00:00", True),
        ("", None, True),
        ("new@x.com", "old@x.com", False),
        ("CTO", "cto", False),  # case matters outside emails
        ("2026-11-27", "2026-11-28 00:00:00", False),
    ],
)
def test_a_value_read_back_is_compared_as_the_api_stores_it(written, read, same) -> None:
    assert same_value(written, read) is same


def test_fields_not_applied_are_named_and_a_gone_record_misses_every_field() -> None:
    payload = {"id": "7", "emailAddress": "new@x.com", "title": "CTO"}
    assert not_applied(payload, {"id": "7", "emailAddress": "old@x.com", "title": "CTO"}) == [
        "emailAddress"
    ]
    assert not_applied(payload, None) == ["emailAddress", "title"]


# -- one run of a DAG at a time ---------------------------------------------------------------------


def test_a_dag_lease_is_held_by_one_run_and_expires(store: SyncStore) -> None:
    t0 = datetime(2026, 11, 27, 10, tzinfo=UTC)
    ttl = timedelta(hours=2)
    assert store.acquire_lease("d", "scheduled__10", ttl, now=t0) is None
    assert store.acquire_lease("d", "scheduled__10", ttl, now=t0) is None  # renewed
    assert store.acquire_lease("d", "backfill__9", ttl, now=t0) == "scheduled__10"
    assert store.acquire_lease("other", "backfill__9", ttl, now=t0) is None  # per DAG
    store.release_lease("d", "backfill__9")  # not the holder: nothing happens
    assert store.acquire_lease("d", "backfill__9", ttl, now=t0) == "scheduled__10"
    # a lease its run never gave back (a killed worker) is taken over after it expires
    assert store.acquire_lease("d", "backfill__9", ttl, now=t0 + ttl + timedelta(seconds=1)) is None
    store.release_lease("d", "backfill__9")
    assert store.acquire_lease("d", "manual__11", ttl, now=t0) is None


def test_a_task_waits_for_the_other_run_then_asks_airflow_to_retry(
    make_ctx, tmp_path, monkeypatch
) -> None:
    from crm_sync.definitions import get_definition
    from crm_sync.runtime import close_stores, shared_store
    from crm_sync.tasks import TaskRuntime

    monkeypatch.setenv("AIRFLOW_CONN_SYNC_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setattr("crm_sync.settings.lease_wait", lambda: (0.0, 0.0))
    close_stores()
    people = get_definition("sync_leads_contacts")
    first = make_ctx(run_id="scheduled__10")
    with TaskRuntime(people, "match", ctx=first):
        pass  # holds the lease after match: its load and record follow
    with pytest.raises(RetriableError, match="scheduled__10 of sync_leads_contacts is syncing"):
        with TaskRuntime(people, "match", ctx=make_ctx(run_id="backfill__9")):
            pass
    with TaskRuntime(people, "extract_leadgen", ctx=make_ctx(run_id="backfill__9")):
        pass  # reading the window's changes does not need the lease
    with TaskRuntime(people, "record", ctx=first):
        pass  # the run ends: lease given back
    with TaskRuntime(people, "match", ctx=make_ctx(run_id="backfill__9")):
        pass
    assert shared_store().acquire_lease(first.dag_id, "x", timedelta(hours=1)) == "backfill__9"
    close_stores()


# -- held items expire ---------------------------------------------------------------------------


def test_items_held_too_long_expire_and_are_no_longer_reloaded(store: SyncStore) -> None:
    store.hold("d", "event", "e1", payload={}, reason="lead 1 not linked", run_id="r1")
    store.hold("d", "event", "e1", payload={}, reason="lead 1 not linked", run_id="r1")
    store.hold("d", "event", "e2", payload={}, reason="lead 2 not linked", run_id="r1")
    assert [h.attempts for h in store.held("d", "event")] == [1, 1]  # once per run
    assert store.expire_held("d", "event", timedelta(hours=1), reason="waited") == 0
    assert store.expire_held("d", "event", timedelta(seconds=-1), reason="waited 7 days") == 2
    assert store.held("d", "event") == []
    assert {h.reason for h in store.held("d", "event", status="expired")} == {"waited 7 days"}
    store.hold("d", "event", "e1", payload={}, reason="again", run_id="r2")
    assert store.held("d", "event") == []  # an expired item is not held again


# -- API calls of failed attempts ----------------------------------------------------------------


def test_finishing_a_run_keeps_the_calls_of_its_failed_attempts(store: SyncStore) -> None:
    t = datetime(2026, 11, 27, 10, tzinfo=UTC)
    store.start_run("d", "r", window_start=t, window_end=t, dry_run=False, full_resync=False)
    store.add_run_calls("d", "r", sf=40, lg=7)  # includes a load attempt that failed
    store.finish_run("d", "r", status="success", report={}, sf_api_calls=25, lg_api_calls=5)
    run = store.get_run("d", "r")
    assert (run.sf_api_calls, run.lg_api_calls) == (40, 7)


# -- creates whose answer was lost: opportunities ---------------------------------------------------


class FakeLeadGen:
    """Lead Gen & CRM opportunities in memory; the first create applies and loses its answer."""

    def __init__(self, lose_first: int = 1):
        self.opps: dict[str, dict[str, Any]] = {}
        self.lose = lose_first
        self.create_calls = 0

    def create_opportunities(self, objs: list[dict[str, Any]]) -> list[WriteResult]:
        self.create_calls += 1
        out = []
        for i, o in enumerate(objs):
            oid = str(900 + len(self.opps))
            self.opps[oid] = {**o, "id": oid}
            out.append(WriteResult(i, True, id=oid, created=True))
        if self.lose:
            self.lose -= 1
            raise AmbiguousWriteError(
                "connection dropped", method="createOpportunities", count=len(objs)
            )
        return out

    def get_opportunities_date_range(self, start, end, timestamp="create"):
        assert timestamp == "create" and start < end
        return list(self.opps.values())


def opp_plan(pair: str, name: str) -> dict[str, Any]:
    return {
        "pair": pair,
        "kind": "opportunity",
        "lg_op": "create",
        "sf_id": f"006{pair}",
        "lg_id": None,
        "lg_payload": {"opportunityName": name, "amount": "10", "dealStageID": "31"},
        "agreed_if_lg": {"name": name},
    }


def loader(make_ctx, store, lg):
    from crm_sync.domains.opportunities.load import Loader
    from crm_sync.pipeline.results import ResultLog

    ctx = make_ctx("sync_opportunities")
    return Loader(ctx, lg, store, ResultLog(ctx.folder, "lg"), set()), ctx


def test_a_lost_create_answer_is_resolved_by_natural_key_not_by_creating_again(
    make_ctx, store
) -> None:
    lg = FakeLeadGen(lose_first=1)
    ld, ctx = loader(make_ctx, store, lg)
    plans = [opp_plan("a", "Deal A"), opp_plan("b", "Deal B")]
    ld.write(plans, "create_opportunities")
    assert lg.create_calls == 1 and len(lg.opps) == 2  # found, not made twice
    links = store.links_by_sf("opportunity", ["006a", "006b"])
    assert {sid: lk[0].lg_id for sid, lk in links.items()} == {"006a": "900", "006b": "901"}
    latest = ld.results.latest()
    assert latest["a"]["success"] and latest["a"]["adopted"]
    assert ld.counts["adopted_after_lost_answer"] == 2


def test_a_lost_answer_twice_fails_the_task_and_its_retry_looks_up_first(make_ctx, store) -> None:
    lg = FakeLeadGen(lose_first=2)
    lg.get_opportunities_date_range = lambda *a, **k: []  # the first create did not land
    ld, ctx = loader(make_ctx, store, lg)
    with pytest.raises(RetriableError, match="lost twice"):
        ld.write([opp_plan("a", "Deal A")], "create_opportunities")
    assert lg.create_calls == 2
    rows = list(ld.results.rows())
    assert [r["error_code"] for r in rows] == [AMBIGUOUS_WRITE] * 2  # lost twice
    # the task's retry: the second create did land; it is found, nothing is created
    lg.get_opportunities_date_range = FakeLeadGen.get_opportunities_date_range.__get__(lg)
    retry, _ = loader(make_ctx, store, lg)
    retry.write([opp_plan("a", "Deal A")], "create_opportunities")
    assert lg.create_calls == 2 and len(lg.opps) == 2  # (the sandbox made one per attempt)
    assert retry.results.latest()["a"]["adopted"]


def test_results_are_on_disk_before_links_so_a_crash_between_creates_nothing_twice(
    make_ctx, store, monkeypatch
) -> None:
    from crm_sync.domains.opportunities.bookkeeping import Bookkeeper

    lg = FakeLeadGen(lose_first=0)
    ld, ctx = loader(make_ctx, store, lg)
    with monkeypatch.context() as m, pytest.raises(OSError):  # the store fails after the create
        m.setattr(Bookkeeper, "record", lambda *a, **k: (_ for _ in ()).throw(OSError("db")))
        ld.write([opp_plan("a", "Deal A")], "create_opportunities")
    # the retried task: the create is in the results (done), the link is recorded from them
    from crm_sync.pipeline.results import ResultLog

    results = ResultLog(ctx.folder, "lg")
    retry, _ = loader(make_ctx, store, lg)
    retry.done = results.done(success_only=True)
    retry.books.replay({"a": opp_plan("a", "Deal A")}, results.latest().values())
    retry.write([opp_plan("a", "Deal A")], "create_opportunities")
    assert lg.create_calls == 1
    assert store.links_by_sf("opportunity", ["006a"])["006a"][0].lg_id == "900"


# -- creates whose answer was lost: Salesforce without a record link ------------------------------


class FakeSalesforce:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.first = True

    def create(self, sobject: str, payloads: list[dict[str, Any]]) -> list[WriteResult]:
        out = []
        for i, p in enumerate(payloads):
            self.created.append(p)
            out.append(WriteResult(i, True, id=f"003{len(self.created)}", created=True))
        if self.first:  # the answers of the second record's chunk were lost
            self.first = False
            out[1] = WriteResult(1, False, errors=(RecordError(AMBIGUOUS_WRITE, "lost"),))
            raise AmbiguousWriteError_sf(out)
        return out

    def query_by_values(self, sobject, fields, field, values, where=None):
        return [
            {"Id": f"003{i + 1}", "Email": p["Email"]}
            for i, p in enumerate(self.created)
            if p["Email"].lower() in values
        ]


def AmbiguousWriteError_sf(results: list[WriteResult]) -> Exception:
    from crm_sync.clients.salesforce import AmbiguousWriteError as SalesforceAmbiguous

    return SalesforceAmbiguous("lost", sobject="Contact", operation="create", results=results)


def test_a_plain_salesforce_create_with_a_lost_answer_is_found_by_email() -> None:
    from crm_sync.domains.people.load import _create_plain

    sf = FakeSalesforce()
    answers = _create_plain(sf, "Contact", [{"Email": "a@x.com"}, {"Email": "B@x.com"}])
    assert [a.success for a in answers] == [True, True]
    assert answers[1].id == "0032" and answers[1].created is False
    assert len(sf.created) == 2  # nothing created twice


# -- 301 on a lead create: adopt a rerun's lead, never another person's --------------------------


def test_a_lead_that_exists_is_adopted_only_when_it_is_not_linked_elsewhere(store) -> None:
    from crm_sync.domains.people.load import _adopt_existing

    class FakeLeadGen:
        def get_leads_by_emails(self, emails):
            return [
                {"id": 5, "emailAddress": "Dup@Example.com "},
                {"id": 6, "emailAddress": "x@y.z"},
            ]

    store.add_links("person", [{"lg_id": "5", "sf_object": "Lead", "sf_id": "00QX"}], "r0")
    rerun = {"pair": "sf:00QX", "sf_id": "00QX", "lg_payload": {"emailAddress": "dup@example.com"}}
    other = {"pair": "sf:003Y", "sf_id": "003Y", "lg_payload": {"emailAddress": "dup@example.com"}}
    [adopted] = _adopt_existing(FakeLeadGen(), store, "create", {"dup@example.com": rerun})
    assert adopted["success"] and adopted["id"] == "5" and adopted["already_existed"]
    [refused] = _adopt_existing(FakeLeadGen(), store, "create", {"dup@example.com": other})
    assert not refused["success"] and refused["error_code"] == "301"
    assert refused["error_message"] == (
        "email dup@example.com belongs to lead 5, which is linked to Salesforce 00QX"
    )
    [fresh] = _adopt_existing(FakeLeadGen(), store, "create", {"x@y.z": other})
    assert fresh["success"] and fresh["id"] == "6"  # not linked: a rerun's own lead
