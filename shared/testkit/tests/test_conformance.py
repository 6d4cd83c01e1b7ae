"""``ti conformance`` against our platform in both modes, and against a platform serving a wrong indicator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ti_shared.embedded import SERVICES, create_embedded_app
from ti_shared.testing import create_database, create_topics, drop_database, new_topic_prefix, platform_settings
from ti_testkit import Platform, connect
from ti_testkit.conformance import ConformanceError, run
from ti_testkit.embedded import ServedPlatform, serve
from ti_testkit.streams import reference_stream

pytestmark = pytest.mark.integration

TI = str(Path(sys.executable).parent / "ti")


def conformance(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TI_")}
    return subprocess.run([TI, "conformance", *args], capture_output=True, text=True, timeout=600, check=False, env=env)


def test_passes_on_the_embedded_platform(ti_platform: ServedPlatform) -> None:
    done = conformance("--base", ti_platform.base_url, "--bus-path", str(ti_platform.bus_path), "--seed", "3", "--size", "tiny", "--as-of", "2024-06-30")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ti conformance: reference stream seed 3, size tiny — ")
    assert any(line.startswith("territory:ti-") and line.endswith("ok") for line in lines)
    assert lines[-1].startswith("summary: ") and lines[-1].endswith("— PASS")
    assert any(line.startswith("region:84 as of 2024-06-30") for line in lines)
    # a second run finds the platform filled: it cannot be made
    with pytest.raises(ConformanceError, match="not empty"):
        run(ti_platform, reference_stream(3, "tiny"), echo=lambda _line: None)


def _wrong_shares(target: str) -> Any:
    """A test double of the indicators endpoint: the platform's answers, with the status shares rounded to
    two decimals (everything else forwarded as it is)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    client = httpx.AsyncClient(base_url=target, timeout=60)

    async def forward(request: Request) -> Response:
        upstream = await client.request(request.method, request.url.path, params=request.query_params, content=await request.body())
        body = upstream.content
        if request.url.path == "/v1/indicators" and upstream.status_code == 200:
            doc = upstream.json()
            shares = doc["indicators"]["actions.by_status_share"]
            doc["indicators"]["actions.by_status_share"] = {k: None if v is None else round(v, 2) for k, v in shares.items()}
            body = json.dumps(doc).encode()
        return Response(body, status_code=upstream.status_code, media_type=upstream.headers.get("content-type"))

    return Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "PUT", "POST"])])


def test_fails_clearly_on_a_platform_with_a_wrong_indicator(ti_platform: ServedPlatform) -> None:
    double = serve(lambda: _wrong_shares(ti_platform.base_url), ti_platform.settings)
    try:
        done = conformance("--base", double.base_url, "--bus-path", str(ti_platform.bus_path), "--size", "tiny", "--as-of", "2024-09-30")
    finally:
        double.close()
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr
    out = done.stdout
    assert "national                                        31 indicators  1 differ" in out
    wrong = [line.strip() for line in out.splitlines() if line.strip().startswith("✗")]
    assert wrong and all(line.startswith("✗ actions.by_status_share.") for line in wrong)
    # each differing value with what was expected and what was served
    first = wrong[0].split()
    assert first[2] == "expected" and first[4] == "served" and float(first[3]) != float(first[5])
    assert round(float(first[3]), 2) == float(first[5])
    summary = out.splitlines()[-1]
    assert summary.startswith("summary: ") and summary.endswith("(actions.by_status_share) — FAIL")


@pytest.fixture
def distributed() -> Iterator[tuple[Platform, str, str]]:
    """The five services on PostgreSQL databases of their own and Kafka topics of their own (one process)."""
    import asyncio

    prefix = new_topic_prefix()
    urls = {s: asyncio.run(create_database("testkit")) for s in SERVICES}
    asyncio.run(create_topics(prefix))
    settings = platform_settings(topic_prefix=prefix, jwt_secret="testkit-distributed-secret-0123456789abcdef")
    served = serve(lambda: create_embedded_app(settings, urls), settings)
    try:
        yield served, settings.kafka_bootstrap, prefix
    finally:
        served.close()
        for url in urls.values():
            asyncio.run(drop_database(url))


def test_passes_on_the_distributed_platform_over_kafka(distributed: tuple[Platform, str, str]) -> None:
    served, bootstrap, prefix = distributed
    done = conformance(
        "--base", served.base_url, "--kafka", bootstrap, "--topic-prefix", prefix, "--seed", "4", "--size", "tiny", "--replays", "2",
        "--as-of", "2024-10-01T08:30:00Z",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert f"over Kafka {bootstrap} (topic prefix '{prefix}')" in done.stdout
    assert done.stdout.splitlines()[-1].endswith("— PASS")

    # the same platform seen by a remote handle: HTTP pushes and a Kafka replay, waited for
    remote = connect(served.base_url, kafka=bootstrap, topic_prefix=prefix, jwt_secret=served.settings.jwt_secret)
    try:
        before = remote.indicators("region:84")
        remote.register_territory("ti-8499", "84")
        grant = {
            "programme": "rebond_industriel", "beneficiary": {"name": "Fonderie", "siret": "73282932000074", "kind": "entreprise"},
            "territory_id": "ti-8499", "commune_insee": "69123", "object": "Relocalisation", "amount_eur": "250000.00",
            "decision_date": "2024-06-12",
        }
        remote.put_grant("BPI", "RI-TK-1", grant)
        after = remote.indicators("region:84")
        assert after["territories.count"] == before["territories.count"] + 1
        assert after["grants.count"] == before["grants.count"] + 1
    finally:
        remote.close()
