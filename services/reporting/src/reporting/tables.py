"""Tables of the reporting service.

Every projection and indicator row carries a ``generation``: the live one is named in
``reporting_generation``; a rebuild fills the next generation and swaps it in with one update.
``*_state`` holds the current state of each entity (compact columns), ``*_version`` every applied
version with its event time (for ``as_of``), ``indicator_counter`` and ``indicator_ref`` the additive
aggregates of each scope, ``indicator_scope`` the materialised indicator document of each scope.
"""

from __future__ import annotations

import sqlalchemy as sa
from ti_shared.db import Instant, JSONType

metadata = sa.MetaData()

Money = sa.Numeric(14, 2)
Area = sa.Numeric(12, 2)


def _territory_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("region_code", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("epci_sirens", JSONType, nullable=False),
        sa.Column("lead_in_post", sa.Boolean(), nullable=False),
        sa.Column("lead_cofinanced", sa.Boolean(), nullable=False),
        sa.Column("copil_held", sa.Boolean(), nullable=False),
    ]


def _action_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("territory_id", sa.String(16), nullable=False),
        sa.Column("axis", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("themes", JSONType, nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
    ]


def _grant_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("programme", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("territory_id", sa.String(16), nullable=True),
        sa.Column("departement", sa.String(3), nullable=True),
        sa.Column("departement_region", sa.String(3), nullable=True),
        sa.Column("amount_eur", Money, nullable=False),
        sa.Column("investment_eur", Money, nullable=False),
        sa.Column("disbursed_eur", Money, nullable=False),
        sa.Column("jobs_forecast", sa.Integer(), nullable=False),
        sa.Column("jobs_conditional", sa.Integer(), nullable=False),
        sa.Column("contributions", JSONType, nullable=False),
        sa.Column("value_chain", sa.String(32), nullable=True),
    ]


def _site_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("territory_id", sa.String(16), nullable=True),
        sa.Column("region_code", sa.String(3), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("area_ha", Area, nullable=False),
        sa.Column("land_recycling", sa.Boolean(), nullable=False),
        sa.Column("roadmap_delivered", sa.Boolean(), nullable=False),
        sa.Column("workshop_held", sa.Boolean(), nullable=False),
        sa.Column("maturity", sa.String(16), nullable=False),
    ]


def _state(name: str, columns: list[sa.Column[object]], *indexes: tuple[str, ...]) -> sa.Table:
    return sa.Table(
        f"{name}_state",
        metadata,
        sa.Column("generation", sa.Integer(), primary_key=True),
        sa.Column("id", sa.String(256), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("time", Instant, nullable=False),
        *columns,
        *(sa.Index(f"ix_{name}_state_{'_'.join(cols)}", "generation", *cols) for cols in indexes),
    )


def _history(name: str, columns: list[sa.Column[object]]) -> sa.Table:
    return sa.Table(
        f"{name}_version",
        metadata,
        sa.Column("generation", sa.Integer(), primary_key=True),
        sa.Column("id", sa.String(256), primary_key=True),
        sa.Column("version", sa.BigInteger(), primary_key=True),
        sa.Column("time", Instant, nullable=False),
        *columns,
        sa.Index(f"ix_{name}_version_time", "generation", "time"),
    )


territory_state = _state("territory", _territory_columns())
action_state = _state("action", _action_columns(), ("territory_id",))
grant_state = _state("grant", _grant_columns(), ("territory_id",))
site_state = _state("site", _site_columns(), ("territory_id",), ("region_code",))

territory_version = _history("territory", _territory_columns())
action_version = _history("action", _action_columns())
grant_version = _history("grant", _grant_columns())
site_version = _history("site", _site_columns())

#: entity → (current state table, history table)
ENTITY_TABLES: dict[str, tuple[sa.Table, sa.Table]] = {
    "territory": (territory_state, territory_version),
    "action": (action_state, action_version),
    "grant": (grant_state, grant_version),
    "site": (site_state, site_version),
}

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

#: additive counters of each scope (counts; money and areas in cents), see ``reporting.aggregates``
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
