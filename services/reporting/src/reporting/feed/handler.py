"""The change feed's consumer: every applied change of the four domain topics, in the order applied,
with the entity's previous state and the fields it changed (its own consumer group, so that a rebuild
of the indicators never touches the feed)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.consumer import Delivery, EventHandler, NotInOneStatement, OneStatement
from ti_shared.events import DOMAIN_TOPICS

from reporting.feed import repository
from reporting.feed.domain import FEED_TYPES, changed_fields, operator_of
from reporting.feed.repository import Change, Key, json_text

#: the consumer group of the feed
FEED_CONSUMER = "reporting-changes"
#: events per fetched batch (a catch-up window gathers several, see ``EventConsumer``)
BATCH_SIZE = 5_000
#: a catch-up window: events and seconds of one transaction at most
WINDOW_EVENTS = 2_000_000
WINDOW_S = 60.0
#: a fetch of at least this many changes is written by binary COPY
COPY_AT = 500
#: subjects whose newest change is kept in memory at most
MAX_KNOWN = 50_000


class FeedNotifier:
    """Wakes the streams of this process when the feed grew (other processes' streams poll)."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Event] = set()

    def notify(self) -> None:
        for waiter in self._waiters:
            waiter.set()

    @contextlib.contextmanager
    def listening(self, waiter: asyncio.Event) -> Iterator[None]:
        """``waiter`` is set at each notification made within the block (none is missed between two waits)."""
        self._waiters.add(waiter)
        try:
            yield
        finally:
            self._waiters.discard(waiter)

    async def wait(self, timeout_s: float) -> None:
        waiter = asyncio.Event()
        with self.listening(waiter), contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await waiter.wait()


NOTIFIER = FeedNotifier()


class ChangeFeed(EventHandler):
    """Appends each applied change to the feed, with the entity's previous state and what changed.

    The newest change of each subject seen lately is kept in memory — its version (the version the
    consumer has applied: the feed keeps its own, ``applied_version`` is not written) and its data as
    JSON text (the next change's ``previous``) — for ``max_known`` subjects at most; the others are
    read from the feed, in the batch's transaction (so a catch-up window's own changes are found
    there). On start, when the feed has changes of ``max_known / 2`` subjects at most, the newest of
    each is read at once: then none is read batch by batch. A fetch of ``copy_at`` changes or more (catching up) is written by binary ``COPY``, a
    smaller one in one statement. What a transaction that did not commit put in memory is forgotten
    when the next one begins."""

    topics = DOMAIN_TOPICS
    one_statement = True

    def __init__(self, *, copy_at: int = COPY_AT, max_known: int = MAX_KNOWN) -> None:
        self._copy_at = copy_at
        self._max_known = max_known
        #: (topic, subject) → (version, data as JSON text) of its newest change, the most recent last
        self._known: dict[Key, tuple[int, str]] = {}
        #: True: a subject not in ``_known`` has no change at all (the feed was empty, nothing was
        #: forgotten since); None: not known yet
        self._complete: bool | None = None
        #: the session of the transaction under way (None once it committed)
        self._session: AsyncSession | None = None

    def accepts(self, event_type: str) -> bool:
        return event_type in FEED_TYPES

    async def _open(self, session: AsyncSession) -> None:
        if self._session is not session:
            if self._session is not None:  # that transaction did not commit: what it put in memory is void
                self._known.clear()
                self._complete = None
            self._session = session
        if self._complete is None:  # the newest change of every subject, when they are few enough (one query)
            newest = await repository.all_newest_changes(session, at_most=self._max_known // 2)
            if newest is not None:
                self._known = newest
            self._complete = newest is not None

    async def _recall(self, session: AsyncSession, keys: Collection[Key]) -> None:
        """Put in memory the newest change of those of ``keys`` that are not there (and have one)."""
        if self._complete:
            return
        known = self._known
        missing = sorted({k for k in keys if k not in known})
        if missing:
            known.update(await repository.newest_changes(session, missing))

    async def applied_versions(self, session: AsyncSession, keys: Collection[Key]) -> dict[Key, int]:
        await self._open(session)
        await self._recall(session, keys)
        known = self._known
        return {k: known[k][0] for k in keys if k in known}

    async def apply(self, session: AsyncSession, deliveries: list[Delivery]) -> None:
        changes, newest = await self._changes(session, deliveries)
        await repository.add_changes(session, changes, copy=len(changes) >= self._copy_at)
        self._remember(newest)

    async def apply_in_statement(self, session: AsyncSession, deliveries: list[Delivery], statement: OneStatement) -> None:
        """A small batch: its changes as a part of the consumer's one statement (what it puts in memory
        is forgotten if that statement does not commit: the next transaction has another session)."""
        if len(deliveries) >= self._copy_at:
            raise NotInOneStatement
        changes, newest = await self._changes(session, deliveries)
        if changes:
            statement.add(*repository.insert_part(changes, statement.where))
        self._remember(newest)

    async def _changes(
        self, session: AsyncSession, deliveries: list[Delivery]
    ) -> tuple[list[Change], dict[Key, tuple[int, str, dict[str, Any]]]]:
        """The feed's rows of the deliveries, and the newest change of each subject among them."""
        await self._open(session)
        await self._recall(session, [(d.message.topic, d.event.subject) for d in deliveries])
        known = self._known
        now = datetime.now(UTC)
        changes: list[Change] = []
        #: what this call changes, put in memory once it is written (or queued)
        newest: dict[Key, tuple[int, str, dict[str, Any]]] = {}
        for d in deliveries:
            ev, topic = d.event, d.message.topic
            key = (topic, ev.subject)
            data = ev.data
            mine = newest.get(key)
            if mine is not None:
                previous_text: str | None = mine[1]
                previous: dict[str, Any] | None = mine[2]
            else:
                was = known.get(key)
                previous_text = was[1] if was is not None else None
                previous = orjson.loads(previous_text) if previous_text is not None else None
            text = json_text(data)
            changes.append((
                ev.id, topic, ev.type, ev.subject, ev.entityversion, ev.time, operator_of(topic, data),
                d.message.value.decode(), previous_text, json_text(changed_fields(previous, data)), now,
            ))
            newest[key] = (ev.entityversion, text, data)
        return changes, newest

    def _remember(self, newest: dict[Key, tuple[int, str, dict[str, Any]]]) -> None:
        known = self._known
        for key, (version, text, _) in newest.items():
            known.pop(key, None)  # the most recent last
            known[key] = (version, text)
        if len(known) > self._max_known:  # the least recent half is forgotten (read again from the feed when needed)
            for key in list(itertools.islice(known, len(known) - self._max_known // 2)):
                del known[key]
            self._complete = False

    async def is_empty(self, session: AsyncSession) -> bool:
        return not await repository.has_changes(session)

    def committed(self) -> None:
        self._session = None
        NOTIFIER.notify()
