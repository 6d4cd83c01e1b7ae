"""Rebuild: replay every topic from offset 0 into a fresh generation, then swap it in atomically.

The live consumer keeps serving and applying meanwhile; once the rebuild has caught up, the live
consumer is paused, the rebuild applies the last events, and one transaction makes the new
generation live and hands the rebuild's offsets to the live consumer (its applied versions are the
versions of the new generation's state rows). The live consumer then goes on with what the rebuild
knows in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

from ti_shared.bus import make_source
from ti_shared.consumer import EventConsumer
from ti_shared.db import Database
from ti_shared.logging import get_logger
from ti_shared.settings import PlatformSettings

from reporting.projection import BATCH_SIZE, WINDOW_EVENTS, WINDOW_S, ReportingProjection
from reporting.reads import IndicatorCache
from reporting.repository import generations

log = get_logger(__name__)

LIVE_CONSUMER = "reporting"

GRACE_S = 2.0
"""How long the generation a swap retired stays, for the requests that were reading it."""

Progress = Callable[[int, int], None]
"""Told, about every half second, the events fetched so far and the events to replay in all."""


async def _grace() -> None:
    await asyncio.sleep(GRACE_S)


class RebuildRunning(Exception):
    """A rebuild is already running."""


async def prepare_rebuild(db: Database) -> int:
    """Register a new rebuild run; returns the generation it fills. Two asked at once (two requests,
    the command line and a request) are registered one after the other: the second sees the first
    running (on SQLite, the write transactions are serialised already)."""
    async with db.session() as session:
        await generations.lock_rebuild_runs(session)
        latest = await generations.latest_run(session)
        if latest is not None and latest["state"] == "running":
            raise RebuildRunning(f"generation {latest['generation']} is being rebuilt")
        live = await generations.current_generation(session)
        await generations.delete_generations_except(session, live)
        generation = await generations.highest_generation(session) + 1
        await generations.start_run(session, generation, datetime.now(UTC))
        await session.commit()
    return generation


async def _catch_up(consumer: EventConsumer, db: Database, generation: int) -> None:
    while True:
        count = await consumer.run_once(0.5)
        if count == 0 and await consumer.lag() == 0:
            break
        if count:
            async with db.session() as session:
                await generations.update_run(session, generation, events_applied=consumer.applied_count)
                await session.commit()


async def _report(consumer: EventConsumer, progress: Progress) -> None:
    total, ticks = 0, 0
    while True:
        if ticks % 4 == 0:  # the topics may grow meanwhile: every two seconds, what is left to fetch
            with contextlib.suppress(Exception):
                total = consumer.fetched_count + await consumer.lag() - consumer.in_flight
        progress(consumer.fetched_count, max(total, consumer.fetched_count))
        ticks += 1
        await asyncio.sleep(0.5)


async def run_rebuild(
    db: Database,
    platform: PlatformSettings,
    generation: int,
    *,
    live: EventConsumer | None = None,
    cache: IndicatorCache | None = None,
    progress: Progress | None = None,
) -> None:
    """Fill ``generation`` from offset 0 and swap it in; the run's state records the outcome."""
    name = f"reporting-rebuild-{generation}"
    handler = ReportingProjection(generation=generation)
    consumer = EventConsumer(
        name=name,
        service="reporting",
        db=db,
        source=make_source(platform, group=name),
        handler=handler,
        batch_size=BATCH_SIZE,
        window_events=WINDOW_EVENTS,
        window_s=WINDOW_S,
    )
    reporter = asyncio.create_task(_report(consumer, progress)) if progress is not None else None
    paused = False
    try:
        await _catch_up(consumer, db, generation)
        if live is not None:
            await live.stop()
            paused = True
        await _catch_up(consumer, db, generation)
        async with db.session() as session:
            previous = await generations.current_generation(session)
            await generations.set_current_generation(session, generation)
            await generations.hand_over_consumer(session, name, LIVE_CONSUMER)
            await generations.update_run(
                session, generation, state="done", finished_at=datetime.now(UTC), events_applied=consumer.applied_count
            )
            await session.commit()
        if live is not None and isinstance(live.handler, ReportingProjection):
            live.handler.adopt(handler)
        if cache is not None:
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
        if reporter is not None:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            assert progress is not None
            progress(consumer.fetched_count, consumer.fetched_count)
        await consumer.stop()
        if paused and live is not None:
            await live.stop()
            await live.start()
    await _grace()  # let requests that read the previous generation finish
    # only the generation this swap retired: meanwhile another rebuild may have started (it fills a
    # newer generation) and even swapped in (then ours is no longer live)
    async with db.session() as session:
        await generations.delete_generation(session, previous)
        await session.commit()


async def _fail(db: Database, generation: int, consumer: str, reason: str) -> None:
    async with db.session() as session:
        await generations.forget_consumer(session, consumer)
        await generations.update_run(session, generation, state="failed", finished_at=datetime.now(UTC), error=reason[:2000])
        await generations.delete_generation(session, generation)
        await session.commit()
