"""A running action-tracker on a fresh PostgreSQL database and its own Kafka topics."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
from action_tracker.main import create_app
from fastapi import FastAPI
from ti_shared.bus import make_source
from ti_shared.events import TOPIC_ACTIONS, TOPIC_DEAD_LETTERS
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
    wait_settled,
)

TERRITORIES = {"ti-8402": "84", "ti-8403": "84", "ti-1101": "11", "ti-2705": "27"}


@dataclass
class Service:
    client: httpx.AsyncClient
    platform: PlatformSettings
    database_url: str
    app: FastAPI

    def admin(self, sub: str = "anct-admin") -> dict[str, str]:
        return bearer(self.platform, sub, "admin")

    def lead(self, *territories: str, sub: str = "lead") -> dict[str, str]:
        return bearer(self.platform, sub, "actions:write", territories=list(territories))


def new_app(database_url: str, platform: PlatformSettings) -> FastAPI:
    return create_app(service_settings("action-tracker", database_url, platform))


async def fresh_platform() -> tuple[str, PlatformSettings]:
    prefix = new_topic_prefix()
    database_url, _ = await asyncio.gather(create_database("action_tracker"), create_topics(prefix))
    return database_url, platform_settings(topic_prefix=prefix)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def service() -> AsyncIterator[Service]:
    database_url, platform = await fresh_platform()
    await publish_events(platform, [territory_event(t, r) for t, r in TERRITORIES.items()])
    app = new_app(database_url, platform)
    try:
        async with running(app) as client:
            await wait_settled(client)
            yield Service(client, platform, database_url, app)
    finally:
        await drop_database(database_url)


def action_body(territory_id: str = "ti-8402", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "territory_id": territory_id,
        "title": "Campus des métiers de l'industrie",
        "description": "Ouverture d'une formation de techniciens de maintenance",
        "axis": "competences_attractivite",
        "themes": ["nouvelles_formations", "rh_marque_employeur"],
        "status": "en_cours",
        "planned_start": "2024-01-15",
        "planned_end": None,
        "budget_eur": "120000.00",
        "partners": ["BPI"],
    }
    body.update(fields)
    return body


def unique_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def published(
    platform: PlatformSettings, topic: str = TOPIC_ACTIONS, timeout_s: float = 20.0
) -> list[dict[str, Any]]:
    """Every event on ``topic`` so far (call after ``wait_settled``: the outbox is then empty)."""
    source = make_source(platform, "test-reader-" + uuid.uuid4().hex[:6])
    await source.start([topic], {})
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            messages = await source.fetch(5000, 0.3)
            out += [json.loads(m.value) for m in messages]
            if not messages and await source.lag() == 0:
                return out
        raise TimeoutError(f"{topic} not read in time")
    finally:
        await source.stop()


async def events_of(service: Service, subject: str) -> list[dict[str, Any]]:
    await wait_settled(service.client)
    return [e for e in await published(service.platform) if e["subject"] == subject]


async def dead_letters(service: Service) -> list[dict[str, Any]]:
    await wait_settled(service.client)
    return await published(service.platform, TOPIC_DEAD_LETTERS)
