"""Where the sync keeps its files and state, resolved from the environment.

Everything defaults to a folder under ``AIRFLOW_HOME`` so that a standalone Airflow, the demo and
the tests each get their own state without configuration. A cluster points the run folders at
object storage (``CRM_SYNC_RUN_STORAGE``), so its workers share no folder for them.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MAPPINGS_DIR_DEFAULT = REPO_ROOT / "include" / "mappings"


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


def sync_home() -> Path:
    """Root folder for run files and the default SQLite state store."""
    return Path(os.environ.get("CRM_SYNC_HOME") or airflow_home() / "crm_sync")


def runs_dir() -> Path:
    """Per-run working folders (extracted chunks, plans, results, reports), when local."""
    return sync_home() / "runs"


def run_storage() -> str:
    """Where the run folders live (``CRM_SYNC_RUN_STORAGE``), as a URL: the tasks of a run hand
    each other files there, so every worker must reach it. Default ``file://`` + ``runs_dir()``
    (one machine); on a cluster an object-storage URL through an Airflow connection, the
    connection id before ``@`` as Airflow's ``ObjectStoragePath`` reads it:
    ``s3://crm_sync_runs@my-bucket/crm_sync/runs``. A plain path means a local folder."""
    value = (os.environ.get("CRM_SYNC_RUN_STORAGE") or "").strip()
    if not value:
        return runs_dir().absolute().as_uri()
    if "://" not in value:
        return Path(value).absolute().as_uri()
    return value


def scratch_dir() -> Path:
    """Task-local working files (on-disk indexes), never shared between tasks or workers."""
    return Path(os.environ.get("CRM_SYNC_SCRATCH") or sync_home() / "scratch")


def default_state_url() -> str:
    """SQLite state store used when no ``sync_state`` Airflow connection exists."""
    path = sync_home() / "state.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def mappings_dir() -> Path:
    """Folder holding the YAML mapping specs (``include/mappings`` in this repo)."""
    return Path(os.environ.get("CRM_SYNC_MAPPINGS_DIR") or MAPPINGS_DIR_DEFAULT)


def sf_api_budget() -> int:
    """Salesforce API calls this product may use per rolling 24 h (``CRM_SYNC_SF_API_BUDGET``).

    The org's allocation is shared by every integration; the default leaves room for the others
    on an Enterprise org with a handful of licences (100,000 + 1,000 per licence).
    """
    return int(os.environ.get("CRM_SYNC_SF_API_BUDGET") or 25_000)


def lg_api_budget() -> int:
    """Lead Gen & CRM API calls this product may use per rolling 24 h (``CRM_SYNC_LG_API_BUDGET``).

    The account allows 50,000 calls a day, shared by every integration; the default leaves
    10,000 to the others. A load larger than this spreads over days (docs/benchmarks.md).
    """
    return int(os.environ.get("CRM_SYNC_LG_API_BUDGET") or 40_000)


def retention_days() -> int:
    """How long resolved quarantine rows and finished held items are kept (``CRM_SYNC_RETENTION_DAYS``)."""
    return int(os.environ.get("CRM_SYNC_RETENTION_DAYS") or 30)


def held_expiry() -> timedelta:
    """How long an item may wait for its dependency (an event for its lead's link, a contact
    role for its contact's link) before it is let go as ``expired``
    (``CRM_SYNC_HELD_EXPIRY_HOURS``, default 7 days)."""
    return timedelta(hours=float(os.environ.get("CRM_SYNC_HELD_EXPIRY_HOURS") or 168))


def lease_wait() -> tuple[float, float]:
    """How long a task waits for another run of its DAG to finish, and how often it looks
    (``CRM_SYNC_LEASE_WAIT_SECONDS``, default 600; polls every 5 s)."""
    return float(os.environ.get("CRM_SYNC_LEASE_WAIT_SECONDS") or 600), 5.0


def sf_retry_stop_share() -> float:
    """Share of the budget above which automatic retries stop (HubSpot stops at 75 %)."""
    return float(os.environ.get("CRM_SYNC_RETRY_STOP_SHARE") or 0.75)


def schema_ttl() -> timedelta:
    """How long a describe or a getFields answer is reused by later runs
    (``CRM_SYNC_SCHEMA_TTL_MINUTES``, default 60; 0 describes in every run)."""
    raw = os.environ.get("CRM_SYNC_SCHEMA_TTL_MINUTES")
    return timedelta(minutes=float(raw if raw not in (None, "") else 60))
