"""The generic task runner: definitions, the task runtime's error sorting and call accounting,
and the sensor condition of the DAGs that wait for the people sync."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_sync.definitions import REGISTRY, SyncDefinition, get_definition, lazy
from crm_sync.errors import BudgetExhaustedError, ConfigError, RetriableError
from crm_sync.pipeline.results import ResultLog, index_dir
from crm_sync.runtime import close_stores
from crm_sync.tasks import TaskRuntime, upstream_synced

pytestmark = pytest.mark.unit

H = datetime(2026, 11, 20, 10, tzinfo=UTC)


@pytest.fixture
def state(tmp_path, monkeypatch):
    """Every task of these tests shares one fresh SQLite state store."""
    monkeypatch.setenv("AIRFLOW_CONN_SYNC_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    close_stores()
    yield
    close_stores()


class FakeClient:
    def __init__(self, calls: dict[str, int]):
        self.calls = calls
        self.api_calls = sum(calls.values())


def runtime(make_ctx, task: str = "extract") -> TaskRuntime:
    ctx = make_ctx("sync_leads_contacts")
    rt = TaskRuntime(get_definition("sync_leads_contacts"), task, ctx=ctx)
    rt.store.start_run(
        ctx.dag_id, ctx.run_id, window_start=H, window_end=H, dry_run=False, full_resync=False
    )
    return rt


def test_every_registered_dag_has_a_definition_with_its_own_id() -> None:
    for dag_id in REGISTRY:
        d = get_definition(dag_id)
        assert isinstance(d, SyncDefinition) and d.dag_id == dag_id
        assert "prepare" in d.stages and "record" in d.stages
    with pytest.raises(KeyError, match="no sync definition"):
        get_definition("sync_nothing")
    with pytest.raises(KeyError, match="has no stage"):
        get_definition("sync_leads_contacts").stage("teleport")


def test_a_lazy_stage_imports_its_module_only_when_it_runs() -> None:
    stage = lazy("json:dumps")
    assert stage.__name__ == "dumps" and stage({"a": 1}) == '{"a": 1}'


def test_a_fatal_error_fails_the_task_without_retry_and_counts_its_calls(make_ctx, state) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    rt = runtime(make_ctx)
    with pytest.raises(AirflowFailException, match="ConfigError: bad spec"), rt:
        rt._sf = FakeClient({"query": 3, "login": 1})  # type: ignore[assignment]
        raise ConfigError("bad spec")
    run = rt.store.get_run(rt.run.dag_id, rt.run.run_id)
    assert run.sf_api_calls == 4  # a failed task's calls still count against the budget


def test_a_retriable_error_propagates_so_airflow_retries(make_ctx, state) -> None:
    rt = runtime(make_ctx)
    with pytest.raises(RetriableError), rt:
        raise RetriableError("503 from the API")


def test_the_budget_running_out_while_reading_ends_the_run_cleanly(
    make_ctx, state, monkeypatch
) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    sent: list[str] = []
    monkeypatch.setattr("crm_sync.alerts.send", lambda text, payload=None: sent.append(text))
    rt = runtime(make_ctx)
    with pytest.raises(AirflowSkipException, match="budget reached in extract"), rt:
        raise BudgetExhaustedError("24 h budget of 100 calls used")
    run = rt.store.get_run(rt.run.dag_id, rt.run.run_id)
    assert run.status == "budget_exhausted" and run.report["stopped_in"] == "extract"
    assert len(sent) == 1 and "budget_exhausted" in sent[0]


def test_task_scratch_files_go_when_the_task_ends(make_ctx, state) -> None:
    rt = runtime(make_ctx)
    with rt:
        path = rt.run.scratch("match/lg.db")
        path.write_text("x")
        kept = ResultLog(rt.run.folder, "lg").latest()  # a result index the task never closed
    assert not path.exists()
    assert not any(index_dir().glob("*.db"))
    kept.close()


def test_calls_are_reported_by_system_and_kind(make_ctx, state) -> None:
    rt = runtime(make_ctx)
    rt._sf = FakeClient({"query": 2, "login": 1})  # type: ignore[assignment]
    rt._lg = FakeClient({"getLeads": 5})  # type: ignore[assignment]
    assert rt.calls() == {
        "sf_api_calls": 3,
        "sf_calls_by_kind": {"query": 2},
        "lg_api_calls": 5,
        "lg_calls_by_kind": {"getLeads": 5},
    }


def context(start: datetime | None, end: datetime | None) -> dict[str, Any]:
    return {"data_interval_start": start, "data_interval_end": end, "params": {}}


def test_dependent_dags_wait_until_the_people_sync_covered_their_window(state) -> None:
    from crm_sync.runtime import shared_store

    dag = "sync_opportunities"
    assert upstream_synced(dag, context(None, None))  # no interval: nothing to wait for
    window = context(H - timedelta(hours=1), H)
    assert not upstream_synced(dag, window)
    shared_store().advance_watermark("sync_leads_contacts", "people", H, "r1")
    assert upstream_synced(dag, window)
    assert upstream_synced("sync_leads_contacts", window)  # waits for nobody


# -- the preflight gate and the backup in front of every write ------------------------------
STAGE_CALLS: list[str] = []


def _stage(name: str):
    def run(rt: TaskRuntime) -> dict[str, Any]:
        STAGE_CALLS.append(name)
        return {"ran": name}

    return run


FAKE = SyncDefinition(
    dag_id="sync_fake",
    stream="fake",
    domain="fake",
    link_domains=(),
    spec_names={},
    directions=(),
    stages={n: _stage(n) for n in ("prepare", "extract", "load", "load_leadgen", "record")},
)


@pytest.fixture
def fake_dag(monkeypatch, make_ctx, state):
    """``sync_fake`` registered; a run of it started; backups required (the default)."""
    from crm_sync import tasks

    real = tasks.get_definition
    monkeypatch.setattr(tasks, "get_definition", lambda d: FAKE if d == "sync_fake" else real(d))
    monkeypatch.delenv("CRM_SYNC_REQUIRE_BACKUP", raising=False)
    STAGE_CALLS.clear()

    def start(**kw: Any) -> dict[str, Any]:
        ctx = make_ctx("sync_fake", **kw)
        rt = TaskRuntime(FAKE, "extract", ctx=ctx)
        rt.store.start_run(
            "sync_fake", ctx.run_id, window_start=H, window_end=H, dry_run=ctx.dry_run,
            full_resync=False,
        )  # fmt: skip
        return {"ctx": ctx.to_dict(), "summary": {}}

    return start


def test_only_the_load_stages_count_as_writes() -> None:
    assert [t for t in FAKE.stages if FAKE.writes(t)] == ["load", "load_leadgen"]
    people = get_definition("sync_leads_contacts")
    assert [t for t in people.stages if people.writes(t)] == ["load_leadgen", "load_salesforce"]


def test_a_load_stage_does_not_start_without_a_backup(fake_dag) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from crm_sync.backup import NO_BACKUP
    from crm_sync.tasks import run_stage

    prepared = fake_dag()
    assert run_stage("sync_fake", "extract", prepared)["ran"] == "extract"  # reads need none
    for task in ("load", "load_leadgen"):
        with pytest.raises(AirflowFailException, match="ConfigError") as err:
            run_stage("sync_fake", task, prepared)
        assert NO_BACKUP.splitlines()[0] in str(err.value)
    assert STAGE_CALLS == ["extract"]


def test_a_dry_run_or_a_waiver_loads_without_a_backup(fake_dag, monkeypatch) -> None:
    from crm_sync.tasks import run_stage

    assert run_stage("sync_fake", "load", fake_dag(dry_run=True))["ran"] == "load"
    monkeypatch.setenv("CRM_SYNC_REQUIRE_BACKUP", "false")
    assert run_stage("sync_fake", "load", fake_dag(run_id="manual__2"))["ran"] == "load"
    assert STAGE_CALLS == ["load", "load"]


def test_prepare_passes_the_gate_and_ensures_a_backup_before_its_stage(
    fake_dag, monkeypatch
) -> None:
    """The gate's and the backup's results reach prepare's summary; a failed gate stops the run
    before the DAG's prepare stage; a dry run asks for no backup."""
    import crm_sync.backup
    import crm_sync.preflight
    from crm_sync import tasks

    seen: list[Any] = []
    monkeypatch.setattr(crm_sync.preflight, "gate", lambda rt: {"preflight": "passed earlier"})
    monkeypatch.setattr(
        crm_sync.backup,
        "ensure_backup",
        lambda rt, *, writes: seen.append(writes) or {"backup": "b1", "taken": False},
    )
    monkeypatch.setattr(tasks, "run_context", lambda d, c, s: tasks.RunContext.from_dict(c["x"]))
    ctx = fake_dag()["ctx"]
    out = tasks.run_prepare("sync_fake", {"params": {}, "x": ctx})
    assert out["summary"]["preflight"] == "passed earlier" and out["summary"]["backup"] == "b1"
    dry = fake_dag(dry_run=True, run_id="manual__3")["ctx"]
    tasks.run_prepare("sync_fake", {"params": {}, "x": dry})
    assert seen == [True, False] and STAGE_CALLS == ["prepare", "prepare"]

    def failed(rt: Any) -> dict[str, Any]:
        raise ConfigError("preflight failed:\n- Modify All Data: ...")

    monkeypatch.setattr(crm_sync.preflight, "gate", failed)
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="Modify All Data"):
        tasks.run_prepare("sync_fake", {"params": {}, "x": ctx})
    assert STAGE_CALLS == ["prepare", "prepare"]
