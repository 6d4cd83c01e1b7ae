"""The tables of the site catalogue (the infrastructure tables come from ``ti_shared.db``)."""

from __future__ import annotations

import sqlalchemy as sa
from ti_shared.db import Instant, JSONType

metadata = sa.MetaData()

site = sa.Table(
    "site",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("commune_insee", sa.String(5), nullable=False),
    sa.Column("departement_code", sa.String(3), nullable=False),
    sa.Column("region_code", sa.String(2), nullable=False),
    sa.Column("territory_id", sa.String(16), nullable=True),
    sa.Column("area_ha", sa.Numeric(14, 2), nullable=False),
    sa.Column("maturity", sa.String(16), nullable=False),
    sa.Column("land_recycling", sa.Boolean(), nullable=True),
    sa.Column("labelled_on", sa.Date(), nullable=False),
    sa.Column("workshop_held", sa.Boolean(), nullable=False),
    sa.Column("roadmap_delivered", sa.Boolean(), nullable=False),
    sa.Column("owner_kind", sa.String(32), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("cnig", JSONType, nullable=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("created_at", Instant, nullable=False),
    sa.Column("updated_at", Instant, nullable=False),
    sa.Index("ix_site_region_code", "region_code"),
    sa.Index("ix_site_territory_id", "territory_id"),
    sa.Index("ix_site_maturity", "maturity"),
    sa.Index("ix_site_status", "status"),
)

#: every version of every site, as it was published (the history endpoint reads it)
site_version = sa.Table(
    "site_version",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("change", sa.String(16), nullable=False),
    sa.Column("changed_at", Instant, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("data", JSONType, nullable=False),
)

#: the report of each applied import (``GET /v1/sites/imports/{import_id}``)
site_import = sa.Table(
    "site_import",
    metadata,
    sa.Column("import_id", sa.String(36), primary_key=True),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("imported_at", Instant, nullable=False),
    sa.Column("report", JSONType, nullable=False),
)
