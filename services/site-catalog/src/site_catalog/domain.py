"""The rules of the site catalogue, without I/O: derived geography, what a write changes, which event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ti_shared.geo import departement_of_commune, region_of_departement

from site_catalog.schemas import ChangeKind, SiteBody, SiteResource

#: the fields a client writes; a PUT changes the site when one of them differs
BODY_FIELDS: tuple[str, ...] = tuple(SiteBody.model_fields)


def geography_of(commune_insee: str) -> tuple[str, str]:
    """``(departement_code, region_code)`` of a valid commune code."""
    departement = departement_of_commune(commune_insee)
    region = region_of_departement(departement) if departement else None
    if departement is None or region is None:
        raise ValueError(f"no département or region matches the commune {commune_insee}")
    return departement, region


def body_state(body: SiteBody) -> dict[str, Any]:
    return {name: getattr(body, name) for name in BODY_FIELDS}


def resource_state(resource: SiteResource) -> dict[str, Any]:
    return {name: getattr(resource, name) for name in BODY_FIELDS}


@dataclass(frozen=True)
class SiteChange:
    """What a write does: nothing (``kind`` None) or a new version published as ``site.<kind>``."""

    kind: ChangeKind | None
    resource: SiteResource

    @property
    def changed(self) -> bool:
        return self.kind is not None


def change_kind(previous_status: str | None, new_status: str) -> ChangeKind:
    """``labelled`` on creation, ``withdrawn`` when the status becomes withdrawn, else ``updated``."""
    if previous_status is None:
        return "labelled"
    if new_status == "withdrawn" and previous_status != "withdrawn":
        return "withdrawn"
    return "updated"


def plan_write(site_id: str, current: SiteResource | None, body: SiteBody, at: datetime) -> SiteChange:
    """The site after writing ``body`` at instant ``at`` (same version when nothing changes)."""
    if current is not None and resource_state(current) == body_state(body):
        return SiteChange(None, current)
    departement, region = geography_of(body.commune_insee)
    resource = SiteResource(
        id=site_id,
        **body_state(body),
        departement_code=departement,
        region_code=region,
        version=1 if current is None else current.version + 1,
        updated_at=at,
    )
    return SiteChange(change_kind(None if current is None else current.status, body.status), resource)


def territory_to_check(current: SiteResource | None, body: SiteBody) -> str | None:
    """The territory id the replica must know: a newly given one (an unchanged one stays valid)."""
    if body.territory_id is None:
        return None
    if current is not None and current.territory_id == body.territory_id:
        return None
    return body.territory_id
