"""The outbox relay's mark: published rows are no longer marked one by one (decision 17).

Revision ID: 0002_outbox_relay
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

from ti_shared.migrations import downgrade_outbox_relay, upgrade_outbox_relay

revision: str = "0002_outbox_relay"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    upgrade_outbox_relay(op, "territory-registry")


def downgrade() -> None:
    downgrade_outbox_relay(op, "territory-registry")
