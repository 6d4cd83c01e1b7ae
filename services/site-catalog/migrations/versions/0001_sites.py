"""The site catalogue: sites, their versions, import reports (and the shared infrastructure tables).

Revision ID: 0001_sites
Revises:
Create Date: 2025-01-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from ti_shared.migrations import create_infra_tables, drop_infra_tables

revision: str = "0001_sites"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Instant = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_infra_tables(op)
    op.create_table(
        "site",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("commune_insee", sa.String(5), nullable=False),
        sa.Column("departement_code", sa.String(3), nullable=False),
        sa.Column("region_code", sa.String(2), nullable=False),
        sa.Column("territory_id", sa.String(16), nullable=True),
        sa.Column("area_ha", sa.Numeric(14, 2), nullable=False),
        sa.Column("maturity", sa.String(16), nullable=False),
        sa.Column("land_recycling", sa.Boolean(), nullable=False),
        sa.Column("labelled_on", sa.Date(), nullable=False),
        sa.Column("workshop_held", sa.Boolean(), nullable=False),
        sa.Column("roadmap_delivered", sa.Boolean(), nullable=False),
        sa.Column("owner_kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
    )
    op.create_index("ix_site_region_code", "site", ["region_code"])
    op.create_index("ix_site_territory_id", "site", ["territory_id"])
    op.create_index("ix_site_maturity", "site", ["maturity"])
    op.create_index("ix_site_status", "site", ["status"])
    op.create_table(
        "site_version",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("changed_at", Instant, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("data", JSONType, nullable=False),
    )
    op.create_table(
        "site_import",
        sa.Column("import_id", sa.String(36), primary_key=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("imported_at", Instant, nullable=False),
        sa.Column("report", JSONType, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("site_import")
    op.drop_table("site_version")
    op.drop_index("ix_site_status", table_name="site")
    op.drop_index("ix_site_maturity", table_name="site")
    op.drop_index("ix_site_territory_id", table_name="site")
    op.drop_index("ix_site_region_code", table_name="site")
    op.drop_table("site")
    drop_infra_tables(op)
