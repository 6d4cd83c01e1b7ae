"""Queries of what a generation has applied of each source, and whether it applied one event."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from ti_shared.db import dialect_of, upsert

from reporting.domain import ENTITIES
from reporting.freshness import SourceKey, Tally
from reporting.tables import ENTITY_TABLES, reporting_generation, reporting_source

_LIVE = sa.func.coalesce(sa.select(reporting_generation.c.current).where(reporting_generation.c.id == 1).scalar_subquery(), 1)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def load_sources(session: AsyncSession | AsyncConnection, generation: int) -> dict[SourceKey, Tally]:
    """What a generation has applied of each source."""
    rows = await session.execute(
        sa.select(reporting_source.c.service, reporting_source.c.operator, reporting_source.c.events,
                  reporting_source.c.last_time, reporting_source.c.last_event_id)
        .where(reporting_source.c.generation == generation)
    )
    return {(r.service, r.operator): Tally(int(r.events), _aware(r.last_time), r.last_event_id) for r in rows}


async def save_sources(session: AsyncSession, generation: int, sources: Mapping[SourceKey, Tally]) -> None:
    """Set the sources' tallies (the portable form of :func:`statement_part`)."""
    if not sources:
        return
    ins = upsert(dialect_of(session), reporting_source)
    stmt = ins.on_conflict_do_update(
        index_elements=["generation", "service", "operator"],
        set_={"events": ins.excluded.events, "last_time": ins.excluded.last_time, "last_event_id": ins.excluded.last_event_id},
    )
    await session.execute(stmt, [
        {"generation": generation, "service": s, "operator": o, "events": t.events, "last_time": t.last_time,
         "last_event_id": t.last_event_id}
        for (s, o), t in sorted(sources.items())
    ])


def statement_part(generation: int, sources: Mapping[SourceKey, Tally], add: Any, where: str = "TRUE") -> str:
    """The data-modifying part of the batch statement that sets the sources' tallies (``add(value, type)``
    binds a parameter and returns its placeholder), where ``where`` holds."""
    keys = sorted(sources)
    return (
        "INSERT INTO reporting_source (generation, service, operator, events, last_time, last_event_id) "
        "SELECT {g}, s, o, n, t, e FROM unnest({s}, {o}, {n}, {t}, {e}) AS u(s, o, n, t, e) WHERE {where} "
        "ON CONFLICT (generation, service, operator) DO UPDATE SET events = excluded.events, "
        "last_time = excluded.last_time, last_event_id = excluded.last_event_id".format(where=where,
            g=add(generation, "integer"), s=add([k[0] for k in keys], "text[]"), o=add([k[1] for k in keys], "text[]"),
            n=add([sources[k].events for k in keys], "bigint[]"), t=add([sources[k].last_time for k in keys], "timestamptz[]"),
            e=add([sources[k].last_event_id for k in keys], "text[]"),
        )
    )


def _applied_among(dialect: str) -> sa.CompoundSelect[Any]:
    """On PostgreSQL ``event_id = ANY($1)``: one array parameter, one prepared statement whatever the
    number of ids (as ``ti_shared.db.in_values``); elsewhere an ``IN`` list."""
    def among(column: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
        if dialect == "postgresql":
            return column == sa.any_(sa.bindparam("event_ids", type_=postgresql.ARRAY(sa.Text())))
        return column.in_(sa.bindparam("event_ids", expanding=True))

    return sa.union_all(*(
        sa.select(history.c.event_id).where(among(history.c.event_id), history.c.generation == _LIVE)
        for _, history in (ENTITY_TABLES[e] for e in ENTITIES)
    ))


#: built once per dialect: its compiled form is cached by SQLAlchemy (a statement built per call is keyed again each time)
_APPLIED_AMONG = {dialect: _applied_among(dialect) for dialect in ("postgresql", "sqlite")}


async def applied_among(connection: AsyncSession | AsyncConnection, event_ids: Sequence[str]) -> set[str]:
    """Of these events, those the live generation has applied (probes of each history's event id index)."""
    if not event_ids:
        return set()
    return {str(e) for e in (await connection.execute(_APPLIED_AMONG[dialect_of(connection)], {"event_ids": list(event_ids)})).scalars()}

