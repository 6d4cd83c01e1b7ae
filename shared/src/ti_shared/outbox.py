"""The transactional outbox: events are rows written in the caller's transaction; a relay publishes them.

A request handler never talks to the bus. It calls :func:`record_event` inside its transaction;
:class:`OutboxRelay` publishes the committed rows in order per entity key and keeps retrying while the
bus is down (decisions 1 and 17).

How the relay knows what it has published, without an UPDATE per row:

- **PostgreSQL**: each row carries the id of the transaction that wrote it (``xact_id``, by default
  ``pg_current_xact_id()``). The relay's mark is a snapshot (``pg_current_snapshot()``): every row whose
  transaction is visible in it has been published. A fetch reads the rows *not* visible in the mark —
  the transactions at or after its ``xmax`` and those it lists as in progress, two index lookups — in id
  order, and the snapshot of that read becomes the new mark. A later change of an entity is made by a
  transaction that locked the entity after the earlier one committed, so it gets a later id and is never
  visible in a snapshot the earlier one is not: the order per key holds across fetches as within one.
  A fetch larger than ``batch_size`` goes on from the last id published, under the same snapshot.
- **SQLite** (the embedded mode): writers commit one at a time, so ids are committed in order and the
  mark is the last id published.

The mark is one row of ``outbox_relay`` per relay, written after each publication (a crash in between
publishes again: at least once). One relay is active per database (a session advisory lock on
PostgreSQL); it sleeps until a commit wakes it — ``LISTEN ti_outbox`` on PostgreSQL, in process when the
relay runs in the service's process — or ``idle_s`` at most; commits that follow one another within
:data:`NOTIFY_INTERVAL_S` share a notification and a cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from ti_shared.bus import BusUnavailable, OutgoingMessage, Publisher
from ti_shared.copytext import bytes_line, copy_text, instant_text
from ti_shared.db import Database, dialect_of, insert_rows, outbox_message, outbox_relay
from ti_shared.events import CONTENT_TYPE, CloudEvent, NewEvent, encode_new_event, new_event_ids
from ti_shared.logging import get_logger
from ti_shared.metrics import EVENTS_PUBLISHED, OUTBOX_PUBLISH_FAILURES
from ti_shared.statements import Sql

log = get_logger(__name__)

#: the PostgreSQL channel a commit that added outbox rows notifies (channels are per database)
OUTBOX_CHANNEL = "ti_outbox"
#: the session advisory lock the active relay of a database holds: ``pg_advisory_lock(k1, k2)``
RELAY_LOCK = (7243, 1)
#: the mark of a relay that has published nothing: no transaction is visible in it
EMPTY_SNAPSHOT = "1:1:"
#: the relay's and the notifier's connections commit without waiting for the WAL to reach the disk: a
#: mark lost in a crash of the server's machine only publishes its rows again (at least once), a lost
#: notification only delays the relay until its ``idle_s``; neither makes the writes' commits wait for
#: one more flush (a ``NOTIFY`` is a transaction of its own, a mark an ``UPDATE``: a flush each)
NOT_DURABLE = {"synchronous_commit": "off"}
#: the least time between two ``NOTIFY`` of a service's commits (:class:`CommitNotifier`) and between the
#: starts of two relay cycles woken by commits: under a steady flow of writes, the events of the commits
#: within it go in one fetch, one publication and one mark (a cycle per event was most of the relay's
#: CPU); the first commit after a quiet spell is published at once
NOTIFY_INTERVAL_S = 0.01
_HEADERS = (("content-type", CONTENT_TYPE.encode()),)


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
    """Add an event to the outbox, in the session's transaction. ``data`` is in JSON form."""
    event_id, payload = encode_new_event(
        source=source, type_=type_, subject=subject, time=time, version=version, actor=actor, data=data
    )
    await add_to_outbox(session, topic=topic, key=subject, event_id=event_id, event_type=type_, payload=payload)
    # the envelope as written (already checked by construction: no second validation)
    return CloudEvent.model_construct(
        id=event_id, source=source, type=type_, subject=subject, time=time.astimezone(UTC),
        entityversion=version, tiactor=actor, data=data,
    )


_ADD = Sql(outbox_message.insert(), column_keys=["topic", "message_key", "event_id", "event_type", "payload", "created_at"])


async def add_to_outbox(
    session: AsyncSession, *, topic: str, key: str, event_id: str, event_type: str, payload: bytes
) -> None:
    """One outbox row in the session's transaction; on PostgreSQL it goes with the transaction's other
    deferred writes (one round trip for the entity, its history and its event)."""
    await _ADD.defer(
        session, expect=1, topic=topic, message_key=key, event_id=event_id, event_type=event_type,
        payload=payload.decode(), created_at=datetime.now(UTC),
    )


async def add_many_to_outbox(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Bulk form of :func:`add_to_outbox` (rows: topic, message_key, event_id, event_type, payload)."""
    if not rows:
        return
    now = datetime.now(UTC)
    await insert_rows(session, outbox_message, [{**r, "created_at": now} for r in rows])


#: the columns :func:`record_events` copies (``id`` and ``xact_id`` take their defaults)
_COPY_COLUMNS = ("topic", "message_key", "event_id", "event_type", "payload", "created_at")


async def record_events(session: AsyncSession, events: Sequence[NewEvent], *, source: str, time: datetime) -> list[str]:
    """Add many events to the outbox in one bulk insert (a text ``COPY`` of one buffer on PostgreSQL, the
    envelopes' bytes as they are), in the session's transaction; an event without its own ``time``
    takes ``time``. An event's ``data`` may be its JSON text already (:class:`NewEvent`). Returns their
    ids, in order (the rows' order: the relay publishes them in it)."""
    if not events:
        return []
    ids = new_event_ids(len(events))
    payloads = [
        encode_new_event(
            source=source, type_=e.type, subject=e.subject, time=e.time or time, version=e.version, actor=e.actor,
            data=e.data, event_id=i,
        )[1]
        for e, i in zip(events, ids, strict=True)
    ]
    if dialect_of(session) != "postgresql":
        await add_many_to_outbox(session, [
            {"topic": e.topic, "message_key": e.subject, "event_id": i, "event_type": e.type, "payload": p.decode()}
            for e, i, p in zip(events, ids, payloads, strict=True)
        ])
        return ids
    created = instant_text(datetime.now(UTC)).encode()
    data = b"".join([
        bytes_line((e.topic.encode(), e.subject.encode(), i.encode(), e.type.encode(), p, created))
        for e, i, p in zip(events, ids, payloads, strict=True)
    ])
    await copy_text(session, outbox_message, _COPY_COLUMNS, data)
    return ids


# --- the mark ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """What a relay has published. PostgreSQL: every row of a transaction visible in ``done``, and of the
    batch under way (``batch``, a snapshot) those up to ``after_id``. SQLite: every row up to ``after_id``."""

    done: str = EMPTY_SNAPSHOT
    batch: str | None = None
    after_id: int = 0


def snapshot_bounds(snapshot: str) -> tuple[int, list[int]]:
    """``xmax`` and the in-progress ids of a ``pg_snapshot`` text (``xmin:xmax:xip,…``): the transactions
    not visible in it are those ≥ ``xmax`` and those listed."""
    _xmin, xmax, xip = snapshot.split(":")
    return int(xmax), [int(x) for x in xip.split(",") if x]


@dataclass(frozen=True)
class OutboxStatus:
    """What ``/readyz`` says of the outbox: rows committed and not yet published, the bus as the relay
    last saw it, and whether a relay is active on the database (PostgreSQL: its lock is held)."""

    pending: int
    bus_ok: bool
    last_error: str | None
    relay_active: bool


_PG_STATUS = sa.text(
    "WITH r AS (SELECT COALESCE(m.done_snapshot, :empty)::pg_snapshot AS done, m.batch_snapshot::pg_snapshot AS batch,"
    " COALESCE(m.after_id, 0) AS after_id, COALESCE(m.bus_ok, true) AS bus_ok, m.last_error"
    " FROM (SELECT 1) AS one LEFT JOIN outbox_relay AS m ON m.relay = :relay)"
    " SELECT (SELECT count(*) FROM outbox_message AS o"
    "  WHERE (o.xact_id >= (SELECT pg_snapshot_xmax(done)::text::bigint FROM r)"
    "   OR o.xact_id = ANY (ARRAY(SELECT x::text::bigint FROM r, pg_snapshot_xip(r.done) AS x)))"
    "  AND NOT COALESCE(o.id <= (SELECT after_id FROM r)"
    "   AND pg_visible_in_snapshot(o.xact_id::text::xid8, (SELECT batch FROM r)), false)) AS pending,"
    " r.bus_ok, r.last_error,"
    " EXISTS (SELECT 1 FROM pg_locks AS l WHERE l.locktype = 'advisory' AND l.classid = :k1 AND l.objid = :k2"
    "  AND l.objsubid = 2 AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
    "  AS active"
    " FROM r"
)


async def outbox_status(session: AsyncSession, relay: str) -> OutboxStatus:
    """The outbox of ``relay``'s database as its relay's mark says (one query)."""
    if dialect_of(session) == "postgresql":
        row = (
            await session.execute(_PG_STATUS, {"relay": relay, "empty": EMPTY_SNAPSHOT, "k1": RELAY_LOCK[0], "k2": RELAY_LOCK[1]})
        ).one()
        return OutboxStatus(int(row.pending), bool(row.bus_ok), row.last_error, bool(row.active))
    mark = (await session.execute(sa.select(outbox_relay).where(outbox_relay.c.relay == relay))).first()
    after = mark.after_id if mark is not None else 0
    pending = (
        await session.execute(sa.select(sa.func.count()).select_from(outbox_message).where(outbox_message.c.id > after))
    ).scalar_one()
    return OutboxStatus(int(pending), bool(mark.bus_ok) if mark is not None else True, mark.last_error if mark else None, False)


async def count_pending(session: AsyncSession, relay: str) -> int:
    """Committed events not yet published by ``relay``."""
    return (await outbox_status(session, relay)).pending


# --- where the relay reads and marks -------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    id: int
    topic: str
    key: str
    payload: str


class _Store:
    """The relay's reads and writes on one database (PostgreSQL or SQLite)."""

    async def open(self) -> bool:
        """Connect; True when this relay is the active one of its database."""
        raise NotImplementedError

    async def load(self) -> Mark:
        raise NotImplementedError

    async def fetch(self, mark: Mark, limit: int) -> tuple[list[Pending], str | None]:
        """The next rows to publish after ``mark`` (at most ``limit``), and the snapshot they were read in."""
        raise NotImplementedError

    async def save(self, mark: Mark, published: int) -> None:
        raise NotImplementedError

    async def save_bus(self, ok: bool, error: str | None) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


_PG_FETCH_NEW = (
    "SELECT id, topic, message_key, payload, pg_current_snapshot()::text AS snap FROM outbox_message"
    " WHERE (xact_id >= $1 OR xact_id = ANY($2::bigint[])) AND id > $3 ORDER BY id LIMIT $4"
)
_PG_FETCH_BATCH = (
    "SELECT id, topic, message_key, payload, NULL::text AS snap FROM outbox_message"
    " WHERE (xact_id >= $1 OR xact_id = ANY($2::bigint[])) AND id > $3"
    " AND pg_visible_in_snapshot(xact_id::text::xid8, $5::text::pg_snapshot) ORDER BY id LIMIT $4"
)
_PG_SAVE = (
    "UPDATE outbox_relay SET done_snapshot = $2, batch_snapshot = $3, after_id = $4, published = published + $5,"
    " bus_ok = true, last_error = NULL, updated_at = now() WHERE relay = $1"
)


def asyncpg_dsn(url: str) -> str:
    """The asyncpg DSN of a SQLAlchemy ``postgresql+asyncpg://`` URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class _PgStore(_Store):
    """On a connection of its own (raw asyncpg): ``LISTEN``, the relay's lock, prepared reads and marks."""

    def __init__(self, url: str, relay: str, wake: Callable[[], None]) -> None:
        self._dsn = asyncpg_dsn(url)
        self._relay = relay
        self._wake = wake
        self._conn: Any = None

    async def open(self) -> bool:
        import asyncpg

        if self._conn is None or self._conn.is_closed():
            self._conn = None
            conn = await asyncpg.connect(self._dsn, command_timeout=60, server_settings=NOT_DURABLE)
            await conn.add_listener(OUTBOX_CHANNEL, lambda *_: self._wake())
            conn.add_termination_listener(lambda *_: self._wake())
            self._conn = conn
        return bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *RELAY_LOCK))

    async def load(self) -> Mark:
        await self._conn.execute(
            "INSERT INTO outbox_relay (relay, after_id, published, bus_ok) VALUES ($1, 0, 0, true) ON CONFLICT DO NOTHING",
            self._relay,
        )
        row = await self._conn.fetchrow(
            "SELECT done_snapshot, batch_snapshot, after_id FROM outbox_relay WHERE relay = $1", self._relay
        )
        return Mark(row["done_snapshot"] or EMPTY_SNAPSHOT, row["batch_snapshot"], int(row["after_id"]))

    async def fetch(self, mark: Mark, limit: int) -> tuple[list[Pending], str | None]:
        xmax, xip = snapshot_bounds(mark.done)
        if mark.batch is None:
            rows = await self._conn.fetch(_PG_FETCH_NEW, xmax, xip, mark.after_id, limit)
        else:
            rows = await self._conn.fetch(_PG_FETCH_BATCH, xmax, xip, mark.after_id, limit, mark.batch)
        pending = [Pending(r[0], r[1], r[2], r[3]) for r in rows]
        return pending, (rows[0][4] if rows and mark.batch is None else mark.batch)

    async def save(self, mark: Mark, published: int) -> None:
        await self._conn.execute(_PG_SAVE, self._relay, mark.done, mark.batch, mark.after_id, published)

    async def save_bus(self, ok: bool, error: str | None) -> None:
        await self._conn.execute(
            "UPDATE outbox_relay SET bus_ok = $2, last_error = $3, updated_at = now() WHERE relay = $1",
            self._relay, ok, error,
        )

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # best effort on a broken connection
                await asyncio.wait_for(conn.close(), 5)


class _SqliteStore(_Store):
    """Through the service's SQLAlchemy database (the embedded mode)."""

    def __init__(self, db: Database, relay: str) -> None:
        self._db = db
        self._relay = relay

    async def open(self) -> bool:
        return True

    async def load(self) -> Mark:
        async with self._db.session() as session:
            row = (await session.execute(sa.select(outbox_relay.c.after_id).where(outbox_relay.c.relay == self._relay))).first()
            if row is None:
                await session.execute(outbox_relay.insert().values(relay=self._relay, after_id=0, published=0, bus_ok=True))
                await session.commit()
                return Mark()
            return Mark(after_id=int(row.after_id))

    async def fetch(self, mark: Mark, limit: int) -> tuple[list[Pending], str | None]:
        m = outbox_message.c
        async with self._db.read_session() as session:
            rows = await session.execute(
                sa.select(m.id, m.topic, m.message_key, m.payload).where(m.id > mark.after_id).order_by(m.id).limit(limit)
            )
            return [Pending(r.id, r.topic, r.message_key, r.payload) for r in rows], None

    async def save(self, mark: Mark, published: int) -> None:
        await self._update(after_id=mark.after_id, published=outbox_relay.c.published + published, bus_ok=True, last_error=None)

    async def save_bus(self, ok: bool, error: str | None) -> None:
        await self._update(bus_ok=ok, last_error=error)

    async def _update(self, **values: Any) -> None:
        async with self._db.session() as session:
            await session.execute(
                outbox_relay.update().where(outbox_relay.c.relay == self._relay).values(**values, updated_at=datetime.now(UTC))
            )
            await session.commit()

    async def close(self) -> None:
        return None


# --- the relay -----------------------------------------------------------------------------------


class OutboxRelay:
    """Publishes the outbox of one database, in order per key, at least once.

    It runs as a task (:meth:`start`) — in the service's process in the embedded mode and in tests, or
    alone in ``ti relay SERVICE`` — or a batch at a time (:meth:`publish_pending`)."""

    def __init__(
        self, db: Database, publisher: Publisher, *, service: str, batch_size: int = 1000, idle_s: float = 2.0,
        interval_s: float = NOTIFY_INTERVAL_S,
    ) -> None:
        self._publisher = publisher
        self._service = service
        self._batch_size = batch_size
        self._idle_s = idle_s
        self._interval_s = interval_s
        self._wake = asyncio.Event()
        self._store: _Store = _SqliteStore(db, service) if db.is_sqlite else _PgStore(db.url, service, self.notify)
        self._mark: Mark | None = None
        self._task: asyncio.Task[None] | None = None
        self._published = EVENTS_PUBLISHED.labels(service=service)
        self._failures = OUTBOX_PUBLISH_FAILURES.labels(service=service)
        self.bus_ok = True
        self.last_error: str | None = None
        #: False while another relay holds the database's lock (this one waits, ready to take over)
        self.active = False

    @property
    def service(self) -> str:
        return self._service

    def notify(self) -> None:
        """A commit added outbox rows: publish without waiting."""
        self._wake.set()

    async def start(self) -> None:
        await self._publisher.start()
        self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self._service}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._store.close()
        await self._publisher.stop()

    async def run(self) -> None:
        """Publish until cancelled: after each commit's notification, or every ``idle_s`` at most."""
        backoff = 0.2
        loop = asyncio.get_running_loop()
        while True:
            try:
                self._wake.clear()  # a commit notified while this cycle runs wakes the next one
                started = loop.time()
                published = await self.publish_pending()
                if not self.bus_ok:
                    log.info("outbox relay: the bus is back", service=self._service)
                    await self._store.save_bus(True, None)
                self.bus_ok, self.last_error, backoff = True, None, 0.2
                if published >= self._batch_size:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_s)
                rest = started + self._interval_s - loop.time()
                if rest > 0:  # the commits of the rest of the interval go with this one's
                    await asyncio.sleep(rest)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the relay never dies: it retries
                await self._failed(exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _failed(self, exc: Exception, backoff: float) -> None:
        bus_down = isinstance(exc, BusUnavailable)
        self._failures.inc()
        log.warning("outbox relay: publish failed, retrying", service=self._service, error=repr(exc), retry_in_s=backoff)
        if bus_down:
            if self.bus_ok or self.last_error != repr(exc):
                with contextlib.suppress(Exception):  # the service's /readyz shows it
                    await self._store.save_bus(False, repr(exc)[:1000])
        else:  # the database: connect again next time, and read the mark again
            await self._store.close()
            self._mark = None
            self.active = False
        self.bus_ok = not bus_down
        self.last_error = repr(exc)

    async def publish_pending(self) -> int:
        """Publish one batch of committed rows after the mark; returns how many were published."""
        if self._mark is None or not self.active:
            self.active = await self._store.open()
            if not self.active:
                return 0
            self._mark = await self._store.load()
        mark = self._mark
        rows, snapshot = await self._store.fetch(mark, self._batch_size)
        if not rows:
            if mark.batch is not None:  # the batch under way is finished
                self._mark = Mark(mark.batch)
                await self._store.save(self._mark, 0)
            return 0
        await self._publisher.publish(
            [OutgoingMessage(topic=r.topic, key=r.key, value=r.payload.encode(), headers=_HEADERS) for r in rows]
        )
        if snapshot is None:  # SQLite
            new = Mark(after_id=rows[-1].id)
        elif len(rows) < self._batch_size:
            new = Mark(snapshot)
        else:  # more rows of this snapshot may follow: go on from the last id
            new = Mark(mark.done, snapshot, rows[-1].id)
        await self._store.save(new, len(rows))
        self._mark = new
        self._published.inc(len(rows))
        return len(rows)


class CommitNotifier:
    """Wakes a relay running in another process: ``NOTIFY ti_outbox`` on a connection of its own, after
    the commit, never in the writing transaction (a ``NOTIFY`` there would serialise the commits of the
    whole PostgreSQL server). One ``NOTIFY`` at most every :data:`NOTIFY_INTERVAL_S`: the first commit
    after a quiet spell notifies at once, those that follow within the interval share the next
    notification (a round trip per commit was the service's and the server's CPU, and a relay cycle
    each). A lost notification only delays publication until the relay's ``idle_s``."""

    def __init__(self, url: str, *, interval_s: float = NOTIFY_INTERVAL_S) -> None:
        self._dsn = asyncpg_dsn(url)
        self._conn: Any = None
        self._again = False
        self._task: asyncio.Task[None] | None = None
        self._interval_s = interval_s
        self._last = float("-inf")

    def notify(self) -> None:
        self._again = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send(), name="outbox-notify")

    async def _send(self) -> None:
        import asyncpg

        loop = asyncio.get_running_loop()
        while self._again:
            wait = self._last + self._interval_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._again = False
            self._last = loop.time()
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(self._dsn, command_timeout=10, server_settings=NOT_DURABLE)
                await self._conn.execute("NOTIFY " + OUTBOX_CHANNEL)
            except Exception as exc:  # noqa: BLE001 - the relay's own polling catches up
                log.debug("outbox notification not sent", error=repr(exc))
                await self.close()
                return

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)
