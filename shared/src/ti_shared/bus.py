"""The event bus behind one interface: Apache Kafka (aiokafka) or a local durable log (SQLite file).

The local log is what the embedded mode uses: the same relay and consumers run against it, with
offsets and partitions like Kafka's (one partition per topic), so nothing else forks.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple, Protocol

from ti_shared.logging import get_logger
from ti_shared.settings import PlatformSettings

#: how long a Kafka fetch goes on gathering what is already buffered into one batch, at most
GATHER_S = 0.05
#: what one Kafka fetch brings at most, per partition and in all (see ``KafkaSource``)
PARTITION_FETCH_BYTES = 1024 * 1024
FETCH_BYTES = 8 * 1024 * 1024

log = get_logger(__name__)

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class IncomingMessage(NamedTuple):
    """A fetched message (a named tuple: one is made per message read, thousands a second)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class BusUnavailable(Exception):
    """The bus could not take or give messages now; the caller retries later."""


class Publisher(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish in order; returns once every message is durably acknowledged, else raises."""


class Source(Protocol):
    async def start(self, topics: Sequence[str], positions: dict[TopicPartition, int]) -> None: ...
    async def stop(self) -> None: ...
    async def fetch(self, max_records: int, timeout_s: float) -> list[IncomingMessage]: ...
    async def seek(self, positions: dict[TopicPartition, int]) -> None: ...
    async def lag(self) -> int:
        """Messages published on the assigned topics and not yet fetched by this source."""


# --- Kafka -------------------------------------------------------------------------------------


class KafkaPublisher:
    def __init__(self, bootstrap: str, client_id: str, prefix: str = "") -> None:
        self._prefix = prefix
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._producer: object | None = None
        self._lock = asyncio.Lock()
        self.publish_timeout_s = 30.0

    async def start(self) -> None:
        return None  # connect lazily: Kafka may be down when the service starts

    async def _ensure(self) -> object:
        from aiokafka import AIOKafkaProducer

        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap,
                    client_id=self._client_id,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=2,
                    request_timeout_ms=10000,
                    max_batch_size=1024 * 1024,
                )
                try:
                    await producer.start()
                except Exception as exc:
                    await producer.stop()
                    raise BusUnavailable(str(exc)) from exc
                self._producer = producer
            return self._producer

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        producer = await self._ensure()
        try:
            # a broker that went away can leave sends pending for ever: bound the whole publication
            async with asyncio.timeout(self.publish_timeout_s):
                futures = [
                    await producer.send(  # type: ignore[attr-defined]
                        self._prefix + m.topic, value=m.value, key=m.key.encode(), headers=list(m.headers)
                    )
                    for m in messages
                ]
                await asyncio.gather(*futures)
        except Exception as exc:
            await self._reset()
            raise BusUnavailable(repr(exc)) from exc

    async def _reset(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):  # best effort on a broken connection
                await asyncio.wait_for(producer.stop(), 5)  # type: ignore[attr-defined]

    async def stop(self) -> None:
        await self._reset()


class KafkaSource:
    """Reads assigned partitions from explicit positions; offsets live in the consumer's database."""

    def __init__(self, bootstrap: str, group: str, prefix: str = "") -> None:
        self._prefix = prefix
        self._bootstrap = bootstrap
        self._group = group
        self._consumer: object | None = None
        self._topics: list[str] = []
        self._positions: dict[TopicPartition, int] = {}

    async def start(self, topics: Sequence[str], positions: dict[TopicPartition, int]) -> None:
        self._topics = list(topics)
        self._positions = dict(positions)
        await self._ensure()

    async def _ensure(self) -> object:
        from aiokafka import AIOKafkaConsumer
        from aiokafka import TopicPartition as TP

        if self._consumer is not None:
            return self._consumer
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            client_id=f"ti-{self._group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # what a fetch may bring at once: enough for full batches when catching up, and a bound on
            # the memory the prefetched records take — each partition keeps what one fetch brought for it
            # until it is read, and a response's buffer lives until its last partition is read (with 12
            # partitions, 4/16 MiB cost ~25 MiB more RSS than 2/8)
            max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
            fetch_max_bytes=FETCH_BYTES,
            request_timeout_ms=15000,
        )
        try:
            await consumer.start()
            partitions = []
            for topic in self._topics:
                name = self._prefix + topic
                parts = consumer.partitions_for_topic(name)
                if parts is None:
                    await consumer._client.force_metadata_update()
                    parts = consumer.partitions_for_topic(name)
                if not parts:
                    raise BusUnavailable(f"topic {name} does not exist")
                partitions += [TP(name, p) for p in sorted(parts)]
            consumer.assign(partitions)
            for tp in partitions:
                pos = self._positions.get((self._strip(tp.topic), tp.partition))
                if pos is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, pos)
        except Exception as exc:
            await consumer.stop()
            raise BusUnavailable(str(exc)) from exc
        self._consumer = consumer
        return consumer

    def _strip(self, topic: str) -> str:
        return topic[len(self._prefix) :] if self._prefix and topic.startswith(self._prefix) else topic

    async def seek(self, positions: dict[TopicPartition, int]) -> None:
        self._positions = dict(positions)
        if self._consumer is not None:
            await self._drop()
        await self._ensure()

    async def fetch(self, max_records: int, timeout_s: float) -> list[IncomingMessage]:
        consumer = await self._ensure()
        try:
            batches = await consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)  # type: ignore[attr-defined]
            fetched = sum(len(r) for r in batches.values())
            # one fetch returns what happened to be buffered: while catching up, gather a fuller batch,
            # for a bounded time (a steady trickle of events must not hold a batch back)
            deadline = time.monotonic() + GATHER_S
            while 0 < fetched < max_records and time.monotonic() < deadline:
                more = await consumer.getmany(timeout_ms=5, max_records=max_records - fetched)  # type: ignore[attr-defined]
                n = sum(len(r) for r in more.values())
                if n == 0:
                    break
                for tp, records in more.items():
                    batches.setdefault(tp, []).extend(records)
                fetched += n
        except Exception as exc:
            await self._drop()
            raise BusUnavailable(str(exc)) from exc
        out: list[IncomingMessage] = []
        for tp, records in batches.items():
            topic = self._strip(tp.topic)
            for r in records:
                out.append(
                    IncomingMessage(
                        topic=topic,
                        partition=tp.partition,
                        offset=r.offset,
                        key=r.key.decode() if r.key is not None else None,
                        value=r.value if r.value is not None else b"",
                        headers=tuple(r.headers or ()),
                    )
                )
                self._positions[(topic, tp.partition)] = r.offset + 1
        return out

    async def lag(self) -> int:
        consumer = await self._ensure()
        try:
            ends = await consumer.end_offsets(list(consumer.assignment()))  # type: ignore[attr-defined]
        except Exception as exc:
            raise BusUnavailable(str(exc)) from exc
        return sum(
            max(0, end - self._positions.get((self._strip(tp.topic), tp.partition), 0)) for tp, end in ends.items()
        )

    async def _drop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):  # best effort
                await asyncio.wait_for(consumer.stop(), 5)  # type: ignore[attr-defined]

    async def stop(self) -> None:
        await self._drop()


# --- local durable log (embedded mode) -------------------------------------------------------


class LocalLog:
    """A durable, append-only log in one SQLite file, with a wake-up signal for local readers."""

    _instances: ClassVar[dict[Path, LocalLog]] = {}

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=60)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS bus_record (offset INTEGER PRIMARY KEY AUTOINCREMENT,"
            " topic TEXT NOT NULL, message_key TEXT, value BLOB NOT NULL)"
        )
        self._conn.execute("CREATE INDEX IF NOT EXISTS ix_bus_record_topic ON bus_record (topic, offset)")
        self._lock = asyncio.Lock()
        self._appended = asyncio.Condition()

    @classmethod
    def open(cls, path: Path) -> LocalLog:
        key = path.resolve()
        if key not in cls._instances:
            cls._instances[key] = LocalLog(path)
        return cls._instances[key]

    async def append(self, messages: Sequence[OutgoingMessage]) -> None:
        rows = [(m.topic, m.key, m.value) for m in messages]

        def _write() -> None:
            with self._conn:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(
                    "INSERT INTO bus_record (topic, message_key, value) VALUES (?, ?, ?)", rows
                )

        async with self._lock:
            await asyncio.to_thread(_write)
        async with self._appended:
            self._appended.notify_all()

    async def read(self, topics: Sequence[str], after: dict[str, int], limit: int) -> list[IncomingMessage]:
        clauses = " OR ".join("(topic = ? AND offset >= ?)" for _ in topics)
        params: list[object] = []
        for t in topics:
            params += [t, after.get(t, 0)]

        def _read() -> list[tuple[int, str, str | None, bytes]]:
            cur = self._conn.execute(
                f"SELECT offset, topic, message_key, value FROM bus_record WHERE {clauses} ORDER BY offset LIMIT ?",
                [*params, limit],
            )
            return list(cur.fetchall())

        rows = await asyncio.to_thread(_read)
        return [IncomingMessage(topic=t, partition=0, offset=o, key=k, value=bytes(v)) for o, t, k, v in rows]

    async def wait(self, timeout_s: float) -> None:
        async with self._appended:
            try:
                await asyncio.wait_for(self._appended.wait(), timeout_s)
            except TimeoutError:
                pass

    async def count_from(self, positions: dict[str, int], topics: Sequence[str]) -> int:
        def _count() -> int:
            total = 0
            for t in topics:
                row = self._conn.execute(
                    "SELECT COUNT(*) FROM bus_record WHERE topic = ? AND offset >= ?", (t, positions.get(t, 0))
                ).fetchone()
                total += int(row[0])
            return total

        return await asyncio.to_thread(_count)


class LocalPublisher:
    def __init__(self, log_: LocalLog) -> None:
        self._log = log_

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        await self._log.append(messages)


class LocalSource:
    def __init__(self, log_: LocalLog) -> None:
        self._log = log_
        self._topics: list[str] = []
        self._positions: dict[str, int] = {}

    async def start(self, topics: Sequence[str], positions: dict[TopicPartition, int]) -> None:
        self._topics = list(topics)
        self._positions = {t: p for (t, _part), p in positions.items()}

    async def seek(self, positions: dict[TopicPartition, int]) -> None:
        self._positions = {t: p for (t, _part), p in positions.items()}

    async def fetch(self, max_records: int, timeout_s: float) -> list[IncomingMessage]:
        records = await self._log.read(self._topics, self._positions, max_records)
        if not records:
            await self._log.wait(timeout_s)
            records = await self._log.read(self._topics, self._positions, max_records)
        for r in records:
            self._positions[r.topic] = r.offset + 1
        return records

    async def lag(self) -> int:
        return await self._log.count_from(self._positions, self._topics)

    async def stop(self) -> None:
        return None


def make_publisher(settings: PlatformSettings, client_id: str) -> Publisher:
    if settings.bus == "kafka":
        return KafkaPublisher(settings.kafka_bootstrap, client_id, settings.topic_prefix)
    return LocalPublisher(LocalLog.open(settings.bus_path))


def make_source(settings: PlatformSettings, group: str) -> Source:
    if settings.bus == "kafka":
        return KafkaSource(settings.kafka_bootstrap, group, settings.topic_prefix)
    return LocalSource(LocalLog.open(settings.bus_path))


async def ensure_kafka_topics(bootstrap: str, topics: Sequence[str], partitions: int = 3) -> None:
    """Create the topics that do not exist yet, with unlimited retention."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(t, num_partitions=partitions, replication_factor=1, topic_configs={"retention.ms": "-1", "retention.bytes": "-1"})
                    for t in missing
                ]
            )
    finally:
        await admin.close()
