"""Sites keep their CNIG « sites économiques » values as written (``cnig``); ``land_recycling`` and
``owner_kind`` may be unknown (null: a CNIG value that does not say).

Revision ID: 0003_cnig_values
Revises: 0002_outbox_relay
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from ti_shared.db import JSONType

revision: str = "0003_cnig_values"
down_revision: str | None = "0002_outbox_relay"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("site") as batch:
        batch.add_column(sa.Column("cnig", JSONType, nullable=True))
        batch.alter_column("land_recycling", existing_type=sa.Boolean(), nullable=True)
        batch.alter_column("owner_kind", existing_type=sa.String(32), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE site SET land_recycling = false WHERE land_recycling IS NULL")
    op.execute("UPDATE site SET owner_kind = 'autre' WHERE owner_kind IS NULL")
    with op.batch_alter_table("site") as batch:
        batch.alter_column("owner_kind", existing_type=sa.String(32), nullable=False)
        batch.alter_column("land_recycling", existing_type=sa.Boolean(), nullable=False)
        batch.drop_column("cnig")
