"""The handler base's hooks: ``finish`` before the batch's commit, ``committed`` after it, no-ops by default."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.bus import IncomingMessage, TopicPartition
from ti_shared.consumer import Delivery, EventConsumer, EventHandler
from ti_shared.db import Database, consumer_offset, infra_metadata
from ti_shared.events import TOPIC_TERRITORIES
from ti_shared.testing import territory_event


class ListSource:
    """A source handing out one fixed list of messages once."""

    def __init__(self, messages: list[IncomingMessage]) -> None:
        self._messages = messages

    async def start(self, topics: Sequence[str], positions: dict[TopicPartition, int]) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def fetch(self, max_records: int, timeout_s: float) -> list[IncomingMessage]:
        out, self._messages = self._messages[:max_records], self._messages[max_records:]
        return out

    async def seek(self, positions: dict[TopicPartition, int]) -> None:
        return None

    async def lag(self) -> int:
        return len(self._messages)


class Plain(EventHandler):
    topics: Sequence[str] = (TOPIC_TERRITORIES,)

    def __init__(self) -> None:
        self.applied: list[str] = []

    def accepts(self, event_type: str) -> bool:
        return True

    async def apply(self, session: AsyncSession, deliveries: list[Delivery]) -> None:
        self.applied += [d.event.subject for d in deliveries]

    async def is_empty(self, session: AsyncSession) -> bool:
        return not self.applied


class Hooked(Plain):
    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self.calls: list[str] = []

    async def finish(self, session: AsyncSession) -> None:
        self.calls.append(f"finish after {len(self.applied)} applied, offsets stored: {await self._stored()}")

    def committed(self) -> None:
        self.calls.append("committed")

    async def _stored(self) -> int:
        async with self.db.read_session() as other:  # what another connection sees: the commit is still ahead
            return int((await other.execute(sa.select(sa.func.count()).select_from(consumer_offset))).scalar_one())


def messages(n: int) -> list[IncomingMessage]:
    out = []
    for i in range(n):
        subject = f"T{i:03d}"
        out.append(IncomingMessage(TOPIC_TERRITORIES, 0, i, subject, json.dumps(territory_event(subject, "84")).encode()))
    return out


@pytest.fixture
async def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'hooks.db'}")
    async with database.engine.begin() as conn:
        await conn.run_sync(infra_metadata.create_all)
    return database


async def test_finish_runs_before_the_commit_and_committed_after_it(db: Database) -> None:
    handler = Hooked(db)
    consumer = EventConsumer(name="hooks", service="probe", db=db, source=ListSource(messages(3)), handler=handler)
    assert await consumer.run_once() == 3
    assert handler.calls == ["finish after 3 applied, offsets stored: 0", "committed"]
    await consumer.stop()
    await db.dispose()


async def test_a_handler_without_hooks_applies_and_commits(db: Database) -> None:
    handler = Plain()
    consumer = EventConsumer(name="plain", service="probe", db=db, source=ListSource(messages(2)), handler=handler)
    assert await consumer.run_once() == 2
    assert handler.applied == ["T000", "T001"]
    assert consumer.positions == {(TOPIC_TERRITORIES, 0): 2}
    await consumer.stop()
    await db.dispose()
