"""Latency of ``PUT /v1/territories/{id}`` against PostgreSQL (with the outbox relay publishing to Kafka).

Drives the territory-registry app in-process (httpx ASGI transport, the full middleware and
dependency stack) on a fresh PostgreSQL database and fresh Kafka topics, sequentially:
half the PUTs register new territories, the other half change them (every PUT is a real write:
row, history row and outbox event in one transaction). Prints p50/p90/p99.

    source var/local.env && .venv/bin/python bench/measure_territory_put.py --count 500
"""

from __future__ import annotations

import argparse
import asyncio
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=500, help="PUTs measured (bounded: 2..5000)")
    args = parser.parse_args()
    count = max(2, min(args.count, 5000))
    result = asyncio.run(measure(count))
    print(
        f"territory PUT x{int(result['count'])} (PostgreSQL, in-process): "
        f"p50 {result['p50_ms']:.1f} ms, p90 {result['p90_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
        f"mean {result['mean_ms']:.1f} ms, max {result['max_ms']:.1f} ms, {result['throughput_per_s']:.0f} PUT/s"
    )


if __name__ == "__main__":
    main()
