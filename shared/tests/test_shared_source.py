"""One source read for two consumers: each view gets every message from its own position, in order;
a view that seeks back makes the source read again without the other seeing anything twice; a view
far behind holds the other's fetches; each envelope is decoded once; two real consumers on SQLite
give what two sources of their own give."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared import shared_source
from ti_shared.bus import IncomingMessage
from ti_shared.consumer import Delivery, EventConsumer, EventHandler
from ti_shared.db import Database, infra_metadata
from ti_shared.events import TOPIC_TERRITORIES
from ti_shared.shared_source import SharedSource
from ti_shared.testing import MemorySource, territory_event


class Counting(MemorySource):
    def __init__(self, messages: list[Any]) -> None:
        super().__init__(messages)
        self.fetches = 0
        self.seeks = 0

    async def fetch(self, max_records: int, timeout_s: float) -> list[Any]:
        self.fetches += 1
        return await super().fetch(max_records, timeout_s)

    async def seek(self, positions: dict[tuple[str, int], int]) -> None:
        self.seeks += 1
        await super().seek(positions)


def source_of(n: int) -> Counting:
    return Counting(MemorySource.of_events([territory_event(f"T{i:03d}", "84") for i in range(n)], partitions=2).messages)


def offsets(messages: list[IncomingMessage]) -> list[tuple[int, int]]:
    return [(m.partition, m.offset) for m in messages]


async def drain(view: Any, batch: int = 7) -> list[IncomingMessage]:
    out: list[IncomingMessage] = []
    while chunk := await view.fetch(batch, 0):
        out += chunk
    return out


async def test_each_view_reads_from_its_own_position_and_one_fetch_serves_both() -> None:
    inner = source_of(40)
    shared = SharedSource(inner)
    a, b = shared.view(), shared.view()
    every = {(m.topic, m.partition): m.offset for m in inner.messages}
    ahead = {tp: 5 for tp in every}
    await a.start([TOPIC_TERRITORIES], {})
    await b.start([TOPIC_TERRITORIES], ahead)
    first = await a.fetch(100, 0)
    assert offsets(first) == offsets(inner.messages)
    assert await b.lag() == len([m for m in inner.messages if m.offset >= 5])
    second = await b.fetch(100, 0)  # handed out by a's fetch: no fetch of its own
    assert offsets(second) == offsets([m for m in inner.messages if m.offset >= 5])
    assert inner.fetches == 1
    # a seeks back: the source reads again, b is handed nothing twice
    await a.seek({tp: 3 for tp in every})
    again = await drain(a)
    assert offsets(again) == offsets([m for m in inner.messages if m.offset >= 3])
    assert await drain(b) == []
    assert await a.lag() == 0 and await b.lag() == 0


async def test_a_view_far_behind_holds_the_others_fetches_and_envelopes_are_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[int] = []
    decode = shared_source.decode_envelope

    def counted(value: bytes) -> Any:
        decoded.append(1)
        return decode(value)

    monkeypatch.setattr(shared_source, "decode_envelope", counted)
    inner = source_of(30)
    shared = SharedSource(inner, hold=10)
    fast, slow = shared.view(), shared.view()
    await fast.start([TOPIC_TERRITORIES], {})
    await slow.start([TOPIC_TERRITORIES], {})
    got = await fast.fetch(12, 0)
    assert len(got) == 12
    assert await fast.fetch(12, 0) == []  # slow holds 12 unread: no fetch for fast
    assert inner.fetches == 1
    behind = await slow.fetch(5, 0)
    assert offsets(behind) == offsets(got[:5])
    assert [fast.decode(m).subject for m in got[:5]] == [slow.decode(m).subject for m in behind]
    assert len(decoded) == 5
    rest_slow, rest_fast = behind, got
    while True:  # each reads in turn: neither is held for ever
        more_slow, more_fast = await slow.fetch(5, 0), await fast.fetch(12, 0)
        if not more_slow and not more_fast:
            break
        rest_slow, rest_fast = rest_slow + more_slow, rest_fast + more_fast
        assert max(len(v.buffer) for v in (fast, slow)) <= 10 + 12
    assert offsets(rest_fast) == offsets(rest_slow) == offsets(inner.messages)


class Recording(EventHandler):
    topics: Sequence[str] = (TOPIC_TERRITORIES,)

    def __init__(self) -> None:
        self.applied: list[tuple[str, int]] = []

    def accepts(self, event_type: str) -> bool:
        return True

    async def apply(self, session: AsyncSession, deliveries: list[Delivery]) -> None:
        self.applied += [(d.event.subject, d.event.entityversion) for d in deliveries]

    async def is_empty(self, session: AsyncSession) -> bool:
        return not self.applied


async def test_two_consumers_on_one_shared_source_apply_what_each_would_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[int] = []
    decode = shared_source.decode_envelope

    def counted(value: bytes) -> Any:
        decoded.append(1)
        return decode(value)

    monkeypatch.setattr(shared_source, "decode_envelope", counted)
    events = [territory_event(f"T{i % 9}", "84", version=1 + i // 9) for i in range(45)]
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")
    async with db.engine.begin() as conn:
        await conn.run_sync(infra_metadata.create_all)
    try:
        shared = SharedSource(MemorySource.of_events(events))
        alone = EventConsumer(name="alone", service="t", db=db, source=MemorySource.of_events(events), handler=Recording(),
                              batch_size=4)
        consumers = [
            EventConsumer(name=f"c{i}", service="t", db=db, source=shared.view(), handler=Recording(), batch_size=4 + i)
            for i in range(2)
        ]
        while await alone.run_once(0):
            pass
        for c in consumers:
            await c.ensure_started()
        while sum([await c.run_once(0) for c in consumers]):
            pass
        for c in consumers:
            assert c.handler.applied == alone.handler.applied  # type: ignore[attr-defined]
            assert c.applied_count == 45 and await c.lag() == 0
        assert len(decoded) == 45 and shared._kept == {}  # each envelope decoded once for both, none kept after
        for c in consumers:
            await c.stop()
        await alone.stop()
    finally:
        await db.dispose()


async def test_a_fetch_cut_short_by_a_stopping_consumer_still_hands_its_messages_to_the_other() -> None:
    class Slow(Counting):
        def __init__(self, messages: list[Any]) -> None:
            super().__init__(messages)
            self.go = asyncio.Event()

        async def fetch(self, max_records: int, timeout_s: float) -> list[Any]:
            await self.go.wait()
            return await super().fetch(max_records, timeout_s)

    inner = Slow(source_of(6).messages)
    shared = SharedSource(inner)
    stopping, other = shared.view(), shared.view()
    await stopping.start([TOPIC_TERRITORIES], {})
    await other.start([TOPIC_TERRITORIES], {})
    cut = asyncio.create_task(stopping.fetch(10, 5))
    await asyncio.sleep(0.01)
    cut.cancel()
    inner.go.set()
    with pytest.raises(asyncio.CancelledError):
        await cut
    await stopping.stop()
    assert offsets(await other.fetch(10, 0)) == offsets(inner.messages)
    assert inner.fetches == 1


async def test_the_envelopes_kept_are_only_those_a_view_still_holds() -> None:
    inner = source_of(60)
    shared = SharedSource(inner, hold=10)
    fast, slow = shared.view(), shared.view()
    await fast.start([TOPIC_TERRITORIES], {})
    await slow.start([TOPIC_TERRITORIES], {})
    got = await fast.fetch(12, 0)
    for m in got:
        fast.decode(m)
    # decoded by fast, still held (unread) by slow: kept, and no more than that
    assert len(shared._kept) == len(slow.buffer) == 12
    taken = await slow.fetch(5, 0)
    for m in taken[:3]:
        slow.decode(m)
    assert len(shared._kept) == 12 - 3  # two taken, not decoded yet (slow's consumer may still read them)
    await slow.fetch(5, 0)  # slow moved on without decoding them: let go
    assert len(shared._kept) == 12 - 5
    # both read everything: nothing is kept
    while True:
        a, b = await fast.fetch(7, 0), await slow.fetch(9, 0)
        if not a and not b:
            break
        for m in a:
            fast.decode(m)
        for m in b:
            slow.decode(m)
        assert len(shared._kept) <= len(fast.buffer) + len(slow.buffer) + 7 + 9
    assert shared._kept == {}
    # slow reads everything again (a rebuild): handed to it alone, nothing is kept
    await slow.seek({})
    again = await drain(slow)
    assert offsets(again) == offsets(inner.messages)
    for m in again:
        slow.decode(m)
    assert shared._kept == {}
    # a view that seeks or stops lets go of what it held
    await fast.seek({})
    await slow.seek({})
    await fast.fetch(20, 0)
    assert len(shared._kept) == 20
    await slow.seek({(m.topic, m.partition): m.offset + 1 for m in inner.messages})
    assert len(shared._kept) == 20  # fast's last take, not decoded yet
    await fast.fetch(100, 0)
    assert len(shared._kept) == 0  # handed to fast alone
    await slow.stop()
    await fast.stop()
    assert shared._kept == {}


async def test_a_view_far_behind_decodes_itself_what_is_beyond_the_envelopes_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[bytes] = []
    decode = shared_source.decode_envelope

    def counted(value: bytes) -> Any:
        decoded.append(value)
        return decode(value)

    monkeypatch.setattr(shared_source, "decode_envelope", counted)
    inner = source_of(20)
    shared = SharedSource(inner, hold=100, keep=5)
    fast, slow = shared.view(), shared.view()
    await fast.start([TOPIC_TERRITORIES], {})
    await slow.start([TOPIC_TERRITORIES], {})
    ahead = [fast.decode(m) for m in await fast.fetch(20, 0)]
    assert len(decoded) == 20 and sum(e[0] is not None for e in shared._kept.values()) == 5
    behind = [slow.decode(m) for m in await slow.fetch(20, 0)]
    assert [(e.id, e.subject, e.data) for e in behind] == [(e.id, e.subject, e.data) for e in ahead]
    assert all(b is a for a, b in zip(behind[:5], ahead[:5], strict=True))
    assert len(decoded) == 20 + 15  # the first five read from what was kept, the others decoded again
    assert shared._kept == {} and shared._envelopes == 0
