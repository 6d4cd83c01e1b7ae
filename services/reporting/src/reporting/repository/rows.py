"""Queries of the projection rows: the entities' current states and their history of versions.

A row in a table is ``(generation, id, version, time, event_id, <the compact row's other fields>)``:
:func:`record_of` and :func:`row_of` convert between that and ``reporting.domain``'s rows. The
lookups by id use ``id = ANY($1)`` next to ``generation = $2``: both are conditions of the primary
key's index, so the plan PostgreSQL caches for the prepared statement (its generic plan, used after
five runs whatever the statistics) is an index scan by key, never a scan filtered by the array.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.db import copy_records, dialect_of, driver_connection, in_values, lookup_chunks, upsert

from reporting.domain import ENTITIES, ROW_TYPES, AsOf, Entity, Row, Stamp
from reporting.tables import ENTITY_TABLES, LIST_COLUMNS

Record = tuple[Any, ...]
"""A row of a ``*_state`` or ``*_version`` table, its values in column order."""

_LIST_AT: dict[Entity, tuple[int, ...]] = {
    entity: tuple(i for i, c in enumerate(state.columns) if c.name in LIST_COLUMNS)
    for entity in ENTITIES for state in ENTITY_TABLES[entity][:1]
}
COLUMNS: dict[Entity, tuple[str, ...]] = {entity: tuple(c.name for c in state.columns) for entity in ENTITIES for state in ENTITY_TABLES[entity][:1]}


def record_of(generation: int, row: Row, stamp: Stamp) -> Record:
    """The table row of an entity state (lists kept as tuples: asyncpg and JSON take both)."""
    return (generation, row[0], row[1], stamp.time, stamp.event_id, *row[2:])


def row_of(entity: Entity, record: Sequence[Any]) -> Row:
    values = list(record[1:3]) + list(record[5:])
    for i in _LIST_AT[entity]:
        values[i - 3] = tuple(values[i - 3] or ())
    row: Row = ROW_TYPES[entity](*values)
    return row


def stamp_of(record: Sequence[Any]) -> Stamp:
    at: datetime = record[3]
    return Stamp(at if at.tzinfo else at.replace(tzinfo=UTC), record[4])


def _dicts(entity: Entity, records: Iterable[Record]) -> list[dict[str, Any]]:
    names = COLUMNS[entity]
    lists = _LIST_AT[entity]
    out = []
    for record in records:
        values = list(record)
        for i in lists:
            values[i] = list(values[i])
        out.append(dict(zip(names, values, strict=True)))
    return out


# --- reads ------------------------------------------------------------------------------------------


_LOOKUP = {
    entity: f"SELECT {', '.join(COLUMNS[entity])} FROM {state.name} WHERE generation = $1 AND id = ANY($2::text[])"
    for entity in ENTITIES for state in ENTITY_TABLES[entity][:1]
}


async def load_states(session: AsyncSession, generation: int, entity: Entity, ids: Iterable[str]) -> dict[str, Row]:
    """The current state of each of the given entities that has one."""
    state, _ = ENTITY_TABLES[entity]
    dialect = dialect_of(session)
    out: dict[str, Row] = {}
    if dialect == "postgresql":  # the live mode's one read per batch: sent as is, no statement compiled
        driver = await driver_connection(session)
        try:
            records = await driver.fetch(_LOOKUP[entity], generation, list(set(ids)))
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            raise ConnectionError(f"the database connection failed: {exc!r}") from exc
        for record in records:
            out[record[1]] = row_of(entity, record)
        return out
    for chunk in lookup_chunks(sorted(set(ids)), dialect):
        result = await session.execute(
            sa.select(state).where(state.c.generation == generation, in_values(state.c.id, chunk, dialect))
        )
        for record in result:
            out[record.id] = row_of(entity, record)
    return out


_ALL = {
    entity: f"SELECT {', '.join(COLUMNS[entity])} FROM {state.name} WHERE generation = $1"
    for entity in ENTITIES for state in ENTITY_TABLES[entity][:1]
}


async def load_all_states(session: AsyncSession, generation: int, entity: Entity) -> list[Row]:
    """Every current state of an entity kind (on PostgreSQL sent as is: the records go straight to rows)."""
    state, _ = ENTITY_TABLES[entity]
    if dialect_of(session) == "postgresql":
        driver = await driver_connection(session)
        try:
            records = await driver.fetch(_ALL[entity], generation)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            raise ConnectionError(f"the database connection failed: {exc!r}") from exc
        return [row_of(entity, r) for r in records]
    result = await session.execute(sa.select(state).where(state.c.generation == generation))
    return [row_of(entity, r) for r in result]


async def count_states(session: AsyncSession, generation: int, entities: Iterable[Entity], *, at_most: int) -> int:
    """How many current states the given entity kinds have, counted up to ``at_most + 1`` at most (each
    count a scan of the primary key's index, stopped at the bound)."""
    total = 0
    for entity in entities:
        state, _ = ENTITY_TABLES[entity]
        some = sa.select(state.c.id).where(state.c.generation == generation).limit(at_most + 1 - total).subquery()
        total += int((await session.execute(sa.select(sa.func.count()).select_from(some))).scalar_one())
        if total > at_most:
            break
    return total


async def load_labelled_sites(session: AsyncSession, generation: int) -> list[Row]:
    """The labelled sites (their areas make the medians)."""
    state, _ = ENTITY_TABLES["site"]
    result = await session.execute(sa.select(state).where(state.c.generation == generation, state.c.status == "labelled"))
    return [row_of("site", r) for r in result]


async def states_of_territories(session: AsyncSession, generation: int, entity: Entity, territories: Iterable[str]) -> list[Row]:
    """The current states of the actions, grants or sites carrying one of the given territories."""
    state, _ = ENTITY_TABLES[entity]
    dialect = dialect_of(session)
    out: list[Row] = []
    for chunk in lookup_chunks(sorted(set(territories)), dialect):
        result = await session.execute(
            sa.select(state).where(state.c.generation == generation, in_values(state.c.territory_id, chunk, dialect))
        )
        out.extend(row_of(entity, r) for r in result)
    return out


async def has_states(session: AsyncSession, generation: int) -> bool:
    for state, _ in ENTITY_TABLES.values():
        found = await session.execute(sa.select(state.c.id).where(state.c.generation == generation).limit(1))
        if found.first() is not None:
            return True
    return False


async def states_as_of(session: AsyncSession, generation: int, as_of: AsOf | None) -> dict[Entity, list[tuple[Row, Stamp]]]:
    """Every entity's state as of an instant (its latest version whose event time is within the bound),
    or its current state (``as_of`` None), with what set that version."""
    out: dict[Entity, list[tuple[Row, Stamp]]] = {}
    for entity in ENTITIES:
        state, history = ENTITY_TABLES[entity]
        if as_of is None:
            query = sa.select(state).where(state.c.generation == generation)
        else:
            in_time = history.c.time <= as_of.instant if as_of.inclusive else history.c.time < as_of.instant
            latest = (
                sa.select(history.c.id, sa.func.max(history.c.version).label("version"))
                .where(history.c.generation == generation, in_time)
                .group_by(history.c.id)
                .subquery()
            )
            query = sa.select(history).join(
                latest, sa.and_(history.c.id == latest.c.id, history.c.version == latest.c.version)
            ).where(history.c.generation == generation)
        result = await session.execute(query)
        out[entity] = [(row_of(entity, r), stamp_of(r)) for r in result]
    return out


# --- writes -----------------------------------------------------------------------------------------


async def add_history(session: AsyncSession, entity: Entity, records: Sequence[Record]) -> None:
    """Add versions to the history: binary ``COPY`` on PostgreSQL."""
    if not records:
        return
    _, history = ENTITY_TABLES[entity]
    if dialect_of(session) == "postgresql":
        await copy_records(session, history, COLUMNS[entity], records)
        return
    rows = _dicts(entity, records)
    for i in range(0, len(rows), 1000):
        await session.execute(history.insert(), rows[i : i + 1000])


async def save_states(session: AsyncSession, entity: Entity, records: Sequence[Record]) -> None:
    """Upsert current states (a newer version only), portable (used where the batch writer is not)."""
    if not records:
        return
    state, _ = ENTITY_TABLES[entity]
    ins = upsert(dialect_of(session), state)
    stmt = ins.on_conflict_do_update(
        index_elements=["generation", "id"],
        set_={name: ins.excluded[name] for name in COLUMNS[entity][2:]},
        where=state.c.version < ins.excluded.version,
    )
    rows = _dicts(entity, records)
    for i in range(0, len(rows), 1000):
        await session.execute(stmt, rows[i : i + 1000])


async def states_from_history(session: AsyncSession, generation: int, entity: Entity, ids: Sequence[str] | None) -> None:
    """Set the current state of the given entities (every entity of the generation when None) to their
    latest version in the history: one statement per entity kind, no row through the client."""
    state, history = ENTITY_TABLES[entity]
    names = COLUMNS[entity]
    dialect = dialect_of(session)
    chunks: Iterable[list[str] | None] = [None] if ids is None else lookup_chunks(list(ids), dialect, size=500)
    for chunk in chunks:
        latest_where = [history.c.generation == generation]
        if chunk is not None:
            latest_where.append(in_values(history.c.id, chunk, dialect))
        latest = (
            sa.select(history.c.id, sa.func.max(history.c.version).label("version"))
            .where(*latest_where).group_by(history.c.id).subquery()
        )
        source = sa.select(*(history.c[n] for n in names)).join(
            latest, sa.and_(history.c.id == latest.c.id, history.c.version == latest.c.version)
        ).where(history.c.generation == generation)
        ins = upsert(dialect, state).from_select(list(names), source)
        stmt = ins.on_conflict_do_update(
            index_elements=["generation", "id"],
            set_={name: ins.excluded[name] for name in names[2:]},
            where=state.c.version < ins.excluded.version,
        )
        await session.execute(stmt)


async def history_between(
    session: AsyncSession, generation: int, entity: Entity, ids: Sequence[str], after: AsOf, until: AsOf
) -> list[tuple[str, int, Stamp]]:
    """The versions of some entities set by events counted as of ``until`` but not as of ``after``:
    (id, version, stamp), in time order."""
    _, history = ENTITY_TABLES[entity]
    not_before = history.c.time > after.instant if after.inclusive else history.c.time >= after.instant
    within = history.c.time <= until.instant if until.inclusive else history.c.time < until.instant
    out: list[tuple[str, int, Stamp]] = []
    dialect = dialect_of(session)
    for chunk in lookup_chunks(list(ids), dialect, size=500):
        query = (
            sa.select(history.c.id, history.c.version, history.c.time, history.c.event_id)
            .where(history.c.generation == generation, in_values(history.c.id, chunk, dialect), not_before, within)
        )
        for record in await session.execute(query):
            at: datetime = record[2]
            out.append((record[0], int(record[1]), Stamp(at if at.tzinfo else at.replace(tzinfo=UTC), record[3])))
    out.sort(key=lambda r: (r[2].time, r[0], r[1]))
    return out
