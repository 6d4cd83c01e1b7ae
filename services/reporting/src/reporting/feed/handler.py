"""The change feed's consumer: every applied change of the four domain topics, in the order applied,
with the entity's previous state and the fields it changed (its own consumer group, so that a rebuild
of the indicators never touches the feed)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.consumer import Delivery, EventHandler
from ti_shared.events import DOMAIN_TOPICS

from reporting.feed import repository
from reporting.feed.domain import FEED_TYPES, changed_fields, operator_of

#: the consumer group of the feed
FEED_CONSUMER = "reporting-changes"


class FeedNotifier:
    """Wakes the streams of this process when the feed grew (other processes' streams poll)."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Event] = set()

    def notify(self) -> None:
        for waiter in self._waiters:
            waiter.set()

    async def wait(self, timeout_s: float) -> None:
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter.wait()
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)


NOTIFIER = FeedNotifier()


class ChangeFeed(EventHandler):
    topics = DOMAIN_TOPICS

    def accepts(self, event_type: str) -> bool:
        return event_type in FEED_TYPES

    async def apply(self, session: AsyncSession, deliveries: list[Delivery]) -> None:
        keys = [(d.message.topic, d.event.subject) for d in deliveries]
        states = await repository.latest_data(session, keys)
        now = datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        for d in deliveries:
            key = (d.message.topic, d.event.subject)
            event = json.loads(d.message.value)
            previous = states.get(key)
            rows.append({
                "event_id": d.event.id, "topic": d.message.topic, "type": d.event.type, "subject": d.event.subject,
                "version": d.event.entityversion, "time": d.event.time, "operator": operator_of(d.message.topic, d.event.data),
                "event": event, "previous": previous, "changed": changed_fields(previous, d.event.data), "recorded_at": now,
            })
            states[key] = d.event.data
        await repository.add_changes(session, rows)

    async def is_empty(self, session: AsyncSession) -> bool:
        return not await repository.has_changes(session)

    def committed(self) -> None:
        NOTIFIER.notify()
