"""The consumer base while catching up (windows of batches in one transaction), handlers keeping their
own applied versions, and the envelope read without a model."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.consumer import Delivery, EventConsumer, EventHandler, EventRejected
from ti_shared.db import Database, applied_version, consumer_offset, infra_metadata, outbox_message
from ti_shared.events import TOPIC_TERRITORIES, CloudEvent, Envelope, decode_envelope
from ti_shared.testing import MemorySource, territory_event


class Recording(EventHandler):
    """Applies territory events into memory, committed with the transaction; refuses subjects 'BAD*'."""

    topics: Sequence[str] = (TOPIC_TERRITORIES,)

    def __init__(self, *, own_versions: bool = False) -> None:
        self.own_versions = own_versions
        self.versions: dict[str, int] = {}
        self.pending: dict[str, int] = {}
        self.applied: list[tuple[str, int]] = []
        self.finishes = 0
        self.lookups: list[set[tuple[str, str]]] = []

    def accepts(self, event_type: str) -> bool:
        return True

    async def apply(self, session: AsyncSession, deliveries: list[Delivery]) -> None:
        for d in deliveries:
            if d.event.subject.startswith("BAD"):
                raise EventRejected("a bad one")
        for d in deliveries:
            self.pending[d.event.subject] = d.event.entityversion

    async def is_empty(self, session: AsyncSession) -> bool:
        return not self.versions

    async def finish(self, session: AsyncSession) -> None:
        self.finishes += 1

    def committed(self) -> None:
        self.applied += sorted(self.pending.items())
        self.versions.update(self.pending)
        self.pending = {}

    async def applied_versions(
        self, session: AsyncSession, keys: Collection[tuple[str, str]]
    ) -> Mapping[tuple[str, str], int] | None:
        if not self.own_versions:
            return None
        self.pending = {}  # a new transaction: what an abandoned one noted is void
        self.lookups.append(set(keys))
        return {(t, s): self.versions[s] for t, s in keys if s in self.versions}


def stream(n: int, bad: set[int] = frozenset(), versions: int = 1) -> list[dict[str, Any]]:  # type: ignore[assignment]
    out = []
    for v in range(1, versions + 1):
        for i in range(n):
            subject = f"BAD{i:03d}" if i in bad else f"T{i:03d}"
            out.append(territory_event(subject, "84", version=v))
    return out


@pytest.fixture
async def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'windows.db'}")
    async with database.engine.begin() as conn:
        await conn.run_sync(infra_metadata.create_all)
    yield database  # type: ignore[misc]
    await database.dispose()


async def drain(consumer: EventConsumer) -> list[int]:
    counts = []
    try:
        while (n := await consumer.run_once(0)) or await consumer.lag():
            counts.append(n)
    finally:
        await consumer.stop()
    return counts


async def test_full_batches_are_applied_in_windows_of_one_transaction(db: Database) -> None:
    handler = Recording()
    source = MemorySource.of_events(stream(23), partitions=1)
    consumer = EventConsumer(name="w", service="probe", db=db, source=source, handler=handler, batch_size=5, window_events=10)
    assert await drain(consumer) == [10, 10, 3]  # two windows of two full batches, then the rest
    assert handler.finishes == 3
    assert [s for s, _ in handler.applied] == [f"T{i:03d}" for i in range(23)]
    assert consumer.positions == {(TOPIC_TERRITORIES, 0): 23} and consumer.fetched_count == 23
    async with db.read_session() as session:
        stored = (await session.execute(sa.select(consumer_offset.c.next_offset))).scalar_one()
        versions = (await session.execute(sa.select(sa.func.count()).select_from(applied_version))).scalar_one()
    assert (stored, versions) == (23, 23)


async def test_a_window_with_an_event_that_cannot_be_applied_is_applied_again_batch_by_batch(db: Database) -> None:
    handler = Recording()
    source = MemorySource.of_events(stream(20, bad={7}), partitions=1)
    consumer = EventConsumer(name="w", service="probe", db=db, source=source, handler=handler, batch_size=5, window_events=20)
    await drain(consumer)
    assert [s for s, _ in handler.applied] == [f"T{i:03d}" for i in range(20) if i != 7]  # each once
    assert consumer.dead_letter_count == 1 and consumer.applied_count == 19
    async with db.read_session() as session:
        letters = (await session.execute(sa.select(outbox_message.c.payload))).scalars().all()
    assert [json.loads(p)["key"] for p in letters] == ["BAD007"]


async def test_a_handler_keeping_its_own_versions_is_asked_for_them_and_applied_version_stays_empty(db: Database) -> None:
    handler = Recording(own_versions=True)
    events = stream(6, versions=2)
    events += [events[0], events[7]]  # redeliveries: stale and duplicate
    consumer = EventConsumer(name="own", service="probe", db=db, source=MemorySource.of_events(events, partitions=1),
                             handler=handler, batch_size=4)
    await drain(consumer)
    assert handler.versions == {f"T{i:03d}": 2 for i in range(6)}
    assert consumer.skipped_count == 2 and consumer.applied_count == 12
    assert {("ti.territories", "T000"), ("ti.territories", "T001")} <= handler.lookups[0]
    async with db.read_session() as session:
        assert (await session.execute(sa.select(sa.func.count()).select_from(applied_version))).scalar_one() == 0


ENVELOPE = territory_event("ti-8401", "84")


@pytest.mark.parametrize(
    "doc",
    [
        ENVELOPE,
        {**ENVELOPE, "extension": {"a": 1}},
        {k: v for k, v in ENVELOPE.items() if k not in ("specversion", "datacontenttype")},
        {**ENVELOPE, "time": "2024-01-15T10:00:00.123456+02:00"},
        {**ENVELOPE, "time": "2024-01-15t10:00:00z"},
        {**ENVELOPE, "time": "2024-01-15T10:00Z"},
        {**ENVELOPE, "time": "2024-01-15 10:00:00Z"},
        {**ENVELOPE, "time": "2024-01-15T10:00:00"},
        {**ENVELOPE, "time": "2024-02-30T10:00:00Z"},
        {**ENVELOPE, "entityversion": "3"},
        {**ENVELOPE, "entityversion": 3.0},
        {**ENVELOPE, "entityversion": True},
        {**ENVELOPE, "entityversion": 0},
        {**ENVELOPE, "specversion": "2.0"},
        {**ENVELOPE, "specversion": 1.0},
        {**ENVELOPE, "datacontenttype": "text/plain"},
        {**ENVELOPE, "id": ""},
        {**ENVELOPE, "subject": 12},
        {**ENVELOPE, "data": []},
        {k: v for k, v in ENVELOPE.items() if k != "tiactor"},
        [ENVELOPE],
        "not an event",
    ],
)
def test_the_envelope_accepts_and_refuses_what_the_cloudevent_model_does(doc: Any) -> None:
    value = json.dumps(doc).encode()
    try:
        model = CloudEvent.model_validate_json(value)
    except ValidationError:
        with pytest.raises(ValidationError):
            decode_envelope(value)
        return
    envelope = decode_envelope(value)
    expected = Envelope.of(model)
    for name in Envelope.__slots__:
        assert getattr(envelope, name) == getattr(expected, name), name


def test_unparseable_bytes_are_refused() -> None:
    with pytest.raises(ValidationError):
        decode_envelope(b"\xff{")


def test_envelopes_share_their_repeated_attributes() -> None:
    first, second = (decode_envelope(json.dumps({**ENVELOPE, "id": f"e-{i}"}).encode()) for i in range(2))
    for name in ("type", "source", "tiactor"):
        assert getattr(first, name) == ENVELOPE[name]
        assert getattr(first, name) is getattr(second, name), name
    assert first.id is not second.id and first.extra == {} and first.extra is second.extra
