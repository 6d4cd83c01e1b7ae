"""Actions, their themes and their versions; the shared infrastructure tables.

Revision ID: 0001_actions
Revises:
Create Date: 2024-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from ti_shared.db import Instant, JSONType
from ti_shared.migrations import create_infra_tables, drop_infra_tables

revision = "0001_actions"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_infra_tables(op)
    op.create_table(
        "action",
        sa.Column("action_id", sa.String(64), primary_key=True),
        sa.Column("territory_id", sa.String(16), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("axis", sa.String(32), nullable=False),
        sa.Column("themes", JSONType, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("planned_start", sa.Date(), nullable=True),
        sa.Column("planned_end", sa.Date(), nullable=True),
        sa.Column("budget_eur", sa.Numeric(14, 2), nullable=True),
        sa.Column("partners", JSONType, nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
    )
    op.create_index("ix_action_territory_id", "action", ["territory_id"])
    op.create_index("ix_action_status", "action", ["status"])
    op.create_index("ix_action_axis", "action", ["axis"])
    op.create_table(
        "action_theme",
        sa.Column("action_id", sa.String(64), sa.ForeignKey("action.action_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("theme", sa.String(64), primary_key=True),
    )
    op.create_index("ix_action_theme_theme", "action_theme", ["theme"])
    op.create_table(
        "action_version",
        sa.Column("action_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("change", sa.String(32), nullable=False),
        sa.Column("recorded_at", Instant, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("changed_fields", JSONType, nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("state", JSONType, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("action_version")
    op.drop_index("ix_action_theme_theme", table_name="action_theme")
    op.drop_table("action_theme")
    op.drop_index("ix_action_axis", table_name="action")
    op.drop_index("ix_action_status", table_name="action")
    op.drop_index("ix_action_territory_id", table_name="action")
    op.drop_table("action")
    drop_infra_tables(op)
