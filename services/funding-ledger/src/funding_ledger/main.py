"""The funding-ledger service: ``SPEC`` for the platform, ``create_app`` for uvicorn and tests."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from ti_shared.app import ConsumerSpec, ServiceSpec, create_service_app
from ti_shared.replica import TerritoryReplicaHandler
from ti_shared.settings import ServiceSettings

from funding_ledger.api import batch_router, catalogue_router, grant_router
from funding_ledger.events import EVENTS
from funding_ledger.repository import Repository
from funding_ledger.tables import metadata

SERVICE_DIR = Path(__file__).resolve().parents[2]

SPEC = ServiceSpec(
    name="funding-ledger",
    title="Territoires d'industrie – funding ledger",
    description=(
        "Grants of the partner operators (ADEME, Bpifrance, Banque des Territoires, ANCT): pushed one by one "
        "(PUT with the operator's own reference as natural key) or in batches (JSON or SCDL « subventions » CSV), "
        "with an append-only ledger of commitments, amendments, cancellations and disbursements. "
        "Every change is published on `ti.grants`."
    ),
    routers=[catalogue_router, grant_router, batch_router],
    metadata=metadata,
    migrations_dir=SERVICE_DIR / "migrations",
    schemas_dir=SERVICE_DIR / "events",
    events=EVENTS,
    repository=Repository,
    consumers=[
        ConsumerSpec(name="funding-ledger-territories", handler=TerritoryReplicaHandler, rebuild_when_empty=True)
    ],
    openapi_tags=[
        {"name": "catalogue", "description": "Operators and the programmes they run"},
        {"name": "grants", "description": "Grants, their disbursements and their ledger"},
        {"name": "batches", "description": "Batches of grants (JSON or SCDL CSV) with a per-row report"},
    ],
)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
