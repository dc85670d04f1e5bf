"""Alembic environment for the sync state store.

Run programmatically by :meth:`crm_sync.state.store.SyncStore.migrate`, which passes an open
connection in ``config.attributes["connection"]``; no alembic.ini is needed.
"""

from __future__ import annotations

from alembic import context

from crm_sync.state.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("the sync state migrations run only through SyncStore.migrate()")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place: batch mode recreates tables when needed.
        render_as_batch=connection.dialect.name == "sqlite",
        version_table="crm_sync_alembic_version",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
