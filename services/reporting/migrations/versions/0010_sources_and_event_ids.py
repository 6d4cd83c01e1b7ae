"""What each generation has applied of each source; the history's event ids indexed

``reporting_source`` holds, per generation, source service and operator (the funding ledger's
grants; '' elsewhere), the events applied and the latest of them (by time, then id): filled here from
the history of each existing generation, then kept by the projection in the transactions that apply
events. A hash index on the ``event_id`` of each ``*_version`` table answers ``after=<event-id>``.

Revision ID: 0010_sources_and_event_ids
Revises: 0009_action_budget
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_sources_and_event_ids"
down_revision: str | None = "0009_action_budget"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SERVICES = {"territory": "territory-registry", "action": "action-tracker", "grant": "funding-ledger", "site": "site-catalog"}


def _fill() -> None:
    """The sources of the existing generations, from their history (the latest event by time, then id)."""
    bind = op.get_bind()
    source = sa.table(
        "reporting_source", sa.column("generation"), sa.column("service"), sa.column("operator"), sa.column("events"),
        sa.column("last_time"), sa.column("last_event_id"),
    )
    for entity, service in SERVICES.items():
        history = sa.table(f"{entity}_version", sa.column("generation"), sa.column("id"), sa.column("time"), sa.column("event_id"))
        totals: dict[tuple[int, str], int] = {}
        latest: dict[tuple[int, str], tuple[object, str]] = {}
        rows = bind.execute(sa.select(history.c.generation, history.c.id, history.c.time, history.c.event_id))
        for generation, subject, time, event_id in rows:
            key = (generation, subject.partition("/")[0] if entity == "grant" else "")
            totals[key] = totals.get(key, 0) + 1
            if key not in latest or (time, event_id) > latest[key]:
                latest[key] = (time, event_id)
        if totals:
            op.execute(source.insert().values([
                {"generation": g, "service": service, "operator": o, "events": n, "last_time": latest[(g, o)][0],
                 "last_event_id": latest[(g, o)][1]}
                for (g, o), n in totals.items()
            ]))


def upgrade() -> None:
    op.create_table(
        "reporting_source",
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("service", sa.String(length=32), nullable=False),
        sa.Column("operator", sa.String(length=256), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("last_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_event_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("generation", "service", "operator"),
    )
    for entity in SERVICES:
        op.create_index(f"ix_{entity}_version_event_id", f"{entity}_version", ["event_id"], postgresql_using="hash")
    _fill()


def downgrade() -> None:
    for entity in SERVICES:
        op.drop_index(f"ix_{entity}_version_event_id", table_name=f"{entity}_version")
    op.drop_table("reporting_source")
