"""Shared plumbing of `make demo` and `make airflow`: the project-local AIRFLOW_HOME, the two
sandboxes on fixed ports, the Airflow connections that reach them, and the demo seed.

Everything is configuration the README documents; nothing here is needed in production.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from sandbox.process import SandboxProcess, start_sandbox  # noqa: E402

AIRFLOW_HOME = Path(os.environ.get("AIRFLOW_HOME", ROOT / ".airflow"))
SANDBOX_DIR = Path(os.environ.get("SANDBOX_DIR", ROOT / ".sandbox"))
SF_PORT = int(os.environ.get("SF_SANDBOX_PORT", "18443"))
LG_PORT = int(os.environ.get("LG_SANDBOX_PORT", "18766"))
APP_BASE_URL = f"http://127.0.0.1:{LG_PORT}/__sandbox__/app"


def ensure_airflow_home() -> None:
    """SQLite metadata DB (migrated), fixed admin/admin login, examples off (env from env.sh)."""
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    pw = AIRFLOW_HOME / "passwords.json"
    if not pw.exists():
        pw.write_text(json.dumps({"admin": "admin"}))
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "airflow"), "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "AIRFLOW_HOME": str(AIRFLOW_HOME)},
    )


def reset_sync_state() -> None:
    """Remove the sync state store, run folders and scratch files (the demo starts from zero)."""
    import shutil

    from crm_sync.runtime import close_stores
    from crm_sync.settings import sync_home

    close_stores()
    shutil.rmtree(sync_home(), ignore_errors=True)


@dataclass
class Local:
    sf: SandboxProcess | None
    lg: SandboxProcess | None
    sf_url: str
    lg_url: str
    sf_ca: Path

    def stop(self) -> None:
        for p in (self.lg, self.sf):
            if p is not None:
                p.stop()

    # admin API helpers -------------------------------------------------------------------
    def sf_admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        r = requests.request(
            method,
            f"{self.sf_url}/__sandbox__/{path}",
            json=body,
            verify=str(self.sf_ca),
            timeout=600,
        )
        r.raise_for_status()
        return r.json() if r.content else None

    def lg_admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        r = requests.request(method, f"{self.lg_url}/__sandbox__/{path}", json=body, timeout=600)
        r.raise_for_status()
        return r.json() if r.content else None


def _alive(url: str, ca: Path | None) -> bool:
    try:
        verify: str | bool = str(ca) if ca and ca.exists() else True
        return (
            requests.get(f"{url}/__sandbox__/health", verify=verify, timeout=2).status_code == 200
        )
    except requests.RequestException:
        return False


def start_sandboxes() -> Local:
    """Start both sandboxes on their fixed ports, or reuse ones already running there."""
    sf_dir, lg_dir = SANDBOX_DIR / "salesforce", SANDBOX_DIR / "leadgen"
    sf_url, lg_url = f"https://127.0.0.1:{SF_PORT}", f"http://127.0.0.1:{LG_PORT}"
    sf_ca = sf_dir / "cert.pem"
    sf = (
        None
        if _alive(sf_url, sf_ca)
        else start_sandbox("sandbox.salesforce", sf_dir, port=SF_PORT, scheme="https")
    )
    lg = None if _alive(lg_url, None) else start_sandbox("sandbox.leadgen", lg_dir, port=LG_PORT)
    local = Local(sf, lg, sf_url, lg_url, sf_ca)
    os.environ.update(connection_env())
    return local


def connection_env() -> dict[str, str]:
    """The Airflow connections (as AIRFLOW_CONN_* variables) that reach the sandboxes."""
    sf = {
        "conn_type": "salesforce",
        "login": "integration@sandbox.example",
        "password": "sandbox-password",
        "extra": {"security_token": "SANDBOXTOKEN", "domain": f"127.0.0.1:{SF_PORT}#"},
    }
    lg = {
        "conn_type": "leadgen",
        "host": f"http://127.0.0.1:{LG_PORT}/pubapi/v1.2/",
        "login": "SANDBOXACCOUNT",
        "password": "SANDBOXSECRET",
        "extra": {"app_base_url": APP_BASE_URL},
    }
    return {
        "AIRFLOW_CONN_SALESFORCE_DEFAULT": json.dumps(sf),
        "AIRFLOW_CONN_LEADGEN_DEFAULT": json.dumps(lg),
        # simple-salesforce trusts REQUESTS_CA_BUNDLE; this bundle is the public CAs + the sandbox's.
        "REQUESTS_CA_BUNDLE": str(SANDBOX_DIR / "salesforce" / "ca-bundle.pem"),
    }


def register_connections() -> list[str]:
    """Also store the connections in the metadata DB (``airflow connections import``), so they
    show in the UI under Admin -> Connections. The environment variables win where both exist."""
    conns = {}
    for var, value in connection_env().items():
        if var.startswith("AIRFLOW_CONN_"):
            conns[var[len("AIRFLOW_CONN_") :].lower()] = json.loads(value)
    # The file holds the credentials in clear: readable by this user only, and gone once
    # imported (the metadata DB keeps them encrypted with Airflow's Fernet key).
    fd, name = tempfile.mkstemp(prefix="sandbox-connections-", suffix=".json", dir=AIRFLOW_HOME)
    path = Path(name)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(conns, fh, indent=2)
        subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "airflow"),
                "connections",
                "import",
                "--overwrite",
                str(path),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        path.unlink(missing_ok=True)
    return sorted(conns)


def hour_floor(dt: datetime) -> datetime:
    return dt.replace(minute=0, second=0, microsecond=0)


def sf_ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def lg_ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def freeze(local: Local, at: datetime | None) -> None:
    local.sf_admin("POST", "clock", {"now": sf_ts(at) if at else None})
    local.lg_admin("POST", "clock", {"now": lg_ts(at) if at else None})


def seed(
    local: Local,
    *,
    at: datetime,
    people: int = 2400,
    overlap: float = 0.3,
    seed_value: int = 42,
    activity_leads: int = 400,
) -> dict[str, Any]:
    """Reset both sandboxes and load realistic data as of ``at``.

    Salesforce gets leads, contacts, accounts and opportunities with contact roles; Lead Gen &
    CRM gets leads and contacts with a history of marketing activity. About ``overlap`` of the
    Salesforce people are also imported into Lead Gen & CRM (same email, sometimes other
    details), so the first sync pairs them by email instead of duplicating them. Both sides get
    some defective rows (bad emails, missing names, values too long, stale picklist values)."""
    local.sf_admin("POST", "reset")
    local.lg_admin("POST", "reset")
    freeze(local, at)
    sf = local.sf_admin(
        "POST",
        "seed",
        {
            "counts": {
                "Account": people // 8,
                "Contact": people * 3 // 8,
                "Lead": people // 2,
                "Opportunity": people // 10,
                "OpportunityContactRole": people // 8,
            },
            "seed": seed_value,
            "defects": True,
            "end_at": sf_ts(at),
            "days": 180,
        },
    )
    lg = local.lg_admin(
        "POST",
        "seed",
        {
            "leads": people,
            "seed": seed_value,
            "defects": True,
            "activity_leads": activity_leads,
            "inactive": 5,
        },
    )
    # Overlap by email: the Lead Gen & CRM Import Tool brings in some Salesforce people.
    from crm_sync.runtime import salesforce_client

    client = salesforce_client()
    picked: list[dict[str, Any]] = []
    for sobject in ("Lead", "Contact"):
        rows = list(
            client.query(
                f"SELECT Id, FirstName, LastName, Email, Title FROM {sobject} WHERE Email != null ORDER BY Id LIMIT {int(people * overlap / 2)}"
            )
        )
        picked.extend(rows)
    imported = local.lg_admin(
        "POST",
        "import",
        {
            "leads": [
                {
                    "emailAddress": r["Email"],
                    "firstName": r.get("FirstName") or "",
                    "lastName": r.get("LastName") or "",
                    "title": (r.get("Title") or "") if i % 3 else "Marketing Lead",
                }
                for i, r in enumerate(picked)
            ]
        },
    )
    ok = sum(1 for r in imported["results"] if r.get("success"))
    return {
        "salesforce": sf.get("created", {}),
        "salesforce_defects": sf.get("defects", {}),
        "leadgen": lg.get("leads"),
        "leadgen_defects": len(lg.get("defects", [])),
        "overlap_imported": ok,
    }


def seed_if_empty(local: Local) -> dict[str, Any] | None:
    """Seed only sandboxes that hold no people yet (used by `make airflow` on a fresh checkout)."""
    stats = local.lg_admin("GET", "stats")
    if stats.get("leads", 0) > 0:
        return None
    out = seed(local, at=datetime.now(UTC) - timedelta(hours=2))
    freeze(local, None)
    return out
