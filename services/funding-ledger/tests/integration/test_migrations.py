import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from funding_ledger.main import SPEC
from funding_ledger.tables import metadata, programme_operator
from ti_shared.db import Database, infra_metadata
from ti_shared.migrations import upgrade
from ti_shared.testing import create_database, drop_database

pytestmark = pytest.mark.integration


async def _check(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db, SPEC.migrations_dir)
        async with db.engine.connect() as conn:

            def diff(sync_conn: sa.Connection) -> list[object]:
                ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return list(compare_metadata(ctx, [metadata, infra_metadata]))

            assert await conn.run_sync(diff) == []
            pairs = {tuple(r) for r in await conn.execute(sa.select(programme_operator))}
        assert ("rebond_industriel", "BPI") in pairs and ("fonds_vert_ti_te", "ADEME") in pairs and len(pairs) == 9
    finally:
        await db.dispose()


async def test_migrations_match_the_tables_on_sqlite(tmp_path):
    await _check(f"sqlite+aiosqlite:///{tmp_path}/fl.db")


async def test_migrations_match_the_tables_on_postgresql():
    url = await create_database("fl_migr")
    try:
        await _check(url)
    finally:
        await drop_database(url)
