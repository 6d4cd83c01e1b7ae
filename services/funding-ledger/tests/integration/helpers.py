"""Fixtures' building blocks: a fresh database and topic prefix per test, the app running on them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from funding_ledger.domain import ledger_problems
from funding_ledger.main import create_app
from funding_ledger.repository import GrantFilter, Repository
from ti_shared.bus import make_source
from ti_shared.db import Database
from ti_shared.events import TOPIC_GRANTS
from ti_shared.settings import PlatformSettings
from ti_shared.testing import (
    bearer,
    create_database,
    create_topics,
    drop_database,
    new_topic_prefix,
    platform_settings,
    publish_events,
    running,
    service_settings,
    territory_event,
    wait_until,
)

GRANT = {
    "programme": "fonds_vert_ti_te",
    "beneficiary": {"name": "AEROMETAL", "siret": "73282932000074", "rna": None, "kind": "entreprise"},
    "territory_id": "ti-2705",
    "commune_insee": "71076",
    "action_id": None,
    "object": "Recyclage de métaux stratégiques",
    "amount_eur": "1500000.00",
    "investment_eur": "4800000.00",
    "decision_date": "2024-06-12",
    "jobs_forecast": 12,
    "jobs_conditional": 6,
    "contributions": ["climate_mitigation", "circular_economy"],
    "value_chain": "economie_circulaire",
    "status": "committed",
}


@dataclass
class Service:
    client: httpx.AsyncClient
    platform: PlatformSettings
    url: str

    def token(self, operator: str | None = "ADEME", *scopes: str, sub: str | None = None) -> dict[str, str]:
        return bearer(
            self.platform,
            sub or f"{(operator or 'admin').lower()}-push",
            *(scopes or ("grants:write",)),
            operator=operator,
        )

    @property
    def admin(self) -> dict[str, str]:
        return bearer(self.platform, "anct-admin", "admin")

    async def grant_events(self, expected: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        """Exactly the events published on ti.grants once ``expected`` arrived (and nothing more shortly after)."""
        source = make_source(self.platform, "test-reader")
        await source.start([TOPIC_GRANTS], {})
        events: list[dict[str, Any]] = []
        try:

            async def enough() -> bool:
                events.extend(json.loads(m.value) for m in await source.fetch(1000, 0.2))
                return len(events) >= expected

            await wait_until(enough, timeout_s)
            events.extend(json.loads(m.value) for m in await source.fetch(1000, 0.5))
        finally:
            await source.stop()
        return events

    async def ledger_problems(self) -> dict[str, list[str]]:
        """Every grant whose ledger does not balance, with the reasons."""
        db = Database(self.url)
        try:
            async with db.read_session() as session:
                repo = Repository(session)
                grants = await repo.list_grants(GrantFilter(), after=None, limit=100_000)
                entries = await repo.get_ledgers()
        finally:
            await db.dispose()
        out = {}
        for g in grants:
            problems = ledger_problems(g, entries.get((g.operator, g.operator_ref), []))
            if problems:
                out[g.id] = problems
        return out

    async def count(self, table: str) -> int:
        db = Database(self.url)
        try:
            async with db.read_session() as session:
                from sqlalchemy import text

                return int((await session.execute(text(f'SELECT count(*) FROM "{table}"'))).scalar_one())
        finally:
            await db.dispose()


@asynccontextmanager
async def service(territories: tuple[str, ...] = ("ti-2705", "ti-8402")) -> AsyncIterator[Service]:
    url = await create_database("fl")
    prefix = new_topic_prefix()
    await create_topics(prefix)
    platform = platform_settings(topic_prefix=prefix)
    try:
        if territories:
            await publish_events(platform, [territory_event(t, t[3:5]) for t in territories])
        app = create_app(service_settings("funding-ledger", url, platform))
        async with running(app) as client:
            s = Service(client, platform, url)
            if territories:

                async def replicated() -> bool:
                    return (await s.count("territory_replica")) >= len(territories)

                await wait_until(replicated, 30)
            yield s
            assert await s.ledger_problems() == {}
    finally:
        await drop_database(url)
