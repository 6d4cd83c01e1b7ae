"""The consumer base: apply events, record applied versions and offsets, all in ONE transaction.

On start it seeks to the offsets stored in its own database. Duplicates and stale versions (an
``entityversion`` not newer than the one applied for its subject) change nothing. A message that cannot
be parsed or applied goes to ``ti.dead-letters`` (through the outbox, in the same transaction) and
consumption continues. A batch is applied in one transaction; if it fails, it is applied again event
by event, each in a savepoint, so that only the bad events are dead-lettered.

A small batch (live mode) of a handler that can (``EventHandler.one_statement``) is written in ONE
statement on PostgreSQL: the handler's writes, the applied versions, the dead letters and the offsets
are the data-modifying CTEs of one statement sent on the driver outside any transaction — atomic as a
transaction is, in one round trip instead of ``BEGIN``, the statements and ``COMMIT``. What the handler
reads meanwhile (through the session or on its driver) is read outside any transaction too, the
connection in autocommit for the batch: each read sees what has committed (the consumer is the only
writer of its rows), with no ``BEGIN`` before it nor ``COMMIT`` after the statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from abc import ABC, abstractmethod
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ti_shared.bus import BusUnavailable, IncomingMessage, Source, TopicPartition
from ti_shared.db import Database, applied_version, consumer_offset, dialect_of, in_values, lookup_chunks, upsert
from ti_shared.events import EVENT_TOPICS, TOPIC_DEAD_LETTERS, Envelope, decode_envelope
from ti_shared.logging import get_logger
from ti_shared.metrics import (
    CONSUMER_BATCHES,
    CONSUMER_LAG,
    DEAD_LETTERS,
    EVENT_AGE,
    EVENTS_APPLIED,
    EVENTS_FETCHED,
    EVENTS_SKIPPED,
    FIRST_FETCH,
    LAST_COMMIT,
    observe_many,
)
from ti_shared.outbox import add_to_outbox
from ti_shared.problems import is_database_unavailable
from ti_shared.statements import TiSession, _shift, driver_of

log = get_logger(__name__)

#: PostgreSQL's statements of the consumer, sent as they are on the driver (prepared once per connection,
#: no SQLAlchemy compilation per batch). The applied versions are looked up by a join on the keys, so
#: that the plan cached for the prepared statement probes the primary key per subject whatever the
#: table's statistics (``subject = ANY($3)`` next to ``consumer = $1 AND topic = $2`` got a generic
#: plan filtering every row of the topic against the whole array)
_LOAD_APPLIED_PG = (
    "SELECT a.subject, a.version FROM unnest($3::text[]) AS k(subject) "
    "JOIN applied_version a ON a.consumer = $1 AND a.topic = $2 AND a.subject = k.subject"
)
_STORE_POSITIONS_PG = (
    "INSERT INTO consumer_offset (consumer, topic, partition, next_offset) "
    "SELECT $1, t, p, o FROM unnest($2::text[], $3::integer[], $4::bigint[]) AS u(t, p, o) "
    "ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = excluded.next_offset"
)
_STORE_APPLIED_PG = (
    "INSERT INTO applied_version (consumer, topic, subject, version) "
    "SELECT $1, t, s, v FROM unnest($2::text[], $3::text[], $4::bigint[]) AS u(t, s, v) "
    "ON CONFLICT (consumer, topic, subject) DO UPDATE SET version = excluded.version"
)


#: the same, as parts of one statement (``OneStatement``), written only when its guard holds
_POSITIONS_PART = (
    "INSERT INTO consumer_offset (consumer, topic, partition, next_offset) "
    "SELECT $1::text, t, p, o FROM unnest($2::text[], $3::integer[], $4::bigint[]) AS u(t, p, o) WHERE {where} "
    "ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = excluded.next_offset"
)
_APPLIED_PART = (
    "INSERT INTO applied_version (consumer, topic, subject, version) "
    "SELECT $1::text, t, s, v FROM unnest($2::text[], $3::text[], $4::bigint[]) AS u(t, s, v) WHERE {where} "
    "ON CONFLICT (consumer, topic, subject) DO UPDATE SET version = excluded.version"
)
_DEAD_LETTERS_PART = (
    "INSERT INTO outbox_message (topic, message_key, event_id, event_type, payload, created_at) "
    "SELECT t, k, i, 'dead-letter', p, $5::timestamptz "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS u(t, k, i, p, n) WHERE {where} ORDER BY n"
)
#: a small batch goes in one statement up to this many messages (beyond, the transaction per batch)
ONE_STATEMENT_AT_MOST = 500
#: the parts' texts renumbered, by (text, offset): the same few parts at the same few offsets, batch after batch
_SHIFTED: dict[tuple[str, int], str] = {}
_SHIFTED_AT_MOST = 1_024


def _shifted(text: str, offset: int) -> str:
    """``text`` with its placeholders ``$n`` renumbered ``$(n + offset)`` (renumbered once per text and offset)."""
    key = (text, offset)
    found = _SHIFTED.get(key)
    if found is None:
        if len(_SHIFTED) >= _SHIFTED_AT_MOST:
            _SHIFTED.clear()
        found = _SHIFTED[key] = _shift(text, offset)
    return found


class NotInOneStatement(Exception):
    """Raised by a handler's ``apply_in_statement`` for a batch it cannot write in one statement (it is
    then applied by ``apply`` and ``finish`` in a transaction)."""


class OneStatement:
    """The writes of a small batch as the data-modifying parts of one PostgreSQL statement.

    Each part is a data-modifying statement (``INSERT … SELECT``, ``DELETE … USING``; no ``RETURNING``)
    whose parameters are numbered from ``$1`` among those given with it; the parts run on one snapshot
    and must not touch the same rows. A guard (``guard``), set before any part, is a condition the
    statement evaluates once: every part must include ``where`` in its condition, so that nothing at all
    is written when the guard does not hold — the consumer then raises what ``refused`` returns."""

    def __init__(self) -> None:
        self.args: list[Any] = []
        self.parts: list[str] = []
        self._guard: str | None = None
        self.refused: Callable[[], Exception] = lambda: RuntimeError("the statement's guard did not hold")

    def guard(self, condition: str, args: Sequence[Any], refused: Callable[[], Exception]) -> None:
        if self.parts:
            raise RuntimeError("the guard goes before the parts")
        self._guard = _shifted(condition, len(self.args))
        self.args += args
        self.refused = refused

    @property
    def where(self) -> str:
        """The condition to include in every part's ``WHERE``."""
        return "(SELECT ok FROM ti_guard)" if self._guard is not None else "TRUE"

    def add(self, parts: Sequence[str], args: Sequence[Any]) -> None:
        """Parts sharing one numbering of their parameters, ``args``."""
        offset = len(self.args)
        self.parts += [_shifted(part, offset) for part in parts]
        self.args += args

    def sql(self) -> str | None:
        """The statement (it returns whether the guard held), or None when there is nothing to write."""
        if not self.parts:
            return None
        ctes = [f"ti_guard AS (SELECT ({self._guard}) AS ok)"] if self._guard is not None else []
        ctes += [f"w{i} AS ({part})" for i, part in enumerate(self.parts)]
        return f"WITH {', '.join(ctes)} SELECT {self.where}"


async def _on_driver(session: AsyncSession, sql: str, *args: object) -> list[Any]:
    """Run one of the statements above on the session's asyncpg connection, in its transaction; a lost
    connection is raised as ``ConnectionError`` (the batch is retried, never dead-lettered)."""
    import asyncpg

    driver = await driver_of(session)
    try:
        return list(await driver.fetch(sql, *args))
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
        raise ConnectionError(f"the database connection failed: {exc!r}") from exc


async def _fetch_outside(driver: Any, sql: str, *args: object) -> list[Any]:
    """A read on a driver connection outside any transaction (what has committed)."""
    import asyncpg

    try:
        return list(await driver.fetch(sql, *args))
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
        raise ConnectionError(f"the database connection failed: {exc!r}") from exc


async def _send(driver: Any, sql: str, args: list[Any]) -> bool:
    """The statement of a small batch (see ``OneStatement``): whether its guard held. An integrity
    violation is raised as SQLAlchemy's ``IntegrityError``, a lost connection as ``ConnectionError``."""
    import asyncpg

    try:
        return bool(await driver.fetchval(sql, *args))
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise sa.exc.IntegrityError(sql[:200], None, exc) from exc
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
        raise ConnectionError(f"the database connection failed: {exc!r}") from exc


class Delivery(NamedTuple):
    """An event accepted for application: newer than anything applied for its subject."""

    message: IncomingMessage
    event: Envelope


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

    #: a small batch is written in one statement (``apply_in_statement``) on PostgreSQL
    one_statement: bool = False

    async def apply_in_statement(self, session: AsyncSession, deliveries: list[Delivery], statement: OneStatement) -> None:
        """When ``one_statement``: what ``apply`` then ``finish`` do for a small batch, its writes added to
        ``statement`` instead of made (the consumer adds its own and sends it). The session is for reads;
        they see what has committed. A batch it cannot write so: raise ``NotInOneStatement`` before
        anything is added (then ``apply`` and ``finish`` in a transaction, as a batch that did not commit
        would be applied again: what the handler changed in memory is undone when it sees another session)."""
        raise NotInOneStatement

    async def applied_versions(
        self, session: AsyncSession, keys: Collection[tuple[str, str]]
    ) -> Mapping[tuple[str, str], int] | None:
        """The version applied so far of each ``(topic, subject)`` of a batch, for a handler whose own
        rows tell it (e.g. the version of its state row), in the batch's transaction: the consumer
        then neither reads nor writes ``applied_version``. None (the default): the consumer keeps them."""
        return None


class EventRejected(Exception):
    """Raised by a handler for an event that can never be applied (it is dead-lettered)."""


CrashHook = Callable[[], Awaitable[None]]


@dataclass
class _Batch:
    """What one transaction of a consumer has applied so far (a batch, or a catch-up window)."""

    positions: dict[TopicPartition, int]
    #: the versions read from ``applied_version`` and those applied since (not kept when the handler
    #: keeps them: it is asked for each fetch, and a catch-up window holds no copy of its memory)
    applied: dict[tuple[str, str], int] = field(default_factory=dict)
    #: what to write to ``applied_version`` at the commit (nothing when the handler keeps them)
    changed: dict[tuple[str, str], int] = field(default_factory=dict)
    dead: list[tuple[IncomingMessage, str]] = field(default_factory=list)
    #: the event time (POSIX seconds) of each applied event, for the age histogram at the commit
    applied_times: array[float] = field(default_factory=lambda: array("d"))
    skipped: int = 0
    messages: int = 0
    #: the handler keeps the applied versions (None: not asked yet)
    handler_versions: bool | None = None


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
        window_events: int = 0,
        window_s: float = 30.0,
    ) -> None:
        self.name = name
        self.service = service
        #: its metrics' children, looked up once
        labels = {"service": service, "consumer": name}
        self._fetched_metric = EVENTS_FETCHED.labels(**labels)
        self._applied_metric = EVENTS_APPLIED.labels(**labels)
        self._skipped_metric = EVENTS_SKIPPED.labels(**labels)
        self._batches_metric = CONSUMER_BATCHES.labels(**labels)
        self._commit_metric = LAST_COMMIT.labels(**labels)
        self._age_metric = EVENT_AGE.labels(**labels)
        self._db = db
        self._source = source
        #: a source read for several consumers decodes each envelope once for all (``ti_shared.shared_source``)
        self._decode: Callable[[IncomingMessage], Envelope] = getattr(source, "decode", None) or _decode_value
        self._handler = handler
        self._batch_size = batch_size
        self._poll_s = poll_s
        self._rebuild_when_empty = rebuild_when_empty
        #: wakes the outbox relay after a commit that dead-lettered events
        self._outbox_committed = outbox_committed
        self._window_events = window_events
        self._window_s = window_s
        #: events still to apply batch by batch after a window failed (then event by event if need be)
        self._unwindowed = 0
        self._positions: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._start_lock = asyncio.Lock()
        self._in_flight = 0
        self._last_lag = 0
        self._connection: AsyncConnection | None = None
        self.bus_ok = False
        self.last_error: str | None = None
        self.applied_count = 0
        self.skipped_count = 0
        self.dead_letter_count = 0
        #: messages fetched so far (committed or not: the progress of a catch-up)
        self.fetched_count = 0
        #: test hook: awaited after applying a batch and before its commit (simulate a crash there)
        self.before_commit: CrashHook | None = None

    @property
    def handler(self) -> EventHandler:
        return self._handler

    @property
    def in_flight(self) -> int:
        """Messages fetched and not committed yet."""
        return self._in_flight

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
        await self._release_connection()
        self._started = False

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        """A session on the consumer's own connection, kept from one batch to the next (no pool
        checkout, ping and reset per batch); after any failure the next batch takes a new one."""
        if self._connection is None:
            self._connection = await self._db.engine.connect()
        try:
            # TiSession, as every session of the Database: the writes Sql.defer queued (dead letters through
            # the outbox) are sent at the commit, never left behind
            async with AsyncSession(
                bind=self._connection, expire_on_commit=False, autoflush=False, sync_session_class=TiSession
            ) as session:
                yield session
        except BaseException:
            await self._release_connection()
            raise

    async def _release_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # a broken connection is discarded by the pool
                await connection.close()

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
        """Fetch and apply one batch (or, while catching up, a window of batches); returns the number
        of messages consumed."""
        await self.ensure_started()
        messages = await self._fetch(timeout_s)
        if not messages:
            return 0
        try:
            if self._window_events and len(messages) >= self._batch_size and self._unwindowed <= 0:
                return await self._apply_window(messages, timeout_s)
            self._unwindowed -= len(messages)
            try:
                if not await self._apply_in_one_statement(messages):
                    async with self._session() as session:
                        await self._apply_batch(session, messages, isolate=False)
            except EventRejected:
                async with self._session() as session:
                    await self._apply_batch(session, messages, isolate=True)
            except Exception as exc:
                if _is_infrastructure_error(exc):
                    raise
                log.warning("consumer: batch failed, applying event by event", consumer=self.name, error=repr(exc))
                async with self._session() as session:
                    await self._apply_batch(session, messages, isolate=True)
        finally:
            self._in_flight = 0
        return len(messages)

    async def _fetch(self, timeout_s: float) -> list[IncomingMessage]:
        messages = await self._source.fetch(self._batch_size, timeout_s)
        if messages:
            if not self.fetched_count:
                FIRST_FETCH.labels(service=self.service, consumer=self.name).set_to_current_time()
            self._in_flight += len(messages)
            self.fetched_count += len(messages)
            self._fetched_metric.inc(len(messages))
        return messages

    async def _apply_window(self, messages: list[IncomingMessage], timeout_s: float) -> int:
        """Catching up: full batches keep being fetched and applied in the same transaction, up to
        ``window_events`` events or ``window_s`` seconds, then committed at once (the handler's
        ``finish`` runs once per window). If an event of the window cannot be applied, the window is
        rolled back and its events are applied again batch by batch (and event by event if need be)."""
        batch = _Batch(dict(self._positions))
        started = time.monotonic()
        async with self._session() as session:
            try:
                await self._add(session, batch, messages, isolate=False)
                while (
                    len(messages) >= self._batch_size and batch.messages < self._window_events
                    and time.monotonic() - started < self._window_s
                ):
                    messages = await self._fetch(timeout_s)
                    if messages:
                        await self._add(session, batch, messages, isolate=False)
            except Exception as exc:
                if _is_infrastructure_error(exc):
                    raise
                log.warning("consumer: window failed, applying it batch by batch", consumer=self.name, error=repr(exc))
                await session.rollback()
                self._unwindowed = batch.messages + len(messages)
                self._in_flight = 0
                await self._source.seek(dict(self._positions))
                return 0
            await self._commit(session, batch)
        return batch.messages

    async def _apply_batch(self, session: AsyncSession, messages: list[IncomingMessage], *, isolate: bool) -> None:
        batch = _Batch(dict(self._positions))
        await self._add(session, batch, messages, isolate=isolate)
        await self._commit(session, batch)

    def _candidates(self, batch: _Batch, messages: list[IncomingMessage]) -> list[Delivery]:
        """The messages not applied yet, decoded (those that cannot be are added to the dead letters)."""
        positions, dead = batch.positions, batch.dead
        candidates: list[Delivery] = []
        for msg in messages:
            tp = (msg.topic, msg.partition)
            if msg.offset < positions.get(tp, 0):
                continue  # already applied (redelivery)
            positions[tp] = msg.offset + 1
            try:
                event = self._decode(msg)
            except ValidationError as exc:
                dead.append((msg, "unparseable: " + _short(exc)))
                continue
            expected_topic = EVENT_TOPICS.get(event.type)
            if not self._handler.accepts(event.type) or expected_topic not in (None, msg.topic):
                dead.append((msg, f"unknown event type '{event.type}' on topic '{msg.topic}'"))
                continue
            candidates.append(Delivery(msg, event))
        batch.messages += len(messages)
        return candidates

    @staticmethod
    def _fresh(batch: _Batch, candidates: list[Delivery], applied: dict[tuple[str, str], int]) -> list[Delivery]:
        """The candidates newer than what was applied for their subject (counted as applied)."""
        changed = None if batch.handler_versions else batch.changed
        fresh: list[Delivery] = []
        for d in candidates:
            key = (d.message.topic, d.event.subject)
            if d.event.entityversion <= applied.get(key, 0):
                batch.skipped += 1
                continue
            applied[key] = d.event.entityversion
            if changed is not None:
                changed[key] = d.event.entityversion
            fresh.append(d)
        batch.applied_times.extend([d.event.time.timestamp() for d in fresh])
        return fresh

    async def _add(self, session: AsyncSession, batch: _Batch, messages: list[IncomingMessage], *, isolate: bool) -> None:
        """Apply fetched messages in the batch's transaction (not committed)."""
        candidates = self._candidates(batch, messages)
        applied = await self._load_applied(session, candidates, batch)
        if not isolate:
            fresh = self._fresh(batch, candidates, applied)
            if fresh:
                await self._handler.apply(session, fresh)
        else:
            changed = None if batch.handler_versions else batch.changed
            for d in candidates:
                key = (d.message.topic, d.event.subject)
                if d.event.entityversion <= applied.get(key, 0):
                    batch.skipped += 1
                    continue
                try:
                    async with session.begin_nested():
                        await self._handler.apply(session, [d])
                except Exception as exc:
                    if _is_infrastructure_error(exc):
                        raise
                    batch.dead.append((d.message, "could not be applied: " + _short(exc)))
                    continue
                applied[key] = d.event.entityversion
                if changed is not None:
                    changed[key] = d.event.entityversion
                batch.applied_times.append(d.event.time.timestamp())

    # -- a small batch in one statement --------------------------------------------------------

    async def _apply_in_one_statement(self, messages: list[IncomingMessage]) -> bool:
        """Apply a small batch in one statement (see the module's docstring); False when it is not one
        for that (the handler does not write so, too many messages, SQLite, or the handler declined)."""
        if (
            not self._handler.one_statement or len(messages) > ONE_STATEMENT_AT_MOST
            or self._db.engine.dialect.name != "postgresql"
        ):
            return False
        async with self._session() as session:
            assert self._connection is not None
            raw = await self._connection.get_raw_connection()
            adapter: Any = raw.dbapi_connection
            driver: Any = raw.driver_connection
            adapter.autocommit = True  # the handler's reads outside any transaction: no BEGIN, nor COMMIT after
            try:
                batch = _Batch(dict(self._positions))
                candidates = self._candidates(batch, messages)
                applied = await self._load_applied(session, candidates, batch, outside=driver)
                fresh = self._fresh(batch, candidates, applied)
                statement = OneStatement()
                if fresh:
                    try:
                        await self._handler.apply_in_statement(session, fresh, statement)
                    except NotInOneStatement:
                        return False
                where = statement.where
                if not batch.handler_versions and batch.changed:
                    keys = sorted(batch.changed)
                    statement.add(
                        [_APPLIED_PART.format(where=where)],
                        [self.name, [t for t, _ in keys], [s for _, s in keys], [batch.changed[k] for k in keys]],
                    )
                if batch.dead:
                    letters = [self._dead_letter_row(msg, reason) for msg, reason in batch.dead]
                    statement.add(
                        [_DEAD_LETTERS_PART.format(where=where)],
                        [*(list(column) for column in zip(*letters, strict=True)), datetime.now(UTC)],
                    )
                changed = [(tp, off) for tp, off in batch.positions.items() if self._positions.get(tp) != off]
                if changed:
                    statement.add(
                        [_POSITIONS_PART.format(where=where)],
                        [self.name, [t for (t, _), _ in changed], [p for (_, p), _ in changed], [off for _, off in changed]],
                    )
                if self.before_commit is not None:
                    await self.before_commit()
                sql = statement.sql()
                if sql is not None:
                    began = adapter._transaction is not None  # something was read through the session
                    held = await _send(driver, sql, statement.args)
                    if began:
                        await session.commit()
                    if not held:
                        raise statement.refused()
            finally:
                adapter.autocommit = False
        self._committed(batch)
        return True

    async def _commit(self, session: AsyncSession, batch: _Batch) -> None:
        positions, dead = batch.positions, batch.dead
        await self._handler.finish(session)
        if not batch.handler_versions:
            await self._store_applied(session, batch.changed)
        for msg, reason in dead:
            await self._dead_letter(session, msg, reason)
        await self._store_positions(session, positions)
        if self.before_commit is not None:
            await self.before_commit()
        await session.commit()
        self._committed(batch)

    def _committed(self, batch: _Batch) -> None:
        """What follows a batch's commit: the handler's hook, the positions, the counts and metrics."""
        dead = batch.dead
        if dead and self._outbox_committed is not None:
            self._outbox_committed()
        self._handler.committed()
        self._positions = batch.positions
        applied_n, skipped_n = len(batch.applied_times), batch.skipped
        self.applied_count += applied_n
        self.skipped_count += skipped_n
        self.dead_letter_count += len(dead)
        self._applied_metric.inc(applied_n)
        self._skipped_metric.inc(skipped_n)
        self._batches_metric.inc()
        self._commit_metric.set_to_current_time()
        if batch.applied_times:
            now = time.time()
            observe_many(self._age_metric, [max(0.0, now - at) for at in batch.applied_times])
        if dead:
            DEAD_LETTERS.labels(service=self.service, consumer=self.name).inc(len(dead))
            for msg, reason in dead:
                log.warning("dead-lettered", consumer=self.name, topic=msg.topic, offset=msg.offset, reason=reason)

    async def _load_applied(
        self, session: AsyncSession, deliveries: list[Delivery], batch: _Batch, *, outside: Any = None
    ) -> dict[tuple[str, str], int]:
        """The applied version of the deliveries' subjects: the handler's when it keeps them (asked for
        every fetch), else from ``applied_version`` (read once per transaction into ``batch.applied``;
        with ``outside``, a driver connection, read on it outside any transaction)."""
        if batch.handler_versions is not False:
            versions = await self._handler.applied_versions(session, {(d.message.topic, d.event.subject) for d in deliveries})
            if versions is not None:
                batch.handler_versions = True
                return dict(versions)
            batch.handler_versions = False
        keys = {(d.message.topic, d.event.subject) for d in deliveries} - batch.applied.keys()
        by_topic: dict[str, list[str]] = {}
        for topic, subject in sorted(keys):
            by_topic.setdefault(topic, []).append(subject)
        dialect = dialect_of(session)
        for topic, subjects in by_topic.items():
            for chunk in lookup_chunks(subjects, dialect, size=500):
                rows: Iterable[Sequence[Any]]
                if outside is not None:
                    rows = await _fetch_outside(outside, _LOAD_APPLIED_PG, self.name, topic, chunk)
                elif dialect == "postgresql":
                    rows = await _on_driver(session, _LOAD_APPLIED_PG, self.name, topic, chunk)
                else:
                    rows = await session.execute(
                        sa.select(applied_version.c.subject, applied_version.c.version).where(
                            applied_version.c.consumer == self.name,
                            applied_version.c.topic == topic,
                            in_values(applied_version.c.subject, chunk, dialect),
                        )
                    )
                for subject, version in rows:
                    batch.applied[(topic, subject)] = int(version)
        return batch.applied

    async def _store_applied(self, session: AsyncSession, changed: dict[tuple[str, str], int]) -> None:
        if not changed:
            return
        keys = sorted(changed)
        if dialect_of(session) == "postgresql":  # one statement with three array parameters
            for i in range(0, len(keys), 50_000):
                chunk = keys[i : i + 50_000]
                await _on_driver(
                    session, _STORE_APPLIED_PG, self.name, [t for t, _ in chunk], [s for _, s in chunk], [changed[k] for k in chunk]
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
        if dialect_of(session) == "postgresql":
            await _on_driver(
                session, _STORE_POSITIONS_PG, self.name, [t for (t, _), _ in changed], [p for (_, p), _ in changed],
                [off for _, off in changed],
            )
            return
        ins = upsert(dialect_of(session), consumer_offset)
        stmt = ins.on_conflict_do_update(
            index_elements=["consumer", "topic", "partition"], set_={"next_offset": ins.excluded.next_offset}
        )
        await session.execute(
            stmt,
            [{"consumer": self.name, "topic": t, "partition": p, "next_offset": off} for (t, p), off in changed],
        )

    def _dead_letter_row(self, msg: IncomingMessage, reason: str) -> tuple[str, str, str, str]:
        """The outbox row of a dead letter: topic, key, event id, payload."""
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
        key = msg.key or f"{msg.topic}/{msg.partition}/{msg.offset}"
        return TOPIC_DEAD_LETTERS, key, str(uuid.uuid4()), json.dumps(body, ensure_ascii=False)

    async def _dead_letter(self, session: AsyncSession, msg: IncomingMessage, reason: str) -> None:
        topic, key, event_id, payload = self._dead_letter_row(msg, reason)
        await add_to_outbox(
            session, topic=topic, key=key, event_id=event_id, event_type="dead-letter", payload=payload.encode()
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


def _decode_value(message: IncomingMessage) -> Envelope:
    return decode_envelope(message.value)


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return text[:500]


def _is_infrastructure_error(exc: BaseException) -> bool:
    """Retry the batch later (never dead-letter) when the database or the bus is unavailable.

    SQLite's "database is locked" is an OperationalError too: retried as well."""
    return isinstance(exc, (OSError, BusUnavailable)) or is_database_unavailable(exc)
