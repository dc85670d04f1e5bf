"""per-run change log and undo holds

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every field a run overwrites (before and after) and every record it creates: what an
    # undo restores (crm_sync.undo).
    op.create_table(
        "change_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("system", sa.String(length=16), nullable=False),
        sa.Column("object", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("field", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "dag_id", "run_id", "system", "record_id", "field", name="uq_change_log_entry"
        ),
    )
    with op.batch_alter_table("change_log") as batch:
        batch.create_index("ix_change_log_run", ["dag_id", "run_id", "id"], unique=False)
        batch.create_index("ix_change_log_record", ["system", "object", "record_id"], unique=False)
        batch.create_index("ix_change_log_at", ["at"], unique=False)
    # Fields an undo restored on one side: the sync leaves them until one side changes.
    op.create_table(
        "undo_holds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("domain", sa.String(length=32), nullable=False),
        sa.Column("lg_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("leadgen", sa.JSON(), nullable=True),
        sa.Column("salesforce", sa.JSON(), nullable=True),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("domain", "lg_id", "key", name="uq_undo_holds_key"),
    )


def downgrade() -> None:
    op.drop_table("undo_holds")
    with op.batch_alter_table("change_log") as batch:
        batch.drop_index("ix_change_log_at")
        batch.drop_index("ix_change_log_record")
        batch.drop_index("ix_change_log_run")
    op.drop_table("change_log")
