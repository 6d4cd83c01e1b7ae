"""Every query of the registry."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.db import dialect_of, upsert

from territory_registry.domain import PlannedChange
from territory_registry.events import TYPE_OF_CHANGE
from territory_registry.schemas import Territory, TerritoryVersion
from territory_registry.tables import territory, territory_version

_RESOURCE_COLUMNS = [c for c in territory.c if c.name != "updated_by"]


def _territory_of(row: sa.Row[Any]) -> Territory:
    return Territory.model_validate(dict(row._mapping))


def _locking(session: AsyncSession, query: sa.Select[Any]) -> sa.Select[Any]:
    return query.with_for_update() if dialect_of(session) == "postgresql" else query


async def get_territory(session: AsyncSession, territory_id: str, *, for_update: bool = False) -> Territory | None:
    query = sa.select(*_RESOURCE_COLUMNS).where(territory.c.id == territory_id)
    if for_update:
        query = _locking(session, query)
    row = (await session.execute(query)).first()
    return _territory_of(row) if row is not None else None


async def get_territories(session: AsyncSession, ids: Iterable[str], *, for_update: bool = False) -> dict[str, Territory]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    query = sa.select(*_RESOURCE_COLUMNS).where(territory.c.id.in_(wanted)).order_by(territory.c.id)
    if for_update:
        query = _locking(session, query)
    return {t.id: t for t in map(_territory_of, (await session.execute(query)).all())}


async def list_territories(
    session: AsyncSession, *, region_code: str | None, status: str | None, after: str | None, limit: int
) -> list[Territory]:
    query = sa.select(*_RESOURCE_COLUMNS).order_by(territory.c.id).limit(limit)
    if region_code is not None:
        query = query.where(territory.c.region_code == region_code)
    if status is not None:
        query = query.where(territory.c.status == status)
    if after is not None:
        query = query.where(territory.c.id > after)
    return [_territory_of(r) for r in (await session.execute(query)).all()]


def _row_values(resource: Territory, actor: str) -> dict[str, Any]:
    values = resource.model_dump(mode="json")
    values.update(
        labelled_on=resource.labelled_on,
        launch_copil_held_on=resource.launch_copil_held_on,
        updated_at=resource.updated_at,
        updated_by=actor,
    )
    return values


async def insert_territory(session: AsyncSession, resource: Territory, actor: str) -> bool:
    """Insert a new territory; False when another writer created it first."""
    statement = upsert(dialect_of(session), territory).values(**_row_values(resource, actor)).on_conflict_do_nothing()
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


async def update_territory(session: AsyncSession, resource: Territory, actor: str, *, previous_version: int) -> bool:
    """Replace a territory's state; False when its version is no longer ``previous_version``."""
    values = _row_values(resource, actor)
    values.pop("id")
    result = await session.execute(
        territory.update()
        .where(territory.c.id == resource.id, territory.c.version == previous_version)
        .values(**values)
    )
    return bool(getattr(result, "rowcount", 0))


async def add_version(
    session: AsyncSession,
    resource: Territory,
    planned: PlannedChange,
    *,
    actor: str,
    recorded_at: datetime,
) -> None:
    await session.execute(
        territory_version.insert().values(
            territory_id=resource.id,
            version=resource.version,
            change=planned.change,
            changed_fields=planned.changed_fields,
            state=resource.model_dump(mode="json"),
            actor=actor,
            effective_at=resource.updated_at,
            recorded_at=recorded_at,
        )
    )


async def list_versions(
    session: AsyncSession, territory_id: str, *, after: int | None, limit: int
) -> list[TerritoryVersion]:
    query = (
        sa.select(territory_version)
        .where(territory_version.c.territory_id == territory_id)
        .order_by(territory_version.c.version)
        .limit(limit)
    )
    if after is not None:
        query = query.where(territory_version.c.version > after)
    out = []
    for row in (await session.execute(query)).all():
        out.append(
            TerritoryVersion(
                version=row.version,
                change=row.change,
                event_type=TYPE_OF_CHANGE[row.change],
                time=row.effective_at,
                recorded_at=row.recorded_at,
                actor=row.actor,
                changed_fields=list(row.changed_fields),
                state=Territory.model_validate(row.state),
            )
        )
    return out
