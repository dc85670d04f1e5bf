"""one active link per record; held items remember the run that last held them; run leases

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Memberships link many opportunity leads to one opportunity: the only many-to-one domain.
ONE_TO_ONE = "status = 'active' AND domain != 'membership'"


def upgrade() -> None:
    # A Salesforce record stands for one record on the other side: two active links to it would
    # make two leads overwrite each other there. The store refuses it; the database guarantees it.
    op.create_index(
        "uq_links_active_sf_record",
        "links",
        ["domain", "sf_id"],
        unique=True,
        sqlite_where=sa.text(ONE_TO_ONE),
        postgresql_where=sa.text(ONE_TO_ONE),
    )
    # A retried record task must not count a second attempt for the same run.
    with op.batch_alter_table("held_items") as batch:
        batch.add_column(sa.Column("last_run_id", sa.String(length=250), nullable=True))
    # One run of a DAG at a time reads and writes its sync state.
    op.create_table(
        "leases",
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("acquired_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("dag_id"),
    )


def downgrade() -> None:
    op.drop_table("leases")
    with op.batch_alter_table("held_items") as batch:
        batch.drop_column("last_run_id")
    op.drop_index("uq_links_active_sf_record", table_name="links")
