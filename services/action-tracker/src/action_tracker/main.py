"""The action-tracker service: ``SPEC`` for the platform, ``create_app`` for servers and tests."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from ti_shared.app import ConsumerSpec, ServiceSpec, create_service_app
from ti_shared.replica import TerritoryReplicaHandler
from ti_shared.settings import ServiceSettings

from action_tracker.api import router
from action_tracker.events import EVENTS
from action_tracker.repository import Repository
from action_tracker.tables import metadata

SERVICE_DIR = Path(__file__).resolve().parents[2]

SPEC = ServiceSpec(
    name="action-tracker",
    title="Territoires d'industrie — action plans",
    description=(
        "The territories' action plans: actions under stable ids, their status history, and the semester "
        "plan imports (CSV/XLSX). Every change is published on `ti.actions`. Reads are public; writes need "
        "`actions:write` for the territories of the token's `ti_territories` (or `admin`)."
    ),
    routers=[router],
    metadata=metadata,
    migrations_dir=SERVICE_DIR / "migrations",
    schemas_dir=SERVICE_DIR / "events",
    events=EVENTS,
    repository=Repository,
    consumers=[
        ConsumerSpec(name="action-tracker.territories", handler=TerritoryReplicaHandler, rebuild_when_empty=True)
    ],
    openapi_tags=[{"name": "actions", "description": "Actions of the territories' plans"}],
)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
