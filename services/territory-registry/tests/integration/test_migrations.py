from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from territory_registry.main import SPEC
from territory_registry.tables import metadata
from ti_shared.db import Database, infra_metadata
from ti_shared.migrations import upgrade
from ti_shared.testing import create_database, drop_database

pytestmark = pytest.mark.integration


async def differences(url: str) -> list[Any]:
    db = Database(url)
    try:
        await upgrade(db, SPEC.migrations_dir)

        def _compare(connection: Connection) -> list[Any]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, [metadata, infra_metadata]))

        async with db.engine.connect() as conn:
            diff = await conn.run_sync(_compare)
            tables = await conn.run_sync(lambda c: set(c.dialect.get_table_names(c)))
    finally:
        await db.dispose()
    assert {"territory", "territory_version", "outbox_message", "idempotency_record"} <= tables
    return diff


async def test_migrations_match_the_tables_on_sqlite(tmp_path) -> None:
    assert await differences(f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}") == []


async def test_migrations_match_the_tables_on_postgresql() -> None:
    url = await create_database("territory_registry_migrations")
    try:
        assert await differences(url) == []
    finally:
        await drop_database(url)
