"""Test-session setup shared by every suite.

Airflow reads its configuration when first imported, so the environment is fixed here, before
any test module imports airflow: a throw-away AIRFLOW_HOME (SQLite metadata DB), this repo's
dags/ and plugins/ folders, examples off. Unit tests never touch the Airflow DB; suites that run
DAGs request the ``airflow_db`` fixture.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
_HOME = tempfile.mkdtemp(prefix="crm_sync_airflow_home_")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO_ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
os.environ["CRM_SYNC_HOME"] = str(Path(_HOME) / "crm_sync")
os.environ["GX_ANALYTICS_ENABLED"] = "false"
# Connections that tests do not set explicitly must not leak in from the developer's shell.
for _k in [k for k in os.environ if k.startswith("AIRFLOW_CONN_")]:
    del os.environ[_k]

import pytest  # noqa: E402

from tests.conftest_secret_scan import *  # noqa: E402, F403 - the session-wide secret scan hooks

# GX logs every documented function at INFO on import; it drowns the useful output.
logging.getLogger("great_expectations").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def airflow_db():
    """A fresh Airflow metadata DB in the session's AIRFLOW_HOME (for dag.test())."""
    from airflow.utils import db

    db.resetdb()
    yield


@pytest.fixture
def tmp_state_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"
