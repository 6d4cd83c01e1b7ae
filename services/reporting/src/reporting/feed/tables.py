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

#: a reuser's webhook: where the changes it may read are delivered, and how far it got
webhook_subscription = sa.Table(
    "webhook_subscription",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    #: the token ``sub`` that created it (it, or an admin token, manages it)
    sa.Column("owner", sa.String(256), nullable=False),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("types", JSONType, nullable=False),
    #: only this operator's grant changes (None: every grant change its reader may read)
    sa.Column("operator", sa.String(32), nullable=True),
    sa.Column("description", sa.String(500), nullable=False),
    #: what the creating token may read (the feed's grant read rules), kept with the subscription
    sa.Column("reader_grants", sa.Boolean(), nullable=False),
    sa.Column("reader_operator", sa.String(32), nullable=True),
    sa.Column("secret", sa.String(64), nullable=False),
    #: the secret before the last rotation, still signing until ``previous_secret_until``
    sa.Column("previous_secret", sa.String(64), nullable=True),
    sa.Column("previous_secret_until", Instant, nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("paused_reason", sa.Text(), nullable=True),
    sa.Column("failures", sa.Integer(), nullable=False),
    #: the feed position (``change_event.seq``) delivered last
    sa.Column("position", sa.BigInteger(), nullable=False),
    sa.Column("next_attempt_at", Instant, nullable=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("created_at", Instant, nullable=False),
    sa.Column("updated_at", Instant, nullable=False),
)

#: every delivery attempt of a subscription (its log)
webhook_delivery = sa.Table(
    "webhook_delivery",
    metadata,
    sa.Column("id", Sequence, primary_key=True, autoincrement=True),
    sa.Column("subscription_id", sa.String(64), nullable=False),
    sa.Column("change_seq", sa.BigInteger(), nullable=False),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("attempted_at", Instant, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("http_status", sa.Integer(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("latency_ms", sa.Integer(), nullable=False),
    sa.Column("next_retry_at", Instant, nullable=True),
    sa.Index("ix_webhook_delivery_subscription", "subscription_id", "id"),
)
