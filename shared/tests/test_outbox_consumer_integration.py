"""Outbox → relay → Kafka → consumer, on real PostgreSQL and real Kafka."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from probe import UPDATED, ProbeHandler, probe_metadata, probe_state
from ti_shared.bus import KafkaPublisher, KafkaSource, OutgoingMessage
from ti_shared.consumer import EventConsumer
from ti_shared.db import Database, infra_metadata, outbox_relay
from ti_shared.events import TOPIC_DEAD_LETTERS, TOPIC_TERRITORIES, CloudEvent, encode_event, event_type
from ti_shared.outbox import OutboxRelay, count_pending, record_event
from ti_shared.testing import (
    create_database,
    create_topics,
    drop_database,
    kafka_bootstrap,
    new_topic_prefix,
    wait_until,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


class SimulatedCrash(BaseException):
    """Not an Exception: escapes the consumer's error handling, like a killed process."""


@pytest.fixture
async def env() -> AsyncIterator[tuple[Database, str]]:
    url = await create_database("shared")
    prefix = new_topic_prefix()
    await create_topics(prefix)
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(infra_metadata.create_all)
        await conn.run_sync(probe_metadata.create_all)
    yield db, prefix
    await db.dispose()
    await drop_database(url)


def _consumer(db: Database, prefix: str, name: str = "probe") -> EventConsumer:
    return EventConsumer(
        name=name, service="probe", db=db, source=KafkaSource(kafka_bootstrap(), name, prefix), handler=ProbeHandler(), batch_size=1000
    )


async def _write(db: Database, subjects: list[str], versions: range, per_txn: int = 100) -> None:
    """Simulate service writes: each (subject, version) an outbox row, committed in transactions."""
    pairs = [(s, v) for v in versions for s in subjects]
    for i in range(0, len(pairs), per_txn):
        async with db.session() as session:
            for subject, version in pairs[i : i + per_txn]:
                await record_event(
                    session,
                    topic=TOPIC_TERRITORIES,
                    source="/services/probe",
                    type_=UPDATED,
                    subject=subject,
                    version=version,
                    actor="tester",
                    time=__import__("datetime").datetime.now(__import__("datetime").UTC),
                    data={"id": subject, "region_code": "84", "status": "active"},
                )
            await session.commit()


async def _state(db: Database) -> dict[str, str]:
    async with db.session() as session:
        rows = await session.execute(sa.select(probe_state.c.subject, probe_state.c.seen))
        return {r.subject: r.seen for r in rows}


async def _drain(consumer: EventConsumer, expected_subjects: int, last_version: int, db: Database, timeout: float = 240) -> None:
    async def done() -> bool:
        await consumer.run_once(0.2)
        state = await _state(db)
        return len(state) == expected_subjects and all(s.endswith("," + str(last_version)) or s == str(last_version) for s in state.values())

    await wait_until(done, timeout, 0)


async def test_ten_thousand_events_round_trip_exactly_once_in_order(env: tuple[Database, str]) -> None:
    db, prefix = env
    subjects = [f"ti-{i:04d}" for i in range(1000)]
    await _write(db, subjects, range(1, 11), per_txn=250)
    relay = OutboxRelay(db, KafkaPublisher(kafka_bootstrap(), "test-relay", prefix), service="probe", batch_size=1000)
    while await relay.publish_pending():
        pass
    async with db.session() as session:
        assert await count_pending(session, "probe") == 0
    consumer = _consumer(db, prefix)
    await _drain(consumer, 1000, 10, db)
    state = await _state(db)
    expected = ",".join(str(v) for v in range(1, 11))
    assert all(seen == expected for seen in state.values()), "every event applied once, in order per key"
    assert consumer.applied_count == 10_000
    assert await consumer.lag() == 0
    # published twice (a relay crash after publishing, before its mark was written): no effect
    await relay.stop()
    async with db.session() as session:
        await session.execute(outbox_relay.update().values(done_snapshot=None, batch_snapshot=None, after_id=0))
        await session.commit()
    relay = OutboxRelay(db, KafkaPublisher(kafka_bootstrap(), "test-relay", prefix), service="probe", batch_size=1000)
    while await relay.publish_pending():
        pass
    await wait_until(lambda: _caught_up(consumer), 30, 0)
    assert await _state(db) == state
    assert consumer.skipped_count == 10_000
    await consumer.stop()
    await relay.stop()


async def _caught_up(consumer: EventConsumer) -> bool:
    await consumer.run_once(0.2)
    return await consumer.lag() == 0


async def test_consumer_crash_between_apply_and_commit(env: tuple[Database, str]) -> None:
    db, prefix = env
    subjects = [f"ti-{i:04d}" for i in range(50)]
    await _write(db, subjects, range(1, 5))
    relay = OutboxRelay(db, KafkaPublisher(kafka_bootstrap(), "test-relay", prefix), service="probe")
    while await relay.publish_pending():
        pass
    consumer = _consumer(db, prefix)
    consumer._batch_size = 60

    async def crash() -> None:
        raise SimulatedCrash

    await consumer.run_once(5)  # one batch applied and committed
    consumer.before_commit = crash
    with pytest.raises(SimulatedCrash):
        for _ in range(10):
            await consumer.run_once(5)
    await consumer.stop()
    partial = await _state(db)
    assert 0 < len(partial) <= 60
    restarted = _consumer(db, prefix)
    await _drain(restarted, 50, 4, db)
    assert all(seen == "1,2,3,4" for seen in (await _state(db)).values())
    await restarted.stop()
    await relay.stop()


async def test_duplicates_stale_poison_and_unknown_types(env: tuple[Database, str]) -> None:
    db, prefix = env

    def ev(subject: str, version: int, **data: object) -> OutgoingMessage:
        event = CloudEvent(
            id=str(uuid.uuid4()), source="/test", type=UPDATED, subject=subject,
            time="2024-01-01T00:00:00Z", entityversion=version, tiactor="t", data={"id": subject, **data},  # type: ignore[arg-type]
        )
        return OutgoingMessage(TOPIC_TERRITORIES, subject, encode_event(event))

    unknown = json.loads(encode_event(CloudEvent.model_validate_json(ev("ti-0001", 9).value)))
    unknown["type"] = event_type("spaceship", "launched")
    messages = [
        ev("ti-0001", 1), ev("ti-0001", 2), ev("ti-0001", 1), ev("ti-0001", 2),
        OutgoingMessage(TOPIC_TERRITORIES, "ti-0001", b"\x00not json at all"),
        OutgoingMessage(TOPIC_TERRITORIES, "ti-0001", json.dumps(unknown).encode()),
        ev("ti-0001", 3, poison=True),
        ev("ti-0001", 4), ev("ti-0002", 1),
    ]
    publisher = KafkaPublisher(kafka_bootstrap(), "test", prefix)
    await publisher.publish(messages)
    await publisher.stop()
    consumer = _consumer(db, prefix)
    await wait_until(lambda: _caught_up(consumer), 30, 0)
    assert await _state(db) == {"ti-0001": "1,2,4", "ti-0002": "1"}
    assert consumer.dead_letter_count == 3
    assert consumer.skipped_count == 2
    relay = OutboxRelay(db, KafkaPublisher(kafka_bootstrap(), "test-relay", prefix), service="probe")
    assert await relay.publish_pending() == 3
    await relay.stop()
    reader = KafkaSource(kafka_bootstrap(), "dl-reader", prefix)
    await reader.start([TOPIC_DEAD_LETTERS], {})
    letters = []
    deadline = time.monotonic() + 60  # a slow machine takes its time: a bound, not a count of fetches
    while len(letters) < 3 and time.monotonic() < deadline:
        letters += await reader.fetch(100, 0.5)
    await reader.stop()
    reasons = sorted(json.loads(m.value)["reason"].split(":")[0] for m in letters)
    assert reasons == ["could not be applied", "unknown event type 'fr.anct.ti.spaceship.launched.v1' on topic 'ti.territories'", "unparseable"]
    await consumer.stop()


def _kafka(action: str) -> None:
    subprocess.run(["bash", str(ROOT / "deploy/local/kafka.sh"), action], check=True, cwd=ROOT, capture_output=True, timeout=180)


@pytest.mark.skipif(not (ROOT / "deploy/local/kafka.sh").exists(), reason="local Kafka scripts not present")
async def test_writes_commit_while_kafka_is_down_and_the_backlog_drains(env: tuple[Database, str]) -> None:
    db, prefix = env
    relay = OutboxRelay(db, KafkaPublisher(kafka_bootstrap(), "test-relay", prefix), service="probe", idle_s=0.1)
    await relay.start()
    consumer = _consumer(db, prefix)
    await consumer.start()
    subjects = [f"ti-{i:04d}" for i in range(20)]
    try:
        await _write(db, subjects, range(1, 3))
        await wait_until(lambda: _pending_is(db, 0), 30)
        _kafka("stop")
        try:
            await _write(db, subjects, range(3, 6))  # every write commits with Kafka down
            async with db.session() as session:
                assert await count_pending(session, "probe") == 60  # committed, waiting in the outbox

            async def relay_sees_outage() -> bool:
                return relay.last_error is not None

            await wait_until(relay_sees_outage, 60)
            async with db.session() as session:
                assert await count_pending(session, "probe") == 60
        finally:
            _kafka("start")
        await wait_until(lambda: _pending_is(db, 0), 120)

        async def all_applied() -> bool:
            return all(seen == "1,2,3,4,5" for seen in (await _state(db)).values()) and len(await _state(db)) == 20

        await wait_until(all_applied, 120)
    finally:
        await consumer.stop()
        await relay.stop()


async def _pending_is(db: Database, n: int) -> bool:
    async with db.session() as session:
        return await count_pending(session, "probe") == n
