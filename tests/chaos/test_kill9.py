"""Kill -9 anywhere (issue 15): the three DAGs run task by task, each attempt in its own process
(``tests/chaos/worker.py``), and every task of every DAG is killed with SIGKILL at least once:

* at its boundary: after its work is done, before it could report success;
* the load tasks in the middle of their writes, after k of n write batches (the worker polls the
  sandbox's write log while the sandbox answers slowly, and kills when k batches are in);
* the record task inside a state-store transaction, after its writes and before the COMMIT.

Each killed attempt is retried as Airflow retries a task whose process died. Then an hourly run
whose load is killed in every attempt fails for good (its lease freed by the failure callback),
and the next hourly run catches up. After every round the invariant checker finds nothing, and
the write logs show no record created twice and nothing written again beyond the batch that was
in flight when its process died.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from crm_sync.backup.catalog import list_backups, verify_backup
from tests.chaos.conftest import leadgen_extras
from tests.chaos.helpers import (
    ENGAGE,
    H0,
    OPPS,
    PEOPLE,
    busy_hour,
    double_writes,
    freeze,
    report_figures,
    verify,
    violations,
)
from tests.chaos.worker import Kill, RunResult, RunSpec, Worker

pytestmark = pytest.mark.chaos

LG_BATCH = 50  # the leadgen connection's batch_size extra: several write calls per object
SF_BATCH = 200  # sObject Collections
SLOW_MS = 400  # the sandbox answers this slowly while a load is to be killed mid-way
# Each system's load task: the DAG's task that writes to it.
LOADS = {
    PEOPLE: {"load_leadgen": "leadgen", "load_salesforce": "salesforce"},
    OPPS: {"load_leadgen": "leadgen"},
    ENGAGE: {"load": "salesforce"},
}


class Sandboxes:
    """The sandboxes' write logs and call counters as kill probes, and latency switched on
    around an attempt to be killed mid-way (each call then takes ``SLOW_MS``: the kill lands
    while the next call is on its way)."""

    def __init__(self, fresh: Any):
        self.fresh = fresh

    def admin(self, system: str) -> Any:
        return self.fresh.sf if system == "salesforce" else self.fresh.lg

    def written(self, system: str) -> int:
        return int(self.admin(system).get("writes")["total"])

    def bulk_calls(self) -> int:
        return int(self.fresh.sf.get("calls")["by_kind"].get("bulk2", 0))

    def slow(self, system: str, on: bool) -> None:
        ms = SLOW_MS if on else 0
        if system == "salesforce":
            self.fresh.sf.post("faults", {"latency_ms": ms})
        else:
            self.fresh.lg.post("config", {"latency_ms": ms})

    def _after(self, system: str, counter: Callable[[], int], threshold: int) -> Kill:
        start = {"value": 0}

        def setup() -> None:
            start["value"] = counter()
            self.slow(system, True)

        return Kill.when(
            lambda: counter() - start["value"],
            threshold=threshold,
            setup=setup,
            teardown=lambda: self.slow(system, False),
        )

    def mid_load(self, system: str, batches: int = 1) -> Kill:
        """Kill once ``batches`` write batches of ``system`` are committed (from the start of
        the attempt): the next batch is then in flight."""
        size = SF_BATCH if system == "salesforce" else LG_BATCH
        return self._after(system, lambda: self.written(system), 1 + (batches - 1) * size)

    def mid_backup(self) -> Kill:
        """Kill once the backup's first Bulk API 2.0 query job is created and polled."""
        return self._after("salesforce", self.bulk_calls, 2)


def kill_everywhere(dag: Any, boxes: Sandboxes) -> dict[str, list[Kill | None]]:
    """Every task's first attempt killed at its boundary; a load's first attempt mid-load, its
    second at the boundary; the record's first inside a transaction, its second at the
    boundary; the people DAG's prepare first while it takes the backup. The last attempt
    (Airflow's second retry) runs to its end."""
    kills: dict[str, list[Kill | None]] = {t.task_id: [Kill.boundary()] for t in dag.tasks}
    for task_id, system in LOADS[dag.dag_id].items():
        kills[task_id] = [boxes.mid_load(system), Kill.boundary()]
    kills["record"] = [Kill.in_transaction(2), Kill.boundary()]  # 1: the lease; 2: its own
    if dag.dag_id == PEOPLE:  # the first writing run takes the backup
        kills["prepare"] = [boxes.mid_backup(), Kill.boundary()]
    return kills


def scheduled(end: Any) -> RunSpec:
    return RunSpec(f"scheduled__{end:%Y%m%dT%H}", "scheduled", end, (end - timedelta(hours=1), end))


def assert_killed_everywhere(result: RunResult, dag: Any) -> None:
    killed = {a.task_id for a in result.kills()}
    assert killed == set(dag.task_ids), f"not killed: {set(dag.task_ids) - killed}"
    for attempt in result.kills():
        if attempt.kill == "when":  # killed by the probe, mid-load: not before, not after
            assert attempt.at_kill is not None, attempt


def repeated_writes(fresh: Any, since: dict[str, int]) -> Counter:
    """Salesforce records written more than once since the log held ``since`` entries."""
    entries = fresh.sf.get("writes", entries=1)["entries"][since["salesforce"] :]
    return Counter(f"{e['object']}:{e['id']}" for e in entries if e["op"] != "deleted")


def test_kill_9_at_every_stage_boundary_and_mid_load_then_rerun_leaves_zero_violations(
    world, fresh, dags, monkeypatch
) -> None:
    leadgen_extras(monkeypatch, batch_size=LG_BATCH)
    boxes = Sandboxes(fresh)
    started = time.monotonic()
    figures: dict[str, Any] = {"runs": {}}

    def round_(name: str, dag_id: str, spec: RunSpec, kills: dict[str, list]) -> RunResult:
        """One run of ``dag_id`` by the worker, with its figures and the rewrite check."""
        before = {"salesforce": len(fresh.sf.get("writes", entries=1)["entries"])}
        began = time.monotonic()
        result = Worker(dags[dag_id]).run(spec, kills)
        repeats = {k: n for k, n in repeated_writes(fresh, before).items() if n > 1}
        figures["runs"][name] = {
            "state": result.state,
            "attempts": len(result.attempts),
            "killed": len(result.kills()),
            "mid_load": [a.at_kill for a in result.kills() if a.kill == "when"],
            "sf_rewritten": len(repeats),
            "seconds": round(time.monotonic() - began, 1),
        }
        # only the batch in flight when a load was killed may go out again (same values)
        assert len(repeats) <= SF_BATCH * sum(a.kill == "when" for a in result.kills()), repeats
        return result

    # 1. Initial load of each DAG (a full resync, triggered now), killed everywhere.
    freeze(fresh, H0 - timedelta(minutes=15))
    for dag_id in (PEOPLE, OPPS, ENGAGE):
        spec = RunSpec(f"manual__initial_{dag_id}", "manual", H0, None, {"full_resync": True})
        result = round_(f"initial {dag_id}", dag_id, spec, kill_everywhere(dags[dag_id], boxes))
        assert result.state == "success", result.attempts
        assert_killed_everywhere(result, dags[dag_id])
    code, lines, err = verify(world)
    assert (code, violations(lines)) == (0, []), (
        err,
        [f"{v['kind']}: {v.get('why')}" for v in violations(lines)][:40],
    )
    assert double_writes(fresh)["problems"] == []
    # the backup the killed prepare had started never counts; its retry took a whole one
    [backup] = list_backups()
    assert verify_backup(backup.path) == []
    figures["backups"] = {"complete": 1, "records": backup.manifest.get("records")}

    # 2. An hour of edits. Its people run is killed in every attempt of its Salesforce load
    # and fails for good (its failure callback frees the lease); the next hourly run catches
    # up. The opportunities run dies for good too, its last attempt right after Lead Gen & CRM
    # created the new opportunity (inside the transaction recording its link); the next hourly
    # run must not create it again. Engagement is killed mid-load and inside its record.
    hour = H0 + timedelta(hours=1)
    busy_hour(fresh, world, hour, random.Random(9))
    freeze(fresh, hour - timedelta(minutes=15))
    doomed = {"load_salesforce": [boxes.mid_load("salesforce")] + [Kill.boundary()] * 2}
    assert round_("people, load killed 3 times", PEOPLE, scheduled(hour), doomed).state == "failed"
    hour += timedelta(hours=1)
    freeze(fresh, hour - timedelta(minutes=15))
    assert round_("people, next hour", PEOPLE, scheduled(hour), {}).state == "success"
    lease, created = Kill.in_transaction(1), Kill.in_transaction(1, match="'opportunity'")
    doomed = {"load_leadgen": [lease, lease, created]}
    assert (
        round_("opportunities, load killed 3 times", OPPS, scheduled(hour), doomed).state
        == "failed"
    )
    # the first writing transaction of a task is its lease: the second is the stage's own
    kills = {
        "load": [boxes.mid_load("salesforce")],
        "record": [Kill.in_transaction(2)],
    }
    result = round_("engagement", ENGAGE, scheduled(hour), kills)
    assert result.state == "success" and {a.task_id for a in result.kills()} == set(kills)
    hour += timedelta(hours=1)
    freeze(fresh, hour - timedelta(minutes=15))
    assert round_("people, third hour", PEOPLE, scheduled(hour), {}).state == "success"
    kills = {"record": [Kill.in_transaction(2)]}
    result = round_("opportunities, next hour", OPPS, scheduled(hour), kills)
    assert result.state == "success" and result.kills(), result.attempts

    code, lines, err = verify(world)
    audit = double_writes(fresh)
    figures.update(
        {
            "violations": len(violations(lines)),
            "created": audit["created"],
            "double_writes": len(audit["problems"]),
            "kills": sum(r["killed"] for r in figures["runs"].values()),
            "seconds": round(time.monotonic() - started),
        }
    )
    report_figures("kill_9", figures)
    assert (code, violations(lines)) == (0, []), (
        err,
        [f"{v['kind']}: {v.get('why')}" for v in violations(lines)][:40],
    )
    assert audit["problems"] == []
