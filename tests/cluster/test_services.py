"""scripts/ensure_services.sh: private PostgreSQL and Redis servers from Debian's packages."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from scripts.cluster.settings import ROOT, free_port

pytestmark = pytest.mark.cluster

SCRIPT = ROOT / "scripts" / "ensure_services.sh"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def psql(port: int, sql: str, db: str = "postgres") -> str:
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "airflow", "-d", db, "-Atqc", sql],
        env={**os.environ, "PGPASSWORD": "airflow"},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_install_is_quiet_when_everything_is_there() -> None:
    first = run()
    assert first.returncode == 0, first.stderr
    again = run("install")
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")


def test_postgres_start_creates_databases_reuses_and_stops(service_dir: Path) -> None:
    port, pg = free_port(), service_dir / "pg"
    started = run("postgres", "start", str(pg), str(port), "airflow", "sync_state")
    assert started.returncode == 0, started.stderr
    try:
        assert psql(port, "SELECT current_user") == "airflow"
        names = psql(port, "SELECT datname FROM pg_database ORDER BY datname").split()
        assert {"airflow", "sync_state"} <= set(names)
        pid = (pg / "data" / "postmaster.pid").read_text().split()[0]
        # a second start on the same folder keeps the running server and adds what is missing
        again = run("postgres", "start", str(pg), str(port), "airflow", "extra_db")
        assert again.returncode == 0, again.stderr
        assert (pg / "data" / "postmaster.pid").read_text().split()[0] == pid
        assert "extra_db" in psql(port, "SELECT datname FROM pg_database").split()
        # loopback TCP only, no Unix socket in a shared folder
        assert psql(port, "SHOW unix_socket_directories") == ""
    finally:
        stopped = run("postgres", "stop", str(pg))
    assert stopped.returncode == 0
    assert not listening(port)
    assert not (pg / "data" / "postmaster.pid").exists()


def test_postgres_refuses_a_database_name_that_is_not_plain(service_dir: Path) -> None:
    port, pg = free_port(), service_dir / "pg"
    try:
        out = run("postgres", "start", str(pg), str(port), 'x"; DROP DATABASE postgres; --')
    finally:
        run("postgres", "stop", str(pg))
    assert out.returncode != 0
    assert "not a plain database name" in out.stderr


def test_postgres_folder_must_be_reachable_by_its_user() -> None:
    """As root the server runs as `postgres`, which cannot enter a private (0700) folder."""
    private = Path(tempfile.mkdtemp(prefix="crm_sync_private_"))  # 0700
    port = free_port()
    try:
        out = run("postgres", "start", str(private / "pg"), str(port), "airflow")
    finally:
        run("postgres", "stop", str(private / "pg"))
        subprocess.run(["rm", "-rf", str(private)], check=False)
    if os.getuid() == 0:
        assert out.returncode != 0
        assert "not reachable by the postgres user" in out.stderr
    else:  # a normal user runs the server as itself: its own private folder is fine
        assert out.returncode == 0, out.stderr


def test_redis_start_and_stop(service_dir: Path) -> None:
    port, folder = free_port(), service_dir / "redis"
    started = run("redis", "start", str(folder), str(port))
    assert started.returncode == 0, started.stderr
    try:
        ping = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "ping"],
            capture_output=True,
            text=True,
        )
        assert ping.stdout.strip() == "PONG"
        assert run("redis", "start", str(folder), str(port)).returncode == 0  # already running
    finally:
        run("redis", "stop", str(folder))
    assert not listening(port)


@pytest.mark.parametrize(
    "args", [("postgres",), ("postgres", "start", "/tmp/x"), ("redis", "stop"), ("restart",)]
)
def test_usage_errors(args: tuple[str, ...]) -> None:
    out = run(*args)
    assert out.returncode != 0
    assert out.stderr.startswith("ensure_services:")
