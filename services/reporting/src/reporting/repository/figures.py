"""Queries of the figures: the aggregates of each scope (counters, references) and its document."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from ti_shared.db import Database, copy_records, dialect_of, in_values, lookup_chunks, upsert

from reporting.engine import CounterKey, RefKey
from reporting.tables import indicator_counter, indicator_ref, indicator_scope, reporting_generation


def digest_of_document(document: bytes) -> str:
    return hashlib.sha256(document).hexdigest()[:32]


# --- aggregates -------------------------------------------------------------------------------------


async def load_aggregates(session: AsyncSession, generation: int) -> tuple[dict[CounterKey, int], dict[RefKey, int]]:
    """Every counter and reference count of a generation."""
    counters = await session.execute(
        sa.select(indicator_counter.c.scope, indicator_counter.c.name, indicator_counter.c.value).where(
            indicator_counter.c.generation == generation
        )
    )
    refs = await session.execute(
        sa.select(indicator_ref.c.scope, indicator_ref.c.kind, indicator_ref.c.value, indicator_ref.c.refcount).where(
            indicator_ref.c.generation == generation
        )
    )
    return (
        {(r.scope, r.name): int(r.value) for r in counters},
        {(r.scope, r.kind, r.value): int(r.refcount) for r in refs},
    )


async def save_counters(session: AsyncSession, generation: int, values: Mapping[CounterKey, int | None]) -> None:
    """Set counters to the given values (None: remove the counter)."""
    ins = upsert(dialect_of(session), indicator_counter)
    stmt = ins.on_conflict_do_update(index_elements=["generation", "scope", "name"], set_={"value": ins.excluded.value})
    present = [{"generation": generation, "scope": s, "name": n, "value": v} for (s, n), v in sorted(values.items()) if v is not None]
    for i in range(0, len(present), 5000):
        await session.execute(stmt, present[i : i + 5000])
    absent = sorted(k for k, v in values.items() if v is None)
    for scope, name in absent:
        await session.execute(
            indicator_counter.delete().where(
                indicator_counter.c.generation == generation, indicator_counter.c.scope == scope,
                indicator_counter.c.name == name,
            )
        )


async def save_refs(session: AsyncSession, generation: int, values: Mapping[RefKey, int]) -> None:
    """Set reference counts to the given values (0 removes the reference)."""
    ins = upsert(dialect_of(session), indicator_ref)
    stmt = ins.on_conflict_do_update(
        index_elements=["generation", "scope", "kind", "value"], set_={"refcount": ins.excluded.refcount}
    )
    present = [
        {"generation": generation, "scope": s, "kind": k, "value": v, "refcount": n}
        for (s, k, v), n in sorted(values.items()) if n > 0
    ]
    for i in range(0, len(present), 5000):
        await session.execute(stmt, present[i : i + 5000])
    for scope, kind, value in sorted(k for k, n in values.items() if n <= 0):
        await session.execute(
            indicator_ref.delete().where(
                indicator_ref.c.generation == generation, indicator_ref.c.scope == scope,
                indicator_ref.c.kind == kind, indicator_ref.c.value == value,
            )
        )


async def replace_aggregates(
    session: AsyncSession, generation: int, counters: Mapping[CounterKey, int | None], refs: Mapping[RefKey, int]
) -> None:
    """Make the given counters and references all of the generation's (binary COPY on PostgreSQL)."""
    await session.execute(indicator_counter.delete().where(indicator_counter.c.generation == generation))
    await session.execute(indicator_ref.delete().where(indicator_ref.c.generation == generation))
    counter_rows = [(generation, s, n, v) for (s, n), v in counters.items() if v]
    ref_rows = [(generation, s, k, v, n) for (s, k, v), n in refs.items() if n > 0]
    if dialect_of(session) == "postgresql":
        await copy_records(session, indicator_counter, ("generation", "scope", "name", "value"), counter_rows)
        await copy_records(session, indicator_ref, ("generation", "scope", "kind", "value", "refcount"), ref_rows)
        return
    for table, names, records in (
        (indicator_counter, ("generation", "scope", "name", "value"), counter_rows),
        (indicator_ref, ("generation", "scope", "kind", "value", "refcount"), ref_rows),
    ):
        dicts = [dict(zip(names, r, strict=True)) for r in records]
        for i in range(0, len(dicts), 5000):
            await session.execute(table.insert(), dicts[i : i + 5000])


# --- documents --------------------------------------------------------------------------------------


async def scope_digests(session: AsyncSession, generation: int, scopes: Iterable[str] | None = None) -> dict[str, str]:
    """The digest of the stored document of each scope (of every scope when ``scopes`` is None)."""
    where = [indicator_scope.c.generation == generation]
    if scopes is None:
        result = await session.execute(sa.select(indicator_scope.c.scope, indicator_scope.c.digest).where(*where))
        return {r.scope: r.digest for r in result}
    out: dict[str, str] = {}
    dialect = dialect_of(session)
    for chunk in lookup_chunks(sorted(set(scopes)), dialect):
        result = await session.execute(
            sa.select(indicator_scope.c.scope, indicator_scope.c.digest).where(
                *where, in_values(indicator_scope.c.scope, chunk, dialect)
            )
        )
        out.update({r.scope: r.digest for r in result})
    return out


async def save_documents(session: AsyncSession, generation: int, documents: Mapping[str, bytes], at: datetime) -> None:
    """Replace the materialised indicator documents of the given scopes."""
    if not documents:
        return
    ins = upsert(dialect_of(session), indicator_scope)
    stmt = ins.on_conflict_do_update(
        index_elements=["generation", "scope"],
        set_={"digest": ins.excluded.digest, "computed_at": ins.excluded.computed_at, "document": ins.excluded.document},
    )
    records = [
        {"generation": generation, "scope": s, "digest": digest_of_document(doc), "computed_at": at, "document": doc.decode()}
        for s, doc in sorted(documents.items())
    ]
    for i in range(0, len(records), 1000):
        await session.execute(stmt, records[i : i + 1000])


@dataclass(frozen=True)
class StoredIndicators:
    generation: int
    computed_at: datetime
    digest: str
    document: str
    """The indicators as JSON text."""


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


_LIVE = sa.func.coalesce(sa.select(reporting_generation.c.current).where(reporting_generation.c.id == 1).scalar_subquery(), 1)


async def read_document(connection: AsyncSession | AsyncConnection, scope: str) -> StoredIndicators | None:
    """The materialised indicators of a scope in the live generation (one indexed row read)."""
    query = sa.select(
        indicator_scope.c.generation, indicator_scope.c.computed_at, indicator_scope.c.digest, indicator_scope.c.document
    ).where(indicator_scope.c.scope == scope, indicator_scope.c.generation == _LIVE)
    row = (await connection.execute(query)).first()
    if row is None:
        return None
    return StoredIndicators(int(row.generation), _aware(row.computed_at), row.digest, row.document)


async def read_live_mark(db: Database) -> tuple[int, datetime | None]:
    """The live generation and the latest ``computed_at`` of its documents (one statement)."""
    latest = sa.select(sa.func.max(indicator_scope.c.computed_at)).where(indicator_scope.c.generation == _LIVE)
    async with db.reads() as connection:
        row = (await connection.execute(sa.select(_LIVE.label("generation"), latest.scalar_subquery().label("at")))).one()
    return int(row.generation), _aware(row.at) if row.at is not None else None
