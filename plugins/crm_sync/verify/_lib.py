"""The one place where the checker touches the sync library's internals.

The library is being reorganised (same functions, new modules). Every name the checker needs from
it is imported here and nowhere else in :mod:`crm_sync.verify`, so a moved function is fixed in
one line at merge time. Public, stable APIs are preferred: :class:`SyncStore` methods, the
clients' methods, the mapping loader and models, the canonical transform.

The store is read through its streaming methods (``SyncStore.iter_links``,
``SyncStore.iter_quarantine``), so the checker stays within bounded memory on a large store.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from crm_sync.clients.salesforce import to_18
from crm_sync.domains.engagement import DEFINITION as ENGAGEMENT
from crm_sync.domains.engagement.events import normalize_event, task_key
from crm_sync.domains.engagement.rules import DAG_ID as DAG_ENGAGEMENT
from crm_sync.domains.engagement.rules import EVENT_SOURCES
from crm_sync.domains.engagement.rules import HELD_KIND as EVENT_HELD_KIND
from crm_sync.domains.engagement.spec import load_spec as load_engagement_spec
from crm_sync.domains.opportunities.rules import (
    ACCOUNT_SYSTEM_FIELDS,
    DOMAIN_ACCOUNT,
    DOMAIN_MEMBERSHIP,
    DOMAIN_OPPORTUNITY,
    DOMAIN_PERSON,
    OPP_SYSTEM_FIELDS,
    ROLE_FIELDS,
)
from crm_sync.domains.opportunities.rules import DAG_ID as DAG_OPPORTUNITIES
from crm_sync.domains.opportunities.rules import HELD_KIND as ROLE_HELD_KIND
from crm_sync.domains.opportunities.stages import load_stage_map
from crm_sync.domains.people.rules import DAG_ID as DAG_PEOPLE
from crm_sync.domains.people.rules import LG_CONTACT_STATUSES, sf_fields
from crm_sync.domains.people.rules import SPEC_NAMES as PERSON_SPECS
from crm_sync.errors import ConfigError, FatalError, RetriableError, SyncError
from crm_sync.mapping.loader import load_object_spec, spec_path
from crm_sync.mapping.models import BlankPolicy, Direction, FieldMapping, ObjectSpec
from crm_sync.mapping.owners import OwnerMap
from crm_sync.mapping.schema import LiveSchema
from crm_sync.pipeline.prepare import read_live_schema, resolve_owners
from crm_sync.pipeline.transform import (
    INVALID,
    canonicalize_leadgen,
    canonicalize_salesforce,
    is_blank,
)
from crm_sync.redact import SecretsFilter, redact_text
from crm_sync.runtime import DEFAULT_CONN_IDS, leadgen_client, salesforce_client, state_url
from crm_sync.state.store import SyncStore

log = logging.getLogger(__name__)

ENGAGEMENT_STREAM = ENGAGEMENT.stream
# Statuses of held items (state/models.py: HeldItem) that mean "the sync decided not to write
# this yet, or at all": everything but ``delivered``.
HELD_NOT_DELIVERED = ("held", "dropped", "superseded", "quarantined")
# Quarantine statuses the sync still retries or keeps open (``resolved`` rows explain nothing).
QUARANTINE_OPEN = ("open", "retry", "parked")

__all__ = [
    "ACCOUNT_SYSTEM_FIELDS",
    "DAG_ENGAGEMENT",
    "DAG_OPPORTUNITIES",
    "DAG_PEOPLE",
    "DEFAULT_CONN_IDS",
    "DOMAIN_ACCOUNT",
    "DOMAIN_MEMBERSHIP",
    "DOMAIN_OPPORTUNITY",
    "DOMAIN_PERSON",
    "ENGAGEMENT_STREAM",
    "EVENT_HELD_KIND",
    "EVENT_SOURCES",
    "HELD_NOT_DELIVERED",
    "INVALID",
    "LG_CONTACT_STATUSES",
    "OPP_SYSTEM_FIELDS",
    "PERSON_SPECS",
    "QUARANTINE_OPEN",
    "ROLE_FIELDS",
    "ROLE_HELD_KIND",
    "BlankPolicy",
    "ConfigError",
    "Direction",
    "FatalError",
    "FieldMapping",
    "LiveSchema",
    "ObjectSpec",
    "OwnerMap",
    "RetriableError",
    "SecretsFilter",
    "SyncError",
    "SyncStore",
    "canonicalize_leadgen",
    "canonicalize_salesforce",
    "expose_connections",
    "is_blank",
    "iter_links",
    "iter_quarantine",
    "leadgen_client",
    "load_engagement_spec",
    "load_object_spec",
    "load_stage_map",
    "normalize_event",
    "open_store_read_only",
    "read_live_schema",
    "redact_text",
    "resolve_owners",
    "salesforce_client",
    "sf_fields",
    "spec_path",
    "task_key",
    "to_18",
]


def _lookup_connection(conn_id: str) -> Any | None:
    """``conn_id`` as Airflow resolves it on a server (environment, secrets backend, metadata
    database), or None when it is not defined or there is no metadata database to ask."""
    try:
        from airflow.models.connection import Connection

        return Connection.get_connection_from_secrets(conn_id)
    except Exception as exc:  # not defined, or no database here: the SDK lookup says so later
        log.debug(
            "connection %s not found through Airflow's secrets: %s", conn_id, type(exc).__name__
        )
        return None


def expose_connections(
    conn_ids: Iterable[str], environ: MutableMapping[str, str] = os.environ
) -> list[str]:
    """Let this process see connections kept in Airflow's metadata database.

    Outside a task the Task SDK (which :mod:`crm_sync.runtime` and the provider hooks use) reads
    connections from environment variables and secrets backends only, so a connection created in
    the UI would be missed by a command-line run. Each ``conn_id`` without an ``AIRFLOW_CONN_*``
    variable is looked up the server's way and, when found, set as that variable for this
    process only. Returns the ids exposed (never their values).
    """
    exposed = []
    for conn_id in conn_ids:
        var = f"AIRFLOW_CONN_{conn_id.upper()}"
        if var in environ:
            continue
        conn = _lookup_connection(conn_id)
        if conn is not None:
            environ[var] = conn.as_json()
            exposed.append(conn_id)
    return exposed


def open_store_read_only(conn_id: str) -> SyncStore:
    """The state store behind ``conn_id``, opened without running migrations.

    A SQLite file that does not exist is refused instead of being created empty: the checker
    must not write, and an empty store would report every record as unlinked.
    """
    url = state_url(conn_id)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if not path or path == ":memory:" or not Path(path).exists():
            raise ConfigError(
                f"state store {parsed.render_as_string(hide_password=True)} not found"
            )
    return SyncStore(url, migrate=False)


def iter_links(store: SyncStore, batch: int = 2000) -> Iterator[Any]:
    return store.iter_links(batch)


def iter_quarantine(store: SyncStore, batch: int = 2000) -> Iterator[Any]:
    return store.iter_quarantine(batch)
