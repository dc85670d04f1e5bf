"""The README's first commands, as a new user runs them: `make demo`, then `make airflow`. The
real scheduler must create the next hourly run of each DAG and run it to success.

Before, the demo's runs were manual runs with logical dates on scheduled slots: the scheduler
logged "run already exists; skipping dagrun creation" every second and never moved on
(apache/airflow issue 41208). The demo now triggers "sync now" runs (no logical date), which take
no slot. This test runs both scripts in their own AIRFLOW_HOME, sandbox folder and ports.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from sandbox.process import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DAGS = ("sync_leads_contacts", "sync_opportunities", "sync_engagement_activities")


@pytest.fixture
def project_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a fresh checkout's `make demo` / `make airflow`, in tmp_path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "CRM_SYNC", "SANDBOX", "SF_SANDBOX", "LG_SANDBOX"))
        and k != "REQUESTS_CA_BUNDLE"
    }
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        SANDBOX_DIR=str(tmp_path / "sandbox"),
        SF_SANDBOX_PORT=str(free_port()),
        LG_SANDBOX_PORT=str(free_port()),
        AIRFLOW_PORT=str(free_port()),
    )
    return env


def script(name: str) -> list[str]:
    return ["bash", "-c", f". scripts/env.sh && exec .venv/bin/python scripts/{name}"]


def api(base: str, token: str, path: str) -> dict:
    r = requests.get(
        f"{base}/api/v2/{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    r.raise_for_status()
    return r.json()


def scheduled_runs(base: str, token: str, dag_id: str) -> list[dict]:
    runs = api(base, token, f"dags/{dag_id}/dagRuns?limit=50")["dag_runs"]
    return [r for r in runs if r["run_type"] == "scheduled"]


def test_after_make_demo_make_airflow_runs_the_next_hourly_run_of_each_dag(project_env) -> None:
    demo = subprocess.run(
        [*script("demo.py"), "--people", "300"],
        cwd=ROOT,
        env=project_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    airflow = subprocess.Popen(
        script("run_airflow.py"),
        cwd=ROOT,
        env=project_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{project_env['AIRFLOW_PORT']}"
    logs = Path(project_env["AIRFLOW_HOME"]) / "logs" / "components"
    try:
        token = _login(base)
        deadline = time.monotonic() + 420
        done: dict[str, str] = {}
        while time.monotonic() < deadline and len(done) < len(DAGS):
            for dag_id in DAGS:
                runs = scheduled_runs(base, token, dag_id)
                if any(r["state"] == "success" for r in runs):
                    done[dag_id] = "success"
                elif any(r["state"] == "failed" for r in runs):
                    done[dag_id] = "failed"
            time.sleep(5)
        assert done == dict.fromkeys(DAGS, "success"), done
        scheduler_log = (logs / "scheduler.log").read_text(errors="replace")
        assert "already exists" not in scheduler_log
    finally:
        os.killpg(airflow.pid, signal.SIGTERM)
        airflow.wait(timeout=60)


def _login(base: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = requests.post(
                f"{base}/auth/token", json={"username": "admin", "password": "admin"}, timeout=5
            )
            if r.status_code < 300:
                return r.json()["access_token"]
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"Airflow did not answer on {base}")
        time.sleep(2)
