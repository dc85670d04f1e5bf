"""docker-compose.yaml cannot run here (no Docker engine); check its structure instead."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


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
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "sandbox-salesforce",
        "sandbox-leadgen",
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
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
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
