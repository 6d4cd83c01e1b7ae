"""Tables of the editions (on the reporting service's metadata, outside every generation)."""

from __future__ import annotations

import sqlalchemy as sa
from ti_shared.db import Instant, JSONType

from reporting.tables import metadata

#: one frozen edition: its parts byte for byte, their digests and the sources' high-water marks
report_edition = sa.Table(
    "report_edition",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("scope", sa.String(32), nullable=False),
    #: ``as_of`` as given (a date, or the instant in UTC) and the bound it stands for
    sa.Column("as_of", sa.String(40), nullable=False),
    sa.Column("as_of_instant", Instant, nullable=False),
    sa.Column("as_of_inclusive", sa.Boolean(), nullable=False),
    sa.Column("frozen_at", Instant, nullable=False),
    sa.Column("frozen_by", sa.String(256), nullable=False),
    sa.Column("generation", sa.Integer(), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("indicators", sa.LargeBinary(), nullable=False),
    sa.Column("html", sa.LargeBinary(), nullable=False),
    sa.Column("pdf", sa.LargeBinary(), nullable=False),
    #: ``{part: {"sha256": …, "bytes": n}}`` of the three parts
    sa.Column("digests", JSONType, nullable=False),
    #: ``[{"topic": …, "partitions": {"0": next offset}, "events": n}]`` of the live consumer
    sa.Column("sources", JSONType, nullable=False),
    #: the territory ids the scope covered as of the instant (who may sign for a territory)
    sa.Column("territories", JSONType, nullable=False),
    sa.Column("final_at", Instant, nullable=True),
    sa.Index("ix_report_edition_frozen_at", "frozen_at", "id"),
)

#: the version of each entity the edition was computed over (its state as of the instant)
report_edition_entity = sa.Table(
    "report_edition_entity",
    metadata,
    sa.Column("edition_id", sa.String(36), sa.ForeignKey("report_edition.id"), primary_key=True),
    sa.Column("entity", sa.String(16), primary_key=True),
    sa.Column("entity_id", sa.String(256), primary_key=True),
    sa.Column("version", sa.BigInteger(), nullable=False),
)

report_edition_sign_off = sa.Table(
    "report_edition_sign_off",
    metadata,
    sa.Column("edition_id", sa.String(36), sa.ForeignKey("report_edition.id"), primary_key=True),
    sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
    #: ``admin`` or ``territory_lead``
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("territory_id", sa.String(16), nullable=True),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("signed_at", Instant, nullable=False),
    sa.Column("comment", sa.String(1000), nullable=True),
    sa.UniqueConstraint("edition_id", "role", "territory_id", "actor", name="uq_report_edition_sign_off_signer"),
)
