"""Every query of the site catalogue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from site_catalog.schemas import ChangeKind, SiteResource, SiteVersionEntry
from site_catalog.tables import site, site_import, site_version


def _resource(row: Any) -> SiteResource:
    return SiteResource(
        id=row.site_id,
        name=row.name,
        commune_insee=row.commune_insee,
        territory_id=row.territory_id,
        area_ha=row.area_ha,
        maturity=row.maturity,
        land_recycling=row.land_recycling,
        labelled_on=row.labelled_on,
        workshop_held=row.workshop_held,
        roadmap_delivered=row.roadmap_delivered,
        owner_kind=row.owner_kind,
        status=row.status,
        departement_code=row.departement_code,
        region_code=row.region_code,
        version=row.version,
        updated_at=row.updated_at,
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
        "version": resource.version,
        "updated_at": resource.updated_at,
    }


async def get_site(session: AsyncSession, site_id: str, *, for_update: bool = False) -> SiteResource | None:
    query = sa.select(site).where(site.c.site_id == site_id)
    if for_update and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return _resource(row) if row is not None else None


async def save_site(session: AsyncSession, resource: SiteResource, change: ChangeKind, actor: str) -> None:
    """Write the new version of a site and its history row (in the caller's transaction)."""
    values = _row_values(resource)
    if resource.version == 1:
        await session.execute(site.insert().values(site_id=resource.id, created_at=resource.updated_at, **values))
    else:
        await session.execute(site.update().where(site.c.site_id == resource.id).values(**values))
    await session.execute(
        site_version.insert().values(
            site_id=resource.id,
            version=resource.version,
            change=change,
            changed_at=resource.updated_at,
            actor=actor,
            data=resource.model_dump(mode="json"),
        )
    )


@dataclass(frozen=True)
class SiteFilter:
    region_code: str | None = None
    departement_code: str | None = None
    maturity: str | None = None
    land_recycling: bool | None = None
    territory_id: str | None = None
    status: str | None = None


async def list_sites(session: AsyncSession, where: SiteFilter, after: str | None, limit: int) -> list[SiteResource]:
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
    rows = (await session.execute(query)).all()
    return [_resource(r) for r in rows]


async def site_history(session: AsyncSession, site_id: str, after: int | None, limit: int) -> list[SiteVersionEntry]:
    query = (
        sa.select(site_version)
        .where(site_version.c.site_id == site_id)
        .order_by(site_version.c.version)
        .limit(limit)
    )
    if after is not None:
        query = query.where(site_version.c.version > after)
    rows = (await session.execute(query)).all()
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


async def save_import(session: AsyncSession, import_id: str, mode: str, actor: str, at: datetime, report: dict[str, Any]) -> None:
    await session.execute(
        site_import.insert().values(import_id=import_id, mode=mode, actor=actor, imported_at=at, report=report)
    )


async def get_import(session: AsyncSession, import_id: str) -> dict[str, Any] | None:
    row = (await session.execute(sa.select(site_import.c.report).where(site_import.c.import_id == import_id))).first()
    return dict(row.report) if row is not None else None
