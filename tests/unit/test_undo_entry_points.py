"""Undo around the edges: the people sync's rule for links an undo marked ``undone``, the DAG
task's params and the command line."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from crm_sync.domains.people.lifecycle import linked_pair
from crm_sync.errors import ConfigError
from crm_sync.state.models import Link
from crm_sync.state.store import SyncStore
from crm_sync.undo import cli
from crm_sync.undo.dag_task import job_from

pytestmark = pytest.mark.unit

UNDONE_AT = datetime(2026, 12, 1, 12, 0)  # naive UTC, as the store keeps it


class Matcher(SimpleNamespace):
    """What the lifecycle handlers use of the people matcher."""

    def __init__(self, **records: dict[str, Any]):
        super().__init__(covered_lg=set(), covered_sf=set(), records=records)

    def lg_by_ids(self, ids: list[str]) -> dict[str, Any]:
        return {i: self.records[i] for i in ids if i in self.records}

    def sf_by_ids(self, ids: list[str]) -> dict[str, Any]:
        return {i: self.records[i] for i in ids if i in self.records}


def undone_link() -> Link:
    return Link(
        domain="person",
        lg_id="11",
        sf_object="Lead",
        sf_id="00Q000000000001AAA",
        status="undone",
        synced_values={},
        updated_at=UNDONE_AT,
    )


def lead(active: str = "1", updated: str = "2026-12-01 11:00:00") -> dict[str, Any]:
    return {"id": "11", "active": active, "leadStatus": "open", "updateTimestamp": updated}


SF_ALIVE = {"Id": "00Q000000000001AAA", "IsDeleted": False}
SF_DELETED = {"Id": "00Q000000000001AAA", "IsDeleted": True}


@pytest.mark.parametrize(
    "lg,sf",
    [
        (lead(), SF_DELETED),  # the undo deleted the Salesforce record; the lead is unchanged
        (lead(active="0", updated="2026-12-02 09:00:00"), SF_ALIVE),  # the undo deactivated it
    ],
)
def test_an_undone_pair_is_left_alone_until_the_lead_changes(lg, sf) -> None:
    assert linked_pair(Matcher(), lg, undone_link(), sf) is None


def test_a_lead_changed_after_the_undo_comes_back() -> None:
    later = lead(updated="2026-12-02 09:00:00")
    again = linked_pair(Matcher(), later, undone_link(), SF_ALIVE)
    assert again["link_change"]["kind"] == "undeleted"  # its Salesforce record is still there
    assert [e["event"] for e in again["events"]][:1] == ["undo_resumed"]
    fresh = linked_pair(Matcher(), later, undone_link(), SF_DELETED)
    assert fresh["link_change"] == {"kind": "relinked"} and fresh["match"] == "reactivated"
    # reached from the Salesforce side, the lead is read by id
    from_sf = linked_pair(Matcher(**{"11": later}), None, undone_link(), SF_ALIVE)
    assert from_sf["lg"] == later


def test_the_dag_task_needs_the_run_to_undo_and_is_a_dry_run_by_default() -> None:
    with pytest.raises(ConfigError, match="run_id"):
        job_from({"params": {"run_id": " "}, "run_id": "manual__u"})
    job = job_from({"params": {"run_id": "manual__bad"}, "run_id": "manual__u"})
    assert (job.target_dag, job.target_run, job.run_id) == (
        "sync_leads_contacts",
        "manual__bad",
        "manual__u",
    )
    assert job.dry_run and not job.delete_created


def test_the_command_line_prints_the_report_and_exits_1_when_writes_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import crm_sync.runtime
    import crm_sync.undo.service as service

    store = SyncStore(f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setattr(cli, "connect", lambda args, err: ({"state": "s"}, "sf", "lg", {}))
    monkeypatch.setattr(crm_sync.runtime, "shared_store", lambda conn_id: store)
    monkeypatch.setattr(service, "open_systems", lambda conn_ids, sf, lg: {})
    seen: dict[str, Any] = {}

    def execute(job: Any, store_: Any, systems: Any, before_write: Any) -> dict[str, Any]:
        seen["job"] = job
        report = {
            "target": {"dag_id": job.target_dag, "run_id": job.target_run},
            "dry_run": job.dry_run,
            "status": "dry_run",
            "undo": {"would_restore": 2, "conflict": 1},
            "entries": {"conflict": [{"record_id": "00Q1", "field": "Title", "now": "CEO"}]},
        }
        if job.delete_created:  # stands for a failed write: the report is on the run row
            store.finish_run(
                job.dag_id, job.run_id, status="failed", report={**report, "status": "failed"}
            )
            raise service.UndoIncomplete("1 writes failed")
        return report

    monkeypatch.setattr(service, "execute", execute)
    out = io.StringIO()
    assert cli.main(["--run-id", "manual__bad"], stdout=out, stderr=io.StringIO()) == 0
    assert seen["job"].dry_run and seen["job"].run_id.startswith("cli__")
    assert "would_restore: 2" in out.getvalue() and '"now": "CEO"' in out.getvalue()
    out = io.StringIO()
    code = cli.main(
        ["--run-id", "manual__bad", "--apply", "--delete-created", "--json"],
        stdout=out,
        stderr=io.StringIO(),
    )
    assert code == 1 and not seen["job"].dry_run
    assert json.loads(out.getvalue())["status"] == "failed"
    err = io.StringIO()
    monkeypatch.setattr(
        cli, "connect", lambda args, e: ({}, None, None, {"sf": ConfigError("no conn")})
    )
    assert cli.main(["--run-id", "x"], stdout=io.StringIO(), stderr=err) == 2
    assert "no conn" in err.getvalue()
    store.dispose()
