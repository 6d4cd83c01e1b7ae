"""The rules of the site catalogue, without I/O: derived geography, what a write changes, which event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ti_shared.service
from ti_shared.geo import departement_of_commune, region_of_departement

from site_catalog.schemas import Change, SiteBody, SiteResource

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


class Decision(ti_shared.service.Decision[Change, SiteResource]):
    """What writing a site does: nothing (``change`` None, ``entity`` the current site) or one new
    version (``entity``), published as ``site.<change>``."""


def change_of(previous_status: str | None, new_status: str) -> Change:
    """``labelled`` on creation, ``withdrawn`` when the status becomes withdrawn, else ``updated``."""
    if previous_status is None:
        return "labelled"
    if new_status == "withdrawn" and previous_status != "withdrawn":
        return "withdrawn"
    return "updated"


def decide_write(current: SiteResource | None, body: SiteBody, *, site_id: str, at: datetime) -> Decision:
    """The site after writing ``body`` as the site ``site_id`` at instant ``at`` (the current one, same
    version, when nothing changes)."""
    new = body_state(body)
    if current is not None:
        state = resource_state(current)
        changed = tuple(f for f in BODY_FIELDS if state[f] != new[f])
        if not changed:
            return Decision(None, current)
    else:
        changed = BODY_FIELDS
    departement, region = geography_of(body.commune_insee)
    resource = SiteResource(
        id=site_id,
        **new,
        departement_code=departement,
        region_code=region,
        version=1 if current is None else current.version + 1,
        updated_at=at,
    )
    return Decision(change_of(None if current is None else current.status, body.status), resource, changed)


def territory_to_check(current: SiteResource | None, body: SiteBody) -> str | None:
    """The territory id the replica must know: a newly given one (an unchanged one stays valid)."""
    if body.territory_id is None:
        return None
    if current is not None and current.territory_id == body.territory_id:
        return None
    return body.territory_id
