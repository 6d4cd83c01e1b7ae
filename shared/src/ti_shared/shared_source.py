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

A message handed to several views has its envelope kept, once decoded, only until each of them has
decoded it or let it go (moved on to its next fetch, sought elsewhere or stopped), and ``keep``
envelopes at most: those decoded first, which the views behind read next (a view far behind decodes
the others itself).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from ti_shared.bus import IncomingMessage, Source, TopicPartition
from ti_shared.events import Envelope, decode_envelope

#: messages one view may hold unread before the others' fetches wait
HOLD = 20_000
#: decoded envelopes kept for the views behind, at most
KEEP = 5_000

Key = tuple[str, int, int]


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
        #: the messages of its last take that are shared with other views and that it has not decoded yet
        self.unread: set[Key] = set()

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
        return self._shared._decode(self, message)

    def take(self, n: int) -> list[IncomingMessage]:
        """The next ``n`` messages at most (those of its last take it did not decode are let go)."""
        buffer = self.buffer
        out = [buffer.popleft() for _ in range(min(n, len(buffer)))]
        shared = self._shared
        shared._release(self.unread)
        kept = shared._kept
        self.unread = {k for m in out if (k := (m.topic, m.partition, m.offset)) in kept}
        if out:
            shared._drained.set()
        return out

    def drop(self) -> None:
        """Let go of everything it holds (its position moved, or it stopped)."""
        shared = self._shared
        shared._release(self.unread)
        shared._release([(m.topic, m.partition, m.offset) for m in self.buffer])
        self.unread, self.buffer = set(), deque()


class SharedSource:
    """``inner`` read once for every view (see the module's docstring)."""

    def __init__(self, inner: Source, *, hold: int = HOLD, keep: int = KEEP) -> None:
        self._inner = inner
        self._hold = hold
        self._keep = keep
        self._views: list[_View] = []
        self._topics: list[str] | None = None
        self._running = False
        #: the inner source's next offset per partition (absent: from the beginning)
        self._read: dict[TopicPartition, int] = {}
        self._lock = asyncio.Lock()
        self._drained = asyncio.Event()
        #: (topic, partition, offset) of a message handed to several views → its envelope once decoded
        #: (None before), and how many views hold it still (in their buffer or their last take, not decoded)
        self._kept: dict[Key, list[Any]] = {}
        #: how many of them have their envelope
        self._envelopes = 0

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
            view.drop()
            view.started, view.wanted = True, dict(positions)
            await self._reposition()

    async def _seek(self, view: _View, positions: dict[TopicPartition, int]) -> None:
        async with self._lock:
            view.drop()
            view.wanted = dict(positions)
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
            view.drop()
            view.started = False
            self._drained.set()
            if self._running and not any(v.started for v in self._views):
                self._running = False
                self._kept.clear()
                self._envelopes = 0
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
        kept = self._kept
        for msg in messages:
            tp = (msg.topic, msg.partition)
            offset = msg.offset
            self._read[tp] = offset + 1
            handed = 0
            for v in views:
                if offset >= v.wanted.get(tp, -1):
                    v.wanted[tp] = offset + 1
                    v.buffer.append(msg)
                    handed += 1
            key = (msg.topic, msg.partition, offset)
            entry = kept.get(key)
            if entry is not None:  # read again while a view still holds it
                entry[1] += handed
            elif handed > 1:
                kept[key] = [None, handed]

    def _release(self, keys: Iterable[Key]) -> None:
        """One view lets go of these messages: the envelope of one no view holds any longer is forgotten."""
        kept = self._kept
        for key in keys:
            entry = kept.get(key)
            if entry is not None:
                if entry[1] <= 1:
                    del kept[key]
                    if entry[0] is not None:
                        self._envelopes -= 1
                else:
                    entry[1] -= 1

    async def _lag(self, view: _View) -> int:
        ahead = sum(max(0, offset - self._read.get(tp, 0)) for tp, offset in view.wanted.items())
        return max(0, await self._inner.lag() + len(view.buffer) - ahead)

    def _decode(self, view: _View, message: IncomingMessage) -> Envelope:
        key = (message.topic, message.partition, message.offset)
        entry = self._kept.get(key)
        if entry is None:  # handed to this view only, or let go by the others already
            return decode_envelope(message.value)
        event: Envelope | None = entry[0]
        if event is None:
            event = decode_envelope(message.value)
            if entry[1] > (key in view.unread) and self._envelopes < self._keep:  # another view holds it still
                entry[0] = event
                self._envelopes += 1
        if key in view.unread:
            view.unread.discard(key)
            self._release((key,))
        return event
