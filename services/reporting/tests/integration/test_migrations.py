"""The Alembic history creates exactly the tables the code declares, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from reporting.main import SPEC
from reporting.tables import metadata
from ti_shared.db import Database, infra_metadata
from ti_shared.migrations import upgrade
from ti_shared.testing import create_database, drop_database

pytestmark = pytest.mark.integration


async def _differences(url: str) -> list[object]:
    db = Database(url)
    try:
        await upgrade(db, SPEC.migrations_dir)
        async with db.engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": True}), [metadata, infra_metadata])
            )
    finally:
        await db.dispose()


async def test_migrations_match_the_tables_on_sqlite(tmp_path: Path) -> None:
    assert await _differences(f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}") == []


async def test_migrations_match_the_tables_on_postgresql() -> None:
    url = await create_database("reporting_mig")
    try:
        assert await _differences(url) == []
    finally:
        await drop_database(url)
