"""first-pairing lookups that found nothing, with when (the people match skips repeating them);
indexes for the record stage's purge of old quarantine rows and held items

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "match_misses",
        sa.Column("domain", sa.String(length=32), nullable=False),
        sa.Column("lg_id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("domain", "lg_id"),
    )
    # the match's prune: a domain's misses older than its window
    op.create_index("ix_match_misses_checked", "match_misses", ["domain", "checked_at"])
    # purge_old (every record stage): it read both tables whole (bench/bench_store_plans.py)
    op.create_index("ix_quarantine_resolved", "quarantine", ["status", "resolved_at"])
    op.create_index("ix_held_last_seen", "held_items", ["last_seen"])


def downgrade() -> None:
    op.drop_index("ix_held_last_seen", table_name="held_items")
    op.drop_index("ix_quarantine_resolved", table_name="quarantine")
    op.drop_index("ix_match_misses_checked", table_name="match_misses")
    op.drop_table("match_misses")
