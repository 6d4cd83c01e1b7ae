"""The tables of the territory registry: the current state of each territory and every version of it."""

from __future__ import annotations

import sqlalchemy as sa
from ti_shared.db import Instant, JSONType

metadata = sa.MetaData()

territory = sa.Table(
    "territory",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("region_code", sa.String(3), nullable=False),
    sa.Column("departement_codes", JSONType, nullable=False),
    sa.Column("epcis", JSONType, nullable=False),
    sa.Column("phase", sa.String(50), nullable=True),
    sa.Column("labelled_on", sa.Date(), nullable=True),
    sa.Column("project_lead", JSONType, nullable=True),
    sa.Column("launch_copil_held_on", sa.Date(), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("communes", JSONType, nullable=False, server_default=sa.text("'[]'")),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("updated_at", Instant, nullable=False),
    sa.Column("updated_by", sa.Text(), nullable=False),
    sa.Index("ix_territory_region_code", "region_code", "id"),
    sa.Index("ix_territory_status", "status", "id"),
)

territory_version = sa.Table(
    "territory_version",
    metadata,
    sa.Column("territory_id", sa.String(16), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("change", sa.String(16), nullable=False),
    sa.Column("changed_fields", JSONType, nullable=False),
    sa.Column("state", JSONType, nullable=False),
    sa.Column("actor", sa.Text(), nullable=False),
    sa.Column("effective_at", Instant, nullable=False),
    sa.Column("recorded_at", Instant, nullable=False),
)
