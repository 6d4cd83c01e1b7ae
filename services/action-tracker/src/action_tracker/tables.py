"""The action-tracker's tables (the infrastructure tables come from ti_shared.db)."""

from __future__ import annotations

import sqlalchemy as sa
from ti_shared.db import Instant, JSONType

metadata = sa.MetaData()

#: the current state of every action (deleted ones included: ``deleted`` is true)
action = sa.Table(
    "action",
    metadata,
    sa.Column("action_id", sa.String(64), primary_key=True),
    sa.Column("territory_id", sa.String(16), nullable=False),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column("axis", sa.String(32), nullable=False),
    sa.Column("themes", JSONType, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("planned_start", sa.Date(), nullable=True),
    sa.Column("planned_end", sa.Date(), nullable=True),
    sa.Column("budget_eur", sa.Numeric(14, 2), nullable=True),
    sa.Column("partners", JSONType, nullable=False),
    sa.Column("deleted", sa.Boolean(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("created_at", Instant, nullable=False),
    sa.Column("updated_at", Instant, nullable=False),
    sa.Index("ix_action_territory_id", "territory_id"),
    sa.Index("ix_action_status", "status"),
    sa.Index("ix_action_axis", "axis"),
)

#: one row per (action, theme), for the ``theme`` filter
action_theme = sa.Table(
    "action_theme",
    metadata,
    sa.Column("action_id", sa.String(64), sa.ForeignKey("action.action_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("theme", sa.String(64), primary_key=True),
    sa.Index("ix_action_theme_theme", "theme"),
)

#: every version of every action: when, who, what changed, the comment and the whole state
action_version = sa.Table(
    "action_version",
    metadata,
    sa.Column("action_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("change", sa.String(32), nullable=False),
    sa.Column("recorded_at", Instant, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("changed_fields", JSONType, nullable=False),
    sa.Column("comment", sa.Text(), nullable=True),
    sa.Column("state", JSONType, nullable=False),
)
