"""The in-memory repository of the service functions' unit tests (docs/conventions.md, « Tests »)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from territory_registry.domain import Decision
from territory_registry.events import EVENT_OF_CHANGE
from territory_registry.repository import Repository
from territory_registry.schemas import Territory, TerritoryStatus, TerritoryVersion
from ti_shared.fakes import NO_SESSION


class FakeRepository(Repository):
    """The territories by id and their versions by (id, version), as the tables key them."""

    def __init__(self, *territories: Territory) -> None:
        super().__init__(NO_SESSION)
        self.territories = {t.id: t for t in territories}
        self.versions: dict[tuple[str, int], TerritoryVersion] = {}
        #: the actor of each territory's last write (the row's updated_by)
        self.updated_by: dict[str, str] = {}

    async def get_territory(self, territory_id: str, *, for_update: bool = False) -> Territory | None:
        return self.territories.get(territory_id)

    async def get_territories(self, ids: Iterable[str], *, for_update: bool = False) -> dict[str, Territory]:
        return {i: self.territories[i] for i in sorted(set(ids)) if i in self.territories}

    async def list_territories(
        self, *, region_code: str | None, status: TerritoryStatus | None, after: str | None, limit: int
    ) -> list[Territory]:
        found = [
            t
            for _, t in sorted(self.territories.items())
            if (region_code is None or t.region_code == region_code)
            and (status is None or t.status == status)
            and (after is None or t.id > after)
        ]
        return found[:limit]

    async def insert_territory(self, resource: Territory, *, actor: str) -> None:
        assert resource.id not in self.territories, "a duplicate key: the real table refuses it"
        self.territories[resource.id] = resource
        self.updated_by[resource.id] = actor

    async def update_territory(self, resource: Territory, *, actor: str) -> None:
        current = self.territories.get(resource.id)
        assert current is not None and current.version == resource.version - 1, "no row of the previous version"
        self.territories[resource.id] = resource
        self.updated_by[resource.id] = actor

    async def add_territory_version(self, decision: Decision, *, actor: str, recorded_at: datetime) -> None:
        resource, change = decision.entity, decision.change
        assert change is not None and (resource.id, resource.version) not in self.versions
        self.versions[(resource.id, resource.version)] = TerritoryVersion(
            version=resource.version,
            change=change,
            event_type=EVENT_OF_CHANGE[change].type,
            time=resource.updated_at,
            recorded_at=recorded_at,
            actor=actor,
            changed_fields=list(decision.changed_fields),
            state=resource,
        )

    async def list_territory_versions(self, territory_id: str, *, after: int | None, limit: int) -> list[TerritoryVersion]:
        found = [v for (i, n), v in sorted(self.versions.items()) if i == territory_id and (after is None or n > after)]
        return found[:limit]
