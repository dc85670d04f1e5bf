"""Backups end to end: the ``crm_sync_backup`` DAG exports seeded sandboxes into one gzip file per
object whose record counts, ids and checksums match what the sandboxes hold and what the
manifest says, writing nothing to either system; and with a real task runtime of a sync DAG, no
write may start before a backup exists: the first writing run takes it, later runs reuse it,
``CRM_SYNC_REQUIRE_BACKUP=false`` waives it loudly."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

SF_OBJECTS = ("Lead", "Contact", "Account", "Opportunity")
LG_OBJECTS = ("lead", "opportunity", "account")


@pytest.fixture(autouse=True)
def _backups_required(fresh: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default these tests are about (the other e2e tests waive it)."""
    monkeypatch.setenv("CRM_SYNC_REQUIRE_BACKUP", "true")


def seed(fresh: Any) -> None:
    """Salesforce: a few hundred records of each kind (some in the recycle bin); Lead Gen & CRM:
    leads (two inactive), accounts and opportunities."""
    fresh.sf.post("seed", {"n": 600, "seed": 7})
    fresh.lg.post("seed", {"leads": 250, "inactive": 2, "activity_leads": 0})
    from crm_sync.runtime import leadgen_client

    lg = leadgen_client()
    [stage] = lg.create_deal_stages([{"dealStageName": "Discovery"}])
    accounts = lg.create_accounts([{"accountName": f"Account {i}"} for i in range(3)])
    lg.create_opportunities(
        [
            {"opportunityName": f"Deal {i}", "dealStageID": stage.id, "accountID": accounts[0].id}
            for i in range(4)
        ]
    )
    fresh.lg.post("calls/reset")


def rows(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def sf_ids(sobject: str) -> set[str]:
    from crm_sync.runtime import salesforce_client

    return {r["Id"] for r in salesforce_client().query(f"SELECT Id FROM {sobject}")}


def test_the_backup_dag_exports_what_the_sandboxes_hold(fresh, dags) -> None:
    seed(fresh)
    run = dags["crm_sync_backup"].test()
    assert str(getattr(run.state, "value", run.state)) == "success"
    backups = Path(os.environ["CRM_SYNC_HOME"]) / "backups"
    [folder] = [p for p in backups.iterdir()]
    manifest = json.loads((folder / "manifest.json").read_text())
    files = {f["file"]: f for f in manifest["files"]}
    expected = [f"salesforce-{o}.jsonl.gz" for o in SF_OBJECTS]
    expected += [f"leadgen-{o}.jsonl.gz" for o in LG_OBJECTS]
    assert sorted(files) == sorted(expected)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*expected, "manifest.json"])

    for name, entry in files.items():  # checksums and counts match the files
        data = (folder / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
        assert len(rows(folder / name)) == entry["records"]

    for sobject in SF_OBJECTS:  # the records Salesforce holds (recycle bin excluded), by id
        exported = rows(folder / f"salesforce-{sobject}.jsonl.gz")
        assert {r["Id"] for r in exported} == sf_ids(sobject) and exported
        assert set(files[f"salesforce-{sobject}.jsonl.gz"]["fields"]) <= set(exported[0])
    lead_fields = files["salesforce-Lead.jsonl.gz"]["fields"]
    assert {"LeadGen_Id__c", "LeadGen_Score__c", "Product_Interest__c"} <= set(lead_fields)

    stats = fresh.lg.get("stats")
    assert files["leadgen-lead.jsonl.gz"]["records"] == stats["leads"] - 2  # active leads
    assert files["leadgen-account.jsonl.gz"]["records"] == stats["accounts"] == 3
    assert files["leadgen-opportunity.jsonl.gz"]["records"] == stats["opportunities"] == 4
    assert "emailAddress" in files["leadgen-lead.jsonl.gz"]["fields"]

    assert manifest["salesforce"]["org_id"] == fresh.sf.get("health")["org_id"]
    assert manifest["leadgen"]["account_id"] == "SANDBOXACCOUNT"
    assert manifest["records"] == sum(f["records"] for f in files.values())
    assert manifest["started_at"] <= manifest["finished_at"]
    # read only on both systems
    assert fresh.sf.get("writes")["total"] == 0
    lg_methods = fresh.lg.get("calls")["by_method"]
    assert set(lg_methods) == {"getLeads", "getOpportunities", "getAccounts"}


def test_the_backup_location_is_configurable(fresh, dags, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CRM_SYNC_BACKUP_DIR", str(tmp_path / "vault"))
    run = dags["crm_sync_backup"].test()
    assert str(getattr(run.state, "value", run.state)) == "success"
    [folder] = list((tmp_path / "vault").iterdir())
    assert (folder / "manifest.json").is_file()


def test_no_write_before_a_backup(fresh, monkeypatch, caplog) -> None:
    from crm_sync.backup import NO_BACKUP, ensure_backup, list_backups, require_backup
    from crm_sync.definitions import get_definition
    from crm_sync.errors import ConfigError
    from crm_sync.tasks import TaskRuntime

    seed(fresh)
    definition = get_definition("sync_leads_contacts")
    with TaskRuntime(definition, "load_salesforce") as rt:
        with pytest.raises(ConfigError) as err:
            require_backup(rt.conn_ids)
        assert str(err.value) == NO_BACKUP

    with TaskRuntime(definition, "prepare") as rt:  # a dry run writes nothing: no backup needed
        assert ensure_backup(rt, writes=False)["backup"] == "not needed (no write)"
    assert list_backups() == [] and fresh.sf.get("calls")["total"] == 0

    with TaskRuntime(definition, "prepare") as rt:  # the first run that writes takes one
        first = ensure_backup(rt, writes=True)
    assert first["taken"] is True and first["records"] > 0
    bulk_calls = fresh.sf.get("calls")["by_kind"]["bulk2"]

    with TaskRuntime(definition, "load_salesforce") as rt:
        assert str(require_backup(rt.conn_ids).path) == first["backup"]
    with TaskRuntime(definition, "prepare") as rt:  # later runs reuse it
        assert ensure_backup(rt, writes=True) == {"backup": first["backup"], "taken": False}
    assert fresh.sf.get("calls")["by_kind"]["bulk2"] == bulk_calls
    assert fresh.sf.get("writes")["total"] == 0

    # another Lead Gen & CRM account is another pair of systems: its first write needs a backup
    lg_conn = json.loads(os.environ["AIRFLOW_CONN_LEADGEN_DEFAULT"])
    monkeypatch.setenv(
        "AIRFLOW_CONN_LEADGEN_DEFAULT", json.dumps({**lg_conn, "login": "OTHERACCOUNT"})
    )
    with pytest.raises(ConfigError):
        require_backup()
    monkeypatch.setenv("CRM_SYNC_REQUIRE_BACKUP", "false")
    with caplog.at_level(logging.WARNING, logger="crm_sync.backup"):
        assert require_backup() is None
    assert "WITHOUT A BACKUP" in caplog.text


def test_a_sync_dag_backs_up_both_systems_before_its_first_write(fresh, dags) -> None:
    """The first writing run of a sync DAG takes the backup in ``prepare``, before any load: the
    Salesforce export does not hold the lead that run then creates; the next run reuses it."""
    from tests.e2e.helpers import H, freeze, lg_lead, run_dag, sf_find

    freeze(fresh, 30)
    lg_lead(
        fresh,
        emailAddress="first.write@example.com",
        firstName="Ada",
        lastName="First",
        companyName="Firstco",
    )
    out = run_dag(dags, "sync_leads_contacts", H, now=True)
    assert out.state == "success", out.task_states
    assert sf_find(fresh, "Lead", "first.write@example.com")  # the run did write
    backups = Path(os.environ["CRM_SYNC_HOME"]) / "backups"
    [folder] = list(backups.iterdir())
    lg_rows = rows(folder / "leadgen-lead.jsonl.gz")
    sf_rows = rows(folder / "salesforce-Lead.jsonl.gz")
    assert [r["emailAddress"] for r in lg_rows] == ["first.write@example.com"]
    assert sf_rows == []

    bulk_calls = fresh.sf.get("calls")["by_kind"].get("bulk2", 0)
    out = run_dag(dags, "sync_leads_contacts", H + timedelta(hours=1), now=True)
    assert out.state == "success", out.task_states
    assert list(backups.iterdir()) == [folder]
    assert fresh.sf.get("calls")["by_kind"].get("bulk2", 0) == bulk_calls
