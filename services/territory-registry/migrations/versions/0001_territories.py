"""The territories, their versions, and the shared infrastructure tables.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from ti_shared.migrations import create_infra_tables, drop_infra_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Instant = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_infra_tables(op)
    op.create_table(
        "territory",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("region_code", sa.String(3), nullable=False),
        sa.Column("departement_codes", JSONType, nullable=False),
        sa.Column("epcis", JSONType, nullable=False),
        sa.Column("phase", sa.String(50), nullable=True),
        sa.Column("labelled_on", sa.Date(), nullable=True),
        sa.Column("project_lead", JSONType, nullable=True),
        sa.Column("launch_copil_held_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
    )
    op.create_index("ix_territory_region_code", "territory", ["region_code", "id"])
    op.create_index("ix_territory_status", "territory", ["status", "id"])
    op.create_table(
        "territory_version",
        sa.Column("territory_id", sa.String(16), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("changed_fields", JSONType, nullable=False),
        sa.Column("state", JSONType, nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("effective_at", Instant, nullable=False),
        sa.Column("recorded_at", Instant, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("territory_version")
    op.drop_index("ix_territory_status", table_name="territory")
    op.drop_index("ix_territory_region_code", table_name="territory")
    op.drop_table("territory")
    drop_infra_tables(op)
