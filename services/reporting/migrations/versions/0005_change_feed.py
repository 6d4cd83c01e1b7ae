"""The change feed: every applied change with the entity's previous state (outside every generation)

Revision ID: 0005_change_feed
Revises: 0003_outbox_relay
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_change_feed"
down_revision: str | None = "0003_outbox_relay"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "change_event",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operator", sa.String(length=32), nullable=True),
        sa.Column("event", JSON, nullable=False),
        sa.Column("previous", JSON, nullable=True),
        sa.Column("changed", JSON, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_change_event_subject", "change_event", ["topic", "subject", "seq"])
    op.create_index("ix_change_event_time", "change_event", ["time", "seq"])


def downgrade() -> None:
    op.drop_index("ix_change_event_time", table_name="change_event")
    op.drop_index("ix_change_event_subject", table_name="change_event")
    op.drop_table("change_event")
    op.execute(sa.text("DELETE FROM consumer_offset WHERE consumer = 'reporting-changes'"))
    op.execute(sa.text("DELETE FROM applied_version WHERE consumer = 'reporting-changes'"))
