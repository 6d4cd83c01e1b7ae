"""The site-catalog service: ``SPEC`` for the platform, ``create_app`` for a server."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from ti_shared.app import ConsumerSpec, ServiceSpec, create_service_app
from ti_shared.replica import TerritoryReplicaHandler
from ti_shared.settings import ServiceSettings

from site_catalog.api import router
from site_catalog.events import EVENTS
from site_catalog.repository import Repository
from site_catalog.tables import metadata

SERVICE_DIR = Path(__file__).resolve().parents[2]

SPEC = ServiceSpec(
    name="site-catalog",
    title="Territoires d'industrie — site catalogue",
    description="The industrial sites (sites clés en main) of the programme: each site with its commune, territory, "
    "surface, maturity and label status. Every change is published on `ti.sites`; reads are public open data.",
    routers=[router],
    metadata=metadata,
    migrations_dir=SERVICE_DIR / "migrations",
    events=EVENTS,
    repository=Repository,
    consumers=[ConsumerSpec(name="site-catalog.territories", handler=TerritoryReplicaHandler, rebuild_when_empty=True)],
    openapi_tags=[{"name": "sites", "description": "Sites clés en main (CONTRACT §4)"}],
    schemas_dir=SERVICE_DIR / "events",
)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
