"""One source read for several consumers of the same topics in a process: each message fetched once
and its envelope decoded once, for all of them.

Each consumer reads through its own view (``SharedSource.view()``, a ``Source``), which keeps its own
positions: it is handed every fetched message at or after its position, in the order fetched, and
its consumer keeps its own offsets, transactions and dead letters as with a source of its own. The
source underneath reads from the lowest position of the views: a view that starts or seeks behind
it makes it read again from there (the other views drop what they were handed already). A fetch by
a view with nothing left to read fetches for every view; a view holding ``hold`` messages not read
yet makes the others' fetches wait for it (a bound on the memory, whatever the consumers' speeds).
The views are handed the same message and envelope objects: their consumers read them, never change them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import Sequence

from ti_shared.bus import IncomingMessage, Source, TopicPartition
from ti_shared.events import Envelope, decode_envelope

#: messages one view may hold unread before the others' fetches wait
HOLD = 20_000
#: decoded envelopes kept for the views that have not read their message yet
_DECODED = 2 * HOLD


def _retrieved(task: asyncio.Future[None]) -> None:
    """The outcome of a fetch whose view stopped waiting is dropped (the view's consumer is stopping)."""
    if not task.cancelled():
        task.exception()


class _View:
    """What one consumer reads (a ``Source``)."""

    def __init__(self, shared: SharedSource) -> None:
        self._shared = shared
        self.started = False
        #: the offset of the next message it is to be handed, per partition (absent: from the beginning)
        self.wanted: dict[TopicPartition, int] = {}
        self.buffer: deque[IncomingMessage] = deque()

    async def start(self, topics: Sequence[str], positions: dict[TopicPartition, int]) -> None:
        await self._shared._start(self, topics, positions)

    async def stop(self) -> None:
        await self._shared._stop(self)

    async def seek(self, positions: dict[TopicPartition, int]) -> None:
        await self._shared._seek(self, positions)

    async def fetch(self, max_records: int, timeout_s: float) -> list[IncomingMessage]:
        return await self._shared._fetch(self, max_records, timeout_s)

    async def lag(self) -> int:
        return await self._shared._lag(self)

    def decode(self, message: IncomingMessage) -> Envelope:
        """The message's envelope, decoded once for every view (raises as ``decode_envelope``)."""
        return self._shared._decode(message)

    def take(self, n: int) -> list[IncomingMessage]:
        buffer = self.buffer
        out = [buffer.popleft() for _ in range(min(n, len(buffer)))]
        if out:
            self._shared._drained.set()
        return out


class SharedSource:
    """``inner`` read once for every view (see the module's docstring)."""

    def __init__(self, inner: Source, *, hold: int = HOLD) -> None:
        self._inner = inner
        self._hold = hold
        self._views: list[_View] = []
        self._topics: list[str] | None = None
        self._running = False
        #: the inner source's next offset per partition (absent: from the beginning)
        self._read: dict[TopicPartition, int] = {}
        self._lock = asyncio.Lock()
        self._drained = asyncio.Event()
        #: (topic, partition, offset) → the envelope, and how many other views are still to read it
        self._decoded: OrderedDict[tuple[str, int, int], tuple[Envelope, int]] = OrderedDict()

    def view(self) -> _View:
        view = _View(self)
        self._views.append(view)
        return view

    def _lowest(self) -> dict[TopicPartition, int]:
        """The lowest position of the started views (a partition one of them reads from the beginning is absent)."""
        started = [v for v in self._views if v.started]
        common = set.intersection(*(set(v.wanted) for v in started)) if started else set()
        return {tp: min(v.wanted[tp] for v in started) for tp in common}

    async def _start(self, view: _View, topics: Sequence[str], positions: dict[TopicPartition, int]) -> None:
        async with self._lock:
            if self._topics is not None and list(topics) != self._topics:
                raise ValueError("the views of a shared source read the same topics")
            self._topics = list(topics)
            view.started, view.wanted, view.buffer = True, dict(positions), deque()
            await self._reposition()

    async def _seek(self, view: _View, positions: dict[TopicPartition, int]) -> None:
        async with self._lock:
            view.wanted, view.buffer = dict(positions), deque()
            self._drained.set()
            await self._reposition()

    async def _reposition(self) -> None:
        """Start the inner source, or make it read again from the lowest position if a view is behind it."""
        lowest = self._lowest()
        if not self._running:
            assert self._topics is not None
            await self._inner.start(self._topics, lowest)
            self._running, self._read = True, dict(lowest)
            return
        behind = any(tp not in lowest or lowest[tp] < offset for tp, offset in self._read.items())
        if behind:
            await self._inner.seek(lowest)
            self._read = dict(lowest)

    async def _stop(self, view: _View) -> None:
        async with self._lock:
            view.started, view.buffer = False, deque()
            self._drained.set()
            if self._running and not any(v.started for v in self._views):
                self._running = False
                self._decoded.clear()
                await self._inner.stop()

    async def _fetch(self, view: _View, max_records: int, timeout_s: float) -> list[IncomingMessage]:
        if view.buffer:
            return view.take(max_records)
        task = asyncio.ensure_future(self._fetch_for(view, max_records, timeout_s))
        task.add_done_callback(_retrieved)
        # a consumer stopped meanwhile does not cut short a fetch whose messages the others are handed
        await asyncio.shield(task)
        return view.take(max_records)

    async def _fetch_for(self, view: _View, max_records: int, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        async with self._lock:
            if view.buffer:  # the fetch of another view waited for brought this one's
                return
            while any(len(v.buffer) >= self._hold for v in self._views if v is not view and v.started):
                self._drained.clear()
                left = deadline - loop.time()
                if left <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await self._drained.wait()
            self._hand_out(await self._inner.fetch(max_records, max(0.0, deadline - loop.time())))

    def _hand_out(self, messages: list[IncomingMessage]) -> None:
        views = [v for v in self._views if v.started]
        for msg in messages:
            tp = (msg.topic, msg.partition)
            self._read[tp] = msg.offset + 1
            for v in views:
                if msg.offset >= v.wanted.get(tp, -1):
                    v.wanted[tp] = msg.offset + 1
                    v.buffer.append(msg)

    async def _lag(self, view: _View) -> int:
        ahead = sum(max(0, offset - self._read.get(tp, 0)) for tp, offset in view.wanted.items())
        return max(0, await self._inner.lag() + len(view.buffer) - ahead)

    def _decode(self, message: IncomingMessage) -> Envelope:
        key = (message.topic, message.partition, message.offset)
        found = self._decoded.get(key)
        if found is not None:
            event, others = found
            if others <= 1:  # the last view to read it: forgotten
                del self._decoded[key]
            else:
                self._decoded[key] = (event, others - 1)
            return event
        event = decode_envelope(message.value)
        others = sum(1 for v in self._views if v.started) - 1
        if others > 0:
            self._decoded[key] = (event, others)
            if len(self._decoded) > _DECODED:
                self._decoded.popitem(last=False)
        return event
