"""Tables of the reporting service.

Every projection and indicator row carries a ``generation``: the live one is named in
``reporting_generation``; a rebuild fills the next generation and swaps it in with one update.
``*_version`` holds every applied version of each entity with the event that set it (time and id:
``as_of`` and explanations read it), ``*_state`` the current one (whose ``version`` is also the
consumer's applied version of the subject), both with the columns of the compact rows of
``reporting.domain`` (money and areas in cents). ``indicator_counter`` and ``indicator_ref`` hold the
aggregates of each scope, ``indicator_scope`` the materialised indicator document of each scope.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from ti_shared.db import Instant

metadata = sa.MetaData()

#: a list of strings: ``text[]`` on PostgreSQL (binary COPY, no JSON encoding), JSON on SQLite
TextList = sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql")


def _columns(entity: str) -> list[sa.Column[object]]:
    """The columns of an entity's compact row after ``id`` and ``version``, in the row's order
    (``reporting.domain``'s row types: the unit tests check that they match)."""
    columns: dict[str, list[sa.Column[object]]] = {
        "territory": [
            sa.Column("region_code", sa.String(3), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("epci_sirens", TextList, nullable=False),
            sa.Column("lead_in_post", sa.Boolean(), nullable=False),
            sa.Column("lead_cofinanced", sa.Boolean(), nullable=False),
            sa.Column("copil_held", sa.Boolean(), nullable=False),
        ],
        "action": [
            sa.Column("territory_id", sa.String(16), nullable=False),
            sa.Column("axis", sa.String(32), nullable=False),
            sa.Column("status", sa.String(32), nullable=False),
            sa.Column("themes", TextList, nullable=False),
            sa.Column("deleted", sa.Boolean(), nullable=False),
            sa.Column("has_budget", sa.Boolean(), nullable=False, server_default=sa.true()),
        ],
        "grant": [
            sa.Column("programme", sa.String(64), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("territory_id", sa.String(16), nullable=True),
            sa.Column("departement", sa.String(3), nullable=True),
            sa.Column("departement_region", sa.String(3), nullable=True),
            sa.Column("amount_cents", sa.BigInteger(), nullable=False),
            sa.Column("investment_cents", sa.BigInteger(), nullable=False),
            sa.Column("disbursed_cents", sa.BigInteger(), nullable=False),
            sa.Column("jobs_forecast", sa.BigInteger(), nullable=False),
            sa.Column("jobs_conditional", sa.BigInteger(), nullable=False),
            sa.Column("contributions", TextList, nullable=False),
            sa.Column("value_chain", sa.String(32), nullable=True),
        ],
        "site": [
            sa.Column("territory_id", sa.String(16), nullable=True),
            sa.Column("region_code", sa.String(3), nullable=True),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("area_cents", sa.BigInteger(), nullable=False),
            sa.Column("land_recycling", sa.Boolean(), nullable=False),
            sa.Column("roadmap_delivered", sa.Boolean(), nullable=False),
            sa.Column("workshop_held", sa.Boolean(), nullable=False),
            sa.Column("maturity", sa.String(16), nullable=False),
        ],
    }
    return columns[entity]


def _keys(primary: tuple[str, ...]) -> list[sa.Column[object]]:
    return [
        sa.Column("generation", sa.Integer(), primary_key=True),
        sa.Column("id", sa.String(256), primary_key=True),
        sa.Column("version", sa.BigInteger(), primary_key="version" in primary, nullable=False),
        sa.Column("time", Instant, nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
    ]


def _state(entity: str, *indexes: str) -> sa.Table:
    return sa.Table(
        f"{entity}_state", metadata, *_keys(("generation", "id")), *_columns(entity),
        *(sa.Index(f"ix_{entity}_state_{column}", "generation", column) for column in indexes),
    )


def _history(entity: str) -> sa.Table:
    # the event ids: ``after=<event-id>`` asks whether the live generation has applied one (a hash index:
    # equality only, and cheaper to keep than a B-tree of random ids while a replay copies the history)
    return sa.Table(
        f"{entity}_version", metadata, *_keys(("generation", "id", "version")), *_columns(entity),
        sa.Index(f"ix_{entity}_version_event_id", "event_id", postgresql_using="hash"),
    )


#: entity → (current state table, history table)
ENTITY_TABLES: dict[str, tuple[sa.Table, sa.Table]] = {
    "territory": (_state("territory"), _history("territory")),
    "action": (_state("action", "territory_id"), _history("action")),
    "grant": (_state("grant", "territory_id"), _history("grant")),
    "site": (_state("site", "territory_id"), _history("site")),
}
#: the columns whose values are lists (tuples in the rows)
LIST_COLUMNS = frozenset({"epci_sirens", "themes", "contributions"})

indicator_scope = sa.Table(
    "indicator_scope",
    metadata,
    sa.Column("generation", sa.Integer(), primary_key=True),
    sa.Column("scope", sa.String(32), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("computed_at", Instant, nullable=False),
    #: the indicators as JSON text, in catalogue order
    sa.Column("document", sa.Text(), nullable=False),
)

#: additive counters of each scope (counts; money and areas in cents), see ``reporting.engine``
indicator_counter = sa.Table(
    "indicator_counter",
    metadata,
    sa.Column("generation", sa.Integer(), primary_key=True),
    sa.Column("scope", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("value", sa.BigInteger(), nullable=False),
)

#: reference counts of the values behind distinct counts (EPCI sirens, regions, grant territories…)
indicator_ref = sa.Table(
    "indicator_ref",
    metadata,
    sa.Column("generation", sa.Integer(), primary_key=True),
    sa.Column("scope", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(120), primary_key=True),
    sa.Column("value", sa.String(256), primary_key=True),
    sa.Column("refcount", sa.Integer(), nullable=False),
)

#: what each generation has applied of each source: per source service, and per operator for the
#: funding ledger's grants (``operator`` '' elsewhere) — the events applied and the latest event (by
#: time, then id), written in the transaction that applies them (``reporting.freshness``)
reporting_source = sa.Table(
    "reporting_source",
    metadata,
    sa.Column("generation", sa.Integer(), primary_key=True),
    sa.Column("service", sa.String(32), primary_key=True),
    sa.Column("operator", sa.String(256), primary_key=True),
    sa.Column("events", sa.BigInteger(), nullable=False),
    sa.Column("last_time", Instant, nullable=False),
    sa.Column("last_event_id", sa.Text(), nullable=False),
)

reporting_generation = sa.Table(
    "reporting_generation",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("current", sa.Integer(), nullable=False),
)

rebuild_run = sa.Table(
    "rebuild_run",
    metadata,
    sa.Column("generation", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("started_at", Instant, nullable=False),
    sa.Column("finished_at", Instant, nullable=True),
    sa.Column("events_applied", sa.BigInteger(), nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
)
