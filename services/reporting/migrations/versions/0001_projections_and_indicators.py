"""Projections (current states and history) and materialised indicators

Revision ID: 0001
Revises:
Create Date: 2026-11-26 11:55:35.127911
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from ti_shared.migrations import create_infra_tables, drop_infra_tables
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('action_state',
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('id', sa.String(length=256), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('territory_id', sa.String(length=16), nullable=False),
    sa.Column('axis', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('themes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('generation', 'id')
    )
    op.create_table('action_version',
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('id', sa.String(length=256), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('territory_id', sa.String(length=16), nullable=False),
    sa.Column('axis', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('themes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('generation', 'id', 'version')
    )
    with op.batch_alter_table('action_version', schema=None) as batch_op:
        batch_op.create_index('ix_action_version_time', ['generation', 'time'], unique=False)

    op.create_table('grant_state',
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('id', sa.String(length=256), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('programme', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('territory_id', sa.String(length=16), nullable=True),
    sa.Column('departement', sa.String(length=3), nullable=True),
    sa.Column('departement_region', sa.String(length=3), nullable=True),
    sa.Column('amount_eur', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('investment_eur', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('disbursed_eur', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('jobs_forecast', sa.Integer(), nullable=False),
    sa.Column('jobs_conditional', sa.Integer(), nullable=False),
    sa.Column('contributions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('value_chain', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('generation', 'id')
    )
    op.create_table('grant_version',
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('id', sa.String(length=256), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('programme', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('territory_id', sa.String(length=16), nullable=True),
    sa.Column('departement', sa.String(length=3), nullable=True),
    sa.Column('departement_region', sa.String(length=3), nullable=True),
    sa.Column('amount_eur', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('investment_eur', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('disbursed_eur', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('jobs_forecast', sa.Integer(), nullable=False),
    sa.Column('jobs_conditional', sa.Integer(), nullable=False),
    sa.Column('contributions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('value_chain', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('generation', 'id', 'version')
    )
    with op.batch_alter_table('grant_version', schema=None) as batch_op:
        batch_op.create_index('ix_grant_version_time', ['generation', 'time'], unique=False)

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
    op.create_table('rebuild_run',
    sa.Column('generation', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('events_applied', sa.BigInteger(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('generation')
    )
    op.create_table('reporting_generation',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('current', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('site_state',
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('id', sa.String(length=256), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('territory_id', sa.String(length=16), nullable=True),
    sa.Column('region_code', sa.String(length=3), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('area_ha', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('land_recycling', sa.Boolean(), nullable=False),
    sa.Column('roadmap_delivered', sa.Boolean(), nullable=False),
    sa.Column('workshop_held', sa.Boolean(), nullable=False),
    sa.Column('maturity', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('generation', 'id')
    )
    op.create_table('site_version',
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('id', sa.String(length=256), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('territory_id', sa.String(length=16), nullable=True),
    sa.Column('region_code', sa.String(length=3), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('area_ha', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('land_recycling', sa.Boolean(), nullable=False),
    sa.Column('roadmap_delivered', sa.Boolean(), nullable=False),
    sa.Column('workshop_held', sa.Boolean(), nullable=False),
    sa.Column('maturity', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('generation', 'id', 'version')
    )
    with op.batch_alter_table('site_version', schema=None) as batch_op:
        batch_op.create_index('ix_site_version_time', ['generation', 'time'], unique=False)

    op.create_table('territory_state',
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('id', sa.String(length=256), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('region_code', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('epci_sirens', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('lead_in_post', sa.Boolean(), nullable=False),
    sa.Column('lead_cofinanced', sa.Boolean(), nullable=False),
    sa.Column('copil_held', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('generation', 'id')
    )
    op.create_table('territory_version',
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('id', sa.String(length=256), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('region_code', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('epci_sirens', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('lead_in_post', sa.Boolean(), nullable=False),
    sa.Column('lead_cofinanced', sa.Boolean(), nullable=False),
    sa.Column('copil_held', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('generation', 'id', 'version')
    )
    with op.batch_alter_table('territory_version', schema=None) as batch_op:
        batch_op.create_index('ix_territory_version_time', ['generation', 'time'], unique=False)

    op.bulk_insert(
        sa.table("reporting_generation", sa.column("id", sa.Integer()), sa.column("current", sa.Integer())),
        [{"id": 1, "current": 1}],
    )
    create_infra_tables(op)


def downgrade() -> None:
    drop_infra_tables(op)
    with op.batch_alter_table('territory_version', schema=None) as batch_op:
        batch_op.drop_index('ix_territory_version_time')

    op.drop_table('territory_version')
    op.drop_table('territory_state')
    with op.batch_alter_table('site_version', schema=None) as batch_op:
        batch_op.drop_index('ix_site_version_time')

    op.drop_table('site_version')
    op.drop_table('site_state')
    op.drop_table('reporting_generation')
    op.drop_table('rebuild_run')
    op.drop_table('indicator_value')
    op.drop_table('indicator_scope')
    with op.batch_alter_table('grant_version', schema=None) as batch_op:
        batch_op.drop_index('ix_grant_version_time')

    op.drop_table('grant_version')
    op.drop_table('grant_state')
    with op.batch_alter_table('action_version', schema=None) as batch_op:
        batch_op.drop_index('ix_action_version_time')

    op.drop_table('action_version')
    op.drop_table('action_state')
