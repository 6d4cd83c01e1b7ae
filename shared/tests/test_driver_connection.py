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
