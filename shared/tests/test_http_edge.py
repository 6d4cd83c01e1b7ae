"""The HTTP edge every service shares: problem details, media types, sizes, auth, health (SQLite + local log)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from probe import PROBE_SPEC
from ti_shared.app import create_service_app
from ti_shared.settings import PlatformSettings, ServiceSettings
from ti_shared.testing import bearer, running, wait_settled


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, PlatformSettings]]:
    platform = PlatformSettings(env="test", bus="local", var_dir=tmp_path, migrate_on_start=False, relay_idle_seconds=0.05)
    settings = ServiceSettings(name="probe", database_url=f"sqlite+aiosqlite:///{tmp_path / 'probe.db'}", platform=platform)
    async with running(create_service_app(PROBE_SPEC, settings)) as c:
        yield c, platform


def _is_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"].startswith("https://")
    return body


async def test_validation_errors_name_the_field(client: tuple[httpx.AsyncClient, PlatformSettings]) -> None:
    c, platform = client
    auth = bearer(platform, "anct", "territories:write")
    body = _is_problem(await c.post("/v1/probes/a", json={"amount_eur": "0", "label": "x"}, headers=auth), 422)
    assert body["errors"][0]["loc"] == ["body", "amount_eur"]
    body = _is_problem(await c.post("/v1/probes/a", json={"amount_eur": "1", "label": "x", "extra": 1}, headers=auth), 422)
    assert ["body", "extra"] in [e["loc"] for e in body["errors"]]
    _is_problem(await c.post("/v1/probes/a", content=b"{not json", headers={**auth, "content-type": "application/json"}), 422)


async def test_media_type_size_auth_and_unknown_paths(client: tuple[httpx.AsyncClient, PlatformSettings]) -> None:
    c, platform = client
    auth = bearer(platform, "anct", "territories:write")
    _is_problem(await c.post("/v1/probes/a", content=b"amount_eur=1", headers={**auth, "content-type": "text/plain"}), 415)
    _is_problem(await c.post("/v1/probes/a", content=b"{}" + b" " * (2 * 1024 * 1024), headers={**auth, "content-type": "application/json"}), 413)
    _is_problem(await c.post("/v1/probes-csv", content=b"a;b\n" * 1000, headers={"content-type": "text/csv"}), 413)

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: the cap applies as the body arrives
        yield b"{}"
        for _ in range(40):
            yield b" " * 65536

    _is_problem(await c.post("/v1/probes/a", content=streamed(), headers={**auth, "content-type": "application/json"}), 413)
    assert (await c.post("/v1/probes-csv", content=b"a;b\n1;2\n", headers={"content-type": "text/csv"})).status_code == 200
    _is_problem(await c.post("/v1/probes-csv", content=b"{}", headers={"content-type": "application/json"}), 415)
    _is_problem(await c.post("/v1/probes/a", json={"amount_eur": "1", "label": "x"}), 401)
    _is_problem(await c.post("/v1/probes/a", json={"amount_eur": "1", "label": "x"}, headers=bearer(platform, "x", "sites:write")), 403)
    _is_problem(await c.post("/v1/probes/a", json={"amount_eur": "1", "label": "x"}, headers={"Authorization": "Basic abc"}), 401)
    _is_problem(await c.get("/v1/nothing-here"), 404)
    _is_problem(await c.get("/v1/teapot?programme=%00x"), 422)
    _is_problem(await c.post("/v1/probes/a", json={"amount_eur": "1", "label": "a\u0000b"}, headers=auth), 422)
    _is_problem(await c.get("/v1/teapot"), 409)
    body = _is_problem(await c.get("/v1/boom"), 500)
    assert "kaboom" not in str(body)


async def test_health_reports_outbox_and_lag(client: tuple[httpx.AsyncClient, PlatformSettings]) -> None:
    c, platform = client
    assert (await c.get("/livez")).json() == {"status": "alive"}
    auth = bearer(platform, "anct", "territories:write")
    for i in range(5):
        assert (await c.post(f"/v1/probes/p{i}", json={"amount_eur": "10.5", "label": "x"}, headers=auth)).status_code == 201
    ready = await wait_settled(c)
    assert ready["status"] == "ready" and ready["checks"]["database"] == "ok"
    metrics = (await c.get("/metrics")).text
    assert 'ti_events_published_total{service="probe"}' in metrics
    assert "ti_http_requests_total" in metrics
    response = await c.get("/livez", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
