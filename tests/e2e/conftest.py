"""End-to-end fixtures: both sandboxes as real processes, Airflow connections pointing at them,
a fresh state store per test, and a helper that runs a real DAG with ``dag.test()``.

Sandboxes start once per session (a few seconds each) and are reset through their admin APIs
before every test, so each test starts from empty systems and an empty state store: a SQLite
file, and for the modules in :data:`POSTGRES_MODULES` also a new PostgreSQL database (each of
their tests runs twice, ``[sqlite]`` and ``[postgresql]``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.process import SandboxProcess, start_sandbox
from tests.cluster.helpers import create_role, new_database, postgres_server
from tests.e2e.helpers import PARAM_DEFAULTS

SF_CONN = {
    "conn_type": "salesforce",
    "login": "integration@sandbox.example",
    "password": "sandbox-password",
    "extra": {"security_token": "SANDBOXTOKEN"},
}
LG_CONN = {"conn_type": "leadgen", "login": "SANDBOXACCOUNT", "password": "SANDBOXSECRET"}
APP_BASE_URL = "https://app.leadgen.example"
REPO_MAPPINGS = Path(__file__).resolve().parents[2] / "include" / "mappings"


class Admin:
    """Tiny client for a sandbox's ``/__sandbox__/`` admin API."""

    def __init__(self, proc: SandboxProcess):
        self.base = proc.base_url + "/__sandbox__"
        self.verify: str | bool = str(proc.ca_file) if proc.ca_file else True

    def get(self, path: str, **params: Any) -> Any:
        r = requests.get(
            f"{self.base}/{path.lstrip('/')}", params=params, verify=self.verify, timeout=120
        )
        assert r.status_code < 300, f"GET {path}: {r.status_code} {r.text[:500]}"
        return r.json()

    def delete(self, path: str) -> Any:
        r = requests.delete(f"{self.base}/{path.lstrip('/')}", verify=self.verify, timeout=120)
        assert r.status_code < 300, f"DELETE {path}: {r.status_code} {r.text[:500]}"
        return r.json() if r.content else None

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        r = requests.post(
            f"{self.base}/{path.lstrip('/')}", json=body or {}, verify=self.verify, timeout=300
        )
        assert r.status_code < 300, f"POST {path}: {r.status_code} {r.text[:500]}"
        return r.json() if r.content else None


@dataclass
class Sandboxes:
    sf_proc: SandboxProcess
    lg_proc: SandboxProcess
    sf: Admin
    lg: Admin


@pytest.fixture(scope="session")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandboxes]:
    root = tmp_path_factory.mktemp("sandboxes")
    sf_proc = start_sandbox("sandbox.salesforce", root / "salesforce", scheme="https")
    lg_proc = start_sandbox("sandbox.leadgen", root / "leadgen")
    saved = {
        k: os.environ.get(k)
        for k in (
            "AIRFLOW_CONN_SALESFORCE_DEFAULT",
            "AIRFLOW_CONN_LEADGEN_DEFAULT",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
        )
    }
    sf_conn = json.loads(json.dumps(SF_CONN))
    sf_conn["extra"]["domain"] = f"127.0.0.1:{sf_proc.port}#"
    os.environ["AIRFLOW_CONN_SALESFORCE_DEFAULT"] = json.dumps(sf_conn)
    os.environ["AIRFLOW_CONN_LEADGEN_DEFAULT"] = json.dumps(
        {
            **LG_CONN,
            "host": f"{lg_proc.base_url}/pubapi/v1.2/",
            "extra": {"app_base_url": APP_BASE_URL},
        }
    )
    # simple-salesforce trusts REQUESTS_CA_BUNDLE (it overrides the session's verify setting);
    # the sandbox's bundle holds the system CAs plus its own certificate.
    os.environ["REQUESTS_CA_BUNDLE"] = str(sf_proc.data_dir / "ca-bundle.pem")
    os.environ.pop("CURL_CA_BUNDLE", None)
    try:
        yield Sandboxes(sf_proc, lg_proc, Admin(sf_proc), Admin(lg_proc))
    finally:
        lg_proc.stop()
        sf_proc.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def preflight_passed(sandboxes: Sandboxes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The preflight of the default sandboxes, run once per session: the folder holding its
    recorded pass. Every test's sync DAGs would otherwise run the whole preflight in their first
    ``prepare`` (tests/e2e/test_preflight.py runs it for real, without this record)."""
    from crm_sync.preflight import check_and_record
    from crm_sync.preflight.cli import open_clients
    from crm_sync.runtime import DEFAULT_CONN_IDS

    home = tmp_path_factory.mktemp("preflight-home")
    sandboxes.sf.post("reset", {"schema": True})
    sandboxes.lg.post("reset")
    saved = os.environ.get("CRM_SYNC_HOME")
    os.environ["CRM_SYNC_HOME"] = str(home)
    try:
        sf, lg, errors = open_clients(dict(DEFAULT_CONN_IDS))
        report = check_and_record(sf, lg, conn_ids=DEFAULT_CONN_IDS, errors=errors)
    finally:
        if saved is None:
            os.environ.pop("CRM_SYNC_HOME", None)
        else:
            os.environ["CRM_SYNC_HOME"] = saved
    assert report.ok, report.text()
    return home / "preflight"


# -- the state store: SQLite for every test, PostgreSQL as well for these modules ----------------
#
# The cluster and docker-compose keep the sync state on PostgreSQL, one machine on SQLite; the
# store is written through SQLAlchemy and migrated by Alembic, but locking (SELECT ... FOR UPDATE
# on leases, the advisory lock of migrations), the partial unique index of active links,
# ON CONFLICT upserts, JSON columns and time zones behave differently in the two. These modules
# exercise exactly those: link statuses moving through conversion, merge, delete and collision
# (the partial index); quarantine rows retried, parked and resolved (JSON payloads, counts per
# run); held items and memberships (opportunities, engagement); watermarks, leases and
# backfills (run kinds). The rest of the suite reads and writes the store through the same
# methods, so running it twice would double CI time (about 7 of 14 minutes are e2e) for little:
# the whole suite must stay under 20 minutes. Two DAGs and a backfill writing to one PostgreSQL
# store at once: test_postgres_writers.py.
POSTGRES_MODULES = frozenset(
    {
        "test_lifecycle",
        "test_data_quality",
        "test_opportunities",
        "test_engagement",
        "test_run_kinds",
    }
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if "state_db" in metafunc.fixturenames and module in POSTGRES_MODULES:
        if metafunc.definition.get_closest_marker("store_independent"):
            return  # what it asserts (API call counts) does not depend on the store
        metafunc.parametrize(
            "state_db",
            [pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.postgres)],
            indirect=True,
        )


@dataclass(frozen=True)
class PostgresServer:
    port: int
    user: str  # name:password of the role that owns the test databases


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the session (scripts/ensure_services.sh), with a role
    whose password is new for the session: the secret scan then proves it never leaks."""
    with postgres_server("crm_sync_e2e_pg_") as port:
        user = f"crm_sync_e2e:{secrets.token_hex(12)}"
        create_role(port, *user.split(":"))
        yield PostgresServer(port, user)


@pytest.fixture
def state_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The ``sync_state`` connection (URI form) of a new, empty database: SQLite unless the
    test is parametrized with ``postgresql``."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    with new_database(server.port, "e2e", server.user) as url:
        yield url.replace("postgresql+psycopg2://", "postgresql://", 1)


@pytest.fixture
def fresh(
    sandboxes: Sandboxes,
    preflight_passed: Path,
    state_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Sandboxes]:
    """Empty sandboxes (real clock, no faults), a new state store and run folder for this test.

    The preflight's pass is already recorded and backups are waived
    (``CRM_SYNC_REQUIRE_BACKUP=false``): both are tested in test_preflight.py and
    test_backup.py, and would otherwise add their API calls to every test's first run."""
    from crm_sync.runtime import close_stores

    sandboxes.sf.post("reset", {"schema": True})
    sandboxes.lg.post("reset")
    home = tmp_path / "crm_sync"
    shutil.copytree(preflight_passed, home / "preflight")
    monkeypatch.setenv("CRM_SYNC_HOME", str(home))
    monkeypatch.delenv("CRM_SYNC_RUN_STORAGE", raising=False)  # run files under this home
    monkeypatch.setenv("CRM_SYNC_REQUIRE_BACKUP", "false")
    monkeypatch.setenv("AIRFLOW_CONN_SYNC_STATE", state_db)
    close_stores()
    yield sandboxes
    close_stores()  # before the database is dropped


@pytest.fixture(scope="session")
def dags(airflow_db) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags"))
    assert bag.import_errors == {}
    for dag_id, dag in bag.dags.items():
        PARAM_DEFAULTS[dag_id] = {k: dag.params[k] for k in dag.params}
    return bag.dags
