"""Build clients and the state store from Airflow connections.

This is the one place where the library reads Airflow connections (through the public
``airflow.sdk`` API), so the pipeline stages stay testable with plain objects.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from crm_sync.errors import ConfigError
from crm_sync.settings import default_state_url

if TYPE_CHECKING:
    from crm_sync.clients.leadgen import LeadGenClient
    from crm_sync.clients.salesforce import SalesforceClient
    from crm_sync.state.store import SyncStore

log = logging.getLogger(__name__)

DEFAULT_CONN_IDS = {
    "salesforce": "salesforce_default",
    "leadgen": "leadgen_default",
    "state": "sync_state",
}


def conn_ids_from(params: Mapping[str, Any]) -> dict[str, str]:
    """The connection ids of a run: the DAG params may point any of them elsewhere."""
    return {
        kind: str(params.get(f"{kind}_conn_id") or default)
        for kind, default in DEFAULT_CONN_IDS.items()
    }


# Where "open in Lead Gen & CRM" links point when the leadgen connection does not say.
DEFAULT_APP_BASE_URL = "https://app.sharpspring.com"


def _get_connection(conn_id: str) -> Any | None:
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # the SDK raises AirflowNotFoundException; anything else is real
        if type(exc).__name__ == "AirflowNotFoundException":
            return None
        raise


def state_url_from_connection(conn: Any) -> str:
    """SQLAlchemy URL of an Airflow connection (``sqlite``, ``postgres``/``postgresql``, or any
    dialect given in full in the extra ``sqlalchemy_url``)."""
    from sqlalchemy.engine import URL

    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])
    ctype = (conn.conn_type or "").lower()
    if ctype == "sqlite":
        path = conn.host or conn.schema
        if not path:
            raise ConfigError(
                f"connection {conn.conn_id!r}: a sqlite state store needs a file path"
            )
        return f"sqlite:///{path}"
    if ctype in ("postgres", "postgresql"):
        return URL.create(
            "postgresql+psycopg2",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
        ).render_as_string(hide_password=False)
    raise ConfigError(
        f"connection {conn.conn_id!r} has type {ctype!r}: use sqlite, postgres, or set extra sqlalchemy_url"
    )


def state_url(conn_id: str = DEFAULT_CONN_IDS["state"]) -> str:
    conn = _get_connection(conn_id)
    if conn is None:
        return default_state_url()
    return state_url_from_connection(conn)


def open_store(conn_id: str = DEFAULT_CONN_IDS["state"]) -> SyncStore:
    """A new store on the database of connection ``conn_id`` (migrated to the newest schema)."""
    from crm_sync.state.store import SyncStore

    store = SyncStore(state_url(conn_id))
    log.info("state store: %r", store)
    return store


# One store per database and process: opening one runs the migrations check, and a task, a
# sensor poke and an alert in one process should not repeat it.
_stores: dict[str, SyncStore] = {}


def shared_store(conn_id: str = DEFAULT_CONN_IDS["state"]) -> SyncStore:
    """The process's store for connection ``conn_id`` (opened on first use)."""
    url = state_url(conn_id)
    if url not in _stores:
        _stores[url] = open_store(conn_id)
    return _stores[url]


def close_stores() -> None:
    """Dispose of every shared store (tests that reset the database between runs call this)."""
    for store in _stores.values():
        store.dispose()
    _stores.clear()


def leadgen_client(conn_id: str = DEFAULT_CONN_IDS["leadgen"]) -> LeadGenClient:
    from crm_sync.clients.leadgen_hook import LeadGenHook

    return LeadGenHook(conn_id).get_client()


def salesforce_client(conn_id: str = DEFAULT_CONN_IDS["salesforce"]) -> SalesforceClient:
    from crm_sync.clients.salesforce import SalesforceClient

    return SalesforceClient.from_connection(conn_id)


def app_base_url(conn_id: str = DEFAULT_CONN_IDS["leadgen"]) -> str:
    """Base URL of the Lead Gen & CRM web app, for the record link on Salesforce records."""
    conn = _get_connection(conn_id)
    if conn is None:
        return DEFAULT_APP_BASE_URL
    return str(conn.extra_dejson.get("app_base_url") or DEFAULT_APP_BASE_URL)
