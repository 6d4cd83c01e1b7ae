"""The reporting service: projections of the four domain topics and materialised indicators."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI
from ti_shared.app import ConsumerSpec, ServiceContext, ServiceSpec, create_service_app
from ti_shared.settings import ServiceSettings

from reporting import reads
from reporting.api import router
from reporting.dashboard.routes import reports_router
from reporting.dashboard.routes import router as dashboard_router
from reporting.editions.api import router as editions_router
from reporting.events import EVENTS
from reporting.fastpath import CachedIndicators
from reporting.feed import handler as feed
from reporting.feed.api import router as feed_router
from reporting.feed.delivery import deliver_webhooks
from reporting.feed.handler import FEED_CONSUMER, ChangeFeed
from reporting.feed.subscriptions import router as subscriptions_router
from reporting.projection import BATCH_SIZE, WINDOW_EVENTS, WINDOW_S, ReportingProjection
from reporting.quality.api import router as quality_router
from reporting.rebuild import LIVE_CONSUMER
from reporting.repository import generations
from reporting.tables import metadata

_ROOT = Path(__file__).resolve().parents[2]
#: the projection's and the change feed's consumers read the same events: one fetch and one decoding
DOMAIN_SOURCE = "reporting-domain"


async def close_interrupted_rebuilds(ctx: ServiceContext) -> None:
    """A rebuild left running by a stopped process will never finish: mark it failed."""
    async with ctx.db.session() as session:
        run = await generations.latest_run(session)
        if run is not None and run["state"] == "running":
            await generations.update_run(
                session, run["generation"], state="failed", finished_at=datetime.now(UTC), error="interrupted"
            )
            await generations.forget_consumer(session, f"reporting-rebuild-{run['generation']}")
            await generations.delete_generation(session, run["generation"])
            await session.commit()


SPEC = ServiceSpec(
    name="reporting",
    title="Territoires d'industrie — reporting",
    description=(
        "National, regional and per-territory indicators of the programme, computed continuously from the "
        "events of the territory registry, action tracker, funding ledger and site catalogue; as of any "
        "past date; exports; rebuild from the event log."
    ),
    routers=[router, reports_router, editions_router, quality_router, feed_router, subscriptions_router, dashboard_router],
    metadata=metadata,
    migrations_dir=_ROOT / "migrations",
    events=EVENTS,
    consumers=[
        ConsumerSpec(
            name=LIVE_CONSUMER, handler=ReportingProjection, batch_size=BATCH_SIZE,
            window_events=WINDOW_EVENTS, window_s=WINDOW_S, shared_source=DOMAIN_SOURCE,
        ),
        ConsumerSpec(
            name=FEED_CONSUMER, handler=ChangeFeed, rebuild_when_empty=True, batch_size=feed.BATCH_SIZE,
            window_events=feed.WINDOW_EVENTS, window_s=feed.WINDOW_S, shared_source=DOMAIN_SOURCE,
        ),
    ],
    openapi_tags=[
        {"name": "indicators", "description": "Indicators of CONTRACT §6"},
        {"name": "reports", "description": "The Bilan of a scope at an instant, generated from the indicators"},
        {"name": "quality", "description": "Data quality per territory, over the same states as the indicators"},
        {"name": "changes", "description": "The change feed of every entity (CONTRACT §8), for reusers that stay in sync"},
    ],
    on_startup=[reads.install, close_interrupted_rebuilds],
    schemas_dir=_ROOT / "events",
    middleware=[CachedIndicators],
    background=[deliver_webhooks],
)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
