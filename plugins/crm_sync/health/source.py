"""Find and open the sync state store from inside the Airflow api-server.

The DAGs resolve the store through the ``sync_state`` connection with the Task SDK
(:func:`crm_sync.runtime.state_url`). That path does not fit the api-server: outside a task the
SDK only consults environment variables and external secrets backends, never the metadata
database, so a connection created in the UI would be missed. Here the server-side
``airflow.models.Connection.get_connection_from_secrets`` is used instead; it reads
``AIRFLOW_CONN_SYNC_STATE`` (environment), any configured secrets backend and the metadata DB, in
Airflow's usual order. Without a connection, the default SQLite store under ``CRM_SYNC_HOME`` is
used, exactly as the DAGs do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from crm_sync.redact import redact_text
from crm_sync.runtime import DEFAULT_CONN_IDS, state_url_from_connection
from crm_sync.settings import default_state_url
from crm_sync.state.store import SyncStore

log = logging.getLogger(__name__)

# How long a resolved URL is trusted before the connection is looked up again. Short enough that
# an edited connection shows up without restarting the api-server, long enough that a page load
# (several API calls) does not query the metadata DB each time.
URL_TTL_SECONDS = 30.0


class StoreUnavailable(RuntimeError):
    """The state store could not be resolved or opened; the message is safe to show."""


def _lookup_connection(conn_id: str) -> Any | None:
    """The Airflow connection ``conn_id`` as the api-server sees it, or None when undefined."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        return Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        return None


def resolve_state_url(conn_id: str = DEFAULT_CONN_IDS["state"]) -> str:
    """SQLAlchemy URL of the state store: connection ``conn_id`` if defined, else the default."""
    conn = _lookup_connection(conn_id)
    if conn is None:
        return default_state_url()
    return state_url_from_connection(conn)


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown by its scheme only
        return url.split(":", 1)[0] + ":…"


def _describe(exc: BaseException) -> str:
    """Exception type and first line of its message, secrets removed, for the error page."""
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {redact_text(first)}" if first else type(exc).__name__


class StoreProvider:
    """Hands out one :class:`SyncStore` per URL, opened lazily on first use.

    ``url`` fixes the store (tests, or a caller that already knows it); without it the URL is
    resolved from the Airflow connection and re-resolved every :data:`URL_TTL_SECONDS`. A store
    that fails to open is not cached, so the next request tries again (for example once the
    database is up).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        resolver: Callable[[], str] = resolve_state_url,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fixed_url = url
        self._resolver = resolver
        self._clock = clock
        self._lock = threading.Lock()
        self._stores: dict[str, SyncStore] = {}
        self._resolved: tuple[str, float] | None = None

    def url(self) -> str:
        """The store URL to use for this request."""
        if self._fixed_url:
            return self._fixed_url
        now = self._clock()
        cached = self._resolved
        if cached and now - cached[1] < URL_TTL_SECONDS:
            return cached[0]
        try:
            url = self._resolver()
        except Exception as exc:
            log.warning("sync health: cannot resolve the state store connection: %s", exc)
            raise StoreUnavailable(
                f"cannot resolve the state store connection {DEFAULT_CONN_IDS['state']!r}: "
                f"{_describe(exc)}"
            ) from exc
        self._resolved = (url, now)
        return url

    def get(self) -> SyncStore:
        """The store for the current URL, migrated to the newest schema on first open."""
        url = self.url()
        store = self._stores.get(url)
        if store is not None:
            return store
        with self._lock:
            store = self._stores.get(url)
            if store is None:
                try:
                    store = SyncStore(url, migrate=True)
                except Exception as exc:
                    log.warning("sync health: cannot open state store %s: %s", safe_url(url), exc)
                    raise StoreUnavailable(
                        f"cannot open the state store {safe_url(url)}: {_describe(exc)}"
                    ) from exc
                log.info("sync health: opened state store %r", store)
                self._stores[url] = store
        return store

    def dispose(self) -> None:
        """Close every engine (tests; the api-server keeps them for its lifetime)."""
        with self._lock:
            for store in self._stores.values():
                store.dispose()
            self._stores.clear()
