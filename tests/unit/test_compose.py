"""docker-compose.yaml cannot run here (no Docker engine); check its structure instead, and that
it agrees with `make cluster` (scripts/cluster/settings.py), which runs the same deployment."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from scripts.cluster.settings import (
    DEPLOYMENT_KEYS,
    LOCAL_ONLY,
    Endpoints,
    Layout,
    Ports,
    Secrets,
    Topology,
    base_env,
    process_env,
    read_env_file,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def locked_airflow_version() -> str:
    m = re.search(r"^apache-airflow==([0-9.]+)$", (REPO / "requirements.txt").read_text(), re.M)
    assert m, "apache-airflow is not pinned in requirements.txt"
    return m.group(1)


def test_services_present(compose: dict) -> None:
    expected = {
        "postgres",
        "redis",
        "object-storage",
        "sandbox-salesforce",
        "sandbox-leadgen",
        *AIRFLOW_SERVICES,
    }
    assert expected <= set(compose["services"])


def test_image_matches_locked_airflow(compose: dict) -> None:
    version = locked_airflow_version()
    for name, svc in compose["services"].items():
        if name.startswith("airflow") or name.startswith("sandbox"):
            assert svc["image"].endswith(f":{version}"), name
            assert svc["build"]["args"]["AIRFLOW_VERSION"] == version, name
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"ARG AIRFLOW_VERSION={version}" in dockerfile
    assert "apache/airflow:${AIRFLOW_VERSION}" in dockerfile


def test_celery_and_postgres(compose: dict) -> None:
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert read_env_file()["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which the lock does not have
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    assert env["AIRFLOW_CONN_SYNC_STATE"].startswith("postgresql://")
    init_sql = (REPO / "docker" / "postgres-init.sql").read_text()
    assert "CREATE DATABASE sync_state" in init_sql


def test_repo_folders_are_mounted(compose: dict) -> None:
    for name in (
        "airflow-scheduler",
        "airflow-worker",
        "airflow-dag-processor",
        "airflow-apiserver",
    ):
        mounts = compose["services"][name]["volumes"]
        for folder in ("dags", "plugins", "include", "sandbox"):
            assert f"./{folder}:/opt/airflow/{folder}" in mounts, (name, folder)


def test_connections_point_at_the_sandbox_services(compose: dict) -> None:
    env = compose["services"]["airflow-worker"]["environment"]
    sf = json.loads(env["AIRFLOW_CONN_SALESFORCE_DEFAULT"])
    assert sf["conn_type"] == "salesforce" and sf["extra"]["domain"] == "sandbox-salesforce:8443#"
    lg = json.loads(env["AIRFLOW_CONN_LEADGEN_DEFAULT"])
    assert lg["conn_type"] == "leadgen" and lg["host"].startswith("http://sandbox-leadgen:8766/")
    assert env["REQUESTS_CA_BUNDLE"].startswith("/opt/sandbox/salesforce/")
    sf_cmd = compose["services"]["sandbox-salesforce"]["command"]
    assert sf_cmd[:3] == ["python", "-m", "sandbox.salesforce"] and "--cert-host" in sf_cmd
    assert compose["services"]["sandbox-leadgen"]["command"][:3] == [
        "python",
        "-m",
        "sandbox.leadgen",
    ]


@pytest.fixture
def cluster_envs(tmp_path: Path) -> list[dict[str, str]]:
    """What `make cluster` gives its control plane and its two workers."""
    ports = Ports(postgres=1, redis=2, api=3, worker_logs=4, trigger_logs=5, s3=6)
    ep = Endpoints(7, 8, tmp_path / "ca-bundle.pem", "http://127.0.0.1:8/__sandbox__/app")
    parts = Topology(Layout(tmp_path), ports, ep, Secrets("j" * 20, "a" * 20))  # its default
    return [process_env(parts, w) for w in (None, 1, 2)]


def test_one_source_for_shared_settings(compose: dict, cluster_envs: list[dict]) -> None:
    """Every Airflow container reads deploy/airflow.env and overrides none of it; every process
    of `make cluster` has exactly its values."""
    shared = read_env_file()
    assert shared, "deploy/airflow.env is empty"
    for name in AIRFLOW_SERVICES:
        svc = compose["services"][name]
        assert svc["env_file"] == ["deploy/airflow.env"], name
        assert not set(svc["environment"]) & set(shared), name
    for env in cluster_envs:
        assert {k: env[k] for k in shared} == shared


def test_env_file_values_are_literal(compose: dict) -> None:
    """Compose and the cluster's reader only agree on plain values: no quotes, no spaces."""
    for key, value in read_env_file().items():
        assert value and value == value.strip() and " " not in value, key
        assert not value.startswith(("'", '"')), key


def test_both_set_the_same_per_deployment_keys(compose: dict, cluster_envs: list[dict]) -> None:
    assert set(compose["x-airflow-common"]["environment"]) == set(DEPLOYMENT_KEYS)
    foreign = set(base_env())
    shared = set(read_env_file())
    for env in cluster_envs:
        assert set(DEPLOYMENT_KEYS) <= set(env)
        # anything else the cluster sets is a one-machine necessity with its reason written down
        assert set(env) - foreign - shared - set(DEPLOYMENT_KEYS) <= set(LOCAL_ONLY)


def test_connections_have_the_same_shape(compose: dict, cluster_envs: list[dict]) -> None:
    """Same connection types and fields in both; only hosts and ports differ."""
    env = compose["x-airflow-common"]["environment"]
    for key in (
        "AIRFLOW_CONN_SALESFORCE_DEFAULT",
        "AIRFLOW_CONN_LEADGEN_DEFAULT",
        "AIRFLOW_CONN_CRM_SYNC_RUNS",
    ):
        ours, theirs = json.loads(cluster_envs[1][key]), json.loads(env[key])
        assert ours["conn_type"] == theirs["conn_type"], key
        assert set(ours) == set(theirs) and set(ours.get("extra", {})) == set(
            theirs.get("extra", {})
        ), key
    assert (
        env["AIRFLOW_CONN_SYNC_STATE"].split("@")[0]
        == cluster_envs[0]["AIRFLOW_CONN_SYNC_STATE"].split("@")[0]
    )
    assert (
        json.loads(env["AIRFLOW_CONN_CRM_SYNC_RUNS"])["extra"]["endpoint_url"]
        == "http://object-storage:5000"
    )


def test_every_container_shares_the_signing_secrets(compose: dict) -> None:
    """The api-server fetches task logs from workers with a token signed by [api] secret_key:
    a container that generated its own could not show its task logs."""
    for name in AIRFLOW_SERVICES:
        env = compose["services"][name]["environment"]
        assert env["AIRFLOW__API__SECRET_KEY"] and env["AIRFLOW__API_AUTH__JWT_SECRET"], name


def test_init_prepares_state_store_and_bucket(compose: dict) -> None:
    script = compose["services"]["airflow-init"]["command"][-1]
    lines = [
        ln.strip() for ln in script.splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]
    assert lines[0] == "set -e"
    assert lines.index("airflow db migrate") < next(
        i for i, ln in enumerate(lines) if "open_store()" in ln
    )
    assert any("create_bucket('crm-sync-runs')" in ln for ln in lines)
    storage = compose["services"]["object-storage"]
    assert storage["command"][:3] == ["python", "-m", "moto.server"]
    for name in AIRFLOW_SERVICES:
        if name != "airflow-init":
            assert "object-storage" in compose["services"][name]["depends_on"], name


def test_run_files_go_to_the_bucket_and_only_backups_share_a_volume(
    compose: dict, cluster_envs: list[dict]
) -> None:
    """As on `make cluster`: run files on object storage through the connection, each
    container's CRM_SYNC_HOME its own; the backup archive is the one volume every Airflow
    container mounts besides the code and the sandboxes' CA bundle."""
    env = compose["x-airflow-common"]["environment"]
    assert env["CRM_SYNC_RUN_STORAGE"] == "s3://crm_sync_runs@crm-sync-runs/runs"
    assert {e["CRM_SYNC_RUN_STORAGE"] for e in cluster_envs} == {env["CRM_SYNC_RUN_STORAGE"]}
    assert len({e["CRM_SYNC_HOME"] for e in cluster_envs}) == len(cluster_envs)
    assert "crm-sync-runs" in compose["services"]["airflow-init"]["command"][-1]
    for name in AIRFLOW_SERVICES:
        named = [m.split(":")[0] for m in compose["services"][name]["volumes"]]
        named = [v for v in named if not v.startswith(".")]
        assert sorted(named) == ["crm-sync-backups", "sandbox-data"], name
        assert (
            f"crm-sync-backups:{env['CRM_SYNC_BACKUP_DIR']}" in compose["services"][name]["volumes"]
        )
        assert not env["CRM_SYNC_HOME"].startswith(env["CRM_SYNC_BACKUP_DIR"])
    assert set(compose["volumes"]) == {"postgres-db", "crm-sync-backups", "sandbox-data"}
