"""The in-memory repository of the service functions' unit tests (docs/conventions.md, « Tests »)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from site_catalog.domain import Decision
from site_catalog.repository import Repository, SiteFilter
from site_catalog.schemas import SiteImportReport, SiteResource, SiteVersionEntry
from ti_shared.fakes import NO_SESSION

#: the territories the replica knows in the unit tests
TERRITORIES = ("ti-9303", "ti-8402")


class FakeRepository(Repository):
    """The sites by id, their versions by (id, version), the applied imports' reports by id, and the
    replica's territories."""

    def __init__(self, *sites: SiteResource, territories: Iterable[str] = TERRITORIES) -> None:
        super().__init__(NO_SESSION)
        self.sites = {s.id: s for s in sites}
        self.versions: dict[tuple[str, int], SiteVersionEntry] = {}
        self.imports: dict[str, dict[str, Any]] = {}
        self.territories = set(territories)

    async def get_site(self, site_id: str, *, for_update: bool = False) -> SiteResource | None:
        return self.sites.get(site_id)

    async def get_site_for_write(self, site_id: str, territory_id: str | None) -> tuple[SiteResource | None, bool]:
        return self.sites.get(site_id), territory_id is not None and territory_id in self.territories

    async def list_sites(self, where: SiteFilter, *, after: str | None, limit: int) -> list[SiteResource]:
        found = [
            s
            for _, s in sorted(self.sites.items())
            if (after is None or s.id > after)
            and where.region_code in (None, s.region_code)
            and where.departement_code in (None, s.departement_code)
            and where.maturity in (None, s.maturity)
            and where.land_recycling in (None, s.land_recycling)
            and where.territory_id in (None, s.territory_id)
            and where.status in (None, s.status)
        ]
        return found[:limit]

    async def insert_site(self, resource: SiteResource) -> None:
        assert resource.id not in self.sites, "a duplicate key: the real table refuses it"
        self.sites[resource.id] = resource

    async def update_site(self, resource: SiteResource) -> None:
        assert resource.id in self.sites, "no row to update"
        self.sites[resource.id] = resource

    async def add_site_version(self, decision: Decision, *, actor: str) -> None:
        resource, change = decision.entity, decision.change
        assert change is not None and (resource.id, resource.version) not in self.versions
        self.versions[(resource.id, resource.version)] = SiteVersionEntry(
            version=resource.version, change=change, changed_at=resource.updated_at, actor=actor, site=resource
        )

    async def list_site_versions(self, site_id: str, *, after: int | None, limit: int) -> list[SiteVersionEntry]:
        return [v for (i, n), v in sorted(self.versions.items()) if i == site_id and (after is None or n > after)][:limit]

    async def add_site_import(self, report: SiteImportReport) -> None:
        assert report.id is not None and report.id not in self.imports
        self.imports[report.id] = report.model_dump(mode="json")

    async def get_site_import(self, import_id: str) -> dict[str, Any] | None:
        return self.imports.get(import_id)

    async def known_territories(self, territory_ids: set[str]) -> set[str]:
        return territory_ids & self.territories

    async def territory_perimeters(self, territory_ids: set[str]) -> dict[str, dict[str, Any]]:
        return {t: {"departement_codes": [], "communes": []} for t in territory_ids & self.territories}
