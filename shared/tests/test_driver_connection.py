"""Statements sent straight to asyncpg run in the session's transaction, even as its first statement."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from ti_shared.db import Database, copy_records, driver_connection
from ti_shared.testing import create_database, drop_database

pytestmark = pytest.mark.integration

probe = sa.Table("driver_probe", sa.MetaData(), sa.Column("id", sa.Integer(), primary_key=True))


async def test_raw_statements_and_copy_first_in_a_session_are_rolled_back_with_it() -> None:
    url = await create_database("driver")
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(probe.metadata.create_all)
        for first in ("execute", "copy"):
            async with db.session() as session:
                if first == "execute":
                    await (await driver_connection(session)).execute("INSERT INTO driver_probe VALUES (1)")
                else:
                    await copy_records(session, probe, ["id"], [(2,), (3,)])
                await session.execute(sa.insert(probe).values(id=4))  # through SQLAlchemy afterwards: same transaction
                await session.rollback()
            async with db.read_session() as session:
                assert (await session.execute(sa.select(sa.func.count()).select_from(probe))).scalar_one() == 0, first
        async with db.session() as session:
            await copy_records(session, probe, ["id"], [(5,)])
            await session.commit()
        async with db.read_session() as session:
            assert (await session.execute(sa.select(probe.c.id))).scalars().all() == [5]
    finally:
        await db.dispose()
        await drop_database(url)


async def test_a_statement_on_the_driver_whose_server_went_away_counts_as_unavailable() -> None:
    """A statement sent straight to asyncpg raises the driver's own errors, unwrapped, when the server
    has gone (as when PostgreSQL stops; here its backend is terminated while the session holds it):
    they must read as "the database is unavailable" (a 503 to retry), never as an unexpected error
    (a 500); so must what the session raises then."""
    from ti_shared.problems import is_database_unavailable

    url = await create_database("driver_gone")
    db = Database(url)
    raised: list[BaseException] = []
    try:
        with pytest.raises(Exception) as closing:
            async with db.session() as session:
                raw = await driver_connection(session)
                pid = await raw.fetchval("SELECT pg_backend_pid()")
                async with db.engine.connect() as other:
                    await other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                for _ in range(2):  # the server's goodbye, then a closed connection
                    try:
                        await raw.execute("SELECT 1")
                    except Exception as exc:  # what the driver raises is the subject
                        raised.append(exc)
                raise RuntimeError("leave the session")
        assert len(raised) == 2
        assert all(type(exc).__module__.startswith("asyncpg") for exc in raised), raised
        assert [is_database_unavailable(exc) for exc in raised] == [True, True], raised
        # leaving the session rolls back on the closed connection: SQLAlchemy's error, also "unavailable"
        assert isinstance(closing.value, RuntimeError) or is_database_unavailable(closing.value), repr(closing.value)
    finally:
        await db.dispose()
        await drop_database(url)
