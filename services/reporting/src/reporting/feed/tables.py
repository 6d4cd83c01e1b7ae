"""Tables of the change feed and of the webhook subscriptions (on the reporting service's metadata,
outside every generation of the indicators: a rebuild of the indicators leaves them alone)."""

from __future__ import annotations

import sqlalchemy as sa
from ti_shared.db import Instant, JSONType

from reporting.tables import metadata

#: a 64-bit sequence on PostgreSQL; SQLite numbers its rowid-backed INTEGER primary keys itself
Sequence = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: one applied change: the CloudEvent as published, the entity's state before it, what it changed
change_event = sa.Table(
    "change_event",
    metadata,
    #: the feed's order (the order the changes were applied in); a cursor is this number
    sa.Column("seq", Sequence, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("topic", sa.String(64), nullable=False),
    sa.Column("type", sa.String(128), nullable=False),
    sa.Column("subject", sa.String(256), nullable=False),
    sa.Column("version", sa.BigInteger(), nullable=False),
    sa.Column("time", Instant, nullable=False),
    #: a grant's operator (who may read the change); None for the public entities
    sa.Column("operator", sa.String(32), nullable=True),
    sa.Column("event", JSONType, nullable=False),
    sa.Column("previous", JSONType, nullable=True),
    sa.Column("changed", JSONType, nullable=False),
    sa.Column("recorded_at", Instant, nullable=False),
    sa.Index("ix_change_event_subject", "topic", "subject", "seq"),
    sa.Index("ix_change_event_time", "time", "seq"),
)
