"""The webhook delivery loop waits instead of polling: woken by the change feed's commits and by
subscriptions created here, asleep otherwise. The real loop, consumer and handler on a SQLite database
(the embedded mode's), a receiver on loopback; the fallback poll made longer than any test."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from reporting.feed import delivery, repository
from reporting.feed.handler import FEED_CONSUMER, ChangeFeed
from reporting.main import SPEC
from ti_shared.app import ServiceContext
from ti_shared.consumer import EventConsumer
from ti_shared.db import Database
from ti_shared.migrations import upgrade
from ti_shared.streams import generate_stream
from ti_shared.testing import MemorySource, platform_settings, service_settings, wait_until

#: territories only: changes every reader may read
EVENTS = generate_stream(8, territories=3, actions=0, grants=0, sites=0, unknown_territory_actions=0)


class Receiver:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.ids.append(request.headers["webhook-id"])
        return web.Response(status=204)


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    await web.TCPSite(runner, "127.0.0.1", port).start()
    rec.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield rec
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def delivering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[ServiceContext, EventConsumer, list[datetime]]]:
    """The delivery loop running; its context, the feed's consumer (one event per commit) and the
    instants the loop looked for due subscriptions."""
    monkeypatch.setattr(delivery, "FALLBACK_POLL_S", 600.0)
    looks: list[datetime] = []
    due_subscriptions = repository.due_subscriptions

    async def counted(session: Any, now: datetime, *, limit: int) -> tuple[list[str], datetime | None]:
        looks.append(now)
        return await due_subscriptions(session, now, limit=limit)

    monkeypatch.setattr(repository, "due_subscriptions", counted)
    url = f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}"
    db = Database(url)
    await upgrade(db, SPEC.migrations_dir)
    settings = service_settings("reporting", url, platform_settings(webhook_targets="loopback"))
    ctx = ServiceContext(spec=SPEC, settings=settings, db=db, relay=None)
    consumer = EventConsumer(name=FEED_CONSUMER, service="reporting", db=db, source=MemorySource.of_events(EVENTS),
                             handler=ChangeFeed(), batch_size=1)
    task = asyncio.create_task(delivery.deliver_webhooks(ctx))
    try:
        await wait_until(partial(looked, looks, 1))  # its first look: from here on it is woken
        yield ctx, consumer, looks
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()
        await db.dispose()


async def looked(looks: list[datetime], n: int) -> bool:
    return len(looks) >= n


async def subscribe(ctx: ServiceContext, url: str) -> None:
    now = datetime.now(UTC)
    async with ctx.db.session() as session:
        await repository.insert_subscription(session, {
            "id": "hook-1", "owner": "test", "url": url, "types": [], "operator": None, "description": "",
            "reader_grants": False, "reader_operator": None, "secret": "whsec_" + "A" * 32, "previous_secret": None,
            "previous_secret_until": None, "state": "active", "paused_reason": None, "failures": 0, "position": 0,
            "next_attempt_at": None, "version": 1, "created_at": now, "updated_at": now,
        })
        await session.commit()
    delivery.SUBSCRIPTIONS.notify()  # what the PUT does after its commit


async def test_a_change_is_delivered_when_the_feed_commits_it_not_at_the_next_poll(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with receiver() as rec, delivering(tmp_path, monkeypatch) as (ctx, consumer, _):
        assert await consumer.run_once(0) == 1  # a change in the feed before the subscription
        await subscribe(ctx, rec.url)

        async def received(n: int) -> bool:
            return len(rec.ids) == n

        # the fallback poll is 600 s: only the wake-ups can deliver within these waits
        await wait_until(partial(received, 1), timeout_s=20)
        for n in (2, 3):
            assert await consumer.run_once(0) == 1
            await wait_until(partial(received, n), timeout_s=20)
        assert rec.ids == [e["id"] for e in EVENTS[:3]]


async def test_the_idle_loop_does_not_look_at_the_database_every_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with receiver() as rec, delivering(tmp_path, monkeypatch) as (ctx, _, looks):
        await subscribe(ctx, rec.url)
        await wait_until(partial(looked, looks, 2))  # the first look, then the one the subscription woke
        before = len(looks)
        await asyncio.sleep(2.0)  # an active subscription with nothing to deliver: the loop sleeps
        assert len(looks) == before, looks
        assert rec.ids == []


async def test_without_a_subscription_the_feed_commits_leave_the_loop_asleep_until_one_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with receiver() as rec, delivering(tmp_path, monkeypatch) as (ctx, consumer, looks):
        for _ in range(2):  # changes committed while no subscription exists: nothing to look for
            assert await consumer.run_once(0) == 1
        await asyncio.sleep(0.5)
        assert len(looks) == 1, looks
        await subscribe(ctx, rec.url)

        async def received(n: int) -> bool:
            return len(rec.ids) == n

        await wait_until(partial(received, 2), timeout_s=20)  # the creation woke it: the two changes
        assert await consumer.run_once(0) == 1  # from here on, each commit of the feed wakes it
        await wait_until(partial(received, 3), timeout_s=20)
        assert rec.ids == [e["id"] for e in EVENTS[:3]]
