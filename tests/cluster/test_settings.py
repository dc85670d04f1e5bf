"""The cluster's environment: shared settings, per-deployment keys, per-process folders."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from scripts.cluster import settings
from scripts.cluster.settings import (
    DEPLOYMENT_KEYS,
    LOCAL_ONLY,
    Endpoints,
    Layout,
    Ports,
    Secrets,
    Topology,
    process_env,
    read_env_file,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def parts(tmp_path: Path) -> Topology:
    ports = Ports(postgres=1, redis=2, api=3, worker_logs=4, trigger_logs=5, s3=6)
    ep = Endpoints(sf_port=7, lg_port=8, sf_ca_bundle=tmp_path / "ca.pem", lg_app_base_url="x")
    return Topology(
        Layout(tmp_path / "c"), ports, ep, Secrets("jwt-secret-1", "api-secret-1"), "shared"
    )


def test_every_process_gets_the_shared_file_and_the_deployment_keys(parts) -> None:
    shared = read_env_file()
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for worker in (None, 1, 2):
        env = process_env(parts, worker)
        assert {k: env[k] for k in shared} == shared
        assert set(DEPLOYMENT_KEYS) <= set(env)
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "jwt-secret-1"
        assert env["AIRFLOW__API__SECRET_KEY"] == "api-secret-1"
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
        assert env["AIRFLOW_CONN_SYNC_STATE"].endswith("/sync_state")


def test_workers_have_their_own_home_and_address(parts) -> None:
    layout = parts.layout
    control = process_env(parts)
    w1 = process_env(parts, 1)
    w2 = process_env(parts, 2)
    assert [e["AIRFLOW_HOME"] for e in (control, w1, w2)] == [
        str(layout.control_home),
        str(layout.worker_home(1)),
        str(layout.worker_home(2)),
    ]
    assert (w1["CRM_SYNC_NODE_ADDRESS"], w2["CRM_SYNC_NODE_ADDRESS"]) == ("127.0.0.2", "127.0.0.3")
    assert w1["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "scripts.cluster.node.hostname"
    assert "AIRFLOW__CORE__HOSTNAME_CALLABLE" not in control
    # the same log-server port on every worker: the api-server knows only one
    assert (
        w1["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]
        == w2["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]
    )


def test_run_storage_switch(parts) -> None:
    layout = parts.layout
    assert settings.RUN_STORAGE == "s3"  # the default: workers share no folder for run files
    assert Topology(layout, parts.ports, parts.endpoints, parts.secrets).run_storage == "s3"
    s3 = [process_env(replace(parts, run_storage="s3"), n) for n in (None, 1, 2)]
    assert len({e["CRM_SYNC_HOME"] for e in s3}) == 3  # each process its own
    assert {e["CRM_SYNC_RUN_STORAGE"] for e in s3} == {"s3://crm_sync_runs@crm-sync-runs/runs"}
    shared = [process_env(parts, n) for n in (None, 1, 2)]  # kept to compare
    assert {e["CRM_SYNC_HOME"] for e in shared} == {str(layout.shared_sync_home)}
    assert {e["CRM_SYNC_RUN_STORAGE"] for e in shared} == {
        (layout.shared_sync_home / "runs").as_uri()
    }
    # backups are found by whichever worker writes, in both shapes (docs/backup.md)
    assert {e["CRM_SYNC_BACKUP_DIR"] for e in s3 + shared} == {str(layout.backups)}
    assert settings.RUN_STORAGE in settings.RUN_STORAGE_CHOICES


def test_the_callers_airflow_settings_do_not_leak_in(parts, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", "postgres://elsewhere")
    monkeypatch.setenv("CRM_SYNC_SF_API_BUDGET", "1")
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    env = process_env(parts)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "elsewhere" not in env["AIRFLOW_CONN_SALESFORCE_DEFAULT"]
    assert "CRM_SYNC_SF_API_BUDGET" not in env
    assert env["SOMETHING_ELSE"] == "kept"
    assert env["PATH"].startswith(str(settings.VENV_BIN))


def test_shared_file_may_not_hold_per_deployment_keys(parts, tmp_path, monkeypatch) -> None:
    bad = tmp_path / "airflow.env"
    bad.write_text("AIRFLOW__CORE__EXECUTOR=CeleryExecutor\nAIRFLOW_HOME=/somewhere\n")
    monkeypatch.setattr(settings, "ENV_FILE", bad)
    with pytest.raises(ValueError, match="AIRFLOW_HOME"):
        process_env(parts)


@pytest.mark.parametrize("line", ["NOEQUALS", "=value", "TWO WORDS=x"])
def test_env_file_lines_are_key_value(tmp_path: Path, line: str) -> None:
    path = tmp_path / "x.env"
    path.write_text(f"# comment\n\nGOOD=1\n{line}\n")
    with pytest.raises(ValueError, match="x.env:4"):
        read_env_file(path)


def test_local_only_keys_are_explained() -> None:
    assert all(reason for reason in LOCAL_ONLY.values())
    assert not set(LOCAL_ONLY) & set(DEPLOYMENT_KEYS)
