"""Alembic, once: each service's ``migrations/env.py`` calls :func:`run_env`; services upgrade on start."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from ti_shared.db import Database, infra_metadata


def alembic_config(migrations_dir: Path, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def upgrade(db: Database, migrations_dir: Path) -> None:
    """Bring the database to the latest revision."""
    cfg = alembic_config(migrations_dir, db.url)

    def _run(connection: Connection) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")

    async with db.engine.begin() as conn:
        await conn.run_sync(_run)


def create_infra_tables(op: Any) -> None:
    """Create the shared tables (outbox, offsets, applied versions, idempotency, territory replica)."""
    bind = op.get_bind()
    for table in infra_metadata.sorted_tables:
        table.create(bind, checkfirst=True)


def drop_infra_tables(op: Any) -> None:
    bind = op.get_bind()
    for table in reversed(infra_metadata.sorted_tables):
        table.drop(bind, checkfirst=True)


def run_env(target_metadata: sa.MetaData) -> None:
    """The body of every service's ``migrations/env.py``."""
    config = context.config
    metadata = [target_metadata, infra_metadata]

    def _configure(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    async def _online() -> None:
        engine = create_async_engine(str(config.get_main_option("sqlalchemy.url")))
        async with engine.begin() as conn:
            await conn.run_sync(_configure)
        await engine.dispose()

    asyncio.run(_online())
