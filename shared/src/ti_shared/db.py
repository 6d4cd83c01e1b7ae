"""Database access for PostgreSQL (asyncpg) and SQLite (aiosqlite), and the shared infrastructure tables."""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

#: BIGINT on PostgreSQL, INTEGER (rowid alias, autoincrement) on SQLite
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
#: JSON on both; JSONB on PostgreSQL
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
T = TypeVar("T")



class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An instant: aware UTC ``datetime`` in and out, on SQLite as on PostgreSQL.

    PostgreSQL stores ``timestamptz``; SQLite stores the UTC wall time as text, which its driver
    gives back naive — read back as UTC here. A naive ``datetime`` is refused on the way in (it
    would mean the server's local time on PostgreSQL and UTC on SQLite)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: an instant needs its UTC offset")
        return value if value.tzinfo is UTC else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None or value.tzinfo is UTC:
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: the column type of every instant
Instant = UtcDateTime()

infra_metadata = sa.MetaData()

outbox_message = sa.Table(
    "outbox_message",
    infra_metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("topic", sa.String(64), nullable=False),
    sa.Column("message_key", sa.String(256), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(128), nullable=False),
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Column("created_at", Instant, nullable=False),
    #: PostgreSQL: the id of the transaction that wrote the row (``pg_current_xact_id()``, by default), which
    #: tells the relay whether it is visible in a snapshot; NULL for rows published before it was kept and
    #: on SQLite (whose writers commit one at a time, in id order)
    sa.Column("xact_id", sa.BigInteger(), nullable=True),
    sa.Index("ix_outbox_message_xact_id", "xact_id"),
)

#: the default of ``outbox_message.xact_id`` on PostgreSQL (set by :data:`outbox_message`'s creation and by
#: ``ti_shared.migrations.upgrade_outbox_relay``)
OUTBOX_XACT_DEFAULT = "ALTER TABLE outbox_message ALTER COLUMN xact_id SET DEFAULT (pg_current_xact_id()::text::bigint)"
sa.event.listen(outbox_message, "after_create", sa.DDL(OUTBOX_XACT_DEFAULT).execute_if(dialect="postgresql"))  # type: ignore[no-untyped-call]

outbox_relay = sa.Table(
    "outbox_relay",
    infra_metadata,
    #: the relay's name: the service whose outbox it publishes (one relay is active per database)
    sa.Column("relay", sa.String(64), primary_key=True),
    #: PostgreSQL: every row whose transaction is visible in this snapshot is published (NULL: none yet)
    sa.Column("done_snapshot", sa.Text(), nullable=True),
    #: PostgreSQL: the snapshot of the batch under way, when it was larger than one fetch (else NULL)
    sa.Column("batch_snapshot", sa.Text(), nullable=True),
    #: the last id published of the batch under way (PostgreSQL); on SQLite, of the whole outbox
    sa.Column("after_id", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("published", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("bus_ok", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("updated_at", Instant, nullable=True),
)

consumer_offset = sa.Table(
    "consumer_offset",
    infra_metadata,
    sa.Column("consumer", sa.String(64), primary_key=True),
    sa.Column("topic", sa.String(64), primary_key=True),
    sa.Column("partition", sa.Integer(), primary_key=True),
    sa.Column("next_offset", sa.BigInteger(), nullable=False),
)

applied_version = sa.Table(
    "applied_version",
    infra_metadata,
    sa.Column("consumer", sa.String(64), primary_key=True),
    sa.Column("topic", sa.String(64), primary_key=True),
    sa.Column("subject", sa.String(256), primary_key=True),
    sa.Column("version", sa.BigInteger(), nullable=False),
)

idempotency_record = sa.Table(
    "idempotency_record",
    infra_metadata,
    sa.Column("owner", sa.String(256), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("status_code", sa.Integer(), nullable=True),
    sa.Column("response_body", sa.Text(), nullable=True),
    sa.Column("response_headers", sa.Text(), nullable=True),
    sa.Column("locked_at", Instant, nullable=False),
    sa.Column("completed_at", Instant, nullable=True),
)

territory_replica = sa.Table(
    "territory_replica",
    infra_metadata,
    sa.Column("territory_id", sa.String(16), primary_key=True),
    sa.Column("region_code", sa.String(3), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("version", sa.BigInteger(), nullable=False),
    sa.Column("data", JSONType, nullable=False),
)


def is_sqlite_url(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_engine(url: str, *, immediate: bool) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (SAVEPOINT support)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """No pre-ping (a round trip on every checkout): a pooled connection the server closed (a restart)
    is known closed by its driver already, and replaced here; the pool retries with a new one."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise sa.exc.DisconnectionError("the server closed this pooled connection")


class Database:
    """One service's database: a writer engine and a reader engine (the same on PostgreSQL)."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 5) -> None:
        self.url = url
        self.is_sqlite = is_sqlite_url(url)
        if self.is_sqlite:
            self.engine = _sqlite_engine(url, immediate=True)
            self.read_engine = _sqlite_engine(url, immediate=False)
        else:
            self.engine = create_async_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_recycle=600)
            event.listen(self.engine.sync_engine, "checkout", _refuse_closed_connection)
            self.read_engine = self.engine
        from ti_shared.statements import TiSession

        self._writer = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False, sync_session_class=TiSession)
        self._reader = async_sessionmaker(self.read_engine, expire_on_commit=False, autoflush=False, sync_session_class=TiSession)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A read-write session; the caller commits."""
        async with self._writer() as session:
            yield session

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        async with self._reader() as session:
            yield session

    @asynccontextmanager
    async def reads(self) -> AsyncIterator[AsyncConnection]:
        """A reader connection outside any transaction (autocommit): each statement sees what has
        committed, with no ``BEGIN`` and ``ROLLBACK`` around it — for reads of one statement each."""
        async with self.read_engine.connect() as connection:
            yield await connection.execution_options(isolation_level="AUTOCOMMIT")

    async def ping(self) -> None:
        async with self.read_engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


def upsert(session_dialect: str, table: sa.Table) -> Any:
    """``INSERT … ON CONFLICT`` builder for the session's dialect."""
    if session_dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def dialect_of(session: AsyncSession | AsyncConnection) -> str:
    if isinstance(session, AsyncConnection):
        return session.dialect.name
    return session.get_bind().dialect.name


def in_values(column: sa.ColumnElement[Any], values: list[Any], dialect: str) -> sa.ColumnElement[bool]:
    """``column IN (values)``: on PostgreSQL ``column = ANY($1)`` with ONE array parameter, whatever the
    number of values (no statement expanded and compiled per list length)."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


def lookup_chunks(keys: Sequence[T], dialect: str, *, size: int = 1000) -> Iterator[list[T]]:
    """``keys`` in the chunks to look up with :func:`in_values`: all at once on PostgreSQL (one array
    parameter, whatever its length), ``size`` at a time elsewhere (bounded ``IN`` lists)."""
    step = max(len(keys), 1) if dialect == "postgresql" else size
    for i in range(0, len(keys), step):
        yield list(keys[i : i + step])


async def insert_rows(session: AsyncSession, table: sa.Table, rows: list[dict[str, Any]], *, chunk: int = 1000) -> None:
    """Insert many rows (same keys in each) in the session's transaction: ``COPY`` on PostgreSQL.

    On PostgreSQL the rows go through asyncpg's binary ``COPY`` on the session's own connection (so in
    its transaction); a constraint violation is raised as SQLAlchemy's ``IntegrityError``, as an
    ``INSERT`` would. Elsewhere: ``INSERT`` executemany, ``chunk`` rows at a time."""
    if not rows:
        return
    if dialect_of(session) != "postgresql":
        for i in range(0, len(rows), chunk):
            await session.execute(table.insert(), rows[i : i + chunk])
        return
    import orjson

    columns = list(rows[0])
    row_of = operator.itemgetter(*columns)
    json_at = [i for i, name in enumerate(columns) if isinstance(table.c[name].type, sa.JSON)]
    records: list[tuple[Any, ...]]
    if len(columns) == 1:
        records = [(row_of(row),) for row in rows]
    elif not json_at:
        records = [row_of(row) for row in rows]
    else:
        records = []
        for row in rows:
            values = list(row_of(row))
            for i in json_at:
                values[i] = orjson.dumps(values[i]).decode()
            records.append(tuple(values))
    await copy_records(session, table, columns, records)


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under a PostgreSQL session, in the session's transaction (for ``COPY``
    and statements sent without SQLAlchemy's compilation).

    SQLAlchemy's asyncpg adapter sends ``BEGIN`` lazily, before the first statement it executes
    itself: a statement sent straight to asyncpg first would run outside the transaction (and commit
    on its own). So the adapter's transaction is begun here when it has not been yet."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    adapter: Any = raw.dbapi_connection
    if getattr(adapter, "_transaction", False) is None:
        async with adapter._execute_mutex:
            if adapter._transaction is None:
                await adapter._start_transaction()
    return raw.driver_connection


async def copy_records(session: AsyncSession, table: sa.Table, columns: Sequence[str], records: Sequence[tuple[Any, ...]]) -> None:
    """Binary ``COPY`` of value tuples (in ``columns`` order) into ``table``, in the session's
    transaction (PostgreSQL only); a constraint violation is raised as ``IntegrityError``."""
    import asyncpg

    if not records:
        return
    from ti_shared.statements import driver_of

    driver = await driver_of(session)  # after what the session queued (ti_shared.statements), in its transaction
    try:
        await driver.copy_records_to_table(table.name, records=records, columns=list(columns), schema_name=table.schema)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise sa.exc.IntegrityError(f"COPY {table.name}", None, exc) from exc
