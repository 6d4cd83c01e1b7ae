"""Everything a small batch writes, in one statement: one round trip to PostgreSQL.

The new versions (history), the new current states, the counters and reference counts that changed
(their new values, or their removal) and the rewritten documents go in one ``WITH … INSERT …``
statement whose data-modifying parts each read ``unnest`` of one array per column, and which returns
the live generation (so that the writer learns, without another query, that a rebuild run elsewhere
has swapped another one in). Only the parts that have rows are included, so a batch of action updates
sends the action, counter and document parts. Elsewhere (SQLite) the same writes are made one
statement each.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.db import dialect_of, driver_connection

from reporting.domain import ENTITIES, Entity
from reporting.engine import CounterKey, RefKey
from reporting.freshness import SourceKey, Tally
from reporting.repository import figures, generations, rows, sources
from reporting.repository.figures import digest_of_document
from reporting.repository.rows import COLUMNS, Record
from reporting.tables import ENTITY_TABLES, LIST_COLUMNS


@dataclass
class BatchWrites:
    """What one batch writes (counters and references as their new values; None / 0 remove them)."""

    generation: int
    history: dict[Entity, list[Record]] = field(default_factory=dict)
    states: dict[Entity, list[Record]] = field(default_factory=dict)
    counters: dict[CounterKey, int | None] = field(default_factory=dict)
    refs: dict[RefKey, int] = field(default_factory=dict)
    documents: dict[str, bytes] = field(default_factory=dict)
    #: the digests of (some of) ``documents``, when known (the others are computed)
    digests: dict[str, str] = field(default_factory=dict)
    at: datetime | None = None
    #: the new tallies of the sources the batch applied events of (``reporting.freshness``)
    sources: dict[SourceKey, Tally] = field(default_factory=dict)
    #: the counters and references given are all of the generation's (the others are removed)
    replace: bool = False


async def write_batch(session: AsyncSession, writes: BatchWrites) -> int:
    """Write, and return the live generation as the same statement saw it (a rebuild run by another
    process may have swapped it in meanwhile)."""
    if writes.replace:
        await figures.replace_aggregates(session, writes.generation, writes.counters, writes.refs)
        writes = dataclasses.replace(writes, counters={}, refs={}, replace=False)
    if dialect_of(session) != "postgresql":
        await _write_portable(session, writes)
        return await generations.current_generation(session)
    sql, args = _statement(writes)
    driver = await driver_connection(session)
    try:
        live = await driver.fetchval(sql, *args)
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
        raise ConnectionError(f"the database connection failed: {exc!r}") from exc
    return int(live)


async def _write_portable(session: AsyncSession, writes: BatchWrites) -> None:
    for entity in ENTITIES:
        await rows.add_history(session, entity, writes.history.get(entity, []))
        await rows.save_states(session, entity, writes.states.get(entity, []))
    if writes.counters:
        await figures.save_counters(session, writes.generation, writes.counters)
    if writes.refs:
        await figures.save_refs(session, writes.generation, writes.refs)
    if writes.documents:
        assert writes.at is not None
        await figures.save_documents(session, writes.generation, writes.documents, writes.at)
    await sources.save_sources(session, writes.generation, writes.sources)


# --- the statement --------------------------------------------------------------------------------


def _pg_type(column: sa.Column[Any]) -> str:
    if column.name in LIST_COLUMNS:
        return "text"
    kind = column.type.impl_instance if isinstance(column.type, sa.types.TypeDecorator) else column.type
    if isinstance(kind, sa.Boolean):
        return "boolean"
    if isinstance(kind, sa.BigInteger):
        return "bigint"
    if isinstance(kind, sa.Integer):
        return "integer"
    if isinstance(kind, sa.DateTime):
        return "timestamptz"
    return "text"


class _Args:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any, pg_type: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{pg_type}"


#: the positions of each entity's list columns (sent as JSON text)
_LISTS_AT: dict[Entity, frozenset[int]] = {
    entity: frozenset(i for i, name in enumerate(COLUMNS[entity]) if name in LIST_COLUMNS) for entity in ENTITIES
}
#: the text of a rows part, by (table, first parameter's number, guard): the same few batch after batch
_ROWS_TEXT: dict[tuple[str, int, str], str] = {}


def _rows_text(table: sa.Table, entity: Entity, first: int, conflict: str, where: str) -> str:
    key = (table.name, first, where)
    text = _ROWS_TEXT.get(key)
    if text is None:
        names = COLUMNS[entity]
        selected = [
            f'ARRAY(SELECT jsonb_array_elements_text(u."{name}"::jsonb))' if name in LIST_COLUMNS else f'u."{name}"'
            for name in names
        ]
        arrays = [f"${first + i}::{_pg_type(table.c[name])}[]" for i, name in enumerate(names)]
        quoted = ", ".join(f'"{n}"' for n in names)
        text = (
            f"INSERT INTO {table.name} ({quoted}) SELECT {', '.join(selected)} "
            f"FROM unnest({', '.join(arrays)}) AS u({quoted}) WHERE {where} {conflict}"
        )
        if len(_ROWS_TEXT) < 1_024:
            _ROWS_TEXT[key] = text
    return text


def _rows_part(table: sa.Table, entity: Entity, records: Sequence[Record], args: _Args, conflict: str, where: str) -> str:
    lists = _LISTS_AT[entity]
    first = len(args.values) + 1
    for i, values in enumerate(zip(*records, strict=True)):
        args.values.append([orjson.dumps(v).decode() for v in values] if i in lists else list(values))
    return _rows_text(table, entity, first, conflict, where)


@functools.cache
def _state_conflict(table: sa.Table, entity: Entity) -> str:
    updated = ", ".join(f'"{n}" = excluded."{n}"' for n in COLUMNS[entity][2:])
    return f"ON CONFLICT (generation, id) DO UPDATE SET {updated} WHERE {table.name}.version < excluded.version"


def _statement(writes: BatchWrites) -> tuple[str, list[Any]]:
    parts, args = statement_parts(writes)
    live = "SELECT coalesce((SELECT current FROM reporting_generation WHERE id = 1), 1)"
    if not parts:
        return live, args
    ctes = ", ".join(f"w{i} AS ({part})" for i, part in enumerate(parts))
    return f"WITH {ctes} {live}", args


def statement_parts(writes: BatchWrites, where: str = "TRUE") -> tuple[list[str], list[Any]]:
    """The data-modifying parts of the batch's statement and their parameters (numbered from ``$1``);
    each writes only where ``where`` (an SQL condition) holds. Not for ``writes.replace``."""
    args = _Args()
    parts: list[str] = []
    for entity in ENTITIES:
        state, history = ENTITY_TABLES[entity]
        if writes.history.get(entity):
            parts.append(_rows_part(history, entity, writes.history[entity], args, "ON CONFLICT DO NOTHING", where))
        if writes.states.get(entity):
            parts.append(_rows_part(state, entity, writes.states[entity], args, _state_conflict(state, entity), where))
    generation = writes.generation
    counters = sorted((k, v) for k, v in writes.counters.items() if v is not None)
    if counters:
        parts.append(
            "INSERT INTO indicator_counter (generation, scope, name, value) SELECT {g}, s, n, v "
            "FROM unnest({s}, {n}, {v}) AS u(s, n, v) WHERE {where} "
            "ON CONFLICT (generation, scope, name) DO UPDATE SET value = excluded.value".format(where=where,
                g=args.add(generation, "integer"), s=args.add([k[0] for k, _ in counters], "text[]"),
                n=args.add([k[1] for k, _ in counters], "text[]"), v=args.add([v for _, v in counters], "bigint[]"),
            )
        )
    removed = sorted(k for k, v in writes.counters.items() if v is None)
    if removed:
        parts.append(
            "DELETE FROM indicator_counter c USING unnest({s}, {n}) AS u(s, n) "
            "WHERE c.generation = {g} AND c.scope = u.s AND c.name = u.n AND {where}".format(where=where,
                s=args.add([k[0] for k in removed], "text[]"), n=args.add([k[1] for k in removed], "text[]"),
                g=args.add(generation, "integer"),
            )
        )
    refs = sorted((k, n) for k, n in writes.refs.items() if n > 0)
    if refs:
        parts.append(
            "INSERT INTO indicator_ref (generation, scope, kind, value, refcount) SELECT {g}, s, k, v, n "
            "FROM unnest({s}, {k}, {v}, {n}) AS u(s, k, v, n) WHERE {where} "
            "ON CONFLICT (generation, scope, kind, value) DO UPDATE SET refcount = excluded.refcount".format(where=where,
                g=args.add(generation, "integer"), s=args.add([k[0] for k, _ in refs], "text[]"),
                k=args.add([k[1] for k, _ in refs], "text[]"), v=args.add([k[2] for k, _ in refs], "text[]"),
                n=args.add([n for _, n in refs], "integer[]"),
            )
        )
    dropped = sorted(k for k, n in writes.refs.items() if n <= 0)
    if dropped:
        parts.append(
            "DELETE FROM indicator_ref r USING unnest({s}, {k}, {v}) AS u(s, k, v) "
            "WHERE r.generation = {g} AND r.scope = u.s AND r.kind = u.k AND r.value = u.v AND {where}".format(where=where,
                s=args.add([k[0] for k in dropped], "text[]"), k=args.add([k[1] for k in dropped], "text[]"),
                v=args.add([k[2] for k in dropped], "text[]"), g=args.add(generation, "integer"),
            )
        )
    if writes.documents:
        scopes, digests = sorted(writes.documents), writes.digests
        parts.append(
            "INSERT INTO indicator_scope (generation, scope, digest, computed_at, document) SELECT {g}, s, d, {at}, t "
            "FROM unnest({s}, {d}, {t}) AS u(s, d, t) WHERE {where} ON CONFLICT (generation, scope) DO UPDATE "
            "SET digest = excluded.digest, computed_at = excluded.computed_at, document = excluded.document".format(where=where,
                g=args.add(generation, "integer"), at=args.add(writes.at, "timestamptz"),
                s=args.add(scopes, "text[]"), d=args.add([digests.get(s) or digest_of_document(writes.documents[s]) for s in scopes], "text[]"),
                t=args.add([writes.documents[s].decode() for s in scopes], "text[]"),
            )
        )
    if writes.sources:
        parts.append(sources.statement_part(generation, writes.sources, args.add, where))
    return parts, args.values
