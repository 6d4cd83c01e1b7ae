"""Latency of ``PUT /v1/territories/{id}`` against PostgreSQL (with the outbox relay publishing to Kafka).

Drives the territory-registry app in-process (httpx ASGI transport, the full middleware and
dependency stack) on a fresh PostgreSQL database and fresh Kafka topics, sequentially:
half the PUTs register new territories, the other half change them (every PUT is a real write:
row, history row and outbox event in one transaction). Prints p50/p90/p99.

    source var/local.env && .venv/bin/python bench/measure_territory_put.py --count 500

``--cpu``: the process's CPU per PUT instead, the app called directly (no HTTP client, no response
validation), as deployed (its relay a process of its own, not started: the notifier's ``NOTIFY`` is
counted, the publication is not); rounds of changes of the same territories, the least and the median
round printed. Another checkout's code, side by side (alternate the two; the machine is shared)::

    PYTHONPATH=DIR/shared/src:DIR/services/territory-registry/src .venv/bin/python bench/measure_territory_put.py --cpu
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from territory_registry.main import create_app
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
from ti_shared.types import luhn_complete

WARM_UP = 20


def territory_body(n: int, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "region_code": "84",
        "departement_codes": ["01", "38"],
        "epcis": [{"siren": luhn_complete(f"2{n:04d}{k:03d}"), "name": f"CC n°{n}-{k}"} for k in range(4)],
        "phase": "temps-2",
        "labelled_on": "2023-11-09",
        "project_lead": {"in_post": True, "cofinanced": True, "name": "Camille Martin", "email": "chef@example.fr"},
        "launch_copil_held_on": "2024-03-01",
        "status": "active",
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(count: int) -> dict[str, float]:
    url = await create_database("bench_territory_registry")
    prefix = new_topic_prefix()
    await create_topics(prefix)
    platform = platform_settings(topic_prefix=prefix)
    app = create_app(service_settings("territory-registry", url, platform))
    headers = bearer(platform, "bench", "territories:write")
    try:
        async with running(app) as client:
            for i in range(WARM_UP):
                response = await client.put(f"/v1/territories/ti-{9000 + i}", json=territory_body(9000 + i, "Warm-up"), headers=headers)
                assert response.status_code == 201, response.text
            half = count // 2
            plan = [(n, "Bassin", 201) for n in range(1000, 1000 + half)]
            plan += [(n, "Bassin renommé", 200) for n in range(1000, 1000 + count - half)]
            latencies = []
            started = time.perf_counter()
            for n, name, expected in plan:
                t0 = time.perf_counter()
                response = await client.put(f"/v1/territories/ti-{n}", json=territory_body(n, name), headers=headers)
                latencies.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == expected, response.text
            elapsed = time.perf_counter() - started
            await wait_settled(client, timeout_s=60)
    finally:
        await drop_database(url)
    return {
        "count": float(len(latencies)),
        "p50_ms": percentile(latencies, 0.50),
        "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99),
        "mean_ms": statistics.fmean(latencies),
        "max_ms": max(latencies),
        "throughput_per_s": len(latencies) / elapsed,
    }


async def _call(app: Any, path: str, body: bytes, token: str) -> int:
    """One PUT straight through the ASGI app; its status."""
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            await asyncio.Event().wait()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"host", b"bench"), (b"content-type", b"application/json"), (b"authorization", f"Bearer {token}".encode()),
               (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PUT", "scheme": "http", "path": path,
             "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}
    await app(scope, receive, send)
    return int(sent[0]["status"])


async def measure_cpu(per_round: int, rounds: int) -> tuple[float, float]:
    """CPU ms per PUT: the least and the median of ``rounds`` rounds of ``per_round`` changes."""
    url = await create_database("bench_territory_registry")
    prefix = new_topic_prefix()
    await create_topics(prefix)
    platform = platform_settings(topic_prefix=prefix, relay="process")
    app = create_app(service_settings("territory-registry", url, platform))
    token = bearer(platform, "bench", "territories:write")["Authorization"].removeprefix("Bearer ")
    ids = list(range(1000, 1000 + per_round))
    try:
        async with app.router.lifespan_context(app):
            for n in ids:
                assert await _call(app, f"/v1/territories/ti-{n}", json.dumps(territory_body(n, "Bassin")).encode(), token) == 201
            cpus = []
            for r in range(rounds + 1):  # the first warms up
                name = "Bassin" if r % 2 else "Bassin renommé"
                bodies = [(f"/v1/territories/ti-{n}", json.dumps(territory_body(n, name)).encode()) for n in ids]
                cpu0 = time.process_time()
                for path, body in bodies:
                    assert await _call(app, path, body, token) == 200
                if r:
                    cpus.append((time.process_time() - cpu0) / len(bodies) * 1000)
    finally:
        await drop_database(url)
    return min(cpus), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=500, help="PUTs measured (bounded: 2..5000)")
    parser.add_argument("--cpu", action="store_true", help="CPU per PUT, the app called directly (6 rounds of --count changes)")
    args = parser.parse_args()
    count = max(2, min(args.count, 5000))
    if args.cpu:
        least, median = asyncio.run(measure_cpu(count, 6))
        print(f"territory PUT, CPU per PUT over 6 rounds of {count} changes: least {least:.2f} ms, median {median:.2f} ms")
        return
    result = asyncio.run(measure(count))
    print(
        f"territory PUT x{int(result['count'])} (PostgreSQL, in-process): "
        f"p50 {result['p50_ms']:.1f} ms, p90 {result['p90_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
        f"mean {result['mean_ms']:.1f} ms, max {result['max_ms']:.1f} ms, {result['throughput_per_s']:.0f} PUT/s"
    )


if __name__ == "__main__":
    main()
