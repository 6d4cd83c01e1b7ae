"""Writes while the server drops the service's database connections: a 503 to retry, never a 500."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from site_catalog.schemas import SITE_EXAMPLE
from sqlalchemy.ext.asyncio import create_async_engine

pytestmark = pytest.mark.integration


async def test_writes_while_the_connections_are_terminated_get_2xx_or_503_and_then_all_land(service: Any) -> None:
    client, writer = service.client, service.writer()
    database = sa.engine.make_url(service.database_url).database
    ids = [f"13004_SITE-DRP_{n:05d}" for n in range(1, 121)]
    answers: list[tuple[str, int]] = []
    done = asyncio.Event()

    async def write() -> None:
        for sid in ids:
            r = await client.put(f"/v1/sites/{sid}", json={**SITE_EXAMPLE, "territory_id": None}, headers=writer)
            answers.append((sid, r.status_code))
            if r.status_code == 503:
                assert r.headers["retry-after"] and r.headers["content-type"].startswith("application/problem+json")
            await asyncio.sleep(0.005)
        done.set()

    admin = create_async_engine(service.database_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    terminated = 0
    try:
        task = asyncio.create_task(write())
        while not done.is_set():  # the service's every connection, idle or busy, again and again
            async with admin.connect() as conn:
                killed = await conn.execute(
                    sa.text("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = :db AND pid <> pg_backend_pid()) t"),
                    {"db": database},
                )
                terminated += killed.scalar_one()
            await asyncio.sleep(0.03)
        await task
    finally:
        await admin.dispose()
    statuses = [status for _sid, status in answers]
    assert terminated > 0
    assert set(statuses) <= {200, 201, 503}, [a for a in answers if a[1] not in (200, 201, 503)][:5]
    for sid, status in answers:  # a PUT is idempotent: what got a 503 is sent again and lands
        if status == 503:
            r = await client.put(f"/v1/sites/{sid}", json={**SITE_EXAMPLE, "territory_id": None}, headers=writer)
            assert r.status_code in (200, 201), r.text
    listed = await client.get("/v1/sites", params={"limit": 500})
    assert listed.status_code == 200
    assert {s["id"] for s in listed.json()["items"]} >= set(ids)
