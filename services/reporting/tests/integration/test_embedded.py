"""The embedded mode: SQLite database and the local durable log give the same figures."""

from __future__ import annotations

from pathlib import Path

import pytest
from reporting.main import create_app
from ti_shared.streams import generate_stream
from ti_shared.testing import platform_settings, publish_events, running, service_settings, wait_settled

pytestmark = pytest.mark.integration


async def test_sqlite_and_local_log(tmp_path: Path) -> None:
    from .test_indicators import all_scopes, assert_matches, fetch_all

    events = generate_stream(21, territories=20, actions=200, grants=60, sites=20, shuffle=True, duplicate_rate=0.05)
    platform = platform_settings(bus="local", local_bus_path=tmp_path / "bus.db", var_dir=tmp_path)
    await publish_events(platform, events)
    app = create_app(service_settings("reporting", f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}", platform))
    async with running(app) as client:
        await wait_settled(client, 60)
        got = await fetch_all(client, all_scopes(events))
        as_of = await fetch_all(client, ["national"], as_of="2030-01-01")
    assert_matches(got, events)
    assert as_of["national"] == got["national"]
