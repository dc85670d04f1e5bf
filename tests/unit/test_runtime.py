"""Airflow connections -> state store URL (the ``sync_state`` connection)."""

from __future__ import annotations

import pytest

from crm_sync.errors import ConfigError
from crm_sync.runtime import state_url, state_url_from_connection
from crm_sync.settings import default_state_url

pytestmark = pytest.mark.unit


class Conn:
    def __init__(
        self, conn_type, host=None, schema=None, login=None, password=None, port=None, extra=None
    ):
        self.conn_id = "sync_state"
        self.conn_type, self.host, self.schema = conn_type, host, schema
        self.login, self.password, self.port = login, password, port
        self.extra_dejson = extra or {}


def test_postgres_connection_becomes_a_psycopg2_url_with_the_password_escaped() -> None:
    url = state_url_from_connection(
        Conn(
            "postgres",
            host="db",
            schema="sync_state",
            login="airflow",
            password="p@ss/w:rd",
            port=5432,
        )
    )
    assert url == "postgresql+psycopg2://airflow:p%40ss%2Fw%3Ard@db:5432/sync_state"


def test_sqlite_connection_and_explicit_url() -> None:
    assert (
        state_url_from_connection(Conn("sqlite", host="/var/lib/sync/state.db"))
        == "sqlite:////var/lib/sync/state.db"
    )
    assert (
        state_url_from_connection(
            Conn("mysql", extra={"sqlalchemy_url": "mysql+pymysql://u:p@h/db"})
        )
        == "mysql+pymysql://u:p@h/db"
    )


def test_unsupported_or_incomplete_connections_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="use sqlite, postgres, or set extra sqlalchemy_url"):
        state_url_from_connection(Conn("http", host="example"))
    with pytest.raises(ConfigError, match="needs a file path"):
        state_url_from_connection(Conn("sqlite"))


def test_env_connection_wins_else_the_default_sqlite_file(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SYNC_STATE", raising=False)
    assert state_url() == default_state_url()
    monkeypatch.setenv("AIRFLOW_CONN_SYNC_STATE", f"sqlite:///{tmp_path}/s.db")
    assert state_url() == f"sqlite:///{tmp_path}/s.db"
