"""Opening the state store, which every task does: no Alembic when the schema is at head, the
ORM configured without Airflow's import-every-model hook, the store looked up once per task."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import Column, Integer, event, text
from sqlalchemy.orm import Mapper, registry

from crm_sync.definitions import get_definition
from crm_sync.state import store as store_module
from crm_sync.state.store import (
    MIGRATIONS_DIR,
    VERSION_TABLE,
    SyncStore,
    configure_models,
    head_revision,
)
from crm_sync.tasks import TaskRuntime

pytestmark = pytest.mark.unit


def _count_migrations(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = SyncStore.migrate

    def counted(self: SyncStore) -> None:
        calls.append(1)
        real(self)

    monkeypatch.setattr(SyncStore, "migrate", counted)
    return calls


def test_opening_a_store_at_head_runs_no_migration(tmp_state_url: str, monkeypatch) -> None:
    calls = _count_migrations(monkeypatch)
    SyncStore(tmp_state_url).dispose()  # a new database: migrated
    assert len(calls) == 1
    store = SyncStore(tmp_state_url)  # at head: one query of the version table, no Alembic
    assert len(calls) == 1 and store.at_head()
    store.dispose()


def test_a_store_behind_head_is_migrated_on_open(tmp_state_url: str, monkeypatch) -> None:
    from alembic import command
    from alembic.config import Config

    older = SyncStore(tmp_state_url, migrate=False)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with older.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
    with older.engine.connect() as conn:
        assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == "0004"
    assert not older.at_head()
    older.dispose()
    calls = _count_migrations(monkeypatch)
    store = SyncStore(tmp_state_url)
    assert len(calls) == 1 and store.at_head()
    store.dispose()


def test_an_empty_database_is_not_at_head(tmp_state_url: str) -> None:
    store = SyncStore(tmp_state_url, migrate=False)
    assert not store.at_head()  # no version table yet
    store.dispose()


def test_the_head_read_from_the_files_is_alembics() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert head_revision() == ScriptDirectory.from_config(cfg).get_current_head()


def _versions(folder: Path, files: dict[str, str]) -> Path:
    store_module._heads.clear()
    folder.mkdir()
    for name, body in files.items():
        (folder / name).write_text(body)
    return folder


def test_head_revision_reads_annotated_declarations_and_gives_up_when_unsure(
    tmp_path: Path,
) -> None:
    annotated = _versions(
        tmp_path / "a",
        {
            "1.py": 'revision: str = "a1"\ndown_revision: str | None = None\n',
            "2.py": "revision: str = 'a2'\ndown_revision: Union[str, None] = 'a1'\n",
        },
    )
    assert head_revision(annotated) == "a2"
    two_heads = _versions(
        tmp_path / "b",
        {"1.py": 'revision = "b1"\ndown_revision = None\n', "2.py": 'revision = "b2"\n'},
    )
    assert head_revision(two_heads) is None  # a file without down_revision: let Alembic decide
    branches = _versions(
        tmp_path / "c",
        {
            "1.py": 'revision = "c1"\ndown_revision = None\n',
            "2.py": 'revision = "c2"\ndown_revision = "c1"\n',
            "3.py": 'revision = "c3"\ndown_revision = "c1"\n',
        },
    )
    assert head_revision(branches) is None
    store_module._heads.clear()


def test_the_version_table_is_the_one_the_migrations_use() -> None:
    env = (MIGRATIONS_DIR / "env.py").read_text()
    assert f'version_table="{VERSION_TABLE}"' in env


def _fresh_models() -> registry:
    models = registry()

    class Thing:
        __tablename__ = "thing"
        id = Column(Integer, primary_key=True)

    models.map_declaratively(Thing)
    return models


def test_configuring_the_store_models_skips_airflows_import_all_models(monkeypatch) -> None:
    calls: list[int] = []

    def import_all_models() -> None:
        calls.append(1)

    hook = import_all_models
    monkeypatch.setitem(sys.modules, "airflow.models", SimpleNamespace(import_all_models=hook))
    event.listen(Mapper, "before_configured", hook, once=True)
    try:
        ours = _fresh_models()
        configure_models(ours)
        assert calls == [] and not ours._new_mappers
        # still there for Airflow's own mappers, which it configures later
        assert event.contains(Mapper, "before_configured", hook)
        theirs = _fresh_models()
        theirs.configure()
        assert calls == [1]
    finally:
        if event.contains(Mapper, "before_configured", hook):
            event.remove(Mapper, "before_configured", hook)


def test_configuring_the_store_models_without_airflow_hook(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "airflow.models", raising=False)
    models = _fresh_models()
    configure_models(models)
    assert not models._new_mappers
    configure_models(models)  # already configured: nothing to do


def test_a_task_looks_its_store_up_once(monkeypatch, make_ctx) -> None:
    import crm_sync.runtime

    looked_up: list[str] = []

    def shared_store(conn_id: str) -> object:
        looked_up.append(conn_id)
        return SimpleNamespace(conn_id=conn_id)

    monkeypatch.setattr(crm_sync.runtime, "shared_store", shared_store)
    rt = TaskRuntime(get_definition("sync_leads_contacts"), "match", ctx=make_ctx())
    assert rt.store is rt.store
    assert looked_up == ["sync_state"]
