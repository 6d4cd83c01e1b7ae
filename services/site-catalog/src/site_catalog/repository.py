"""Every query of the site catalogue."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import ti_shared.service
from ti_shared.app import concurrent_write
from ti_shared.db import territory_replica
from ti_shared.replica import known_territories, locked_with_territory_known
from ti_shared.statements import Sql

from site_catalog.domain import Decision
from site_catalog.schemas import SiteImportReport, SiteResource, SiteVersionEntry
from site_catalog.tables import site, site_import, site_version


def _resource(row: Mapping[Any, Any]) -> SiteResource:
    return SiteResource(
        id=row["site_id"],
        name=row["name"],
        commune_insee=row["commune_insee"],
        territory_id=row["territory_id"],
        area_ha=row["area_ha"],
        maturity=row["maturity"],
        land_recycling=row["land_recycling"],
        labelled_on=row["labelled_on"],
        workshop_held=row["workshop_held"],
        roadmap_delivered=row["roadmap_delivered"],
        owner_kind=row["owner_kind"],
        status=row["status"],
        cnig=row["cnig"],
        departement_code=row["departement_code"],
        region_code=row["region_code"],
        version=row["version"],
        updated_at=row["updated_at"],
    )


def _row_values(resource: SiteResource) -> dict[str, Any]:
    return {
        "name": resource.name,
        "commune_insee": resource.commune_insee,
        "departement_code": resource.departement_code,
        "region_code": resource.region_code,
        "territory_id": resource.territory_id,
        "area_ha": resource.area_ha,
        "maturity": resource.maturity,
        "land_recycling": resource.land_recycling,
        "labelled_on": resource.labelled_on,
        "workshop_held": resource.workshop_held,
        "roadmap_delivered": resource.roadmap_delivered,
        "owner_kind": resource.owner_kind,
        "status": resource.status,
        "cnig": resource.cnig,
        "version": resource.version,
        "updated_at": resource.updated_at,
    }


_ROW_COLUMNS = [c.name for c in site.c]
# the write path's statements (prepared on PostgreSQL's driver; a PUT's writes go as one statement)
_GET = Sql(sa.select(site).where(site.c.site_id == sa.bindparam("site_id")))
_GET_FOR_UPDATE = Sql(sa.select(site).where(site.c.site_id == sa.bindparam("site_id")).with_for_update())
_GET_FOR_WRITE = locked_with_territory_known(site, "site_id")
_INSERT = Sql(site.insert(), column_keys=_ROW_COLUMNS)
_UPDATE = Sql(
    site.update().where(site.c.site_id == sa.bindparam("id"), site.c.version == sa.bindparam("replaced")),
    column_keys=[c for c in _ROW_COLUMNS if c not in ("site_id", "created_at")],
)
_ADD_VERSION = Sql(site_version.insert(), column_keys=["site_id", "version", "change", "changed_at", "actor", "data"])


@dataclass(frozen=True)
class SiteFilter:
    region_code: str | None = None
    departement_code: str | None = None
    maturity: str | None = None
    land_recycling: bool | None = None
    territory_id: str | None = None
    status: str | None = None


class Repository(ti_shared.service.Repository):
    """The sites, their versions, the reports of the imports and the replica's territories."""

    async def get_site(self, site_id: str, *, for_update: bool = False) -> SiteResource | None:
        row = await (_GET_FOR_UPDATE if for_update else _GET).fetchrow(self.session, site_id=site_id)
        return _resource(row) if row is not None else None

    async def get_site_for_write(self, site_id: str, territory_id: str | None) -> tuple[SiteResource | None, bool]:
        """The site ``site_id`` locked for a write (as ``get_site(for_update=True)``) and whether the
        replica knows ``territory_id`` (False for None): one statement (a write's lookup was a round
        trip of its own)."""
        row = await _GET_FOR_WRITE.fetchrow(self.session, site_id=site_id, territory_id=territory_id or "")
        if row is None:  # the statement answers one row whatever the site
            raise RuntimeError("the locking read answered no row")
        known = territory_id is not None and bool(row["territory_known"])
        return (_resource(row) if row["site_id"] is not None else None), known

    async def list_sites(self, where: SiteFilter, *, after: str | None, limit: int) -> list[SiteResource]:
        """Sites matching ``where``, ordered by id, after the id ``after``; at most ``limit``."""
        query = sa.select(site).order_by(site.c.site_id).limit(limit)
        for column, value in (
            (site.c.region_code, where.region_code),
            (site.c.departement_code, where.departement_code),
            (site.c.maturity, where.maturity),
            (site.c.land_recycling, where.land_recycling),
            (site.c.territory_id, where.territory_id),
            (site.c.status, where.status),
        ):
            if value is not None:
                query = query.where(column == value)
        if after is not None:
            query = query.where(site.c.site_id > after)
        rows = (await self.session.execute(query)).all()
        return [_resource(r._mapping) for r in rows]

    async def insert_site(self, resource: SiteResource) -> None:
        """A new site (another writer creating it first is a unique violation: 409)."""
        await _INSERT.defer(self.session, expect=1, site_id=resource.id, created_at=resource.updated_at, **_row_values(resource))

    async def update_site(self, resource: SiteResource) -> None:
        """Replace a site's state by its next version (409 when its version moved meanwhile)."""
        await _UPDATE.defer(
            self.session, expect=1, on_mismatch=concurrent_write, id=resource.id, replaced=resource.version - 1,
            **_row_values(resource),
        )

    async def add_site_version(self, decision: Decision, *, actor: str) -> None:
        resource = decision.entity
        await _ADD_VERSION.defer(
            self.session,
            expect=1,
            site_id=resource.id,
            version=resource.version,
            change=decision.change,
            changed_at=resource.updated_at,
            actor=actor,
            data=resource.model_dump(mode="json"),
        )

    async def list_site_versions(self, site_id: str, *, after: int | None, limit: int) -> list[SiteVersionEntry]:
        query = (
            sa.select(site_version)
            .where(site_version.c.site_id == site_id)
            .order_by(site_version.c.version)
            .limit(limit)
        )
        if after is not None:
            query = query.where(site_version.c.version > after)
        rows = (await self.session.execute(query)).all()
        return [
            SiteVersionEntry(
                version=r.version,
                change=r.change,
                changed_at=r.changed_at,
                actor=r.actor,
                site=SiteResource.model_validate(r.data),
            )
            for r in rows
        ]

    async def add_site_import(self, report: SiteImportReport) -> None:
        """The report of an applied import (``report.id`` is set)."""
        await self.session.execute(
            site_import.insert().values(
                import_id=report.id,
                mode=report.mode,
                actor=report.actor,
                imported_at=report.imported_at,
                report=report.model_dump(mode="json"),
            )
        )

    async def get_site_import(self, import_id: str) -> dict[str, Any] | None:
        query = sa.select(site_import.c.report).where(site_import.c.import_id == import_id)
        row = (await self.session.execute(query)).first()
        return dict(row.report) if row is not None else None

    async def known_territories(self, territory_ids: set[str]) -> set[str]:
        """Those of ``territory_ids`` the replica of ``ti.territories`` knows."""
        return set(await known_territories(self.session, territory_ids))

    async def territory_perimeters(self, territory_ids: set[str]) -> dict[str, dict[str, Any]]:
        """Those of ``territory_ids`` the replica knows: ``{id: {"departement_codes": […], "communes": […]}}``."""
        if not territory_ids:
            return {}
        rows = await self.session.execute(
            sa.select(territory_replica.c.territory_id, territory_replica.c.data).where(
                territory_replica.c.territory_id.in_(sorted(territory_ids))
            )
        )
        return {
            r.territory_id: {k: (r.data or {}).get(k) or [] for k in ("departement_codes", "communes")} for r in rows
        }
