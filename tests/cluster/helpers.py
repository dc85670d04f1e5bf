"""Helpers of the tests that start servers from the project's own files: a private PostgreSQL
(scripts/ensure_services.sh) with a new database per test, and the local S3 server (moto) with
an Airflow connection to it. Used by tests/cluster, tests/state, tests/storage and tests/e2e."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scripts.cluster.services import ObjectStore

PG_USER = "airflow:airflow"


def make_service_dir(prefix: str) -> Path:
    """A fresh folder under the system temp folder that the ``postgres`` user can reach.

    PostgreSQL runs as that user when the tests run as root (it refuses root), and pytest's own
    temporary folders live under a private (0700) folder it cannot enter."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@contextmanager
def postgres_server(prefix: str) -> Iterator[int]:
    """A private PostgreSQL server on a free loopback port (user ``airflow``), stopped and
    removed afterwards; yields its port."""
    from scripts.cluster.settings import ROOT, free_port

    folder = make_service_dir(prefix)
    port = free_port()
    script = str(ROOT / "scripts" / "ensure_services.sh")
    subprocess.run(["bash", script, "postgres", "start", str(folder / "pg"), str(port)], check=True)
    try:
        yield port
    finally:
        subprocess.run(["bash", script, "postgres", "stop", str(folder / "pg")], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def create_role(port: int, name: str, password: str) -> None:
    """A login role on the server at ``port`` (a connection of its own, with a password worth
    searching for: the secret scan looks for every AIRFLOW_CONN_* password, and ``airflow`` is
    in every path)."""
    from sqlalchemy import create_engine, text

    admin = create_engine(
        f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{port}/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'"))
    admin.dispose()


@contextmanager
def new_database(port: int, prefix: str = "state", user: str = PG_USER) -> Iterator[str]:
    """A new, empty database on the server at ``port``, owned by ``user`` (``name:password``),
    dropped afterwards (with whatever is still connected to it); yields its SQLAlchemy URL."""
    from sqlalchemy import create_engine, text

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{port}/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" OWNER "{user.split(":")[0]}"'))
    try:
        yield f"postgresql+psycopg2://{user}@127.0.0.1:{port}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def s3_server(conn_id: str) -> Iterator[ObjectStore]:
    """The cluster's S3 server (moto, a process on a free loopback port) with the run-storage
    bucket, and the Airflow connection ``conn_id`` to it as an environment variable (removed
    afterwards). Yields the ``scripts.cluster.services.ObjectStore``.

    Airflow keeps one filesystem per connection id for the life of a process, so each server
    needs a connection id of its own (a second server behind the same id would not be used)."""
    from scripts.cluster.services import ObjectStore
    from scripts.cluster.settings import free_port, s3_connection

    folder = make_service_dir("crm_sync_s3_")
    store = ObjectStore(folder / "s3", free_port())
    var = f"AIRFLOW_CONN_{conn_id.upper()}"
    saved = os.environ.get(var)
    store.start()
    os.environ[var] = json.dumps(s3_connection(store.port))
    try:
        yield store
    finally:
        store.stop()
        if saved is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = saved
        shutil.rmtree(folder, ignore_errors=True)
