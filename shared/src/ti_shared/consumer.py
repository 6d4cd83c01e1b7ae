"""The consumer base: apply events, record applied versions and offsets, all in ONE transaction.

On start it seeks to the offsets stored in its own database. Duplicates and stale versions (an
``entityversion`` not newer than the one applied for its subject) change nothing. A message that cannot
be parsed or applied goes to ``ti.dead-letters`` (through the outbox, in the same transaction) and
consumption continues. A batch is applied in one transaction; if it fails, it is applied again event
by event, each in a savepoint, so that only the bad events are dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from ti_shared.bus import BusUnavailable, IncomingMessage, Source, TopicPartition
from ti_shared.db import Database, applied_version, consumer_offset, dialect_of, in_values, lookup_chunks, upsert
from ti_shared.events import EVENT_TOPICS, TOPIC_DEAD_LETTERS, CloudEvent
from ti_shared.logging import get_logger
from ti_shared.metrics import CONSUMER_LAG, DEAD_LETTERS, EVENT_AGE, EVENTS_APPLIED, EVENTS_SKIPPED
from ti_shared.outbox import add_to_outbox
from ti_shared.problems import is_database_unavailable

log = get_logger(__name__)

_STORE_APPLIED_PG = sa.text(
    "INSERT INTO applied_version (consumer, topic, subject, version) "
    "SELECT :consumer, t, s, v FROM unnest(CAST(:topics AS text[]), CAST(:subjects AS text[]), "
    "CAST(:versions AS bigint[])) AS u(t, s, v) "
    "ON CONFLICT (consumer, topic, subject) DO UPDATE SET version = excluded.version"
)


@dataclass(frozen=True)
class Delivery:
    """An event accepted for application: newer than anything applied for its subject."""

    message: IncomingMessage
    event: CloudEvent


class EventHandler(ABC):
    """What a consumer applies events with (subclass it). ``apply`` receives deliveries in log order.

    One batch is one transaction: ``apply`` (once, or once per event in savepoints when the batch is
    retried event by event), then ``finish``, then the commit, then ``committed``. The two hooks do
    nothing unless a handler overrides them.
    """

    topics: Sequence[str]

    @abstractmethod
    def accepts(self, event_type: str) -> bool: ...

    @abstractmethod
    async def apply(self, session: AsyncSession, deliveries: list[Delivery]) -> None: ...

    @abstractmethod
    async def is_empty(self, session: AsyncSession) -> bool:
        """True when the handler's state is empty (then the consumer replays from the start)."""

    async def finish(self, session: AsyncSession) -> None:  # noqa: B027 - a hook, empty by default
        """Awaited once per batch transaction, after every ``apply`` and before the commit (e.g. to
        recompute aggregates over what the batch changed)."""

    def committed(self) -> None:  # noqa: B027 - a hook, empty by default
        """Called once the batch's transaction has committed (e.g. to drop a read cache)."""


class EventRejected(Exception):
    """Raised by a handler for an event that can never be applied (it is dead-lettered)."""


CrashHook = Callable[[], Awaitable[None]]


class EventConsumer:
    def __init__(
        self,
        *,
        name: str,
        service: str,
        db: Database,
        source: Source,
        handler: EventHandler,
        batch_size: int = 2000,
        poll_s: float = 0.5,
        rebuild_when_empty: bool = False,
        outbox_committed: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.service = service
        self._db = db
        self._source = source
        self._handler = handler
        self._batch_size = batch_size
        self._poll_s = poll_s
        self._rebuild_when_empty = rebuild_when_empty
        #: wakes the outbox relay after a commit that dead-lettered events
        self._outbox_committed = outbox_committed
        self._positions: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._start_lock = asyncio.Lock()
        self._in_flight = 0
        self._last_lag = 0
        self.bus_ok = False
        self.last_error: str | None = None
        self.applied_count = 0
        self.skipped_count = 0
        self.dead_letter_count = 0
        #: test hook: awaited after applying a batch and before its commit (simulate a crash there)
        self.before_commit: CrashHook | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.service}-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._source.stop()
        self._started = False

    async def _load_positions(self) -> dict[TopicPartition, int]:
        async with self._db.session() as session:
            if self._rebuild_when_empty and await self._handler.is_empty(session):
                had = await session.execute(
                    sa.select(sa.func.count()).select_from(consumer_offset).where(consumer_offset.c.consumer == self.name)
                )
                if had.scalar_one():
                    log.info("consumer state is empty: replaying from the start", consumer=self.name)
                    await session.execute(consumer_offset.delete().where(consumer_offset.c.consumer == self.name))
                    await session.execute(applied_version.delete().where(applied_version.c.consumer == self.name))
                    await session.commit()
                    return {}
            rows = await session.execute(
                sa.select(consumer_offset.c.topic, consumer_offset.c.partition, consumer_offset.c.next_offset).where(
                    consumer_offset.c.consumer == self.name
                )
            )
            return {(r.topic, r.partition): r.next_offset for r in rows}

    async def ensure_started(self) -> None:
        async with self._start_lock:  # /readyz (lag) and the run loop may both get here first
            if not self._started:
                self._positions = await self._load_positions()
                await self._source.start(self._handler.topics, dict(self._positions))
                self._started = True

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                await self.ensure_started()
                await self.run_once(self._poll_s)
                self.bus_ok, self.last_error, backoff = True, None, 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a consumer never dies: it retries
                self.bus_ok = not isinstance(exc, BusUnavailable)
                self.last_error = repr(exc)
                log.warning("consumer: batch failed, retrying", consumer=self.name, error=repr(exc), retry_in_s=backoff)
                self._in_flight = 0
                with contextlib.suppress(Exception):
                    if self._started:
                        await self._source.seek(dict(self._positions))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    # -- one batch ---------------------------------------------------------------------------

    async def run_once(self, timeout_s: float = 0.5) -> int:
        """Fetch and apply one batch; returns the number of messages consumed."""
        await self.ensure_started()
        messages = await self._source.fetch(self._batch_size, timeout_s)
        if not messages:
            return 0
        self._in_flight = len(messages)
        try:
            try:
                async with self._db.session() as session:
                    await self._apply_batch(session, messages, isolate=False)
            except EventRejected:
                async with self._db.session() as session:
                    await self._apply_batch(session, messages, isolate=True)
            except Exception as exc:
                if _is_infrastructure_error(exc):
                    raise
                log.warning("consumer: batch failed, applying event by event", consumer=self.name, error=repr(exc))
                async with self._db.session() as session:
                    await self._apply_batch(session, messages, isolate=True)
        finally:
            self._in_flight = 0
        return len(messages)

    async def _apply_batch(self, session: AsyncSession, messages: list[IncomingMessage], *, isolate: bool) -> None:
        positions = dict(self._positions)
        dead: list[tuple[IncomingMessage, str]] = []
        candidates: list[Delivery] = []
        for msg in messages:
            tp = (msg.topic, msg.partition)
            if msg.offset < positions.get(tp, 0):
                continue  # already applied (redelivery)
            positions[tp] = msg.offset + 1
            try:
                event = CloudEvent.model_validate_json(msg.value)
            except ValidationError as exc:
                dead.append((msg, "unparseable: " + _short(exc)))
                continue
            expected_topic = EVENT_TOPICS.get(event.type)
            if not self._handler.accepts(event.type) or expected_topic not in (None, msg.topic):
                dead.append((msg, f"unknown event type '{event.type}' on topic '{msg.topic}'"))
                continue
            candidates.append(Delivery(msg, event))

        applied = await self._load_applied(session, candidates)
        changed: dict[tuple[str, str], int] = {}
        applied_n = skipped_n = 0
        applied_times: list[datetime] = []
        if not isolate:
            fresh: list[Delivery] = []
            for d in candidates:
                key = (d.message.topic, d.event.subject)
                if d.event.entityversion <= applied.get(key, 0):
                    skipped_n += 1
                    continue
                applied[key] = changed[key] = d.event.entityversion
                fresh.append(d)
            if fresh:
                await self._handler.apply(session, fresh)
            applied_n = len(fresh)
            applied_times = [d.event.time for d in fresh]
        else:
            for d in candidates:
                key = (d.message.topic, d.event.subject)
                if d.event.entityversion <= applied.get(key, 0):
                    skipped_n += 1
                    continue
                try:
                    async with session.begin_nested():
                        await self._handler.apply(session, [d])
                except Exception as exc:
                    if _is_infrastructure_error(exc):
                        raise
                    dead.append((d.message, "could not be applied: " + _short(exc)))
                    continue
                applied[key] = changed[key] = d.event.entityversion
                applied_n += 1
                applied_times.append(d.event.time)

        await self._handler.finish(session)
        await self._store_applied(session, changed)
        for msg, reason in dead:
            await self._dead_letter(session, msg, reason)
        await self._store_positions(session, positions)
        if self.before_commit is not None:
            await self.before_commit()
        await session.commit()
        if dead and self._outbox_committed is not None:
            self._outbox_committed()
        self._handler.committed()
        self._positions = positions
        self.applied_count += applied_n
        self.skipped_count += skipped_n
        self.dead_letter_count += len(dead)
        EVENTS_APPLIED.labels(service=self.service, consumer=self.name).inc(applied_n)
        EVENTS_SKIPPED.labels(service=self.service, consumer=self.name).inc(skipped_n)
        if applied_times:
            now = datetime.now(UTC)
            age = EVENT_AGE.labels(service=self.service, consumer=self.name)
            for at in applied_times:
                age.observe(max(0.0, (now - at).total_seconds()))
        if dead:
            DEAD_LETTERS.labels(service=self.service, consumer=self.name).inc(len(dead))
            for msg, reason in dead:
                log.warning("dead-lettered", consumer=self.name, topic=msg.topic, offset=msg.offset, reason=reason)

    async def _load_applied(self, session: AsyncSession, deliveries: list[Delivery]) -> dict[tuple[str, str], int]:
        by_topic: dict[str, set[str]] = {}
        for d in deliveries:
            by_topic.setdefault(d.message.topic, set()).add(d.event.subject)
        dialect = dialect_of(session)
        out: dict[tuple[str, str], int] = {}
        for topic, subjects in by_topic.items():
            for chunk in lookup_chunks(sorted(subjects), dialect, size=500):
                rows = await session.execute(
                    sa.select(applied_version.c.subject, applied_version.c.version).where(
                        applied_version.c.consumer == self.name,
                        applied_version.c.topic == topic,
                        in_values(applied_version.c.subject, chunk, dialect),
                    )
                )
                for subject, version in rows:
                    out[(topic, subject)] = int(version)
        return out

    async def _store_applied(self, session: AsyncSession, changed: dict[tuple[str, str], int]) -> None:
        if not changed:
            return
        keys = sorted(changed)
        if dialect_of(session) == "postgresql":  # one statement with three array parameters
            for i in range(0, len(keys), 50_000):
                chunk = keys[i : i + 50_000]
                await session.execute(
                    _STORE_APPLIED_PG,
                    {"consumer": self.name, "topics": [t for t, _ in chunk], "subjects": [s for _, s in chunk],
                     "versions": [changed[k] for k in chunk]},
                )
            return
        ins = upsert(dialect_of(session), applied_version)
        rows = [{"consumer": self.name, "topic": t, "subject": s, "version": changed[(t, s)]} for t, s in keys]
        stmt = ins.on_conflict_do_update(
            index_elements=["consumer", "topic", "subject"], set_={"version": ins.excluded.version}
        )
        for i in range(0, len(rows), 1000):
            await session.execute(stmt, rows[i : i + 1000])

    async def _store_positions(self, session: AsyncSession, positions: dict[TopicPartition, int]) -> None:
        changed = [(tp, off) for tp, off in positions.items() if self._positions.get(tp) != off]
        if not changed:
            return
        ins = upsert(dialect_of(session), consumer_offset)
        stmt = ins.on_conflict_do_update(
            index_elements=["consumer", "topic", "partition"], set_={"next_offset": ins.excluded.next_offset}
        )
        await session.execute(
            stmt,
            [{"consumer": self.name, "topic": t, "partition": p, "next_offset": off} for (t, p), off in changed],
        )

    async def _dead_letter(self, session: AsyncSession, msg: IncomingMessage, reason: str) -> None:
        body = {
            "consumer": self.name,
            "service": self.service,
            "topic": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "key": msg.key,
            "reason": reason,
            "value": msg.value.decode("utf-8", errors="replace"),
            "recorded_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        await add_to_outbox(
            session,
            topic=TOPIC_DEAD_LETTERS,
            key=msg.key or f"{msg.topic}/{msg.partition}/{msg.offset}",
            event_id=str(uuid.uuid4()),
            event_type="dead-letter",
            payload=json.dumps(body, ensure_ascii=False).encode(),
        )

    # -- observation -------------------------------------------------------------------------

    async def lag(self) -> int:
        """Published events not yet applied (fetched-but-uncommitted ones included)."""
        try:
            await self.ensure_started()
            self._last_lag = await self._source.lag() + self._in_flight
        except Exception as exc:  # noqa: BLE001 - report the last known lag
            self.last_error = repr(exc)
        CONSUMER_LAG.labels(service=self.service, consumer=self.name).set(self._last_lag)
        return self._last_lag

    @property
    def positions(self) -> dict[TopicPartition, int]:
        return dict(self._positions)


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return text[:500]


def _is_infrastructure_error(exc: BaseException) -> bool:
    """Retry the batch later (never dead-letter) when the database or the bus is unavailable.

    SQLite's "database is locked" is an OperationalError too: retried as well."""
    return isinstance(exc, (OSError, BusUnavailable)) or is_database_unavailable(exc)
