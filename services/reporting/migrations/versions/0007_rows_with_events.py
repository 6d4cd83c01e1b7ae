"""Projection rows carry the event that set them; money and areas in cents; versions from the states

The ``*_state`` and ``*_version`` tables are recreated with ``event_id``, cents columns and lists as
``text[]`` on PostgreSQL (the history loses its time index: ``as_of`` reads a generation's history
in full anyway). The reporting consumers read their applied versions from the state rows now, so
their ``applied_version`` rows go; the figures are emptied and the consumers' positions forgotten:
after the upgrade the service replays every topic from the start.

Revision ID: 0007_rows_with_events
Revises: 0006_editions
Create Date: 2026-12-01 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0007_rows_with_events'
down_revision: str | None = '0006_editions'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENTITIES = ('territory', 'action', 'grant', 'site')
TEXT_LIST = sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), 'postgresql')
OLD_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def _columns(lists: sa.types.TypeEngine[object]) -> dict[str, list[sa.Column[object]]]:
    return {
        'territory': [
            sa.Column('region_code', sa.String(length=3), nullable=False),
            sa.Column('status', sa.String(length=16), nullable=False),
            sa.Column('epci_sirens', lists, nullable=False),
            sa.Column('lead_in_post', sa.Boolean(), nullable=False),
            sa.Column('lead_cofinanced', sa.Boolean(), nullable=False),
            sa.Column('copil_held', sa.Boolean(), nullable=False),
        ],
        'action': [
            sa.Column('territory_id', sa.String(length=16), nullable=False),
            sa.Column('axis', sa.String(length=32), nullable=False),
            sa.Column('status', sa.String(length=32), nullable=False),
            sa.Column('themes', lists, nullable=False),
            sa.Column('deleted', sa.Boolean(), nullable=False),
        ],
    }


def _new(entity: str) -> list[sa.Column[object]]:
    if entity in ('territory', 'action'):
        return _columns(TEXT_LIST)[entity]
    if entity == 'grant':
        return [
            sa.Column('programme', sa.String(length=64), nullable=False),
            sa.Column('status', sa.String(length=16), nullable=False),
            sa.Column('territory_id', sa.String(length=16), nullable=True),
            sa.Column('departement', sa.String(length=3), nullable=True),
            sa.Column('departement_region', sa.String(length=3), nullable=True),
            sa.Column('amount_cents', sa.BigInteger(), nullable=False),
            sa.Column('investment_cents', sa.BigInteger(), nullable=False),
            sa.Column('disbursed_cents', sa.BigInteger(), nullable=False),
            sa.Column('jobs_forecast', sa.BigInteger(), nullable=False),
            sa.Column('jobs_conditional', sa.BigInteger(), nullable=False),
            sa.Column('contributions', TEXT_LIST, nullable=False),
            sa.Column('value_chain', sa.String(length=32), nullable=True),
        ]
    return [
        sa.Column('territory_id', sa.String(length=16), nullable=True),
        sa.Column('region_code', sa.String(length=3), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('area_cents', sa.BigInteger(), nullable=False),
        sa.Column('land_recycling', sa.Boolean(), nullable=False),
        sa.Column('roadmap_delivered', sa.Boolean(), nullable=False),
        sa.Column('workshop_held', sa.Boolean(), nullable=False),
        sa.Column('maturity', sa.String(length=16), nullable=False),
    ]


def _old(entity: str) -> list[sa.Column[object]]:
    if entity in ('territory', 'action'):
        return _columns(OLD_JSON)[entity]
    if entity == 'grant':
        return [
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
            sa.Column('contributions', OLD_JSON, nullable=False),
            sa.Column('value_chain', sa.String(length=32), nullable=True),
        ]
    return [
        sa.Column('territory_id', sa.String(length=16), nullable=True),
        sa.Column('region_code', sa.String(length=3), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('area_ha', sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column('land_recycling', sa.Boolean(), nullable=False),
        sa.Column('roadmap_delivered', sa.Boolean(), nullable=False),
        sa.Column('workshop_held', sa.Boolean(), nullable=False),
        sa.Column('maturity', sa.String(length=16), nullable=False),
    ]


def _keys(with_event: bool) -> list[sa.Column[object]]:
    keys: list[sa.Column[object]] = [
        sa.Column('generation', sa.Integer(), nullable=False),
        sa.Column('id', sa.String(length=256), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    ]
    if with_event:
        keys.append(sa.Column('event_id', sa.Text(), nullable=False))
    return keys


def _forget_positions() -> None:
    for table in ('consumer_offset', 'applied_version'):
        op.execute(sa.text(f"DELETE FROM {table} WHERE consumer = 'reporting' OR consumer LIKE 'reporting-rebuild-%'"))
    for table in ('indicator_scope', 'indicator_counter', 'indicator_ref'):
        op.execute(sa.text(f'DELETE FROM {table}'))


def _drop_projections() -> None:
    for entity in ENTITIES:
        op.drop_table(f'{entity}_version')
        op.drop_table(f'{entity}_state')


def upgrade() -> None:
    _forget_positions()
    _drop_projections()
    for entity in ENTITIES:
        op.create_table(f'{entity}_state', *_keys(True), *_new(entity), sa.PrimaryKeyConstraint('generation', 'id'))
        op.create_table(f'{entity}_version', *_keys(True), *_new(entity), sa.PrimaryKeyConstraint('generation', 'id', 'version'))
        if entity != 'territory':
            op.create_index(f'ix_{entity}_state_territory_id', f'{entity}_state', ['generation', 'territory_id'], unique=False)


def downgrade() -> None:
    _forget_positions()
    _drop_projections()
    for entity in ENTITIES:
        op.create_table(f'{entity}_state', *_keys(False), *_old(entity), sa.PrimaryKeyConstraint('generation', 'id'))
        op.create_table(f'{entity}_version', *_keys(False), *_old(entity), sa.PrimaryKeyConstraint('generation', 'id', 'version'))
        op.create_index(f'ix_{entity}_version_time', f'{entity}_version', ['generation', 'time'], unique=False)
        if entity != 'territory':
            op.create_index(f'ix_{entity}_state_territory_id', f'{entity}_state', ['generation', 'territory_id'], unique=False)
    op.create_index('ix_site_state_region_code', 'site_state', ['generation', 'region_code'], unique=False)
