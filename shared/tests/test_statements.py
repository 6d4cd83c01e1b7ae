"""``ti_shared.statements``: repository statements run on the driver (PostgreSQL) or through the session
(SQLite), in the session's transaction; deferred writes sent as one statement at the next read,
savepoint or commit, dropped by a rollback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from ti_shared.db import Database, Instant
from ti_shared.outbox import asyncpg_dsn
from ti_shared.statements import DriverSession, Sql, StaleWrite, driver_of, flush
from ti_shared.testing import create_database, drop_database

metadata = sa.MetaData()
item = sa.Table(
    "item",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("at", Instant, nullable=False),
    sa.Column("area", sa.Numeric(14, 2), nullable=True),
)
log = sa.Table("item_log", metadata, sa.Column("id", sa.String(16)), sa.Column("version", sa.Integer))

GET = Sql(sa.select(item).where(item.c.id == sa.bindparam("item_id")))
INSERT = Sql(item.insert(), column_keys=["id", "version", "tags", "at", "area"])
BUMP = Sql(
    item.update().where(item.c.id == sa.bindparam("item_id"), item.c.version == sa.bindparam("replaced")),
    column_keys=["version"],
)
LOG = Sql(log.insert(), column_keys=["id", "version"])
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["postgresql", "sqlite"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    url = await create_database("statements") if request.param == "postgresql" else f"sqlite+aiosqlite:///{tmp_path / 's.db'}"
    database = Database(url)
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield database
    finally:
        await database.dispose()
        if request.param == "postgresql":
            await drop_database(url)


async def count(db: Database, table: sa.Table) -> int:
    async with db.session() as session:
        return int((await session.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def test_rows_come_back_typed_and_deferred_writes_commit_together(db: Database) -> None:
    async with db.session() as session:
        await INSERT.defer(session, expect=1, id="a", version=1, tags=["x", "y"], at=AT, area=Decimal("12.50"))
        await LOG.defer(session, expect=1, id="a", version=1)
        row = await GET.fetchrow(session, item_id="a")  # a read sends the queue first
        assert row == {"id": "a", "version": 1, "tags": ["x", "y"], "at": AT, "area": Decimal("12.50")}
        assert row is not None and row["at"].tzinfo is UTC
        await BUMP.defer(session, expect=1, item_id="a", replaced=1, version=2)
        await LOG.defer(session, expect=1, id="a", version=2)
        await session.commit()  # the commit sends the queue
    assert await count(db, log) == 2
    async with db.session() as session:
        assert (await GET.fetchrow(session, item_id="a")) == {"id": "a", "version": 2, "tags": ["x", "y"], "at": AT, "area": Decimal("12.50")}
        assert await GET.fetchrow(session, item_id="nope") is None


async def test_a_guarded_write_that_misses_raises_and_nothing_of_it_stays(db: Database) -> None:
    async with db.session() as session:
        await INSERT.execute(session, id="a", version=1, tags=[], at=AT, area=None)
        await session.commit()
    async with db.session() as session:
        await LOG.defer(session, expect=1, id="a", version=2)
        with pytest.raises(LookupError, match="moved"):  # at once on SQLite, at the commit on PostgreSQL
            await BUMP.defer(session, expect=1, on_mismatch=lambda: LookupError("moved"), item_id="a", replaced=7, version=8)
            await session.commit()
        await session.rollback()
    assert await count(db, log) == 0
    async with db.session() as session:
        assert (await GET.fetchrow(session, item_id="a") or {})["version"] == 1
        assert await BUMP.execute(session, item_id="a", replaced=1, version=2) == 1
        assert await BUMP.execute(session, item_id="a", replaced=1, version=2) == 0


async def test_a_rollback_drops_what_was_queued_and_a_unique_violation_is_an_integrity_error(db: Database) -> None:
    async with db.session() as session:
        await INSERT.defer(session, id="a", version=1, tags=[], at=AT, area=None)
        await session.rollback()
        await session.commit()
    assert await count(db, item) == 0
    async with db.session() as session:
        await INSERT.execute(session, id="a", version=1, tags=[], at=AT, area=None)
        await session.commit()
        with pytest.raises(sa.exc.IntegrityError):  # at once on SQLite, at the flush on PostgreSQL
            await INSERT.defer(session, id="a", version=1, tags=[], at=AT, area=None)
            await flush(session)


async def test_driver_statements_are_in_the_session_transaction() -> None:
    """What ``driver_of`` runs is rolled back with the session (its transaction is the session's)."""
    url = await create_database("statements_tx")
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        async with db.session() as session:
            driver = await driver_of(session)  # before any statement of the session
            await driver.execute("INSERT INTO item_log VALUES ('a', 1)")
            await session.execute(log.insert().values(id="b", version=1))
            assert (await session.execute(sa.select(sa.func.count()).select_from(log))).scalar_one() == 2
            await session.rollback()
        assert await count(db, log) == 0
        async with db.session() as session:
            await LOG.defer(session, id="c", version=1)
            async with session.begin_nested():  # a savepoint sends the queue before it
                await LOG.execute(session, id="d", version=1)
            await session.commit()
        assert await count(db, log) == 2
    finally:
        await db.dispose()
        await drop_database(url)


def test_the_combined_statement_renumbers_each_statements_parameters() -> None:
    from sqlalchemy.dialects import postgresql
    from ti_shared.statements import _combine

    dialect = postgresql.asyncpg.dialect()  # type: ignore[attr-defined]
    sql = _combine([BUMP.compiled(dialect).sql, LOG.compiled(dialect).sql])
    assert sql.count("$") == 5 and "$5" in sql and "$6" not in sql
    assert sql.startswith("WITH w0 AS (UPDATE") and sql.endswith("(SELECT count(*) FROM w1)")


async def test_a_missed_expectation_is_a_stale_write_by_default(db: Database) -> None:
    async with db.session() as session:
        with pytest.raises(StaleWrite):
            await BUMP.defer(session, expect=1, item_id="none", replaced=1, version=2)
            await session.commit()


async def test_inserts_on_one_table_share_a_flush_and_a_duplicate_among_them_is_refused(db: Database) -> None:
    async with db.session() as session:
        await INSERT.defer(session, expect=1, id="a", version=1, tags=[], at=AT, area=None)
        for version in (1, 2, 3):
            await LOG.defer(session, expect=1, id="a", version=version)
        if db.engine.dialect.name == "postgresql":  # queued together: one statement at the commit
            assert [p.sql for p in session.info["ti_pending"]] == [INSERT, LOG, LOG, LOG]
        await BUMP.defer(session, expect=1, item_id="a", replaced=1, version=2)  # another kind on a queued table
        await session.commit()
    assert await count(db, log) == 3
    async with db.session() as session:
        assert (await GET.fetchrow(session, item_id="a") or {})["version"] == 2
        with pytest.raises(sa.exc.IntegrityError):
            await INSERT.defer(session, id="b", version=1, tags=[], at=AT, area=None)
            await INSERT.defer(session, id="b", version=1, tags=[], at=AT, area=None)
            await session.commit()
        await session.rollback()
    assert await count(db, item) == 1


@pytest.fixture
async def pg() -> AsyncIterator[Database]:
    url = await create_database("statements_driver")
    database = Database(url, pool_size=2, max_overflow=0)
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield database
    finally:
        await database.dispose()
        await drop_database(url)


async def _insert_committed(pg: Database, item_id: str) -> None:
    """One item inserted and committed through a new driver session."""
    session = DriverSession(pg.engine)
    try:
        await INSERT.defer(session, expect=1, id=item_id, version=1, tags=[], at=AT, area=None)  # type: ignore[arg-type]
        await session.commit()
    finally:
        await session.close()


async def test_a_driver_session_commits_its_reads_and_queued_writes_in_one_transaction(pg: Database) -> None:
    session = DriverSession(pg.engine)
    try:
        await INSERT.defer(session, expect=1, id="a", version=1, tags=["x"], at=AT, area=Decimal("1.50"))  # type: ignore[arg-type]
        await LOG.defer(session, expect=1, id="a", version=1)  # type: ignore[arg-type]
        assert await count(pg, item) == 0  # queued, not sent
        row = await GET.fetchrow(session, item_id="a")  # type: ignore[arg-type]
        assert row == {"id": "a", "version": 1, "tags": ["x"], "at": AT, "area": Decimal("1.50")}
        assert await count(pg, item) == 0  # sent in its transaction, not committed
        await BUMP.defer(session, expect=1, item_id="a", replaced=1, version=2)  # type: ignore[arg-type]
        await session.commit()
    finally:
        await session.close()
    async with pg.session() as s:
        assert (await GET.fetchrow(s, item_id="a") or {})["version"] == 2
    assert await count(pg, log) == 1


async def test_a_driver_session_closed_uncommitted_leaves_nothing_and_its_connection_is_reused(pg: Database) -> None:
    for _ in range(3):  # the pool has two connections: each close gives its connection back
        session = DriverSession(pg.engine)
        await INSERT.execute(session, id="a", version=1, tags=[], at=AT, area=None)  # type: ignore[arg-type]
        await session.close()  # rolled back
    assert await count(pg, item) == 0
    await _insert_committed(pg, "a")
    assert await count(pg, item) == 1


async def test_a_driver_session_raises_an_integrity_error_on_a_duplicate_and_refuses_other_statements(pg: Database) -> None:
    async with pg.session() as s:
        await INSERT.execute(s, id="a", version=1, tags=[], at=AT, area=None)
        await s.commit()
    session = DriverSession(pg.engine)
    try:
        await INSERT.defer(session, expect=1, id="a", version=1, tags=[], at=AT, area=None)  # type: ignore[arg-type]
        with pytest.raises(sa.exc.IntegrityError):
            await session.commit()
        with pytest.raises(RuntimeError, match="execute"):
            await session.execute(sa.select(item))
    finally:
        await session.close()
    assert await count(pg, item) == 1


async def test_a_driver_session_on_a_connection_the_server_closed_gets_a_new_one(pg: Database) -> None:
    first = DriverSession(pg.engine)
    driver = await first.begun()
    pid = await driver.fetchval("SELECT pg_backend_pid()")
    await first.close()
    admin = await asyncpg.connect(asyncpg_dsn(pg.url))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    for _ in range(50):  # the driver learns of the close when the server's goodbye arrives
        if driver.is_closed():
            break
        await asyncio.sleep(0.02)
    await _insert_committed(pg, "b")
    assert await count(pg, item) == 1
