"""Every query of the change feed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from ti_shared.db import copy_records, dialect_of, in_values, lookup_chunks
from ti_shared.events import TOPIC_GRANTS
from ti_shared.statements import driver_of

from reporting.feed.domain import Reader
from reporting.feed.tables import change_event, webhook_delivery, webhook_subscription


@dataclass(frozen=True)
class FeedFilter:
    """Which changes a reader asked for (and may see)."""

    reader: Reader
    types: frozenset[str] = frozenset()
    subject: str | None = None
    since: datetime | None = None


#: a change as written: its ``change_event`` values (but ``seq``) in :data:`CHANGE_COLUMNS` order, the JSON
#: columns as JSON text
Change = tuple[Any, ...]
Key = tuple[str, str]
CHANGE_COLUMNS = ("event_id", "topic", "type", "subject", "version", "time", "operator", "event", "previous", "changed", "recorded_at")
_JSON_AT = tuple(i for i, name in enumerate(CHANGE_COLUMNS) if name in ("event", "previous", "changed"))

#: the newest change of each (topic, subject): one probe of ``ix_change_event_subject`` per key, backwards
#: (a join on the keys: the plan cached for the prepared statement cannot degrade into a scan)
_NEWEST_PG = (
    "SELECT k.topic, k.subject, c.version, (c.event -> 'data')::text FROM unnest($1::text[], $2::text[]) AS k(topic, subject) "
    "CROSS JOIN LATERAL (SELECT version, event FROM change_event WHERE topic = k.topic AND subject = k.subject "
    "ORDER BY seq DESC LIMIT 1) AS c"
)
_ARRAY_TYPES = ("text", "text", "text", "text", "bigint", "timestamptz", "text", "jsonb", "jsonb", "jsonb", "timestamptz")
#: a batch of changes in one statement, numbered in the order given (``seq`` follows it)
_INSERT_PG = (
    f"INSERT INTO change_event ({', '.join(CHANGE_COLUMNS)}) SELECT {', '.join(CHANGE_COLUMNS)} FROM unnest("
    + ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_ARRAY_TYPES))
    + f") WITH ORDINALITY AS u({', '.join(CHANGE_COLUMNS)}, n) ORDER BY n"
)


#: the same as a part of a consumer's one statement (``{where}``: its guard), lighter to send: the JSON
#: columns as text arrays (cast by the server, not encoded one by one by the driver) and the time
#: recorded as one value
_PART_COLUMNS = CHANGE_COLUMNS[:-1]
_INSERT_PART = (
    f"INSERT INTO change_event ({', '.join(CHANGE_COLUMNS)}) SELECT "
    + ", ".join(f"{name}::jsonb" if i in _JSON_AT else name for i, name in enumerate(_PART_COLUMNS))
    + f", ${len(_PART_COLUMNS) + 1}::timestamptz FROM unnest("
    + ", ".join(f"${i + 1}::{'text' if i in _JSON_AT else t}[]" for i, t in enumerate(_ARRAY_TYPES[:-1]))
    + f") WITH ORDINALITY AS u({', '.join(_PART_COLUMNS)}, n) WHERE {{where}} ORDER BY n"
)


def insert_part(changes: Sequence[Change], where: str) -> tuple[list[str], list[Any]]:
    """The changes as a part of a consumer's one statement (PostgreSQL), and its parameters (the changes
    of one batch share their ``recorded_at``: the first one's is written)."""
    columns = [list(column) for column in zip(*changes, strict=True)]
    return [_INSERT_PART.format(where=where)], [*columns[:-1], changes[0][-1]]


async def newest_changes(session: AsyncSession, keys: Sequence[Key]) -> dict[Key, tuple[int, str]]:
    """The version and the data (JSON text) of the newest change of each (topic, subject) among ``keys``
    that has one (in the session's transaction: its own changes included)."""
    if not keys:
        return {}
    found: dict[Key, tuple[int, str]] = {}
    dialect = dialect_of(session)
    if dialect == "postgresql":
        driver = await driver_of(session)
        try:
            records = await driver.fetch(_NEWEST_PG, [t for t, _ in keys], [s for _, s in keys])
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            raise ConnectionError(f"the database connection failed: {exc!r}") from exc
        for topic, subject, version, data in records:
            found[(topic, subject)] = (int(version), data)
        return found
    for chunk in lookup_chunks(sorted({s for _, s in keys}), dialect):
        newest = (
            sa.select(sa.func.max(change_event.c.seq))
            .where(in_values(change_event.c.subject, chunk, dialect))
            .group_by(change_event.c.topic, change_event.c.subject)
        )
        rows = await session.execute(
            sa.select(change_event.c.topic, change_event.c.subject, change_event.c.version, change_event.c.event)
            .where(change_event.c.seq.in_(newest))
        )
        for topic, subject, version, event in rows:
            found[(topic, subject)] = (int(version), json_text(event["data"]))
    wanted = set(keys)
    return {k: v for k, v in found.items() if k in wanted}


#: how many subjects have changes, up to ``$1`` (an index-only scan of ``ix_change_event_subject``)
_SUBJECTS_PG = "SELECT count(*) FROM (SELECT DISTINCT topic, subject FROM change_event LIMIT $1) AS s"
#: the newest change of each (topic, subject), read backwards along ``ix_change_event_subject``
_ALL_NEWEST_PG = (
    "SELECT DISTINCT ON (topic, subject) topic, subject, version, (event -> 'data')::text FROM change_event "
    "ORDER BY topic DESC, subject DESC, seq DESC"
)


async def all_newest_changes(session: AsyncSession, *, at_most: int) -> dict[Key, tuple[int, str]] | None:
    """The version and the data (JSON text) of the newest change of every (topic, subject) of the feed, or
    None when more than ``at_most`` subjects have changes."""
    found: dict[Key, tuple[int, str]] = {}
    if dialect_of(session) == "postgresql":
        driver = await driver_of(session)
        try:
            if await driver.fetchval(_SUBJECTS_PG, at_most + 1) > at_most:
                return None
            records = await driver.fetch(_ALL_NEWEST_PG)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            raise ConnectionError(f"the database connection failed: {exc!r}") from exc
        for topic, subject, version, data in records:
            found[(topic, subject)] = (int(version), data)
    else:
        newest = (
            sa.select(sa.func.max(change_event.c.seq)).group_by(change_event.c.topic, change_event.c.subject).limit(at_most + 1)
        )
        rows = await session.execute(
            sa.select(change_event.c.topic, change_event.c.subject, change_event.c.version, change_event.c.event)
            .where(change_event.c.seq.in_(newest))
        )
        for topic, subject, version, event in rows:
            found[(topic, subject)] = (int(version), json_text(event["data"]))
    return found if len(found) <= at_most else None


async def add_changes(session: AsyncSession, changes: Sequence[Change], *, copy: bool) -> None:
    """Append changes to the feed, in the order given: on PostgreSQL by binary ``COPY`` (``copy``: a
    catch-up's large fetch) or in one statement."""
    if not changes:
        return
    if dialect_of(session) != "postgresql":
        rows = []
        for change in changes:
            values = list(change)
            for i in _JSON_AT:
                values[i] = None if values[i] is None else orjson.loads(values[i])
            rows.append(dict(zip(CHANGE_COLUMNS, values, strict=True)))
        await session.execute(change_event.insert(), rows)
        return
    if copy:
        await copy_records(session, change_event, CHANGE_COLUMNS, changes)
        return
    driver = await driver_of(session)
    try:
        await driver.execute(_INSERT_PG, *(list(column) for column in zip(*changes, strict=True)))
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
        raise ConnectionError(f"the database connection failed: {exc!r}") from exc


def json_text(value: Any) -> str:
    """``value`` as JSON text (orjson; the standard module for what orjson refuses, e.g. integers beyond
    64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False)


async def has_changes(session: AsyncSession) -> bool:
    return (await session.execute(sa.select(change_event.c.seq).limit(1))).first() is not None


def _visible(where: FeedFilter) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = []
    if not where.reader.grants:
        clauses.append(change_event.c.topic != TOPIC_GRANTS)
    elif where.reader.operator is not None:
        clauses.append(sa.or_(change_event.c.topic != TOPIC_GRANTS, change_event.c.operator == where.reader.operator))
    if where.types:
        clauses.append(change_event.c.type.in_(sorted(where.types)))
    if where.subject is not None:
        clauses.append(change_event.c.subject == where.subject)
    if where.since is not None:
        clauses.append(change_event.c.time >= where.since)
    return clauses


@dataclass(frozen=True)
class StoredChange:
    seq: int
    type: str
    event: dict[str, Any]
    previous: dict[str, Any] | None
    changed: list[str]


async def list_changes(session: AsyncSession, where: FeedFilter, *, after: int, limit: int) -> list[StoredChange]:
    """The changes after position ``after`` that ``where`` selects, in feed order (at most ``limit``)."""
    rows = await session.execute(
        sa.select(change_event.c.seq, change_event.c.type, change_event.c.event, change_event.c.previous, change_event.c.changed)
        .where(change_event.c.seq > after, *_visible(where))
        .order_by(change_event.c.seq)
        .limit(limit)
    )
    return [StoredChange(r.seq, r.type, r.event, r.previous, r.changed) for r in rows]


# --- webhook subscriptions -------------------------------------------------------------------------


async def get_subscription(session: AsyncSession, subscription_id: str, *, for_update: bool = False) -> dict[str, Any] | None:
    query = sa.select(webhook_subscription).where(webhook_subscription.c.id == subscription_id)
    if for_update and dialect_of(session) == "postgresql":
        query = query.with_for_update()
    row = (await session.execute(query)).mappings().first()
    return dict(row) if row is not None else None


async def insert_subscription(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(webhook_subscription.insert().values(**values))


async def update_subscription(session: AsyncSession, subscription_id: str, values: dict[str, Any]) -> None:
    await session.execute(webhook_subscription.update().where(webhook_subscription.c.id == subscription_id).values(**values))


async def delete_subscription(session: AsyncSession, subscription_id: str) -> None:
    await session.execute(webhook_delivery.delete().where(webhook_delivery.c.subscription_id == subscription_id))
    await session.execute(webhook_subscription.delete().where(webhook_subscription.c.id == subscription_id))


#: the active subscriptions, the earliest next attempt first (those without one first): the due ones lead
_BY_NEXT_ATTEMPT = (
    sa.select(webhook_subscription.c.id, webhook_subscription.c.next_attempt_at)
    .where(webhook_subscription.c.state == "active")
    .order_by(webhook_subscription.c.next_attempt_at.nulls_first(), webhook_subscription.c.id)
    .limit(sa.bindparam("limit"))
)


async def due_subscriptions(
    session: AsyncSession | AsyncConnection, now: datetime, *, limit: int
) -> tuple[list[str], datetime | None]:
    """The active subscriptions whose next attempt is due, oldest due first (``limit`` at most), and,
    when none is, the earliest retry scheduled (None: none is waiting) — one query."""
    rows = (await session.execute(_BY_NEXT_ATTEMPT, {"limit": limit})).all()
    due = [r.id for r in rows if r.next_attempt_at is None or r.next_attempt_at <= now]
    later = [r.next_attempt_at for r in rows if r.next_attempt_at is not None and r.next_attempt_at > now]
    return due, later[0] if later and not due else None


async def next_attempt_at(session: AsyncSession | AsyncConnection) -> datetime | None:
    """The earliest retry scheduled among the active subscriptions (None: no retry is waiting)."""
    c = webhook_subscription.c
    query = sa.select(sa.func.min(c.next_attempt_at)).where(c.state == "active", c.next_attempt_at.is_not(None))
    value: datetime | None = (await session.execute(query)).scalar_one()
    return value


async def claim_subscription(session: AsyncSession, subscription_id: str) -> dict[str, Any] | None:
    """The subscription, locked for its delivery (skipped when another process delivers it)."""
    query = sa.select(webhook_subscription).where(webhook_subscription.c.id == subscription_id, webhook_subscription.c.state == "active")
    if dialect_of(session) == "postgresql":
        query = query.with_for_update(skip_locked=True)
    row = (await session.execute(query)).mappings().first()
    return dict(row) if row is not None else None


async def add_delivery(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(webhook_delivery.insert().values(**values))


async def list_deliveries(session: AsyncSession, subscription_id: str, *, before: int | None, limit: int) -> list[dict[str, Any]]:
    """The subscription's delivery attempts, newest first."""
    c = webhook_delivery.c
    query = sa.select(webhook_delivery).where(c.subscription_id == subscription_id)
    if before is not None:
        query = query.where(c.id < before)
    rows = await session.execute(query.order_by(c.id.desc()).limit(limit))
    return [dict(r) for r in rows.mappings()]


async def position_before(session: AsyncSession, since: datetime) -> int:
    """The feed position just before the first change whose event time is ≥ ``since``."""
    first = (await session.execute(sa.select(sa.func.min(change_event.c.seq)).where(change_event.c.time >= since))).scalar()
    if first is None:
        return int((await session.execute(sa.select(sa.func.coalesce(sa.func.max(change_event.c.seq), 0)))).scalar_one())
    return int(first) - 1
