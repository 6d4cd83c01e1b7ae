"""The Alembic history builds exactly the tables the code declares, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from site_catalog.main import SPEC
from site_catalog.tables import metadata
from sqlalchemy.engine import Connection
from ti_shared.db import Database, infra_metadata
from ti_shared.migrations import upgrade
from ti_shared.testing import create_database, drop_database

pytestmark = pytest.mark.integration


async def _differences(url: str) -> list[Any]:
    db = Database(url)
    try:
        await upgrade(db, SPEC.migrations_dir)

        def _compare(connection: Connection) -> list[Any]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, [metadata, infra_metadata]))

        async with db.engine.connect() as conn:
            return await conn.run_sync(_compare)
    finally:
        await db.dispose()


async def test_migrations_match_the_tables_on_sqlite(tmp_path: Path) -> None:
    assert await _differences(f"sqlite+aiosqlite:///{tmp_path / 'sites.db'}") == []


async def test_migrations_match_the_tables_on_postgresql() -> None:
    url = await create_database("sites_migrations")
    try:
        assert await _differences(url) == []
    finally:
        await drop_database(url)
