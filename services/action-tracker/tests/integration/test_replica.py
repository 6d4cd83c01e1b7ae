"""The territory replica: it catches up after a restart and is rebuilt from the topic when emptied."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from ti_shared.db import territory_replica
from ti_shared.testing import bearer, drop_database, publish_events, running, territory_event, wait_settled

from .conftest import action_body, fresh_platform, new_app

pytestmark = pytest.mark.integration


async def test_replica_catches_up_after_restart_and_is_rebuilt_when_empty() -> None:
    database_url, platform = await fresh_platform()
    admin = bearer(platform, "anct-admin", "admin")
    try:
        await publish_events(platform, [territory_event("ti-8402", "84"), territory_event("ti-5301", "53")])
        async with running(new_app(database_url, platform)) as client:
            await wait_settled(client)
            assert (await client.put("/v1/actions/a-1", json=action_body("ti-5301"), headers=admin)).status_code == 201
            assert (await client.put("/v1/actions/a-2", json=action_body("ti-4401"), headers=admin)).status_code == 422

        # while the service is down: a new territory, and the region of another one changes
        await publish_events(
            platform,
            [territory_event("ti-4401", "44"), territory_event("ti-5301", "52", version=2)],
        )
        async with running(new_app(database_url, platform)) as client:
            await wait_settled(client)
            assert (await client.put("/v1/actions/a-2", json=action_body("ti-4401"), headers=admin)).status_code == 201
            in_52 = (await client.get("/v1/actions", params={"region_code": "52"})).json()["items"]
            assert [a["id"] for a in in_52] == ["a-1"]

        engine = create_async_engine(database_url)
        async with engine.begin() as conn:
            await conn.execute(territory_replica.delete())
        await engine.dispose()

        async with running(new_app(database_url, platform)) as client:
            await wait_settled(client)
            in_44 = (await client.get("/v1/actions", params={"region_code": "44"})).json()["items"]
            assert [a["id"] for a in in_44] == ["a-2"]
            assert [
                a["id"] for a in (await client.get("/v1/actions", params={"region_code": "52"})).json()["items"]
            ] == ["a-1"]
            assert (await client.put("/v1/actions/a-3", json=action_body("ti-8402"), headers=admin)).status_code == 201
            ready = (await client.get("/readyz")).json()
            assert ready["consumer_lag"] == 0 and ready["checks"]["consumer:action-tracker.territories"] == "ok"
    finally:
        await drop_database(database_url)
