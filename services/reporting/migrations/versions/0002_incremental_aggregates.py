"""Incremental aggregates: counters and reference counts per scope, one document per scope

The projections are emptied and the consumers' positions forgotten, so the service replays every
topic from the start into the new tables.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PROJECTIONS = (
    'territory_state', 'action_state', 'grant_state', 'site_state',
    'territory_version', 'action_version', 'grant_version', 'site_version',
)


def _forget_projections() -> None:
    for table in _PROJECTIONS:
        op.execute(sa.text(f'DELETE FROM {table}'))
    for table in ('consumer_offset', 'applied_version'):
        op.execute(sa.text(f"DELETE FROM {table} WHERE consumer = 'reporting' OR consumer LIKE 'reporting-rebuild-%'"))


def upgrade() -> None:
    _forget_projections()
    op.drop_table('indicator_value')
    op.drop_table('indicator_scope')
    op.create_table('indicator_scope',
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('generation', 'scope')
    )
    op.create_table('indicator_counter',
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('generation', 'scope', 'name')
    )
    op.create_table('indicator_ref',
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=120), nullable=False),
    sa.Column('value', sa.String(length=256), nullable=False),
    sa.Column('refcount', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('generation', 'scope', 'kind', 'value')
    )
    op.create_index('ix_action_state_territory_id', 'action_state', ['generation', 'territory_id'], unique=False)
    op.create_index('ix_grant_state_territory_id', 'grant_state', ['generation', 'territory_id'], unique=False)
    op.create_index('ix_site_state_territory_id', 'site_state', ['generation', 'territory_id'], unique=False)
    op.create_index('ix_site_state_region_code', 'site_state', ['generation', 'region_code'], unique=False)


def downgrade() -> None:
    _forget_projections()
    op.drop_index('ix_site_state_region_code', table_name='site_state')
    op.drop_index('ix_site_state_territory_id', table_name='site_state')
    op.drop_index('ix_grant_state_territory_id', table_name='grant_state')
    op.drop_index('ix_action_state_territory_id', table_name='action_state')
    op.drop_table('indicator_ref')
    op.drop_table('indicator_counter')
    op.drop_table('indicator_scope')
    op.create_table('indicator_scope',
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('generation', 'scope')
    )
    op.create_table('indicator_value',
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('generation', 'scope', 'code')
    )
