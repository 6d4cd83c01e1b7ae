"""The outbox relay's mark (decision 17), on real PostgreSQL and Kafka and on SQLite: rows committed in
another order than their ids, the order per key, batches larger than a fetch, one active relay per
database, the wake-up by NOTIFY, and the upgrade from the outbox marked row by row."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from probe import UPDATED
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.bus import KafkaPublisher, KafkaSource
from ti_shared.db import Database, infra_metadata, outbox_relay
from ti_shared.events import TOPIC_TERRITORIES
from ti_shared.migrations import downgrade_outbox_relay, upgrade_outbox_relay
from ti_shared.outbox import CommitNotifier, OutboxRelay, count_pending, outbox_status, record_event
from ti_shared.testing import create_database, create_topics, drop_database, kafka_bootstrap, new_topic_prefix

pytestmark = pytest.mark.integration
SERVICE = "probe"


@pytest.fixture
async def env() -> AsyncIterator[tuple[Database, str]]:
    url = await create_database("relay")
    prefix = new_topic_prefix()
    await create_topics(prefix, partitions=1)
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(infra_metadata.create_all)
        await conn.execute(sa.text("CREATE TABLE side_effect (n integer)"))
    yield db, prefix
    await db.dispose()
    await drop_database(url)


def relay_of(db: Database, prefix: str, **kwargs: float) -> OutboxRelay:
    return OutboxRelay(db, KafkaPublisher(kafka_bootstrap(), "test-relay", prefix), service=SERVICE, **kwargs)  # type: ignore[arg-type]


async def record(session: AsyncSession, subject: str, version: int) -> None:
    await record_event(
        session, topic=TOPIC_TERRITORIES, source="/test", type_=UPDATED, subject=subject, version=version,
        actor="tester", time=datetime.now(UTC), data={"id": subject},
    )


async def published(prefix: str, expected: int, timeout_s: float = 30) -> list[tuple[str, int]]:
    """(subject, version) of every event on the territories topic, in log order (one partition)."""
    source = KafkaSource(kafka_bootstrap(), "relay-reader", prefix)
    await source.start([TOPIC_TERRITORIES], {})
    out: list[tuple[str, int]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            out += [(json.loads(m.value)["subject"], json.loads(m.value)["entityversion"]) for m in await source.fetch(1000, 0.3)]
            if len(out) >= expected and await source.lag() == 0:
                break
    finally:
        await source.stop()
    return out


async def drain(relay: OutboxRelay) -> int:
    total = 0
    while n := await relay.publish_pending():
        total += n
    return total


async def test_a_row_committed_after_a_later_id_is_published_once(env: tuple[Database, str]) -> None:
    db, prefix = env
    relay = relay_of(db, prefix)
    async with db.session() as early, db.session() as late:
        await record(early, "ti-0001", 1)  # the smaller id, committed last
        await record(late, "ti-0002", 1)
        await late.commit()
        assert await drain(relay) == 1
        async with db.read_session() as session:
            assert await count_pending(session, SERVICE) == 0  # the open transaction is not pending yet
        await early.commit()
    async with db.read_session() as session:
        assert await count_pending(session, SERVICE) == 1
    assert await drain(relay) == 1
    assert await drain(relay) == 0
    await relay.stop()
    assert sorted(await published(prefix, 2)) == [("ti-0001", 1), ("ti-0002", 1)]


async def test_the_order_per_key_holds_when_the_later_change_began_first(env: tuple[Database, str]) -> None:
    db, prefix = env
    relay = relay_of(db, prefix)
    async with db.session() as second:
        await second.execute(sa.text("INSERT INTO side_effect VALUES (1)"))  # its transaction id comes first
        async with db.session() as first:
            await record(first, "ti-0001", 1)
            await first.commit()
        assert await drain(relay) == 1  # version 1, while the older transaction is still open
        await record(second, "ti-0001", 2)
        await second.commit()
    assert await drain(relay) == 1
    await relay.stop()
    assert await published(prefix, 2) == [("ti-0001", 1), ("ti-0001", 2)]


async def test_a_backlog_larger_than_a_fetch_goes_out_in_id_order(env: tuple[Database, str]) -> None:
    db, prefix = env
    relay = relay_of(db, prefix, batch_size=3)
    async with db.session() as open_one:
        await record(open_one, "ti-0099", 1)
        for version in range(1, 11):
            async with db.session() as session:
                await record(session, "ti-0001", version)
                await session.commit()
        assert await drain(relay) == 10
        async with db.read_session() as session:
            mark = (await session.execute(sa.select(outbox_relay))).one()
        assert mark.batch_snapshot is None and mark.published == 10
        await open_one.commit()
    assert await drain(relay) == 1
    await relay.stop()
    assert await published(prefix, 11) == [*(("ti-0001", v) for v in range(1, 11)), ("ti-0099", 1)]


async def test_one_relay_is_active_per_database(env: tuple[Database, str]) -> None:
    db, prefix = env
    first, second = relay_of(db, prefix), relay_of(db, prefix)
    async with db.session() as session:
        await record(session, "ti-0001", 1)
        await session.commit()
    assert await first.publish_pending() == 1
    async with db.session() as session:
        await record(session, "ti-0001", 2)
        await session.commit()
    assert await second.publish_pending() == 0 and not second.active
    async with db.read_session() as session:
        status = await outbox_status(session, SERVICE)
    assert status.relay_active and status.pending == 1
    await first.stop()  # its connection, hence its lock, goes
    assert await second.publish_pending() == 1 and second.active
    await second.stop()
    async with db.read_session() as session:
        assert not (await outbox_status(session, SERVICE)).relay_active
    assert await published(prefix, 2) == [("ti-0001", 1), ("ti-0001", 2)]


async def test_a_notification_wakes_the_relay_of_another_process(env: tuple[Database, str]) -> None:
    db, prefix = env
    relay = relay_of(db, prefix, idle_s=60)
    await relay.start()
    notifier = CommitNotifier(db.url)
    try:
        await asyncio.sleep(0.5)  # the relay is asleep (nothing to publish) for 60 s
        async with db.session() as session:
            await record(session, "ti-0001", 1)
            await session.commit()
        notifier.notify()
        started = time.monotonic()
        while True:
            async with db.read_session() as session:
                if await count_pending(session, SERVICE) == 0:
                    break
            assert time.monotonic() - started < 10, "the relay was not woken"
            await asyncio.sleep(0.05)
    finally:
        await notifier.close()
        await relay.stop()


async def test_commits_close_together_share_a_notification(env: tuple[Database, str]) -> None:
    """The first commit after a quiet spell notifies at once; those within the interval share one
    more, sent after it (none is lost: the last commit is notified). The bounds leave a slow machine
    room: the interval is 1 s, the burst of commits takes a fraction of it."""
    import asyncpg
    from ti_shared.outbox import OUTBOX_CHANNEL, asyncpg_dsn

    db, _prefix = env
    interval = 1.0
    received: list[float] = []
    listener = await asyncpg.connect(asyncpg_dsn(db.url))
    await listener.add_listener(OUTBOX_CHANNEL, lambda *_: received.append(time.monotonic()))

    async def until(n: int, within: float) -> None:
        started = time.monotonic()
        while len(received) < n and time.monotonic() - started < within:
            await asyncio.sleep(0.01)

    notifier = CommitNotifier(db.url, interval_s=interval)
    try:
        notifier.notify()  # the notifier's own connection opened, then a quiet spell
        await until(1, 10)
        assert len(received) == 1
        await asyncio.sleep(interval + 0.1)
        started = time.monotonic()
        for _ in range(20):  # 20 commits in a burst, well within the interval
            notifier.notify()
            await asyncio.sleep(0.005)
        burst = time.monotonic() - started
        await until(3, 5)
        await asyncio.sleep(interval / 2)  # nothing more comes
        assert burst < interval / 2, f"the burst took {burst:.2f} s: the machine is too slow for this test"
        assert len(received) == 3, received
        assert received[1] - started < interval / 2, "the first commit waited"
        assert received[2] - received[1] >= interval * 0.9, "the second notification came within the interval"
        await asyncio.sleep(interval)
        notifier.notify()  # after a quiet spell: at once
        quiet = time.monotonic()
        await until(4, 5)
        assert len(received) == 4 and received[3] - quiet < interval / 2
    finally:
        await notifier.close()
        await listener.close()


OLD_OUTBOX = """CREATE TABLE outbox_message (id {pk}, topic varchar(64) NOT NULL, message_key varchar(256) NOT NULL,
 event_id varchar(64) NOT NULL, event_type varchar(128) NOT NULL, payload text NOT NULL,
 created_at timestamp with time zone NOT NULL, sent_at timestamp with time zone)"""


async def _old_outbox(db: Database) -> None:
    """The outbox as it was (rows marked sent one by one): 3 sent, 2 not."""
    pk = "INTEGER PRIMARY KEY" if db.is_sqlite else "BIGSERIAL PRIMARY KEY"
    async with db.engine.begin() as conn:
        await conn.execute(sa.text(OLD_OUTBOX.format(pk=pk)))
        await conn.execute(sa.text("CREATE INDEX ix_outbox_message_pending ON outbox_message (id) WHERE sent_at IS NULL"))
        for n in range(1, 6):
            payload = json.dumps({"subject": f"ti-000{n}", "entityversion": 1})
            await conn.execute(
                sa.text(
                    "INSERT INTO outbox_message (topic, message_key, event_id, event_type, payload, created_at, sent_at)"
                    " VALUES ('ti.territories', :k, :e, 't', :p, :now, :sent)"
                ),
                {"k": f"ti-000{n}", "e": f"e{n}", "p": payload, "now": datetime.now(UTC), "sent": datetime.now(UTC) if n <= 3 else None},
            )


async def _migrate(db: Database, step: str) -> None:
    def _run(connection: sa.Connection) -> None:
        op = Operations(MigrationContext.configure(connection, opts={"render_as_batch": connection.dialect.name == "sqlite"}))
        (upgrade_outbox_relay if step == "up" else downgrade_outbox_relay)(op, SERVICE)

    async with db.engine.begin() as conn:
        await conn.run_sync(_run)


async def _upgrade_keeps_what_was_not_sent(db: Database, prefix: str) -> None:
    await _old_outbox(db)
    await _migrate(db, "up")
    async with db.read_session() as session:
        assert await count_pending(session, SERVICE) == 2
    relay = relay_of(db, prefix)
    assert await drain(relay) == 2
    async with db.session() as session:
        await record(session, "ti-0006", 1)
        await session.commit()
    assert await drain(relay) == 1
    await relay.stop()
    await _migrate(db, "down")  # and back: what was published is marked sent
    async with db.read_session() as session:
        assert (await session.execute(sa.text("SELECT count(*) FROM outbox_message WHERE sent_at IS NULL"))).scalar_one() == 0


async def test_the_upgrade_from_rows_marked_sent_on_postgresql() -> None:
    url = await create_database("relay_upgrade")
    prefix = new_topic_prefix()
    await create_topics(prefix, partitions=1)
    db = Database(url)
    try:
        await _upgrade_keeps_what_was_not_sent(db, prefix)
        assert sorted(await published(prefix, 3)) == [("ti-0004", 1), ("ti-0005", 1), ("ti-0006", 1)]
    finally:
        await db.dispose()
        await drop_database(url)


async def test_the_upgrade_from_rows_marked_sent_on_sqlite(tmp_path: Path) -> None:
    prefix = new_topic_prefix()
    await create_topics(prefix, partitions=1)
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    try:
        await _upgrade_keeps_what_was_not_sent(db, prefix)
        assert sorted(await published(prefix, 3)) == [("ti-0004", 1), ("ti-0005", 1), ("ti-0006", 1)]
    finally:
        await db.dispose()
