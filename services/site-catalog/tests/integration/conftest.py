"""A running site catalogue per test: fresh PostgreSQL database, own Kafka topic prefix."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from site_catalog.main import SPEC
from ti_shared.app import create_service_app
from ti_shared.bus import make_source
from ti_shared.events import TOPIC_SITES
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


@dataclass
class Service:
    client: httpx.AsyncClient
    platform: PlatformSettings
    app: FastAPI
    database_url: str

    def writer(self, sub: str = "site-owner") -> dict[str, str]:
        return bearer(self.platform, sub, "sites:write")

    def admin(self) -> dict[str, str]:
        return bearer(self.platform, "anct-admin", "admin")

    async def feed_territories(self, *territories: tuple[str, str]) -> None:
        await publish_events(self.platform, [territory_event(t, region) for t, region in territories])
        await wait_settled(self.client)

    async def site_events(self, expected: int, *, linger_s: float = 0.5, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        """The events on ti.sites: waits for ``expected`` of them, then a little longer for any extra."""
        await wait_settled(self.client)
        source = make_source(self.platform, "test-reader")
        await source.start([TOPIC_SITES], {})
        events: list[dict[str, Any]] = []
        try:
            deadline = time.monotonic() + timeout_s
            while len(events) < expected and time.monotonic() < deadline:
                events += [json.loads(m.value) for m in await source.fetch(1000, 0.5)]
            await asyncio.sleep(linger_s)
            events += [json.loads(m.value) for m in await source.fetch(1000, 0.3)]
        finally:
            await source.stop()
        return events


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    url = await create_database("sites")
    prefix = new_topic_prefix()
    await create_topics(prefix)
    platform = platform_settings(topic_prefix=prefix)
    app = create_service_app(SPEC, service_settings("site-catalog", url, platform))
    try:
        async with running(app) as client:
            yield Service(client, platform, app, url)
    finally:
        await drop_database(url)
