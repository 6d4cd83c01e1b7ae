"""3. Replay into the reporting service against a bare consumer; 4. indicator reads against a bare endpoint.

For each size of the scale curve: a stream of about that many events is generated
(``ti_shared.streams.generate_stream``), published to a fresh topic prefix, read once by a bare
aiokafka consumer (fetch + JSON decode: the baseline), then replayed by a reporting process started
on a fresh database. Its progress is read from ``/metrics`` (events applied + skipped). Once it has
caught up, ``wrk`` loads ``GET /v1/indicators?scope=region:84`` at concurrency 32, then the same
against the bare FastAPI endpoint (``baseline_app``) serving a body of the same size.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from typing import Any

import httpx
from common import PARTITIONS, Platform, Scale, metric_samples, publish_raw
from ti_shared.events import DOMAIN_TOPICS
from ti_shared.settings import PlatformSettings
from ti_shared.streams import final_states, generate_stream

READ_PATH = "/v1/indicators?scope=region:84"
CONCURRENCY = 32
TERRITORIES = 183


def stream_sizes(events: int) -> dict[str, int]:
    """Entity counts giving about ``events`` events (mean versions: action 2.67, grant 2.2, site 1.75)."""
    rest = max(0, events - 330)
    return {
        "territories": TERRITORIES,
        "grants": max(1, round(rest * 0.10 / 2.2)),
        "sites": max(1, round(rest * 0.02 / 1.75)),
        "actions": max(1, round(rest * 0.88 / 2.67)),
    }


async def bare_consume(settings: PlatformSettings, expected: int) -> dict[str, float]:
    """Read every domain topic from the start and decode each value; events/s."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.topic_prefix + t, p) for t in DOMAIN_TOPICS for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen = 0
        started = time.perf_counter()
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for records in batches.values():
                for record in records:
                    json.loads(record.value)
                    seen += 1
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
    return {"events": seen, "seconds": round(elapsed, 3), "events_per_s": round(seen / elapsed, 1)}


async def consumed(client: httpx.AsyncClient, url: str) -> int | None:
    try:
        text = (await client.get(url + "/metrics")).text
    except httpx.HTTPError:
        return None
    return int(
        sum(
            value
            for family in ("ti_events_applied", "ti_events_skipped")
            for name, _, value in metric_samples(text, family)
            if name == family + "_total"
        )
    )


async def replay(platform: Platform, expected: int) -> dict[str, Any]:
    """Start reporting on a fresh database and time it until every event is consumed."""
    spawned = time.perf_counter()
    service = platform.start("reporting")
    samples: list[tuple[float, int]] = []
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            count = await consumed(client, service.url)
            now = time.perf_counter()
            if service.proc.poll() is not None:
                raise RuntimeError(f"reporting exited: see {service.log_path}")
            if count is not None:
                samples.append((now, count))
                if count >= expected:
                    break
            if now - spawned > 3600:
                raise TimeoutError(f"replay stuck at {count} of {expected}")
            await asyncio.sleep(0.1)
        await platform.wait_settled()
    first = next(((t, c) for t, c in samples if c > 0), samples[-1])
    end_t, end_c = samples[-1]
    steady = (end_c - first[1]) / (end_t - first[0]) if end_t > first[0] else float("nan")
    return {
        "events": expected,
        "seconds_from_spawn": round(end_t - spawned, 3),
        "seconds_applying": round(end_t - first[0], 3),
        "events_per_s": round(steady, 1),
    }


_LAT = re.compile(r"^\s*(50|75|90|99)%\s+([0-9.]+)(us|ms|s)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.M)
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+([0-9]+)")


def wrk(url: str, seconds: int) -> dict[str, float]:
    """``wrk -t2 -c32 --latency`` against ``url`` (a separate process, loopback only)."""
    exe = shutil.which("wrk")
    if exe is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    out = subprocess.run(
        [exe, "-t2", f"-c{CONCURRENCY}", f"-d{seconds}s", "--latency", url],
        check=True, capture_output=True, text=True,
    ).stdout
    factor = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    lat = {f"p{q}_ms": round(float(v) * factor[u], 3) for q, v, u in _LAT.findall(out)}
    rps = _RPS.search(out)
    errors = _NON2XX.search(out)
    assert rps is not None, out
    return {"rps": float(rps.group(1)), **lat, "non_2xx": int(errors.group(1)) if errors else 0}


async def reads(platform: Platform, seconds: int) -> dict[str, Any]:
    service = platform.services["reporting"]
    async with httpx.AsyncClient(timeout=10) as client:
        body = (await client.get(service.url + READ_PATH)).content
    measured = await asyncio.to_thread(wrk, service.url + READ_PATH, seconds)
    platform.stop("reporting")
    baseline_proc = start_baseline(platform, len(body))
    await platform.wait_ready()
    baseline = await asyncio.to_thread(wrk, baseline_proc + READ_PATH, seconds)
    platform.stop("read-baseline")
    return {
        "body_bytes": len(body),
        "concurrency": CONCURRENCY,
        "seconds": seconds,
        **measured,
        "baseline": baseline,
        "ratio": round(measured["rps"] / baseline["rps"], 4),
    }


def start_baseline(platform: Platform, size: int) -> str:
    import os

    os.environ["BENCH_BASELINE_BYTES"] = str(size)
    try:
        service = platform.start("read-baseline", module_app="baseline_app:create_app")
    finally:
        os.environ.pop("BENCH_BASELINE_BYTES", None)
    return service.url


async def measure_point(platform: Platform, events_target: int, read_seconds: int, *, read: bool) -> dict[str, Any]:
    settings = await platform.prepare(["reporting"])
    events = generate_stream(2024, **stream_sizes(events_target))
    states = final_states(events)
    expected_actions = sum(1 for e in states["action"].values() if not e["data"].get("deleted"))
    published_s = await publish_raw(settings, events)
    baseline = await bare_consume(settings, len(events))
    result: dict[str, Any] = {
        "events": len(events),
        "publish_seconds": round(published_s, 3),
        "baseline_consumer": baseline,
        "replay": await replay(platform, len(events)),
    }
    async with httpx.AsyncClient(timeout=10) as client:
        doc = (await client.get(platform.services["reporting"].url + "/v1/indicators", params={"scope": "national"})).json()
    assert doc["indicators"]["actions.count"] == expected_actions, (doc["indicators"]["actions.count"], expected_actions)
    result["replay"]["ratio"] = round(result["replay"]["events_per_s"] / baseline["events_per_s"], 4)
    print(f"[bench] replay of {len(events)} events: {result['replay']}", file=sys.stderr, flush=True)
    if read:
        result["reads"] = await reads(platform, read_seconds)
        print(f"[bench] reads: {result['reads']}", file=sys.stderr, flush=True)
    return result


async def measure_curve(platform_factory: Any, scale: Scale) -> list[dict[str, Any]]:
    points = []
    for n in scale.curve:
        platform = platform_factory()
        try:
            point = await measure_point(platform, n, scale.read_seconds, read=True)
            point["target_events"] = n
            point["reporting_peak_rss_mb"] = platform.sampler.peaks_mb.get("reporting")
            points.append(point)
        finally:
            await platform.close()
    return points
