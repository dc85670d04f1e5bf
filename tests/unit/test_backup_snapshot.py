"""Backups on the in-process fakes: the snapshot's files and manifest, streaming, a failed backup
leaving nothing, which backup counts, "no write before a backup", the waiver, the command line,
the demo call."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from crm_sync.backup import (
    NO_BACKUP,
    backup_now,
    ensure_backup,
    latest_backup,
    list_backups,
    require_backup,
    take_backup,
    verify_backup,
)
from crm_sync.backup import cli as backup_cli
from crm_sync.backup.snapshot import salesforce_fields
from crm_sync.errors import ConfigError
from crm_sync.preflight.facts import load_spec_set
from crm_sync.preflight.record import identity_key
from crm_sync.settings import MAPPINGS_DIR_DEFAULT
from tests.unit.test_preflight_fakes import FakeLeadGen, FakeSalesforce, Runtime

pytestmark = pytest.mark.unit

IDENTITY = {"salesforce": {"conn_id": "salesforce_default", "login": "u"}, "leadgen": {"account": "A"}}  # fmt: skip
OTHER = {"salesforce": {"conn_id": "salesforce_default", "login": "u"}, "leadgen": {"account": "B"}}  # fmt: skip


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CRM_SYNC_HOME", str(tmp_path / "crm_sync"))
    monkeypatch.delenv("CRM_SYNC_BACKUP_DIR", raising=False)
    monkeypatch.delenv("CRM_SYNC_REQUIRE_BACKUP", raising=False)
    return tmp_path


def systems(leads: int = 3) -> tuple[FakeSalesforce, FakeLeadGen]:
    sf, lg = FakeSalesforce(), FakeLeadGen()
    sf.exports = {
        "Lead": [
            {"Id": f"00Q{i}", "LastName": f"L{i}", "Email": f"l{i}@x.example"} for i in range(leads)
        ],  # fmt: skip
        "Contact": [{"Id": "003A", "LastName": "C"}],
        "Account": [],
        "Opportunity": [{"Id": "006A", "Name": "Deal", "Amount": "10.0"}],
    }
    lg.records = {
        "lead": [{"id": "1", "emailAddress": "a@x.example"}, {"id": "2", "title": "CTO"}],
        "opportunity": [{"id": "7", "opportunityName": "Deal"}],
        "account": [],
    }
    return sf, lg


def take(sf: Any, lg: Any, root: Path, identity: dict = IDENTITY):
    return take_backup(
        sf,
        lg,
        specs=load_spec_set(),
        location=root,
        identity=identity,
        identity_key=identity_key(identity),
    )


def read_rows(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_a_backup_holds_every_object_with_counts_checksums_and_ids(tmp_path: Path) -> None:
    sf, lg = systems()
    info = take(sf, lg, tmp_path / "b")
    files = {f["file"]: f for f in info.manifest["files"]}
    assert sorted(files) == sorted(
        [f"salesforce-{o}.jsonl.gz" for o in ("Lead", "Contact", "Account", "Opportunity")]
        + [f"leadgen-{o}.jsonl.gz" for o in ("lead", "opportunity", "account")]
    )
    assert sorted(p.name for p in info.path.iterdir()) == sorted([*files, "manifest.json"])
    for name, entry in files.items():
        data = (info.path / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
        assert entry["records"] == len(read_rows(info.path / name))
    assert files["salesforce-Lead.jsonl.gz"]["records"] == 3
    assert read_rows(info.path / "leadgen-lead.jsonl.gz")[1] == {"id": "2", "title": "CTO"}
    assert files["leadgen-lead.jsonl.gz"]["fields"] == ["id", "emailAddress", "title"]
    m = info.manifest
    assert m["records"] == 3 + 1 + 0 + 1 + 2 + 1 + 0
    assert m["salesforce"]["org_id"] == "00D5e0000000001EAA"
    assert m["leadgen"]["account_id"] == "SANDBOXACCOUNT"
    assert m["identity_key"] == identity_key(IDENTITY)
    assert m["started_at"] <= m["finished_at"]
    assert json.loads((info.path / "manifest.json").read_text()) == m
    assert verify_backup(info.path) == []


def test_every_mapped_salesforce_field_is_exported() -> None:
    fields = salesforce_fields(load_spec_set())
    assert set(fields) == {"Lead", "Contact", "Account", "Opportunity"}
    assert fields["Lead"][:2] == ["Id", "LastModifiedDate"]
    for name in ("Email", "LeadGen_Score__c", "Product_Interest__c", "LeadGen_Id__c", "LeadGen_URL__c", "OwnerId"):  # fmt: skip
        assert name in fields["Lead"]
    assert "AnnualRevenue" in fields["Account"] and "Probability" in fields["Opportunity"]


def test_a_field_the_user_cannot_see_is_listed_not_exported(tmp_path: Path) -> None:
    sf, lg = systems()
    del sf.describes["Lead"]["Customer_Tier__c"]
    entry = next(f for f in take(sf, lg, tmp_path).manifest["files"] if f["object"] == "Lead")
    assert entry["not_exported"] == ["Customer_Tier__c"]
    assert "Customer_Tier__c" not in entry["fields"]


def test_records_are_streamed_to_disk_while_they_are_read(tmp_path: Path) -> None:
    """The reader is a generator consumed row by row: while it is still yielding, the rows
    before are already in the gzip stream (nothing collects the whole object first)."""
    sf, lg = systems()
    seen_open: list[bool] = []

    def leads() -> Any:
        for i in range(5):
            partial = next(tmp_path.glob(".partial-*"))
            seen_open.append((partial / "leadgen-lead.jsonl.gz").exists())
            yield {"id": str(i)}

    lg.get_leads = leads  # type: ignore[method-assign]
    take(sf, lg, tmp_path)
    assert seen_open == [True] * 5


def test_a_failed_backup_leaves_nothing_behind(tmp_path: Path) -> None:
    sf, lg = systems()

    def broken() -> Any:
        yield {"id": "1"}
        raise ConnectionError("dropped")

    lg.get_accounts = broken  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        take(sf, lg, tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert list_backups(tmp_path) == []


def test_two_backups_in_one_second_get_two_folders(tmp_path: Path) -> None:
    sf, lg = systems()
    a, b = take(sf, lg, tmp_path), take(sf, lg, tmp_path)
    assert a.path != b.path and len(list_backups(tmp_path)) == 2


def test_verify_finds_a_changed_a_truncated_and_a_missing_file(tmp_path: Path) -> None:
    sf, lg = systems()
    info = take(sf, lg, tmp_path)
    lead = info.path / "salesforce-Lead.jsonl.gz"
    with gzip.open(lead, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"Id": "00Q0"}) + "\n")
    (info.path / "leadgen-opportunity.jsonl.gz").unlink()
    problems = verify_backup(info.path)
    assert "salesforce-Lead.jsonl.gz: sha256 differs from the manifest" in problems
    assert "salesforce-Lead.jsonl.gz: 1 records, manifest says 3" in problems
    assert "leadgen-opportunity.jsonl.gz: missing" in problems


def test_which_backup_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sf, lg = systems()
    assert latest_backup(identity_key(IDENTITY), location=tmp_path) is None
    first, second = take(sf, lg, tmp_path), take(sf, lg, tmp_path)
    (tmp_path / ".partial-20990101T000000Z").mkdir()  # an unfinished one never counts
    found = latest_backup(identity_key(IDENTITY), location=tmp_path)
    assert found is not None and found.path == second.path != first.path
    assert latest_backup(identity_key(OTHER), location=tmp_path) is None  # other systems
    # a spec that maps a new Salesforce field needs a new backup before that field is written
    folder = tmp_path / "mappings"
    shutil.copytree(MAPPINGS_DIR_DEFAULT, folder)
    text = (folder / "accounts.yaml").read_text()
    (folder / "accounts.yaml").write_text(
        text + "  - {leadgen: fax, salesforce: Fax, direction: pull}\n"
    )
    monkeypatch.setenv("CRM_SYNC_MAPPINGS_DIR", str(folder))
    assert latest_backup(identity_key(IDENTITY), location=tmp_path / "x") is None
    assert latest_backup(identity_key(IDENTITY), location=tmp_path) is None


def test_no_write_without_a_backup(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        require_backup(identity=IDENTITY, location=tmp_path)
    assert str(err.value) == NO_BACKUP
    assert "run crm_sync_backup or set CRM_SYNC_REQUIRE_BACKUP=false" in NO_BACKUP
    sf, lg = systems()
    info = take(sf, lg, tmp_path)
    assert require_backup(identity=IDENTITY, location=tmp_path).path == info.path


def test_the_waiver_is_logged_loudly_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CRM_SYNC_REQUIRE_BACKUP", "false")
    with caplog.at_level(logging.WARNING, logger="crm_sync.backup"):
        assert require_backup(identity=IDENTITY, location=tmp_path) is None
        assert require_backup(identity=IDENTITY, location=tmp_path) is None
        rt = Runtime()
        assert ensure_backup(rt, writes=True, identity=IDENTITY, location=tmp_path)["backup"].startswith("waived")  # fmt: skip
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and all("WITHOUT A BACKUP" in r.getMessage() for r in warnings)
    assert rt.opened == []


def test_the_first_writing_run_takes_the_backup_itself(tmp_path: Path) -> None:
    sf, lg = systems()
    dry = Runtime(sf, lg)
    assert ensure_backup(dry, writes=False, identity=IDENTITY, location=tmp_path) == {
        "backup": "not needed (no write)"
    }
    assert dry.opened == [] and list_backups(tmp_path) == []

    first = Runtime(sf, lg)
    out = ensure_backup(first, writes=True, identity=IDENTITY, location=tmp_path)
    assert out["taken"] is True and out["records"] == 8
    assert sf.calls["bulk Lead"] == 1 and lg.calls["getLeads"] == 1

    later = Runtime(sf, lg)
    out = ensure_backup(later, writes=True, identity=IDENTITY, location=tmp_path)
    assert out["taken"] is False and later.opened == []
    assert sf.calls["bulk Lead"] == 1


def test_backup_location_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_SYNC_BACKUP_DIR", str(tmp_path / "elsewhere"))
    sf, lg = systems()
    info = backup_now(sf, lg, identity=IDENTITY)
    assert info.path.parent == tmp_path / "elsewhere"


def test_backup_refuses_when_a_spec_does_not_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "mappings"
    shutil.copytree(MAPPINGS_DIR_DEFAULT, folder)
    (folder / "leads.yaml").write_text("version: 1\nkind: nonsense\n")
    monkeypatch.setenv("CRM_SYNC_MAPPINGS_DIR", str(folder))
    sf, lg = systems()
    with pytest.raises(ConfigError, match="leads.yaml"):
        backup_now(sf, lg, identity=IDENTITY, location=tmp_path / "b")
    assert sf.calls["bulk Lead"] == 0


# -- command line, DAG task, demo ---------------------------------------------------------------


def _cli(monkeypatch: pytest.MonkeyPatch, *argv: str, sf: Any = None, lg: Any = None):
    monkeypatch.setattr("crm_sync.preflight.cli.expose", lambda ids: None)
    monkeypatch.setattr("crm_sync.runtime.salesforce_client", lambda conn_id: sf)
    monkeypatch.setattr("crm_sync.runtime.leadgen_client", lambda conn_id: lg)
    monkeypatch.setattr(
        "crm_sync.backup.catalog.connection_identity", lambda conn_ids=None: IDENTITY
    )
    out, err = io.StringIO(), io.StringIO()
    return backup_cli.main(list(argv), stdout=out, stderr=err), out.getvalue(), err.getvalue()


def test_cli_takes_lists_and_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sf, lg = systems()
    root = str(tmp_path / "b")
    code, out, _ = _cli(monkeypatch, "--location", root, sf=sf, lg=lg)
    assert code == 0 and out.startswith(f"backup {root}/")
    assert "salesforce-Lead.jsonl.gz: 3 records" in out
    code, out, _ = _cli(monkeypatch, "--location", root, "--list")
    assert code == 0 and "8 records  org=00D5e0000000001EAA account=SANDBOXACCOUNT" in out
    code, out, _ = _cli(monkeypatch, "--location", root, "--verify", "latest")
    assert code == 0 and out.rstrip().endswith("intact")
    (list_backups(Path(root))[-1].path / "leadgen-lead.jsonl.gz").write_bytes(b"")
    code, out, _ = _cli(monkeypatch, "--location", root, "--verify", "latest")
    assert code == 1 and "leadgen-lead.jsonl.gz: sha256 differs" in out


def test_cli_exit_2_when_the_backup_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sf, lg = systems()
    lg.failures["getOpportunities"] = ConfigError("getOpportunities: refused")
    code, out, err = _cli(monkeypatch, "--location", str(tmp_path), sf=sf, lg=lg)
    assert code == 2 and "refused" in err and list(tmp_path.iterdir()) == []


def test_dag_task_returns_the_summary_and_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from crm_sync.backup import dag_task

    sf, lg = systems()
    monkeypatch.setattr("crm_sync.runtime.salesforce_client", lambda conn_id: sf)
    monkeypatch.setattr("crm_sync.runtime.leadgen_client", lambda conn_id: lg)
    monkeypatch.setattr("crm_sync.preflight.dag_task.guarded", lambda client, ids: client)
    out = dag_task.run({"params": {}})
    assert out["records"]["salesforce-Lead.jsonl.gz"] == 3 and out["org_id"].startswith("00D")
    lg.failures["getLeads"] = ConfigError("getLeads: refused")
    with pytest.raises(AirflowFailException, match="refused"):
        dag_task.run({"params": {}})


def test_demo_shows_the_checklist_and_the_backup(monkeypatch: pytest.MonkeyPatch) -> None:
    from crm_sync.backup import demo
    from tests.unit.test_preflight_gate import LG_CONN, SF_CONN

    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(SF_CONN))
    monkeypatch.setenv("AIRFLOW_CONN_LEADGEN_DEFAULT", json.dumps(LG_CONN))
    sf, lg = systems()
    monkeypatch.setattr(demo, "open_clients", lambda ids: (sf, lg, {}))
    result = demo.preflight_and_backup()
    text = "\n".join(result.lines())
    assert result.ok and "preflight PASSED" in text and "backup: " in text
    assert "salesforce-Lead.jsonl.gz" in text
    sf.org["OrganizationType"] = "Group Edition"
    result = demo.preflight_and_backup()
    assert not result.ok and result.backup is None
    assert "backup: not taken (the preflight failed)" in "\n".join(result.lines())
