"""runs.status fits every status a run ends with

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 11:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _status_length(old: int, new: int) -> None:
    with op.batch_alter_table("runs") as batch:
        batch.alter_column(
            "status",
            existing_type=sa.String(length=old),
            type_=sa.String(length=new),
            existing_nullable=False,
        )


def upgrade() -> None:
    # "threshold_exceeded" is 18 characters. SQLite never enforced the old 16; PostgreSQL refused
    # it, so on the cluster a run above the reject-rate threshold crashed its record task instead
    # of turning red (found by the e2e suite on PostgreSQL).
    _status_length(16, 32)


def downgrade() -> None:
    _status_length(32, 16)
