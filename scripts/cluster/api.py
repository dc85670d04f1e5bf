"""A small client of the Airflow 3 REST API (``/api/v2``) for the cluster scenario."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import requests


class AirflowApi:
    """Logs in as admin/admin (SimpleAuthManager, the password file of the cluster) and keeps the
    JWT; every call raises on an unexpected status with the API's own message."""

    def __init__(self, base_url: str, username: str = "admin", password: str = "admin"):
        self.base_url = base_url.rstrip("/")
        self._login = {"username": username, "password": password}
        self._session = requests.Session()
        self._token: str | None = None

    def healthy(self) -> dict[str, Any] | None:
        """``/api/v2/monitor/health`` (no login needed), or None while the api-server is down."""
        try:
            r = self._session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        except requests.RequestException:
            return None
        return r.json() if r.status_code == 200 else None

    def _auth(self) -> dict[str, str]:
        if self._token is None:
            r = self._session.post(f"{self.base_url}/auth/token", json=self._login, timeout=30)
            r.raise_for_status()
            self._token = r.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kw: Any) -> Any:
        headers = {**self._auth(), **kw.pop("headers", {})}
        url = f"{self.base_url}/api/v2/{path.lstrip('/')}"
        r = self._session.request(method, url, headers=headers, timeout=60, **kw)
        if r.status_code not in ok:
            raise RuntimeError(f"{method} /api/v2/{path}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    # -- DAGs and runs ---------------------------------------------------------------------
    def dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG as the scheduler knows it, or None until a dag-processor has serialized it."""
        r = self._session.get(
            f"{self.base_url}/api/v2/dags/{dag_id}", headers=self._auth(), timeout=30
        )
        return r.json() if r.status_code == 200 else None

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.call("PATCH", f"dags/{dag_id}", json={"is_paused": paused})

    def trigger(
        self, dag_id: str, run_id: str, start: datetime, end: datetime, conf: dict[str, Any]
    ) -> dict[str, Any]:
        """A manual run for the interval [start, end) with logical date ``start``: the run the
        scheduler would create for that interval, which it therefore does not add again."""
        body = {
            "dag_run_id": run_id,
            "logical_date": start.isoformat(),
            "data_interval_start": start.isoformat(),
            "data_interval_end": end.isoformat(),
            "conf": conf,
        }
        return self.call("POST", f"dags/{dag_id}/dagRuns", json=body)

    def backfill(
        self, dag_id: str, start: datetime, end: datetime, *, max_active_runs: int
    ) -> dict[str, Any]:
        """``airflow backfill create`` through the API: one run per interval, ``end`` inclusive."""
        body = {
            "dag_id": dag_id,
            "from_date": start.isoformat(),
            "to_date": end.isoformat(),
            "max_active_runs": max_active_runs,
            "reprocess_behavior": "none",
            "run_backwards": False,
            "dag_run_conf": {},
        }
        return self.call("POST", "backfills", json=body)

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.call("GET", f"dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        out = self.call(
            "GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100}
        )
        return out["task_instances"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> list[Any]:
        """A task's log as the UI shows it: the api-server fetches it from the worker that ran
        the task and first names where it read it from (``http://<host>:<port>/log/...``)."""
        out = self.call(
            "GET",
            f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            headers={"Accept": "application/json"},
        )
        content = out.get("content")
        return content if isinstance(content, list) else [{"event": str(content)}]


def wait_for(what: str, check: Any, timeout: float, interval: float = 1.0) -> Any:
    """Poll ``check()`` until it returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
