"""The territory-registry service: its specification and application factory."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from ti_shared.app import ServiceSpec, create_service_app
from ti_shared.settings import ServiceSettings

from territory_registry.api import reference_router, router
from territory_registry.events import EVENTS
from territory_registry.repository import Repository
from territory_registry.tables import metadata

SERVICE_DIR = Path(__file__).resolve().parents[2]

SPEC = ServiceSpec(
    name="territory-registry",
    title="Territoires d'industrie — territory registry",
    description=(
        "The reference regions and départements (INSEE COG) and the labelled territories of the "
        "Territoires d'industrie programme, with their EPCIs, project lead and history. Every change is "
        "published on `ti.territories` (`fr.anct.ti.territory.registered|updated|withdrawn.v1`)."
    ),
    routers=[reference_router, router],
    metadata=metadata,
    migrations_dir=SERVICE_DIR / "migrations",
    events=EVENTS,
    repository=Repository,
    schemas_dir=SERVICE_DIR / "events",
    openapi_tags=[
        {"name": "reference", "description": "Regions and départements (INSEE COG)"},
        {"name": "territories", "description": "The labelled territories, their history and the import of ANCT's files"},
    ],
)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
