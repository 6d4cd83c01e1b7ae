"""Rebuild: replay every topic from offset 0 into a fresh generation, then swap it in atomically.

The live consumer keeps serving and applying meanwhile; once the rebuild has caught up, the live
consumer is paused, the rebuild applies the last events, and one transaction makes the new
generation live and hands the rebuild's offsets and applied versions to the live consumer.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from ti_shared.bus import make_source
from ti_shared.consumer import EventConsumer
from ti_shared.db import Database
from ti_shared.logging import get_logger
from ti_shared.settings import PlatformSettings

from reporting import cache, repository
from reporting.projection import BATCH_SIZE, ReportingProjection

log = get_logger(__name__)

LIVE_CONSUMER = "reporting"


class RebuildRunning(Exception):
    """A rebuild is already running."""


async def prepare_rebuild(db: Database) -> int:
    """Register a new rebuild run; returns the generation it fills."""
    async with db.session() as session:
        latest = await repository.latest_run(session)
        if latest is not None and latest["state"] == "running":
            raise RebuildRunning(f"generation {latest['generation']} is being rebuilt")
        live = await repository.current_generation(session)
        await repository.delete_generations_except(session, live)
        generation = await repository.highest_generation(session) + 1
        await repository.start_run(session, generation, datetime.now(UTC))
        await session.commit()
    return generation


async def _catch_up(consumer: EventConsumer, db: Database, generation: int) -> None:
    batches = 0
    while True:
        count = await consumer.run_once(0.5)
        batches += 1
        if count == 0 and await consumer.lag() == 0:
            break
        if batches % 5 == 0:
            async with db.session() as session:
                await repository.update_run(session, generation, events_applied=consumer.applied_count)
                await session.commit()


async def run_rebuild(
    db: Database,
    platform: PlatformSettings,
    generation: int,
    *,
    live: EventConsumer | None = None,
) -> None:
    """Fill ``generation`` from offset 0 and swap it in; the run's state records the outcome."""
    name = f"reporting-rebuild-{generation}"
    consumer = EventConsumer(
        name=name,
        service="reporting",
        db=db,
        source=make_source(platform, group=name),
        handler=ReportingProjection(generation=generation),
        batch_size=BATCH_SIZE,
    )
    paused = False
    try:
        await _catch_up(consumer, db, generation)
        if live is not None:
            await live.stop()
            paused = True
        await _catch_up(consumer, db, generation)
        async with db.session() as session:
            previous = await repository.current_generation(session)
            await repository.set_current_generation(session, generation)
            await repository.hand_over_consumer(session, name, LIVE_CONSUMER)
            await repository.update_run(
                session, generation, state="done", finished_at=datetime.now(UTC), events_applied=consumer.applied_count
            )
            await session.commit()
        cache.clear()
        log.info("rebuild swapped in", generation=generation, previous=previous, events=consumer.applied_count)
    except asyncio.CancelledError:
        await _fail(db, generation, name, "cancelled")
        raise
    except Exception as exc:
        log.exception("rebuild failed", generation=generation)
        await _fail(db, generation, name, repr(exc))
        return
    finally:
        await consumer.stop()
        if paused and live is not None:
            await live.stop()
            await live.start()
    await asyncio.sleep(2)  # let requests that read the previous generation finish
    async with db.session() as session:
        await repository.delete_generations_except(session, generation)
        await session.commit()


async def _fail(db: Database, generation: int, consumer: str, reason: str) -> None:
    async with db.session() as session:
        await repository.forget_consumer(session, consumer)
        await repository.update_run(session, generation, state="failed", finished_at=datetime.now(UTC), error=reason[:2000])
        await repository.delete_generation(session, generation)
        await session.commit()
