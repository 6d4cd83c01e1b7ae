"""A registry on a fresh PostgreSQL database and its own Kafka topics, for one test module."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
import sqlalchemy as sa
from fastapi import FastAPI
from territory_registry.main import create_app
from ti_shared.bus import make_source
from ti_shared.db import outbox_message
from ti_shared.events import TOPIC_TERRITORIES
from ti_shared.settings import PlatformSettings
from ti_shared.testing import (
    bearer,
    create_database,
    create_topics,
    drop_database,
    new_topic_prefix,
    platform_settings,
    running,
    service_settings,
    wait_settled,
)


@dataclass
class Registry:
    client: httpx.AsyncClient
    app: FastAPI
    platform: PlatformSettings

    @property
    def writer(self) -> dict[str, str]:
        return bearer(self.platform, "anct-import", "territories:write")

    @property
    def admin(self) -> dict[str, str]:
        return bearer(self.platform, "anct-admin", "admin")

    async def outbox_count(self) -> int:
        async with self.app.state.ctx.db.read_session() as session:
            return int((await session.execute(sa.select(sa.func.count()).select_from(outbox_message))).scalar_one())

    async def events(self, subject: str | None = None, *, at_least: int = 0, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        """Every event published on ti.territories (of ``subject``), once the outbox is drained."""
        await wait_settled(self.client)
        source = make_source(self.platform, "test-reader")
        await source.start([TOPIC_TERRITORIES], {})
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                batch = await source.fetch(5000, 0.5)
                for message in batch:
                    event = json.loads(message.value)
                    event["_key"] = message.key
                    event["_headers"] = dict(message.headers)
                    if subject is None or event["subject"] == subject:
                        found.append(event)
                if not batch and await source.lag() == 0 and len(found) >= at_least:
                    break
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0)
        finally:
            await source.stop()
        return sorted(found, key=lambda e: (e["subject"], e["entityversion"]))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def registry() -> AsyncIterator[Registry]:
    url = await create_database("territory_registry")
    prefix = new_topic_prefix()
    await create_topics(prefix)
    platform = platform_settings(topic_prefix=prefix)
    app = create_app(service_settings("territory-registry", url, platform))
    try:
        async with running(app) as client:
            yield Registry(client, app, platform)
    finally:
        await drop_database(url)
