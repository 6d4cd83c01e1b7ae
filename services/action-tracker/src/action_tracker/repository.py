"""Every query of the action-tracker."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.db import dialect_of, territory_replica
from ti_shared.events import format_instant
from ti_shared.types import format_decimal

from action_tracker.tables import action, action_theme, action_version


@dataclass(frozen=True)
class StoredAction:
    """An action as stored: its canonical body (JSON form) and its bookkeeping."""

    action_id: str
    body: dict[str, Any]
    version: int
    deleted: bool
    created_at: datetime
    updated_at: datetime

    @property
    def territory_id(self) -> str:
        return str(self.body["territory_id"])

    def resource(self) -> dict[str, Any]:
        """The representation of GET and of the events' ``data``."""
        return {
            "id": self.action_id,
            **self.body,
            "version": self.version,
            "updated_at": format_instant(self.updated_at),
            "deleted": self.deleted,
        }

    def next_version(self, body: dict[str, Any], *, deleted: bool, at: datetime) -> StoredAction:
        return replace(self, body=body, version=self.version + 1, deleted=deleted, updated_at=at)


def _body_of(row: Any) -> dict[str, Any]:
    budget = row.budget_eur
    return {
        "territory_id": row.territory_id,
        "title": row.title,
        "description": row.description,
        "axis": row.axis,
        "themes": list(row.themes or []),
        "status": row.status,
        "planned_start": row.planned_start.isoformat() if row.planned_start else None,
        "planned_end": row.planned_end.isoformat() if row.planned_end else None,
        "budget_eur": format_decimal(Decimal(str(budget))) if budget is not None else None,
        "partners": list(row.partners or []),
    }


def _stored_of(row: Any) -> StoredAction:
    return StoredAction(
        action_id=row.action_id,
        body=_body_of(row),
        version=int(row.version),
        deleted=bool(row.deleted),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _columns_of(stored: StoredAction) -> dict[str, Any]:
    body = stored.body
    return {
        "territory_id": body["territory_id"],
        "title": body["title"],
        "description": body["description"],
        "axis": body["axis"],
        "themes": list(body["themes"]),
        "status": body["status"],
        "planned_start": date.fromisoformat(body["planned_start"]) if body["planned_start"] else None,
        "planned_end": date.fromisoformat(body["planned_end"]) if body["planned_end"] else None,
        "budget_eur": Decimal(body["budget_eur"]) if body["budget_eur"] is not None else None,
        "partners": list(body["partners"]),
        "deleted": stored.deleted,
        "version": stored.version,
        "created_at": stored.created_at,
        "updated_at": stored.updated_at,
    }


def _lock(session: AsyncSession, query: sa.Select[Any]) -> sa.Select[Any]:
    return query.with_for_update() if dialect_of(session) == "postgresql" else query


async def load_action(session: AsyncSession, action_id: str, *, for_update: bool = False) -> StoredAction | None:
    query = sa.select(action).where(action.c.action_id == action_id)
    row = (await session.execute(_lock(session, query) if for_update else query)).first()
    return _stored_of(row) if row is not None else None


async def load_actions(
    session: AsyncSession, action_ids: Iterable[str], *, for_update: bool = False
) -> dict[str, StoredAction]:
    ids = sorted(set(action_ids))
    out: dict[str, StoredAction] = {}
    for i in range(0, len(ids), 500):
        query = sa.select(action).where(action.c.action_id.in_(ids[i : i + 500])).order_by(action.c.action_id)
        for row in await session.execute(_lock(session, query) if for_update else query):
            out[row.action_id] = _stored_of(row)
    return out


async def load_territory_actions(
    session: AsyncSession, territory_id: str, *, for_update: bool = False
) -> list[StoredAction]:
    """The live actions of a territory's plan."""
    query = (
        sa.select(action)
        .where(action.c.territory_id == territory_id, action.c.deleted.is_(False))
        .order_by(action.c.action_id)
    )
    rows = await session.execute(_lock(session, query) if for_update else query)
    return [_stored_of(r) for r in rows]


async def save_action(session: AsyncSession, stored: StoredAction, *, is_new: bool) -> None:
    """Insert or update the action's row and its theme rows."""
    values = _columns_of(stored)
    if is_new:
        await session.execute(action.insert().values(action_id=stored.action_id, **values))
    else:
        await session.execute(action.update().where(action.c.action_id == stored.action_id).values(**values))
    await session.execute(action_theme.delete().where(action_theme.c.action_id == stored.action_id))
    if stored.body["themes"]:
        await session.execute(
            action_theme.insert(), [{"action_id": stored.action_id, "theme": t} for t in stored.body["themes"]]
        )


async def add_version(
    session: AsyncSession,
    stored: StoredAction,
    *,
    change: str,
    actor: str,
    changed_fields: Iterable[str],
    comment: str | None,
) -> None:
    await session.execute(
        action_version.insert().values(
            action_id=stored.action_id,
            version=stored.version,
            change=change,
            recorded_at=stored.updated_at,
            actor=actor,
            changed_fields=list(changed_fields),
            comment=comment,
            state=stored.resource(),
        )
    )


@dataclass(frozen=True)
class ActionFilter:
    territory_id: str | None = None
    region_code: str | None = None
    axis: str | None = None
    theme: str | None = None
    status: str | None = None


async def list_actions(
    session: AsyncSession, where: ActionFilter, *, limit: int, after: str | None
) -> list[StoredAction]:
    """Live actions matching ``where``, by id, after the id ``after``; at most ``limit``."""
    query = sa.select(action).where(action.c.deleted.is_(False))
    if where.territory_id is not None:
        query = query.where(action.c.territory_id == where.territory_id)
    if where.region_code is not None:
        in_region = sa.select(territory_replica.c.territory_id).where(
            territory_replica.c.region_code == where.region_code
        )
        query = query.where(action.c.territory_id.in_(in_region))
    if where.axis is not None:
        query = query.where(action.c.axis == where.axis)
    if where.status is not None:
        query = query.where(action.c.status == where.status)
    if where.theme is not None:
        with_theme = sa.select(action_theme.c.action_id).where(action_theme.c.theme == where.theme)
        query = query.where(action.c.action_id.in_(with_theme))
    if after is not None:
        query = query.where(action.c.action_id > after)
    rows = await session.execute(query.order_by(action.c.action_id).limit(limit))
    return [_stored_of(r) for r in rows]


@dataclass(frozen=True)
class StoredVersion:
    version: int
    change: str
    recorded_at: datetime
    actor: str
    changed_fields: list[str]
    comment: str | None
    state: dict[str, Any]


async def list_versions(session: AsyncSession, action_id: str, *, limit: int, after: int | None) -> list[StoredVersion]:
    query = sa.select(action_version).where(action_version.c.action_id == action_id)
    if after is not None:
        query = query.where(action_version.c.version > after)
    rows = await session.execute(query.order_by(action_version.c.version).limit(limit))
    return [
        StoredVersion(
            version=int(r.version),
            change=r.change,
            recorded_at=r.recorded_at,
            actor=r.actor,
            changed_fields=list(r.changed_fields or []),
            comment=r.comment,
            state=dict(r.state),
        )
        for r in rows
    ]


async def action_ever_existed(session: AsyncSession, action_id: str) -> bool:
    row = await session.execute(sa.select(action.c.action_id).where(action.c.action_id == action_id))
    return row.first() is not None
