"""Actions carry whether they have a budget (the data quality report counts those without).

The projections and materialised indicators are emptied and the reporting consumers' positions
forgotten, so that the service replays every topic from the start and every action's row says it.
The editions and the change feed are kept.

Revision ID: 0009_action_budget
Revises: 0008_webhooks
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_action_budget"
down_revision: str | None = "0008_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GENERATED = (
    "territory_state", "action_state", "grant_state", "site_state",
    "territory_version", "action_version", "grant_version", "site_version",
    "indicator_scope", "indicator_counter", "indicator_ref",
)


def _replay_from_the_start() -> None:
    for table in _GENERATED:
        op.execute(sa.text(f"DELETE FROM {table}"))
    for table in ("consumer_offset", "applied_version"):
        op.execute(sa.text(f"DELETE FROM {table} WHERE consumer = 'reporting' OR consumer LIKE 'reporting-rebuild-%'"))


def upgrade() -> None:
    _replay_from_the_start()
    for table in ("action_state", "action_version"):
        op.add_column(table, sa.Column("has_budget", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    _replay_from_the_start()
    for table in ("action_state", "action_version"):
        with op.batch_alter_table(table) as batch:  # SQLite rebuilds the table
            batch.drop_column("has_budget")
