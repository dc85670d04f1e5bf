"""indexes for every lookup a stage makes; a cache of API answers (schemas) with their age

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (name, table, columns): see docs/benchmarks.md, "State store", for the query each one serves.
INDEXES = (
    # the API budget of every task: Salesforce calls of all DAGs since 24 h ago
    ("ix_runs_started", "runs", ["started_at"]),
    # "has the people DAG covered this window?" (the dependent DAGs' sensor), synced_until
    ("ix_runs_dag_window_end", "runs", ["dag_id", "window_end"]),
    # all links or a count of one domain and status, in id order (record, verify, health)
    ("ix_links_domain_status", "links", ["domain", "status", "id"]),
    # the keys every extract retries: a DAG's quarantine rows of one direction and status
    ("ix_quarantine_retry", "quarantine", ["dag_id", "direction", "status"]),
    # prepare: the latest write refused for a schema reason (it invalidates the schema cache)
    ("ix_quarantine_error_seen", "quarantine", ["error_code", "last_seen"]),
    # held contact roles and events of one DAG and kind still waiting
    ("ix_held_kind_status", "held_items", ["dag_id", "kind", "status"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    op.create_table(
        "cache_entries",
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("scope", sa.String(length=250), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("stored_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    # prepare: every fresh entry of one connection's schemas
    op.create_index("ix_cache_scope_stored", "cache_entries", ["scope", "stored_at"])


def downgrade() -> None:
    op.drop_index("ix_cache_scope_stored", table_name="cache_entries")
    op.drop_table("cache_entries")
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
