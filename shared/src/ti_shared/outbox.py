"""The transactional outbox: events are rows written in the caller's transaction; a relay publishes them.

A request handler never talks to the bus. It calls :func:`record_event` inside its transaction;
:class:`OutboxRelay` publishes pending rows in id order (hence in order per entity key, since a later
change of an entity always gets a later id), marks them sent, and keeps retrying while the bus is down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from ti_shared.bus import BusUnavailable, OutgoingMessage, Publisher
from ti_shared.db import Database, insert_rows, outbox_message
from ti_shared.events import CONTENT_TYPE, CloudEvent, NewEvent, encode_event, encode_new_event, new_event
from ti_shared.logging import get_logger
from ti_shared.metrics import EVENTS_PUBLISHED, OUTBOX_PUBLISH_FAILURES

log = get_logger(__name__)


async def record_event(
    session: AsyncSession,
    *,
    topic: str,
    source: str,
    type_: str,
    subject: str,
    version: int,
    actor: str,
    time: datetime,
    data: dict[str, Any],
) -> CloudEvent:
    """Add an event to the outbox, in the session's transaction."""
    event = new_event(
        source=source, type_=type_, subject=subject, time=time, version=version, actor=actor, data=data
    )
    await add_to_outbox(session, topic=topic, key=subject, event_id=event.id, event_type=type_, payload=encode_event(event))
    return event


async def add_to_outbox(
    session: AsyncSession, *, topic: str, key: str, event_id: str, event_type: str, payload: bytes
) -> None:
    await session.execute(
        outbox_message.insert().values(
            topic=topic,
            message_key=key,
            event_id=event_id,
            event_type=event_type,
            payload=payload.decode(),
            created_at=datetime.now(UTC),
        )
    )


async def add_many_to_outbox(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Bulk form of :func:`add_to_outbox` (rows: topic, message_key, event_id, event_type, payload)."""
    if not rows:
        return
    now = datetime.now(UTC)
    await insert_rows(session, outbox_message, [{**r, "created_at": now, "sent_at": None} for r in rows])


async def record_events(session: AsyncSession, events: Sequence[NewEvent], *, source: str, time: datetime) -> list[str]:
    """Add many events to the outbox in one bulk insert (``COPY`` on PostgreSQL), in the session's
    transaction; an event without its own ``time`` takes ``time``. Returns their ids, in order."""
    ids: list[str] = []
    rows: list[dict[str, Any]] = []
    for e in events:
        event_id, payload = encode_new_event(
            source=source, type_=e.type, subject=e.subject, time=e.time or time, version=e.version, actor=e.actor, data=e.data
        )
        ids.append(event_id)
        rows.append(
            {"topic": e.topic, "message_key": e.subject, "event_id": event_id, "event_type": e.type, "payload": payload.decode()}
        )
    await add_many_to_outbox(session, rows)
    return ids


async def count_pending(session: AsyncSession) -> int:
    result = await session.execute(
        sa.select(sa.func.count()).select_from(outbox_message).where(outbox_message.c.sent_at.is_(None))
    )
    return int(result.scalar_one())


class OutboxRelay:
    """Publishes the outbox of one database, in order, at least once."""

    def __init__(self, db: Database, publisher: Publisher, *, service: str, batch_size: int = 1000, idle_s: float = 0.2) -> None:
        self._db = db
        self._publisher = publisher
        self._service = service
        self._batch_size = batch_size
        self._idle_s = idle_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.bus_ok = True
        self.last_error: str | None = None

    def notify(self) -> None:
        """Called after a commit that added outbox rows: publish without waiting for the next poll."""
        self._wake.set()

    async def start(self) -> None:
        await self._publisher.start()
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._service}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._publisher.stop()

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                published = await self.publish_pending()
                self.bus_ok, self.last_error, backoff = True, None, 0.2
                if published >= self._batch_size:
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the relay never dies: it retries
                self.bus_ok = not isinstance(exc, BusUnavailable)
                self.last_error = repr(exc)
                OUTBOX_PUBLISH_FAILURES.labels(service=self._service).inc()
                log.warning("outbox relay: publish failed, retrying", error=repr(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows; returns how many were published."""
        async with self._db.session() as session:
            query = (
                sa.select(
                    outbox_message.c.id,
                    outbox_message.c.topic,
                    outbox_message.c.message_key,
                    outbox_message.c.payload,
                )
                .where(outbox_message.c.sent_at.is_(None))
                .order_by(outbox_message.c.id)
                .limit(self._batch_size)
            )
            if not self._db.is_sqlite:
                query = query.with_for_update()
            rows = (await session.execute(query)).all()
            if not rows:
                await session.rollback()
                return 0
            messages = [
                OutgoingMessage(
                    topic=r.topic,
                    key=r.message_key,
                    value=r.payload.encode(),
                    headers=(("content-type", CONTENT_TYPE.encode()),),
                )
                for r in rows
            ]
            await self._publisher.publish(messages)
            ids = [r.id for r in rows]
            await session.execute(
                outbox_message.update().where(outbox_message.c.id.in_(ids)).values(sent_at=datetime.now(UTC))
            )
            await session.commit()
        EVENTS_PUBLISHED.labels(service=self._service).inc(len(rows))
        return len(rows)
