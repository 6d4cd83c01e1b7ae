"""Frozen editions of the Bilan, their entity versions and sign-offs (outside every generation).

Revision ID: 0006_editions
Revises: 0005_change_feed
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_editions"
down_revision: str | None = "0005_change_feed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "report_edition",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("as_of", sa.String(length=40), nullable=False),
        sa.Column("as_of_instant", sa.DateTime(timezone=True), nullable=False),
        sa.Column("as_of_inclusive", sa.Boolean(), nullable=False),
        sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("frozen_by", sa.String(length=256), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("indicators", sa.LargeBinary(), nullable=False),
        sa.Column("html", sa.LargeBinary(), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("digests", JSON, nullable=False),
        sa.Column("sources", JSON, nullable=False),
        sa.Column("territories", JSON, nullable=False),
        sa.Column("final_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_report_edition_frozen_at", "report_edition", ["frozen_at", "id"])
    op.create_table(
        "report_edition_entity",
        sa.Column("edition_id", sa.String(length=36), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("entity_id", sa.String(length=256), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["edition_id"], ["report_edition.id"]),
        sa.PrimaryKeyConstraint("edition_id", "entity", "entity_id"),
    )
    op.create_table(
        "report_edition_sign_off",
        sa.Column("edition_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("territory_id", sa.String(length=16), nullable=True),
        sa.Column("actor", sa.String(length=256), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(["edition_id"], ["report_edition.id"]),
        sa.PrimaryKeyConstraint("edition_id", "seq"),
        sa.UniqueConstraint("edition_id", "role", "territory_id", "actor", name="uq_report_edition_sign_off_signer"),
    )


def downgrade() -> None:
    op.drop_table("report_edition_sign_off")
    op.drop_table("report_edition_entity")
    op.drop_index("ix_report_edition_frozen_at", table_name="report_edition")
    op.drop_table("report_edition")
