"""3. Replay into the reporting service against a bare consumer; 4. indicator reads against a bare
endpoint; 5. the reporting process's CPU per small batch once caught up (live mode).

For each size of the scale curve: a stream of about that many events is generated
(``ti_shared.streams.generate_stream``), published to a fresh topic prefix, read once by a bare
aiokafka consumer (fetch + JSON decode: the baseline), then replayed by a reporting process started
on a fresh database. The replay's time is the process's, as deployed: from the first message its
consumers fetched (the projection's, ``reporting``, and the change feed's, ``reporting-changes``:
both replay every event) to the last commit of either (``ti_consumer_first_fetch_timestamp_seconds``,
``…last_commit…`` in ``/metrics``, read once both have caught up); each consumer's own time is given
too. Then small batches of updates (two or three events, one every 100 ms) are
published and the process's CPU time per committed batch is measured (its idle CPU over as long
subtracted), once with what the replay left in memory, once after a restart. Then ``wrk`` loads
``GET /v1/indicators?scope=region:84`` at concurrency 32, then the same process without its ASGI fast
path (``reporting_routed``), then the bare FastAPI endpoint (``baseline_app``) serving a body of the
same size.
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
from ti_shared.streams import StreamOptions, final_states, generate_stream

READ_PATH = "/v1/indicators?scope=region:84"
#: small batches published to measure the live mode (twice: after the replay, after a restart)
LIVE_BATCHES = 150
CONCURRENCY = 32
TERRITORIES = 183


def stream_sizes(events: int) -> StreamOptions:
    """Entity counts giving about ``events`` events (mean versions: action 2.67, grant 2.2, site 1.75)."""
    rest = max(0, events - 330)
    return StreamOptions(
        territories=TERRITORIES,
        grants=max(1, round(rest * 0.10 / 2.2)),
        sites=max(1, round(rest * 0.02 / 1.75)),
        actions=max(1, round(rest * 0.88 / 2.67)),
    )


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


#: the consumers of the process: the projection's, and the change feed's (both replay every event)
CONSUMER = "reporting"
CONSUMERS = ("reporting", "reporting-changes")


async def metric(client: httpx.AsyncClient, url: str, *families: str, consumer: str | None = None) -> dict[str, float] | None:
    """The sum of the samples of each metric family (counters by their ``_total`` sample) of one
    consumer (every consumer of the process when None)."""
    try:
        text = (await client.get(url + "/metrics")).text
    except httpx.HTTPError:
        return None
    return {
        family: sum(
            value for name, labels, value in metric_samples(text, family)
            if name in (family, family + "_total") and (consumer is None or labels.get("consumer") == consumer)
        )
        for family in families
    }


async def consumed(client: httpx.AsyncClient, url: str, consumer: str) -> int | None:
    found = await metric(client, url, "ti_events_applied", "ti_events_skipped", consumer=consumer)
    return None if found is None else int(found["ti_events_applied"] + found["ti_events_skipped"])


async def replay(platform: Platform, expected: int) -> dict[str, Any]:
    """Start reporting on a fresh database and time it from its consumers' first fetch to their last
    commit: the process as deployed (both consumers), and the projection's consumer alone."""
    spawned = time.perf_counter()
    service = platform.start("reporting")
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            counts = [await consumed(client, service.url, c) for c in CONSUMERS]
            if service.proc.poll() is not None:
                raise RuntimeError(f"reporting exited: see {service.log_path}")
            if all(c is not None and c >= expected for c in counts):
                break
            if time.perf_counter() - spawned > 3600:
                raise TimeoutError(f"replay stuck at {counts} of {expected}")
            await asyncio.sleep(0.5)
        await platform.wait_settled()
        marks = {
            c: await metric(client, service.url, "ti_consumer_first_fetch_timestamp_seconds",
                            "ti_consumer_last_commit_timestamp_seconds", "ti_consumer_batches", consumer=c)
            for c in CONSUMERS
        }
    found = {c: m for c, m in marks.items() if m is not None}
    assert len(found) == len(CONSUMERS)

    def figures(seconds: float, transactions: float) -> dict[str, Any]:
        return {
            "seconds_applying": round(seconds, 3),
            "events_per_s": round(expected / seconds, 1),
            "us_per_event": round(seconds / expected * 1e6, 1),
            "transactions": int(transactions),
        }

    first = min(m["ti_consumer_first_fetch_timestamp_seconds"] for m in found.values())
    last = max(m["ti_consumer_last_commit_timestamp_seconds"] for m in found.values())
    each = {
        c: figures(m["ti_consumer_last_commit_timestamp_seconds"] - m["ti_consumer_first_fetch_timestamp_seconds"],
                   m["ti_consumer_batches"])
        for c, m in found.items()
    }
    return {
        "events": expected,
        "seconds_from_spawn": round(time.perf_counter() - spawned, 3),
        **figures(last - first, sum(m["ti_consumer_batches"] for m in found.values())),
        "consumers": each,
    }


def live_updates(events: list[dict[str, Any]], batches: int) -> list[list[dict[str, Any]]]:
    """Small batches of new versions of entities of the stream, as the services publish them live: an
    action's status and a grant amendment in each, a site update in every fifth, a territory update
    (same region) in every twentieth."""
    import uuid
    from datetime import UTC, datetime

    states = final_states(events)
    actions = [e for e in states["action"].values() if not e["data"].get("deleted")]
    grants, sites, territories = list(states["grant"].values()), list(states["site"].values()), list(states["territory"].values())
    versions: dict[str, int] = {}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def bump(e: dict[str, Any], change: str, **data: Any) -> dict[str, Any]:
        version = versions[e["subject"]] = versions.get(e["subject"], e["entityversion"]) + 1
        entity = e["type"].split(".")[3]
        return {**e, "id": str(uuid.uuid4()), "type": f"fr.anct.ti.{entity}.{change}.v1", "entityversion": version,
                "time": now, "data": {**e["data"], **data, "version": version, "updated_at": now}}

    out = []
    for i in range(batches):
        batch = [bump(actions[(i * 7) % len(actions)], "status_changed", status=STATUSES[i % len(STATUSES)]),
                 bump(grants[(i * 3) % len(grants)], "amended", amount_eur=f"{1000 + i}.00")]
        if i % 5 == 0:
            batch.append(bump(sites[i % len(sites)], "updated", workshop_held=bool(i % 2)))
        if i % 20 == 0:
            batch.append(bump(territories[i % len(territories)], "updated", name=f"Territoire {i}"))
        out.append(batch)
    return out


STATUSES = ("amont", "etude_prealable", "en_cours", "en_pause", "realise", "non_renseigne")


async def live_cpu(platform: Platform, batches: list[list[dict[str, Any]]], pause_s: float = 0.1) -> dict[str, Any]:
    """The reporting process's CPU time per committed transaction while small batches arrive."""
    import psutil

    service = platform.services["reporting"]
    process = psutil.Process(service.proc.pid)
    assert platform.settings is not None

    def cpu() -> float:
        t = process.cpu_times()
        return float(t.user + t.system)

    async with httpx.AsyncClient(timeout=10) as client:
        await platform.wait_settled()
        before = {c: await metric(client, service.url, "ti_consumer_batches", "ti_events_applied", consumer=c) for c in CONSUMERS}
        idle_s = pause_s * len(batches)
        c0, w0 = cpu(), time.perf_counter()
        await asyncio.sleep(idle_s)
        idle = (cpu() - c0) / (time.perf_counter() - w0)
        c0, w0 = cpu(), time.perf_counter()
        for batch in batches:
            await publish_raw(platform.settings, batch)
            await asyncio.sleep(pause_s)
        events = sum(len(b) for b in batches)
        while True:  # both consumers have applied every event
            after = {c: await metric(client, service.url, "ti_consumer_batches", "ti_events_applied", consumer=c) for c in CONSUMERS}
            if all(after[c] is not None and before[c] is not None
                   and after[c]["ti_events_applied"] >= before[c]["ti_events_applied"] + events for c in CONSUMERS):  # type: ignore[index]
                break
            await asyncio.sleep(0.05)
        c1, w1 = cpu(), time.perf_counter()
    transactions = {c: int(after[c]["ti_consumer_batches"] - before[c]["ti_consumer_batches"]) for c in CONSUMERS}  # type: ignore[index]
    busy = (c1 - c0) - idle * (w1 - w0)
    return {
        "batches_published": len(batches),
        "events": events,
        "transactions": transactions[CONSUMER],
        "transactions_per_consumer": transactions,
        "idle_cpu_share": round(idle, 4),
        #: the process's CPU (both consumers) per transaction of the projection's consumer
        "cpu_ms_per_batch": round(busy / transactions[CONSUMER] * 1000, 3),
        "cpu_ms_per_published_batch": round(busy / len(batches) * 1000, 3),
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
    # the same process without the fast path, on the same database (its consumers caught up: idle)
    routed = platform.start("reporting", module_app="reporting_routed:create_app")
    await platform.wait_ready()
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(routed.url + READ_PATH)).content == body
    without = await asyncio.to_thread(wrk, routed.url + READ_PATH, seconds)
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
        "without_fast_path": {**without, "ratio": round(without["rps"] / baseline["rps"], 4)},
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
    events = generate_stream(2024, stream_sizes(events_target))
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
    for each in result["replay"]["consumers"].values():
        each["ratio"] = round(each["events_per_s"] / baseline["events_per_s"], 4)
    print(f"[bench] replay of {len(events)} events: {result['replay']}", file=sys.stderr, flush=True)
    updates = live_updates(events, 2 * LIVE_BATCHES)
    del events, states
    result["live"] = {"after_replay": await live_cpu(platform, updates[:LIVE_BATCHES])}
    if read:
        result["reads"] = await reads(platform, read_seconds)
        print(f"[bench] reads: {result['reads']}", file=sys.stderr, flush=True)
    if "reporting" in platform.services:
        platform.stop("reporting")
    platform.start("reporting")  # on the same database: what a restarted service knows
    await platform.wait_ready()
    result["live"]["after_restart"] = await live_cpu(platform, updates[LIVE_BATCHES:])
    result["live"]["cpu_ms_per_batch"] = max(v["cpu_ms_per_batch"] for v in result["live"].values())
    print(f"[bench] live: {result['live']}", file=sys.stderr, flush=True)
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
