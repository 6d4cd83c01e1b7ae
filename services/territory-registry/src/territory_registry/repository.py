"""Every query of the registry."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import ti_shared.service
from ti_shared.app import concurrent_write
from ti_shared.db import dialect_of
from ti_shared.statements import Sql

from territory_registry.domain import Decision
from territory_registry.events import EVENT_OF_CHANGE
from territory_registry.schemas import Territory, TerritoryStatus, TerritoryVersion
from territory_registry.tables import territory, territory_version

_RESOURCE_COLUMNS = [c for c in territory.c if c.name != "updated_by"]
_ROW_COLUMNS = [c.name for c in territory.c]

# the write path's statements (prepared on PostgreSQL's driver; the three writes go as one statement)
_GET = Sql(sa.select(*_RESOURCE_COLUMNS).where(territory.c.id == sa.bindparam("territory_id")))
_GET_FOR_UPDATE = Sql(sa.select(*_RESOURCE_COLUMNS).where(territory.c.id == sa.bindparam("territory_id")).with_for_update())
_INSERT = Sql(territory.insert(), column_keys=_ROW_COLUMNS)
_UPDATE = Sql(
    territory.update().where(territory.c.id == sa.bindparam("territory_id"), territory.c.version == sa.bindparam("replaced")),
    column_keys=[c for c in _ROW_COLUMNS if c != "id"],
)
_ADD_VERSION = Sql(
    territory_version.insert(),
    column_keys=["territory_id", "version", "change", "changed_fields", "state", "actor", "effective_at", "recorded_at"],
)


def _territory_of(row: sa.Row[Any]) -> Territory:
    return Territory.model_validate(dict(row._mapping))


def _row_values(resource: Territory, actor: str, state: dict[str, Any]) -> dict[str, Any]:
    values = dict(state)
    values.update(
        labelled_on=resource.labelled_on,
        launch_copil_held_on=resource.launch_copil_held_on,
        updated_at=resource.updated_at,
        updated_by=actor,
    )
    return values


class Repository(ti_shared.service.Repository):
    """The territories and their versions."""

    _dumped: tuple[Territory, dict[str, Any]] | None = None

    def _state_of(self, resource: Territory) -> dict[str, Any]:
        """The JSON form of ``resource``, dumped once for its row and its history row."""
        if self._dumped is None or self._dumped[0] is not resource:
            self._dumped = (resource, resource.model_dump(mode="json"))
        return self._dumped[1]

    def _locking(self, query: sa.Select[Any]) -> sa.Select[Any]:
        return query.with_for_update() if dialect_of(self.session) == "postgresql" else query

    async def get_territory(self, territory_id: str, *, for_update: bool = False) -> Territory | None:
        row = await (_GET_FOR_UPDATE if for_update else _GET).fetchrow(self.session, territory_id=territory_id)
        return Territory.model_validate(row) if row is not None else None

    async def get_territories(self, ids: Iterable[str], *, for_update: bool = False) -> dict[str, Territory]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        query = sa.select(*_RESOURCE_COLUMNS).where(territory.c.id.in_(wanted)).order_by(territory.c.id)
        if for_update:
            query = self._locking(query)
        return {t.id: t for t in map(_territory_of, (await self.session.execute(query)).all())}

    async def list_territories(
        self, *, region_code: str | None, status: TerritoryStatus | None, after: str | None, limit: int
    ) -> list[Territory]:
        query = sa.select(*_RESOURCE_COLUMNS).order_by(territory.c.id).limit(limit)
        if region_code is not None:
            query = query.where(territory.c.region_code == region_code)
        if status is not None:
            query = query.where(territory.c.status == status)
        if after is not None:
            query = query.where(territory.c.id > after)
        return [_territory_of(r) for r in (await self.session.execute(query)).all()]

    async def insert_territory(self, resource: Territory, *, actor: str) -> None:
        """A new territory (another writer creating it first is a unique violation: 409)."""
        await _INSERT.defer(self.session, expect=1, **_row_values(resource, actor, self._state_of(resource)))

    async def update_territory(self, resource: Territory, *, actor: str) -> None:
        """Replace a territory's state by its next version (409 when its version moved meanwhile)."""
        values = _row_values(resource, actor, self._state_of(resource))
        await _UPDATE.defer(
            self.session, expect=1, on_mismatch=concurrent_write, territory_id=values.pop("id"),
            replaced=resource.version - 1, **values,
        )

    async def add_territory_version(self, decision: Decision, *, actor: str, recorded_at: datetime) -> None:
        resource = decision.entity
        await _ADD_VERSION.defer(
            self.session,
            expect=1,
            territory_id=resource.id,
            version=resource.version,
            change=decision.change,
            changed_fields=list(decision.changed_fields),
            state=self._state_of(resource),
            actor=actor,
            effective_at=resource.updated_at,
            recorded_at=recorded_at,
        )

    async def list_territory_versions(self, territory_id: str, *, after: int | None, limit: int) -> list[TerritoryVersion]:
        query = (
            sa.select(territory_version)
            .where(territory_version.c.territory_id == territory_id)
            .order_by(territory_version.c.version)
            .limit(limit)
        )
        if after is not None:
            query = query.where(territory_version.c.version > after)
        return [
            TerritoryVersion(
                version=row.version,
                change=row.change,
                event_type=EVENT_OF_CHANGE[row.change].type,
                time=row.effective_at,
                recorded_at=row.recorded_at,
                actor=row.actor,
                changed_fields=list(row.changed_fields),
                state=Territory.model_validate(row.state),
            )
            for row in (await self.session.execute(query)).all()
        ]
