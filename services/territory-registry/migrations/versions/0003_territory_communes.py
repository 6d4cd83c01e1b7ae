"""A territory's perimeter: the INSEE codes of its communes (``communes``, [] until known).

Revision ID: 0003_territory_communes
Revises: 0002_outbox_relay
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_territory_communes"
down_revision: str | None = "0002_outbox_relay"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("territory", sa.Column("communes", JSONType, nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    op.drop_column("territory", "communes")
