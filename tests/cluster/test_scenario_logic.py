"""The cluster scenario's judgement, without a cluster: what counts as a problem, which runs are
ours, when a task log counts as served by a worker, and the data checks on made-up records."""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from scripts.cluster import scenario
from scripts.cluster.api import wait_for
from scripts.cluster.data import _people_checks
from scripts.cluster.scenario import Outcome, RunResult
from scripts.cluster.services import Supervisor

pytestmark = pytest.mark.unit


def good_outcome() -> Outcome:
    runs = [
        RunResult(d, "cluster__1", "manual", "success", "2026-12-03T07:00:00Z", 8)
        for d in scenario.DAG_IDS
    ]
    runs += [
        RunResult(
            scenario.PEOPLE_DAG,
            f"backfill__{h}",
            "backfill",
            "success",
            f"2026-12-03T0{h}:00:00Z",
            9,
        )
        for h in (4, 5, 6)
    ]
    return Outcome(
        runs=runs,
        tasks_by_worker={"worker-1": 20, "worker-2": 31},
        log_files_by_worker={"worker-1": 20, "worker-2": 31},
        remote_log_ok=True,
        verify={"ok": True, "checks": {}},
        run_storage="s3://crm_sync_runs@crm-sync-runs/runs",
        run_files={d: 40 for d in scenario.DAG_IDS},
    )


def test_a_clean_outcome_has_no_problems() -> None:
    outcome = good_outcome()
    assert outcome.ok and outcome.problems == []
    assert outcome.as_dict()["ok"] is True


@pytest.mark.parametrize(
    "spoil, problem",
    [
        (lambda o: setattr(o.runs[0], "state", "failed"), "sync_leads_contacts cluster__1: failed"),
        (lambda o: o.runs.pop(), "expected 6 runs, saw 5"),
        (lambda o: o.tasks_by_worker.update({"worker-2": 0}), "worker-2 ran no task"),
        (lambda o: o.log_files_by_worker.update({"worker-1": 0}), "worker-1 wrote no task log"),
        (
            lambda o: setattr(o, "remote_log_ok", False),
            "the api-server could not show a task log from each worker",
        ),
        (lambda o: o.verify.update({"ok": False}), "data checks failed"),
        (
            lambda o: o.run_files.pop("sync_opportunities"),
            "sync_opportunities: no run files in s3://crm_sync_runs@crm-sync-runs/runs",
        ),
        (
            lambda o: o.local_run_files.append("/w1/crm_sync/runs/d/r/report.json"),
            "run files on a process's own disk: ['/w1/crm_sync/runs/d/r/report.json']",
        ),
    ],
)
def test_each_problem_is_named(spoil, problem: str) -> None:
    outcome = good_outcome()
    spoil(outcome)
    assert outcome.problems == [problem]
    assert not outcome.ok
    assert f"PROBLEM: {problem}" in scenario.summary(outcome)


def test_our_runs_are_the_triggered_ones_and_the_backfill() -> None:
    first = datetime(2026, 12, 3, 4, tzinfo=UTC)
    runs = {
        "sync_leads_contacts": [
            {
                "dag_run_id": "cluster__1",
                "run_type": "manual",
                "logical_date": "2026-12-03T07:00:00Z",
            },
            {
                "dag_run_id": "backfill__a",
                "run_type": "backfill",
                "logical_date": "2026-12-03T05:00:00Z",
            },
            {
                "dag_run_id": "backfill__old",
                "run_type": "backfill",
                "logical_date": "2026-12-02T05:00:00Z",
            },
            {
                "dag_run_id": "scheduled__x",
                "run_type": "scheduled",
                "logical_date": "2026-12-03T08:00:00Z",
            },
        ],
        "sync_opportunities": [
            {
                "dag_run_id": "cluster__1",
                "run_type": "manual",
                "logical_date": "2026-12-03T07:00:00Z",
            },
            {
                "dag_run_id": "backfill__b",
                "run_type": "backfill",
                "logical_date": "2026-12-03T05:00:00Z",
            },
        ],
        "sync_engagement_activities": [],
    }
    c = SimpleNamespace(api=SimpleNamespace(runs=lambda d: runs[d]))
    manual = [("sync_leads_contacts", "cluster__1"), ("sync_opportunities", "cluster__1")]
    got = [r["dag_run_id"] for r in scenario._our_runs(c, manual, first)]
    assert got == ["cluster__1", "backfill__a", "cluster__1"]


def _cluster_with_log(events: list) -> SimpleNamespace:
    return SimpleNamespace(
        ports=SimpleNamespace(worker_logs=8793), api=SimpleNamespace(task_log=lambda *a: events)
    )


def test_a_task_log_counts_only_when_read_from_that_worker() -> None:
    ti = ("d", "r", "t", 1)
    served = [
        {"event": "::group::Log message source details"},
        {"event": "http://127.0.0.2:8793/log/dag_id=d/run_id=r/task_id=t/attempt=1.log"},
        {"event": "DAG bundles loaded", "timestamp": "2026-12-03T08:00:00Z"},
    ]
    assert scenario._log_served_by(_cluster_with_log(served), "127.0.0.2", ti)
    assert not scenario._log_served_by(_cluster_with_log(served), "127.0.0.3", ti)
    unreachable = [{"event": "Could not read served logs: connection refused"}]
    assert not scenario._log_served_by(_cluster_with_log(unreachable), "127.0.0.2", ti)
    assert not scenario._log_served_by(
        _cluster_with_log(served[:2]), "127.0.0.2", ti
    )  # no task lines


def people(*rows: tuple[str, str | None, str | None]) -> list[dict]:
    return [{"Id": i, "Email": e, "LeadGen_Id__c": lg} for i, e, lg in rows]


def test_people_checks_pass_when_everyone_is_linked_or_quarantined() -> None:
    leads = {str(n): {"id": str(n)} for n in range(1, 41)}
    sf = people(
        *[(f"00Q{n}", f"p{n}@x.example", str(n)) for n in range(1, 40)], ("003X", None, "hash")
    )
    checks = _people_checks(leads, sf, {"lg:40", "sf:003X"})
    assert all(c["ok"] for c in checks.values()), checks
    assert checks["every lead is linked to a Salesforce record or quarantined"]["quarantined"] == 1


def test_people_checks_name_what_is_lost() -> None:
    leads = {"1": {}, "2": {}, "3": {}}
    sf = people(
        ("00Q1", "a@x.example", "1"), ("00Q9", "b@x.example", None), ("00Q8", "c@x.example", "77")
    )
    checks = _people_checks(leads, sf, set())
    lost_leads = checks["every lead is linked to a Salesforce record or quarantined"]
    assert (lost_leads["ok"], lost_leads["lost"]) == (False, ["2", "3"])
    lost_people = checks["every Salesforce person is linked to a lead or quarantined"]
    assert (lost_people["ok"], lost_people["lost"]) == (False, ["00Q9", "00Q8"])


def test_people_checks_fail_when_too_much_is_quarantined() -> None:
    leads = {str(n): {} for n in range(1, 11)}
    sf = people(*[(f"00Q{n}", f"p{n}@x.example", str(n)) for n in range(1, 9)])
    checks = _people_checks(leads, sf, {"lg:9", "lg:10"})  # 2 of 18 = 11 %
    assert checks["every lead is linked to a Salesforce record or quarantined"]["ok"]
    assert checks["quarantined people stay under 5 %"] == {"ok": False, "share": 0.1111}


def test_wait_for_returns_the_value_or_names_what_it_waited_for() -> None:
    answers = iter([None, 0, {"ready": True}])
    assert wait_for("x", lambda: next(answers), timeout=5, interval=0) == {"ready": True}
    with pytest.raises(TimeoutError, match="waiting for the moon"):
        wait_for("the moon", lambda: None, timeout=0.05, interval=0.01)


def test_supervisor_stops_whole_process_groups(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path / "logs")
    # a parent that ignores SIGTERM and has a child: both must be gone after stop()
    script = "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); print('up', flush=True); time.sleep(600)"
    sup.start(
        "stubborn",
        [sys.executable, "-c", script],
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path / "w",
    )
    for _ in range(100):
        if "up" in sup.log_of("stubborn"):
            break
        time.sleep(0.05)
    pgid = sup.procs[0].proc.pid
    assert sup.dead() == []
    sup.stop(timeout=0.5)
    # (this machine's init is slow to reap, so killed children may linger as zombies)
    import psutil

    alive = [
        p.pid
        for p in psutil.process_iter(["status"])
        if _pgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE
    ]
    assert alive == [] and sup.procs == []


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_verify_prefers_the_library_checker_when_it_exists(monkeypatch, tmp_path: Path) -> None:
    calls = []

    def fake_child(c, argv, log_name):
        calls.append(argv)
        return (
            (3, {"checks": {"x": {"ok": False}}})
            if "crm_sync.verify" in argv
            else (0, {"ok": True})
        )

    monkeypatch.setattr(scenario, "_child_json", fake_child)
    c = SimpleNamespace(layout=SimpleNamespace(root=tmp_path))
    real_find_spec = scenario.importlib.util.find_spec
    monkeypatch.setattr(
        scenario.importlib.util,
        "find_spec",
        lambda name: object() if name == "crm_sync.verify" else real_find_spec(name),
    )
    assert scenario.verify(c, {"form_emails": []}) == (
        "crm_sync.verify",
        {"checks": {"x": {"ok": False}}, "ok": False},  # its exit code decides
    )
    monkeypatch.setattr(scenario.importlib.util, "find_spec", lambda name: None)
    assert scenario.verify(c, {"form_emails": ["a@x"]}) == (
        "scripts.cluster.data verify",
        {"ok": True},
    )
    assert calls[0] == ["-m", "crm_sync.verify"]
    assert calls[1][:3] == ["-m", "scripts.cluster.data", "verify"]
    assert (tmp_path / "expect.json").read_text() == '{"form_emails": ["a@x"]}'
