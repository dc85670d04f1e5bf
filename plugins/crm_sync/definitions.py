"""What a sync DAG is, as data: one frozen :class:`SyncDefinition` per DAG.

A domain package (``crm_sync.domains.<dag>``) declares its facts here — which stream its watermark
belongs to, which link domains and specs it uses, which quarantine directions it writes, what it
holds, which DAG it waits for — and names the function of each task. The generic task runner
(:mod:`crm_sync.tasks`) does the rest, the same way for every DAG. Cheap to import: DAG files
reach it at parse time only through :func:`get_definition` inside a task.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# A stage function: takes the task's ``crm_sync.tasks.TaskRuntime``, returns its XCom summary.
# (Typed loosely here: the runner imports this module, so this module must not import it.)
Stage = Callable[[Any], dict[str, Any]]

LG_TO_SF = "lg_to_sf"
SF_TO_LG = "sf_to_lg"


@dataclass(frozen=True)
class SyncDefinition:
    """One sync DAG's facts and stage functions (see the module docstring).

    ``stages`` maps each task id of the DAG (but ``prepare``'s context building and the sensor,
    which the runner owns) to the function that does the work; each takes the task's
    :class:`~crm_sync.tasks.TaskRuntime` and returns a small JSON-able summary for XCom.
    """

    dag_id: str
    stream: str  # the watermark's stream name
    domain: str  # the run's domain (quarantine rows, run context)
    link_domains: tuple[str, ...]  # state-store link domains this DAG writes
    spec_names: Mapping[str, str]  # Salesforce object -> mapping spec file name
    directions: tuple[str, ...]  # quarantine directions this DAG writes
    stages: Mapping[str, Stage] = field(default_factory=dict)
    held_kind: str | None = None  # state-store held items of this DAG
    waits_for: str | None = None  # DAG whose window must be synced before this one runs
    # Tasks that read or write the DAG's sync state for planning: they run under the DAG's
    # lease, one run at a time (a backfill beside a scheduled run waits its turn).
    exclusive: tuple[str, ...] = ()

    def writes(self, task: str) -> bool:
        """Whether ``task`` writes to a system: the load stages (``load``, ``load_<system>``),
        which need a backup first (``crm_sync.backup.require_backup``)."""
        return task == "load" or task.startswith("load_")

    def stage(self, name: str) -> Stage:
        try:
            return self.stages[name]
        except KeyError:
            raise KeyError(f"{self.dag_id} has no stage {name!r}") from None


def lazy(ref: str) -> Stage:
    """The stage function at ``"module:function"``, imported when the task runs, so a task
    imports only its own stage's dependencies."""
    module, name = ref.split(":")

    def run(rt: Any) -> dict[str, Any]:
        return getattr(importlib.import_module(module), name)(rt)

    run.__name__ = name
    run.__qualname__ = ref
    return run


# DAG id -> "module:attribute" of its definition; imported on first use.
REGISTRY = {
    "sync_leads_contacts": "crm_sync.domains.people:DEFINITION",
    "sync_opportunities": "crm_sync.domains.opportunities:DEFINITION",
    "sync_engagement_activities": "crm_sync.domains.engagement:DEFINITION",
}


def get_definition(dag_id: str) -> SyncDefinition:
    """The definition of ``dag_id`` (imports its domain package)."""
    try:
        module, attr = REGISTRY[dag_id].split(":")
    except KeyError:
        raise KeyError(
            f"no sync definition for DAG {dag_id!r}; known: {sorted(REGISTRY)}"
        ) from None
    definition = getattr(importlib.import_module(module), attr)
    if not isinstance(definition, SyncDefinition) or definition.dag_id != dag_id:
        raise TypeError(f"{REGISTRY[dag_id]} is not the SyncDefinition of {dag_id}")
    return definition
