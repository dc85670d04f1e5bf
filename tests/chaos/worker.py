"""A worker for kill -9 tests: runs one DAG run task by task, each attempt in its own process,
and kills attempts with SIGKILL where a test says.

It does what an Airflow worker does with a task, minus the scheduler: the task process is forked
from a warm parent (Airflow's task runner forks its task process too), calls the DAG file's own
task function (``task.python_callable``) inside an Airflow task context, with the upstream
tasks' return values as arguments, JSON round-tripped as XCom stores them; a task that fails or
dies is tried again up to ``retries`` times, and a task that fails for good gets its
``on_failure_callback`` (which frees the DAG's lease) and fails the run.

How an attempt dies (:class:`Kill`):

* ``boundary``: the task did all its work and returned, and is killed before it can report
  success (the worker stops between the end of ``execute`` and the state update);
* ``when``: the parent polls a sandbox counter (the write logs) while the task runs and kills it
  as soon as the counter reaches a threshold: mid-load, after k of n write batches;
* ``in_transaction``: the task kills itself inside its n-th state-store transaction that wrote
  something, after the writes and before the COMMIT (SQLAlchemy's ``commit`` event fires before
  the database commits): what a kill does to the SQLite state store mid-transaction.

Nothing here is a code path of the library: the library runs unchanged in the task process.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

log = logging.getLogger(__name__)

FORK = multiprocessing.get_context("fork")
TASK_TIMEOUT = 300.0


@dataclass(frozen=True)
class Kill:
    """How one attempt of a task dies (see the module docstring)."""

    how: str  # "boundary" | "when" | "in_transaction"
    probe: Callable[[], int] | None = None
    threshold: int = 1
    nth: int = 1
    match: str | None = None
    # around the attempt, in the worker (e.g. slow a sandbox down so a kill lands mid-load)
    setup: Callable[[], None] | None = None
    teardown: Callable[[], None] | None = None

    @classmethod
    def boundary(cls) -> Kill:
        return cls("boundary")

    @classmethod
    def when(
        cls,
        probe: Callable[[], int],
        threshold: int = 1,
        *,
        setup: Callable[[], None] | None = None,
        teardown: Callable[[], None] | None = None,
    ) -> Kill:
        return cls("when", probe=probe, threshold=threshold, setup=setup, teardown=teardown)

    @classmethod
    def in_transaction(cls, nth: int, match: str | None = None) -> Kill:
        """Inside the ``nth`` writing state-store transaction (counting only those with a
        write whose SQL and parameters contain ``match``, when given)."""
        return cls("in_transaction", nth=nth, match=match)


@dataclass
class Attempt:
    task_id: str
    try_number: int
    outcome: str  # success | killed | failed
    kill: str | None = None
    at_kill: int | None = None  # the probe's value when a "when" kill was sent
    error: str | None = None


@dataclass
class RunResult:
    state: str
    outputs: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)

    def kills(self) -> list[Attempt]:
        return [a for a in self.attempts if a.outcome == "killed"]


@dataclass(frozen=True)
class RunSpec:
    """One DAG run as the scheduler would create it."""

    run_id: str
    run_type: str  # "scheduled" | "manual"
    run_after: datetime
    interval: tuple[datetime, datetime] | None = None
    conf: dict[str, Any] = field(default_factory=dict)


def _context(dag: Any, task: Any, spec: RunSpec, try_number: int) -> dict[str, Any]:
    params = {k: dag.params[k] for k in dag.params}
    params.update(spec.conf)
    start, end = spec.interval or (None, None)
    dag_run = SimpleNamespace(
        dag_id=dag.dag_id,
        run_id=spec.run_id,
        run_type=spec.run_type,
        logical_date=start,
        run_after=spec.run_after,
        conf=spec.conf,
    )
    ti = SimpleNamespace(
        dag_id=dag.dag_id, task_id=task.task_id, run_id=spec.run_id, try_number=try_number
    )
    return {
        "dag": dag,
        "task": task,
        "params": params,
        "dag_run": dag_run,
        "run_id": spec.run_id,
        "logical_date": start,
        "data_interval_start": start,
        "data_interval_end": end,
        "ti": ti,
        "task_instance": ti,
    }


def _kill_in_transaction(nth: int, match: str | None, database: str) -> None:
    """SIGKILL this process inside its ``nth`` state-store transaction that wrote a row (a row
    whose statement and parameters contain ``match``, when given), before its COMMIT."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    seen = {"wrote": False, "count": 0}

    def ours(conn: Any) -> bool:
        return str(conn.engine.url.database or "") == database

    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        writes = statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        if ours(conn) and writes and (match is None or match in f"{statement} {parameters}"):
            seen["wrote"] = True

    @event.listens_for(Engine, "commit")
    def _commit(conn: Any) -> None:
        if ours(conn) and seen["wrote"]:
            seen["count"] += 1
            if seen["count"] == nth:
                os.kill(os.getpid(), signal.SIGKILL)
        seen["wrote"] = False


def _task_process(
    pipe: Any, dag: Any, task: Any, args: list[Any], context: dict, kill: Any
) -> None:
    """The body of one attempt, in the forked task process."""
    from airflow.sdk.execution_time.context import set_current_context

    if kill is not None and kill.how == "in_transaction":
        _kill_in_transaction(kill.nth, kill.match, state_database())
    try:
        with set_current_context(context):
            out = task.python_callable(*args)
        message: tuple[str, Any] = ("done", json.loads(json.dumps(out, default=str)))
    except BaseException as exc:  # the task failed: report it as the task runner would
        message = ("error", f"{type(exc).__name__}: {exc}")
    pipe.send(message)
    pipe.recv()  # wait until the worker has recorded the outcome (a boundary kill lands here)


def _warm_up(dag_id: str) -> None:
    """Import every stage module of the DAG in the parent, so each forked task process starts
    with them loaded, as a worker that has run the DAG before does (pandas and Great
    Expectations take seconds to import)."""
    import importlib

    from crm_sync.definitions import get_definition

    for stage in get_definition(dag_id).stages.values():
        module = stage.__qualname__.split(":")[0] if ":" in stage.__qualname__ else None
        if module:
            importlib.import_module(module)


def state_database() -> str:
    """Path of this test's SQLite state store (``AIRFLOW_CONN_SYNC_STATE``)."""
    url = os.environ["AIRFLOW_CONN_SYNC_STATE"]
    return url.removeprefix("sqlite:///")


class Worker:
    """Runs DAG runs task by task (see the module docstring)."""

    def __init__(self, dag: Any, *, retries: int | None = None, poll: float = 0.01):
        self.dag = dag
        self.retries = retries
        self.poll = poll
        _warm_up(dag.dag_id)

    def run(self, spec: RunSpec, kills: dict[str, list[Kill | None]] | None = None) -> RunResult:
        """Run every task in dependency order; ``kills[task_id]`` says how its attempts die
        (one entry per attempt; ``None`` or no entry: the attempt runs to its end)."""
        kills = kills or {}
        result = RunResult("running", {})
        for task in self.dag.topological_sort():
            retries = task.retries if self.retries is None else self.retries
            plan = list(kills.get(task.task_id, []))
            for try_number in range(1, retries + 2):
                kill = plan[try_number - 1] if try_number <= len(plan) else None
                if kill is not None and kill.setup is not None:
                    kill.setup()
                try:
                    attempt = self._attempt(task, spec, try_number, kill, result.outputs)
                finally:
                    if kill is not None and kill.teardown is not None:
                        kill.teardown()
                result.attempts.append(attempt)
                if attempt.outcome == "success" or "AirflowFailException" in (attempt.error or ""):
                    break
            if attempt.outcome != "success":
                self._failure_callbacks(task, spec, try_number, attempt)
                result.state = "failed"
                return result
        result.state = "success"
        return result

    def _attempt(
        self, task: Any, spec: RunSpec, try_number: int, kill: Kill | None, outputs: dict
    ) -> Attempt:
        from crm_sync.runtime import close_stores

        args = [outputs[a.operator.task_id] for a in getattr(task, "op_args", ())]
        context = _context(self.dag, task, spec, try_number)
        close_stores()  # the task process opens its own connections
        ours, theirs = FORK.Pipe()
        proc = FORK.Process(
            target=_task_process, args=(theirs, self.dag, task, args, context, kill), daemon=True
        )
        proc.start()
        theirs.close()
        attempt = Attempt(task.task_id, try_number, "failed", kill.how if kill else None)
        deadline = time.monotonic() + TASK_TIMEOUT
        message = None
        while time.monotonic() < deadline:
            if ours.poll(self.poll):
                try:
                    message = ours.recv()
                except EOFError:  # it died (killed itself inside a transaction)
                    message = None
                break
            if kill is not None and kill.how == "when" and kill.probe is not None:
                value = kill.probe()
                if value >= kill.threshold:
                    os.kill(proc.pid, signal.SIGKILL)
                    attempt.at_kill = value
                    break
            if not proc.is_alive():
                break
        else:
            os.kill(proc.pid, signal.SIGKILL)
            attempt.error = f"timed out after {TASK_TIMEOUT:.0f} s"
        if (
            message is not None
            and message[0] == "done"
            and (kill is None or kill.how != "boundary")
        ):
            ours.send("exit")
            if getattr(task, "poke_interval", None) is not None and message[1] is not True:
                attempt.error = "sensor not satisfied"  # a poke that says "not yet"
            else:
                outputs[task.task_id] = message[1]
                attempt.outcome = "success"
        elif message is not None and message[0] == "error":
            ours.send("exit")
            attempt.error = message[1]
        else:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)
            attempt.outcome = "killed"
        proc.join(30)
        ours.close()
        log.info(
            "%s.%s try %d: %s%s",
            self.dag.dag_id,
            task.task_id,
            try_number,
            attempt.outcome,
            f" ({attempt.kill}, probe at {attempt.at_kill})" if attempt.kill else "",
        )
        return attempt

    def _failure_callbacks(
        self, task: Any, spec: RunSpec, try_number: int, attempt: Attempt
    ) -> None:
        """What Airflow does when a task has failed for good (a killed one included): its
        ``on_failure_callback`` runs (for the sync DAGs: alert, and free the DAG's lease)."""
        from crm_sync.runtime import close_stores

        close_stores()
        context = _context(self.dag, task, spec, try_number)
        context["exception"] = RuntimeError(attempt.error or f"task {attempt.outcome}")
        for callback in task.on_failure_callback or []:
            notify = getattr(callback, "notify", callback)
            notify(context)
