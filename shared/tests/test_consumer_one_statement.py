"""A small batch in one statement (live mode), on real PostgreSQL and Kafka: the territory replica's
consumer, through a crash before the commit, duplicates, stale versions, a restart and dead letters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.bus import OutgoingMessage, make_publisher, make_source
from ti_shared.consumer import Delivery, EventConsumer, NotInOneStatement, OneStatement
from ti_shared.db import Database, applied_version, consumer_offset, infra_metadata, outbox_message, territory_replica
from ti_shared.events import TOPIC_TERRITORIES, CloudEvent, encode_event
from ti_shared.replica import TerritoryReplicaHandler
from ti_shared.settings import PlatformSettings
from ti_shared.statements import driver_of
from ti_shared.testing import (
    create_database,
    create_topics,
    drop_database,
    new_topic_prefix,
    platform_settings,
    territory_event,
    wait_until,
)

pytestmark = pytest.mark.integration


class Replica(TerritoryReplicaHandler):
    """The replica's handler, counting the batches written each way."""

    def __init__(self) -> None:
        self.in_transaction = 0
        self.in_statement = 0

    async def apply(self, session: AsyncSession, deliveries: list[Delivery]) -> None:
        self.in_transaction += 1
        await super().apply(session, deliveries)

    async def apply_in_statement(self, session: AsyncSession, deliveries: list[Delivery], statement: OneStatement) -> None:
        self.in_statement += 1
        await super().apply_in_statement(session, deliveries, statement)


@pytest.fixture
async def setup() -> AsyncIterator[tuple[Database, PlatformSettings]]:
    url = await create_database("onestatement")
    prefix = new_topic_prefix()
    await create_topics(prefix, partitions=1)
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(infra_metadata.create_all)
    try:
        yield db, platform_settings(topic_prefix=prefix)
    finally:
        await db.dispose()
        await drop_database(url)


async def publish(platform: PlatformSettings, *values: dict[str, Any] | bytes) -> None:
    publisher = make_publisher(platform, "ti-test")
    await publisher.start()
    try:
        await publisher.publish([
            OutgoingMessage(TOPIC_TERRITORIES, "k", v) if isinstance(v, bytes)
            else OutgoingMessage(TOPIC_TERRITORIES, v["subject"], encode_event(CloudEvent.model_validate(v)))
            for v in values
        ])
    finally:
        await publisher.stop()


def consumer_of(db: Database, platform: PlatformSettings, handler: Replica) -> EventConsumer:
    return EventConsumer(
        name="replica", service="test", db=db, source=make_source(platform, "replica"), handler=handler, poll_s=0.05
    )


async def drained(consumer: EventConsumer, messages: int) -> None:
    async def done() -> bool:
        return sum(consumer.positions.values()) >= messages and consumer.in_flight == 0

    await wait_until(done, timeout_s=20)


async def tables(db: Database) -> dict[str, Any]:
    async with db.read_session() as session:
        replica = {r.territory_id: (r.region_code, r.version) for r in await session.execute(sa.select(territory_replica))}
        versions = {r.subject: r.version for r in await session.execute(sa.select(applied_version))}
        offsets = [r.next_offset for r in await session.execute(sa.select(consumer_offset))]
        letters = [json.loads(r.payload) for r in await session.execute(sa.select(outbox_message).order_by(outbox_message.c.id))]
    return {"replica": replica, "versions": versions, "offsets": offsets, "letters": letters}


async def test_a_crash_before_the_statement_writes_nothing_and_the_batch_is_applied_once(
    setup: tuple[Database, PlatformSettings],
) -> None:
    db, platform = setup
    await publish(
        platform,
        territory_event("T1", "84"), territory_event("T2", "53"), territory_event("T1", "11", version=2),
        territory_event("T1", "84"),  # stale: version 1 again
        b"not an event",
    )
    handler = Replica()
    consumer = consumer_of(db, platform, handler)
    crashes: list[dict[str, Any]] = []

    async def crash_once() -> None:
        if not crashes:
            crashes.append(await tables(db))
            raise ConnectionError("simulated crash before the commit")

    consumer.before_commit = crash_once
    await consumer.start()
    try:
        await drained(consumer, 5)
    finally:
        await consumer.stop()
    assert crashes == [{"replica": {}, "versions": {}, "offsets": [], "letters": []}]
    after = await tables(db)
    assert after["replica"] == {"T1": ("11", 2), "T2": ("53", 1)}
    assert after["versions"] == {"T1": 2, "T2": 1}
    assert after["offsets"] == [5]
    assert [(letter["offset"], letter["reason"].split(":")[0]) for letter in after["letters"]] == [(4, "unparseable")]
    assert (consumer.applied_count, consumer.skipped_count, consumer.dead_letter_count) == (3, 1, 1)
    assert handler.in_transaction == 0 and handler.in_statement >= 2

    # restarted: a duplicate (its applied version read back from the table) and a newer version
    handler = Replica()
    consumer = consumer_of(db, platform, handler)
    await publish(platform, territory_event("T2", "53"), territory_event("T2", "52", version=2))
    await consumer.start()
    try:
        await drained(consumer, 7)
    finally:
        await consumer.stop()
    after = await tables(db)
    assert after["replica"] == {"T1": ("11", 2), "T2": ("52", 2)}
    assert after["versions"] == {"T1": 2, "T2": 2}
    assert after["offsets"] == [7]
    assert (consumer.applied_count, consumer.skipped_count) == (1, 1)
    assert handler.in_transaction == 0


async def test_an_event_the_handler_rejects_is_dead_lettered_and_the_others_applied(
    setup: tuple[Database, PlatformSettings],
) -> None:
    db, platform = setup
    bad = territory_event("T9", "84")
    del bad["data"]["region_code"]
    await publish(platform, territory_event("T1", "84"), bad, territory_event("T2", "53"))
    handler = Replica()
    consumer = consumer_of(db, platform, handler)
    await consumer.start()
    try:
        await drained(consumer, 3)
        await asyncio.sleep(0)
    finally:
        await consumer.stop()
    after = await tables(db)
    assert after["replica"] == {"T1": ("84", 1), "T2": ("53", 1)}
    assert after["offsets"] == [3]
    assert [(letter["offset"], letter["reason"].split(":")[0]) for letter in after["letters"]] == [(1, "could not be applied")]
    assert consumer.dead_letter_count == 1


class ReadingReplica(Replica):
    """Reads the replica through the session (SQLAlchemy, then on the driver) before each batch's
    statement, noting what it saw and whether a transaction was under way."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, int]] = []
        self.in_a_transaction: list[bool] = []
        self.applied_in_a_transaction: list[bool] = []

    async def apply_in_statement(self, session: AsyncSession, deliveries: list[Delivery], statement: OneStatement) -> None:
        rows = await session.execute(sa.select(territory_replica.c.territory_id, territory_replica.c.version))
        seen = {r.territory_id: r.version for r in rows}
        driver = await driver_of(session)
        assert await driver.fetchval("SELECT count(*) FROM territory_replica") == len(seen)
        raw = await (await session.connection()).get_raw_connection()
        self.in_a_transaction.append(raw.dbapi_connection._transaction is not None)
        self.seen.append(seen)
        if any(d.event.subject == "T3" for d in deliveries):
            raise NotInOneStatement  # applied in a transaction instead
        await super().apply_in_statement(session, deliveries, statement)

    async def apply(self, session: AsyncSession, deliveries: list[Delivery]) -> None:
        await session.execute(sa.select(territory_replica.c.version))
        raw = await (await session.connection()).get_raw_connection()
        self.applied_in_a_transaction.append(raw.dbapi_connection._transaction is not None)
        await super().apply(session, deliveries)


async def test_what_the_handler_reads_for_a_small_batch_is_what_has_committed_with_no_transaction_begun(
    setup: tuple[Database, PlatformSettings],
) -> None:
    db, platform = setup
    handler = ReadingReplica()
    consumer = consumer_of(db, platform, handler)
    await consumer.start()
    try:
        await publish(platform, territory_event("T1", "84"))
        await drained(consumer, 1)
        await publish(platform, territory_event("T1", "11", version=2), territory_event("T2", "53"))
        await drained(consumer, 3)
        # a batch the handler declines after reading: applied in a transaction, on the same connection
        await publish(platform, territory_event("T3", "75"))
        await drained(consumer, 4)
    finally:
        await consumer.stop()
    assert handler.seen[0] == {} and handler.seen[1] == {"T1": 1}  # the first batch's commit, read by the next
    assert handler.seen[-1] == {"T1": 2, "T2": 1}
    assert handler.in_a_transaction and not any(handler.in_a_transaction)  # neither BEGIN nor COMMIT around the reads
    assert handler.applied_in_a_transaction == [True] and handler.in_transaction == 1
    after = await tables(db)
    assert after["replica"] == {"T1": ("11", 2), "T2": ("53", 1), "T3": ("75", 1)}
    assert after["offsets"] == [4]
