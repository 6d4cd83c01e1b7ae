"""The Alembic history builds exactly the tables of the code, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from action_tracker.main import SPEC
from action_tracker.tables import metadata
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from ti_shared.db import Database, infra_metadata
from ti_shared.migrations import upgrade
from ti_shared.testing import create_database, drop_database

pytestmark = pytest.mark.integration


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, [metadata, infra_metadata]))


async def _check(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db, SPEC.migrations_dir)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
            tables = await conn.run_sync(lambda c: set(c.dialect.get_table_names(c)))
        assert {"action", "action_theme", "action_version", "outbox_message", "territory_replica"} <= tables
    finally:
        await db.dispose()


async def test_migrations_on_sqlite(tmp_path: Path) -> None:
    await _check(f"sqlite+aiosqlite:///{tmp_path / 'action_tracker.db'}")


async def test_migrations_on_postgresql() -> None:
    url = await create_database("action_tracker_migrations")
    try:
        await _check(url)
    finally:
        await drop_database(url)
