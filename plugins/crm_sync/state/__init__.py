"""Explicit sync state in a SQL database (SQLite by default, Postgres in compose).

Links between records, the last synced value of every mapped field, run reports, windows
(watermarks), quarantined rows and held items. Schema changes go through Alembic migrations in
``migrations/`` and are applied automatically when a store is opened.
"""

from crm_sync.state.store import SyncStore

__all__ = ["SyncStore"]
