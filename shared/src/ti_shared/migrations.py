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

from ti_shared.db import OUTBOX_XACT_DEFAULT, Database, infra_metadata, outbox_relay


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


def upgrade_outbox_relay(op: Any, relay: str) -> None:
    """From an outbox whose rows were marked sent one by one (``sent_at``) to the relay's mark (decision 17):
    the rows not yet published stay pending, the others are never published again. A database created with
    the current tables has nothing to change."""
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if "outbox_relay" not in inspector.get_table_names():
        outbox_relay.create(bind)
    if "sent_at" not in {c["name"] for c in inspector.get_columns("outbox_message")}:
        return
    op.add_column("outbox_message", sa.Column("xact_id", sa.BigInteger(), nullable=True))
    if bind.dialect.name == "postgresql":
        # pending rows take this migration's transaction id: not visible in any snapshot the relay holds
        op.execute("UPDATE outbox_message SET xact_id = pg_current_xact_id()::text::bigint WHERE sent_at IS NULL")
        op.execute(OUTBOX_XACT_DEFAULT)
    else:
        # SQLite's relay marks the last id published; the rows it had sent are a prefix in id order
        op.execute(
            sa.text(
                "INSERT INTO outbox_relay (relay, after_id, published, bus_ok) SELECT :relay, "
                "COALESCE((SELECT MIN(id) - 1 FROM outbox_message WHERE sent_at IS NULL), MAX(id)), "
                "COUNT(sent_at), 1 FROM outbox_message HAVING COUNT(*) > 0"
            ).bindparams(relay=relay)
        )
    op.drop_index("ix_outbox_message_pending", table_name="outbox_message")
    with op.batch_alter_table("outbox_message") as batch:
        batch.drop_column("sent_at")
    op.create_index("ix_outbox_message_xact_id", "outbox_message", ["xact_id"])


def downgrade_outbox_relay(op: Any, relay: str) -> None:
    """Back to ``sent_at``: what the relay's mark says is published is marked sent now."""
    bind = op.get_bind()
    op.add_column("outbox_message", sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
    if bind.dialect.name == "postgresql":
        op.execute(
            sa.text(
                "UPDATE outbox_message o SET sent_at = now() WHERE o.xact_id IS NULL OR EXISTS ("
                "SELECT 1 FROM outbox_relay r WHERE r.relay = :relay AND ("
                "pg_visible_in_snapshot(o.xact_id::text::xid8, r.done_snapshot::pg_snapshot) "
                "OR (o.id <= r.after_id AND pg_visible_in_snapshot(o.xact_id::text::xid8, r.batch_snapshot::pg_snapshot))))"
            ).bindparams(relay=relay)
        )
    else:
        op.execute(
            sa.text(
                "UPDATE outbox_message SET sent_at = CURRENT_TIMESTAMP "
                "WHERE id <= (SELECT after_id FROM outbox_relay WHERE relay = :relay)"
            ).bindparams(relay=relay)
        )
    op.drop_index("ix_outbox_message_xact_id", table_name="outbox_message")
    with op.batch_alter_table("outbox_message") as batch:
        batch.drop_column("xact_id")
    op.create_index(
        "ix_outbox_message_pending", "outbox_message", ["id"],
        postgresql_where=sa.text("sent_at IS NULL"), sqlite_where=sa.text("sent_at IS NULL"),
    )
    op.drop_table("outbox_relay")


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
