"""The write paths' statements: declared once with SQLAlchemy Core, run as prepared statements on the
driver on PostgreSQL, through the session on SQLite — one repository method for both (decision 20).

``Sql(construct)`` compiles its construct once for PostgreSQL (``$n`` placeholders, the bind and result
processors of its column types) and runs it on the asyncpg connection under the session, in the
session's transaction: no SQLAlchemy compilation, caching or result machinery per call, and asyncpg
prepares it once per connection. On SQLite (the embedded mode) the same construct goes through
``session.execute``. Rows come back as mappings (column name → value, types processed) either way.

``Sql.defer(session, …)`` queues a data-modifying statement instead of running it: the queue goes to
the server at the session's next read, savepoint or commit — on PostgreSQL as one statement whose
data-modifying CTEs are the queued statements, so writing an entity, its history row and its outbox
event is one round trip. A queued statement may expect a row count (an update guarded by the version
it replaces); a mismatch raises ``on_mismatch()`` at the flush. The statements of one flush run on one
snapshot and must not touch the same rows: a statement on a table already queued flushes the queue
first — unless both only add rows (plain ``INSERT … VALUES``: new rows, a duplicate key still a unique
violation), so that an entity's several theme or ledger rows go with the rest. On SQLite ``defer``
runs the statement at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.util import await_, greenlet_spawn

_PENDING = "ti_pending"
_DRIVER = "ti_driver"
_PLACEHOLDER = re.compile(r"\$(\d+)")
#: statements queued at most on a session before they are sent (a plan import's hundreds of writes go as
#: several statements, each far under PostgreSQL's 65,535 parameters)
MAX_QUEUED = 64
#: combined statements of at most this many parts are kept compiled (a PUT's few shapes)
_CACHED_PARTS = 12
_NUMERIC, _FLOAT8 = 1700, 701  # PostgreSQL's type oids

Processor = Callable[[Any], Any] | None
Construct = sa.Select[Any] | sa.Insert | sa.Update | sa.Delete


class StaleWrite(Exception):
    """A deferred statement changed another number of rows than it expected."""


@dataclass(frozen=True)
class _Compiled:
    sql: str
    binds: tuple[str, ...]
    bind_processors: tuple[Processor, ...]
    result_processors: dict[str, Processor]

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        try:
            values = [params[name] for name in self.binds]
        except KeyError as exc:
            raise TypeError(f"missing parameter {exc} for: {self.sql[:120]}") from None
        return [p(v) if p is not None else v for p, v in zip(self.bind_processors, values, strict=True)]

    def row(self, record: Any) -> dict[str, Any]:
        out = dict(record.items())
        for name, processor in self.result_processors.items():
            if processor is not None and name in out:
                out[name] = processor(out[name])
        return out


class Sql:
    """A statement of a repository, for both databases (see the module's docstring).

    ``column_keys``: for an INSERT or UPDATE without ``.values()``, the columns it sets; each is bound by
    its name (``insert(t)`` with ``column_keys=["id", "name"]`` takes ``id=…, name=…``)."""

    def __init__(self, statement: Construct, *, column_keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.column_keys = list(column_keys) if column_keys is not None else None
        self.table = _table_of(statement)
        #: a plain ``INSERT … VALUES`` (no ``ON CONFLICT``, no ``SELECT``): it only adds rows, so several of
        #: them on one table may share a flush
        self.appends = (
            isinstance(statement, sa.Insert) and statement.select is None and getattr(statement, "_post_values_clause", None) is None
        )
        self._pg: _Compiled | None = None

    def __repr__(self) -> str:
        return f"Sql({self._compiled_text()[:80]!r})"

    def _compiled_text(self) -> str:
        return self._pg.sql if self._pg is not None else str(self.statement)

    def compiled(self, dialect: sa.Dialect) -> _Compiled:
        if self._pg is None:
            statement = self.statement
            if isinstance(statement, sa.Insert) and not statement.returning_column_descriptions:
                statement = statement.inline()  # no implicit RETURNING of the primary key
            compiled = statement.compile(dialect=dialect, column_keys=self.column_keys)
            names = tuple(compiled.positiontup or ())
            binds = compiled.binds
            processors = tuple(binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names)
            self._pg = _Compiled(compiled.string, names, processors, _result_processors(self.statement, dialect))
        return self._pg

    async def fetch(self, session: AsyncSession, **params: Any) -> list[dict[str, Any]]:
        """Every row the statement returns."""
        if _is_postgresql(session):
            driver = await driver_of(session)
            compiled = self.compiled(session.get_bind().dialect)
            records = await _run(driver.fetch, compiled.sql, compiled.arguments(params))
            return [compiled.row(r) for r in records]
        result = await session.execute(self.statement, params)
        return [dict(r._mapping) for r in result]

    async def fetchrow(self, session: AsyncSession, **params: Any) -> dict[str, Any] | None:
        """The first row, or None."""
        rows = await self.fetch(session, **params)
        return rows[0] if rows else None

    async def execute(self, session: AsyncSession, **params: Any) -> int:
        """Run a statement that returns no rows; the number of rows it changed."""
        if _is_postgresql(session):
            driver = await driver_of(session)
            compiled = self.compiled(session.get_bind().dialect)
            status = await _run(driver.execute, compiled.sql, compiled.arguments(params))
            return _rowcount(status)
        result = await session.execute(self.statement, params)
        return int(getattr(result, "rowcount", 0) or 0)

    async def defer(
        self,
        session: AsyncSession,
        *,
        expect: int | None = None,
        on_mismatch: Callable[[], Exception] = lambda: StaleWrite("a deferred write changed another number of rows"),
        **params: Any,
    ) -> None:
        """Queue this data-modifying statement (run at once on SQLite); ``expect``: the rows it must change."""
        if not _is_postgresql(session) or session.in_nested_transaction():
            changed = await self.execute(session, **params)
            if expect is not None and changed != expect:
                raise on_mismatch()
            return
        if not session.in_transaction():
            await session.connection()  # begins the session's transaction (no round trip): a rollback drops the queue
        pending: list[_Deferred] = session.info.setdefault(_PENDING, [])
        if len(pending) >= MAX_QUEUED or any(p.sql.table is self.table and not (self.appends and p.sql.appends) for p in pending):
            await flush(session)
            pending = session.info.setdefault(_PENDING, [])
        pending.append(_Deferred(self, params, expect, on_mismatch))


@dataclass(frozen=True)
class _Deferred:
    sql: Sql
    params: Mapping[str, Any]
    expect: int | None
    on_mismatch: Callable[[], Exception]


_COMBINED: dict[tuple[int, ...], str] = {}


async def flush(session: AsyncSession) -> None:
    """Send the statements :meth:`Sql.defer` queued on ``session`` (one round trip on PostgreSQL)."""
    pending: list[_Deferred] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    driver = await driver_of(session)
    await _flush_on(session.get_bind().dialect, driver, pending)


async def _flush_on(dialect: sa.Dialect, driver: Any, pending: list[_Deferred]) -> None:
    compiled = [p.sql.compiled(dialect) for p in pending]
    arguments: list[Any] = []
    for p, c in zip(pending, compiled, strict=True):
        arguments += c.arguments(p.params)
    key = tuple(id(p.sql) for p in pending)
    sql = _COMBINED.get(key)
    if sql is None:
        sql = _combine([c.sql for c in compiled])
        if len(key) <= _CACHED_PARTS:
            _COMBINED[key] = sql
    counts = await _run(driver.fetchrow, sql, arguments)
    for i, p in enumerate(pending):
        if p.expect is not None and counts[i] != p.expect:
            raise p.on_mismatch()


def _combine(statements: list[str]) -> str:
    """One statement running each data-modifying statement as a CTE; it returns their row counts."""
    parts, offset = [], 0
    for i, text in enumerate(statements):
        numbers = [int(n) for n in _PLACEHOLDER.findall(text)]
        parts.append(f"w{i} AS ({_shift(text, offset)} RETURNING 1)")
        offset += max(numbers, default=0)
    counts = ", ".join(f"(SELECT count(*) FROM w{i})" for i in range(len(statements)))
    return f"WITH {', '.join(parts)} SELECT {counts}"


def _shift(text: str, offset: int) -> str:
    """``text`` with its placeholders ``$n`` renumbered ``$(n + offset)``."""

    def renumber(match: re.Match[str]) -> str:
        return f"${int(match.group(1)) + offset}"

    return _PLACEHOLDER.sub(renumber, text)


class DriverSession:
    """A write's transaction straight on a pooled asyncpg connection, for the routes whose every statement
    is an :class:`Sql` (a PUT): no SQLAlchemy session, connection or transaction objects around it, and no
    greenlet per statement or commit. It stands where a repository takes an ``AsyncSession`` for what
    :class:`Sql` uses (``info``, ``get_bind()``, the transaction's state, ``commit``, ``rollback``); any
    other statement is refused, naming itself (such a route takes :func:`ti_shared.app.unit_of_work`).

    The connection is checked out of the engine's pool at the first statement (a connection its driver
    knows closed, after a server restart, is replaced there), ``BEGIN`` sent with it; :meth:`close`
    rolls back what was not committed and returns the connection (invalidated when it broke)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sync_engine = engine.sync_engine
        self.info: dict[str, Any] = {}
        self._fairy: Any = None
        self._driver: Any = None

    def get_bind(self) -> sa.Engine:
        return self._sync_engine

    def in_transaction(self) -> bool:
        return True  # begun with the first statement (a queued write waits for it)

    def in_nested_transaction(self) -> bool:
        return False

    async def begun(self) -> Any:
        """The driver connection, its transaction begun."""
        if self._driver is None:
            self._fairy = await self._engine.raw_connection()
            driver = self._fairy.driver_connection
            await driver.execute("BEGIN")
            self._driver = driver
        return self._driver

    async def commit(self) -> None:
        """Send the queued writes, then ``COMMIT`` (nothing to do when no statement ran)."""
        pending: list[_Deferred] | None = self.info.pop(_PENDING, None)
        if self._driver is None and not pending:
            return
        driver = await self.begun()
        if pending:
            await _flush_on(self._sync_engine.dialect, driver, pending)
        await driver.execute("COMMIT")

    async def rollback(self) -> None:
        self.info.pop(_PENDING, None)
        driver = self._driver
        if driver is not None and not driver.is_closed() and driver.is_in_transaction():
            await driver.execute("ROLLBACK")

    async def close(self) -> None:
        """Roll back what is left and give the connection back to the pool (invalidated when broken)."""
        fairy, self._fairy, self._driver = self._fairy, None, None
        self.info.pop(_PENDING, None)
        if fairy is None:
            return
        driver = fairy.driver_connection
        broken = driver is None or driver.is_closed()
        if not broken and driver.is_in_transaction():
            try:
                await driver.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - a connection that fails its rollback is not reused
                broken = True
        if broken:
            await greenlet_spawn(fairy.invalidate)
        await greenlet_spawn(fairy.close)

    def _refuse(self, name: str) -> Any:
        raise RuntimeError(f"{name}: this unit of work runs prepared statements (Sql) only; the route takes unit_of_work")

    def __getattr__(self, name: str) -> Any:  # execute, scalar(s), stream, begin_nested, run_sync, …
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *_a, **_k: self._refuse(name)


async def driver_of(session: AsyncSession) -> Any:
    """The asyncpg connection under a PostgreSQL session, in the session's transaction (begun if it was
    not yet), after the statements the session has queued. For ``COPY`` and :class:`Sql`."""
    if isinstance(session, DriverSession):
        driver = await session.begun()
        if session.info.get(_PENDING):
            await _flush_on(session.get_bind().dialect, driver, session.info.pop(_PENDING))
        return driver
    driver = session.info.get(_DRIVER)
    if driver is None:
        from ti_shared.db import driver_connection

        driver = session.info[_DRIVER] = await driver_connection(session)
    if session.info.get(_PENDING):
        pending = session.info.pop(_PENDING)
        await _flush_on(session.get_bind().dialect, driver, pending)
    return driver


async def _begun(raw: Any) -> Any:
    """The driver connection of a pooled connection, its transaction begun (as
    :func:`ti_shared.db.driver_connection`, from SQLAlchemy's synchronous layer; ``shared/tests/
    test_statements.py`` checks that driver statements are in the session's transaction)."""
    adapter = raw.dbapi_connection
    if getattr(adapter, "_transaction", None) is None and not getattr(adapter, "autocommit", False):
        await adapter._start_transaction()
    return raw.driver_connection


async def _run(call: Callable[..., Any], sql: str, arguments: list[Any]) -> Any:
    """A driver call; an integrity violation is raised as SQLAlchemy's ``IntegrityError`` (as a statement
    run through the session would be), so the unit of work answers it the same way."""
    import asyncpg

    try:
        return await call(sql, *arguments)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise sa.exc.IntegrityError(sql[:200], None, exc) from exc


def _rowcount(status: str) -> int:
    """The row count of a command status (``UPDATE 1``, ``INSERT 0 3``, ``DELETE 0``)."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _table_of(statement: Construct) -> sa.Table | None:
    table = getattr(statement, "table", None)
    return table if isinstance(table, sa.Table) else None


def _result_processors(statement: Construct, dialect: sa.Dialect) -> dict[str, Processor]:
    if isinstance(statement, sa.Select):
        columns = [(c.key or c.name, c.type) for c in statement.selected_columns]
    else:
        columns = [(d["name"], d["type"]) for d in getattr(statement, "returning_column_descriptions", ())]
    out: dict[str, Processor] = {}
    for name, type_ in columns:
        # the driver's type code the column comes back with, where a processor depends on it (numeric)
        coltype = _FLOAT8 if isinstance(type_, sa.Float) else _NUMERIC if isinstance(type_, sa.Numeric) else None
        processor = type_.dialect_impl(dialect).result_processor(dialect, coltype)
        if processor is not None:
            out[name] = processor
    return out


# --- the session's hooks: the queue is sent before anything else reads or commits ---------------


def _flush_now(session: Session) -> None:
    """In SQLAlchemy's sync layer (a greenlet under the async session): send the queue."""
    pending = session.info.get(_PENDING)
    if not pending:
        return
    driver = session.info.get(_DRIVER)
    if driver is None:
        driver = session.info[_DRIVER] = await_(_begun(session.connection().connection))
    session.info.pop(_PENDING)
    await_(_flush_on(session.get_bind().dialect, driver, pending))


def _forget(session: Session, *_: Any) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_DRIVER, None)


def install(session_class: type[Session]) -> None:
    """Hook a session class (the sync class under each ``AsyncSession``) so that deferred statements are
    sent before any other statement, savepoint or commit, and dropped at a rollback."""

    @event.listens_for(session_class, "do_orm_execute")
    def _before_statement(state: ORMExecuteState) -> None:
        _flush_now(state.session)

    @event.listens_for(session_class, "before_commit")
    def _before_commit(session: Session) -> None:
        _flush_now(session)

    @event.listens_for(session_class, "after_transaction_create")
    def _before_savepoint(session: Session, transaction: SessionTransaction) -> None:
        if transaction.nested:
            _flush_now(session)

    event.listen(session_class, "after_commit", _forget)
    event.listen(session_class, "after_rollback", _forget)
    event.listen(session_class, "after_soft_rollback", lambda session, _previous: _forget(session))


class TiSession(Session):
    """The sync session under every ``AsyncSession`` of :class:`ti_shared.db.Database` (hooked by :func:`install`)."""


install(TiSession)
