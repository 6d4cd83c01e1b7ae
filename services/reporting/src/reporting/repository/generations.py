"""Queries of the generations: which one is live, rebuild runs, the consumers' positions handed over."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.db import applied_version, consumer_offset, dialect_of, upsert

from reporting.tables import ENTITY_TABLES, metadata, rebuild_run, reporting_generation


async def current_generation(session: AsyncSession) -> int:
    value = (await session.execute(sa.select(reporting_generation.c.current).where(reporting_generation.c.id == 1))).scalar()
    return int(value) if value is not None else 1


async def set_current_generation(session: AsyncSession, generation: int) -> None:
    ins = upsert(dialect_of(session), reporting_generation)
    await session.execute(
        ins.values(id=1, current=generation).on_conflict_do_update(index_elements=["id"], set_={"current": generation})
    )


async def highest_generation(session: AsyncSession) -> int:
    runs = (await session.execute(sa.select(sa.func.max(rebuild_run.c.generation)))).scalar()
    return max(int(runs or 0), await current_generation(session))


def _generation_tables() -> list[sa.Table]:
    """The tables a generation fills: those keyed by it. A table that only records a generation (an
    edition names the one it was frozen from) is kept whatever happens to that generation."""
    return [
        t for t in metadata.sorted_tables
        if t is not rebuild_run and "generation" in t.c and t.c.generation in set(t.primary_key.columns)
    ]


async def delete_generation(session: AsyncSession, generation: int) -> None:
    for table in _generation_tables():
        await session.execute(table.delete().where(table.c.generation == generation))


async def delete_generations_except(session: AsyncSession, keep: int) -> None:
    for table in _generation_tables():
        await session.execute(table.delete().where(table.c.generation != keep))


async def territory_known(session: AsyncSession, generation: int, territory_id: str) -> bool:
    state, _ = ENTITY_TABLES["territory"]
    result = await session.execute(
        sa.select(state.c.id).where(state.c.generation == generation, state.c.id == territory_id).limit(1)
    )
    return result.first() is not None


# --- consumers ---------------------------------------------------------------------------------------


async def hand_over_consumer(session: AsyncSession, source: str, target: str) -> None:
    """Give ``target`` the offsets of ``source`` and forget both's applied versions (the reporting
    consumers read them from the state rows of the generation they fill)."""
    await session.execute(consumer_offset.delete().where(consumer_offset.c.consumer == target))
    keys = ("topic", "partition", "next_offset")
    await session.execute(
        consumer_offset.insert().from_select(
            ["consumer", *keys],
            sa.select(sa.literal(target, sa.String()), *(consumer_offset.c[k] for k in keys)).where(
                consumer_offset.c.consumer == source
            ),
        )
    )
    await forget_consumer(session, source)
    await session.execute(applied_version.delete().where(applied_version.c.consumer == target))


async def forget_consumer(session: AsyncSession, name: str) -> None:
    for table in (consumer_offset, applied_version):
        await session.execute(table.delete().where(table.c.consumer == name))


# --- rebuild runs ------------------------------------------------------------------------------------

#: the PostgreSQL advisory lock under which a rebuild run is registered
_RUNS_LOCK = 0x7469_7265_6275


async def lock_rebuild_runs(session: AsyncSession) -> None:
    """Until the transaction ends, no other transaction registers a rebuild run (SQLite's write
    transactions are serialised already)."""
    if dialect_of(session) == "postgresql":
        await session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _RUNS_LOCK})


async def start_run(session: AsyncSession, generation: int, at: datetime) -> None:
    await session.execute(
        rebuild_run.insert().values(generation=generation, state="running", started_at=at, events_applied=0)
    )


async def update_run(session: AsyncSession, generation: int, **values: Any) -> None:
    await session.execute(rebuild_run.update().where(rebuild_run.c.generation == generation).values(**values))


async def latest_run(session: AsyncSession) -> dict[str, Any] | None:
    result = await session.execute(sa.select(rebuild_run).order_by(rebuild_run.c.generation.desc()).limit(1))
    row = result.first()
    return dict(row._mapping) if row is not None else None
