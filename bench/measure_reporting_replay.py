"""Replay a generated stream through Kafka into the reporting service; report events/s and peak RSS.

    source var/local.env && .venv/bin/python bench/measure_reporting_replay.py [--actions 36000]

The parent generates the stream (≈100,000 events with the defaults), publishes it to fresh topics
and creates a fresh PostgreSQL database; a child process runs the reporting service, which replays
everything from offset 0. The child reports the events applied per second and its peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time


async def _child(url: str, prefix: str, expected: int) -> None:
    from reporting.main import create_app
    from ti_shared.testing import platform_settings, running, service_settings

    platform = platform_settings(topic_prefix=prefix)
    app = create_app(service_settings("reporting", url, platform))
    async with running(app) as client:
        consumer = app.state.ctx.consumer("reporting")
        started = time.perf_counter()
        while consumer.applied_count + consumer.skipped_count < expected or await consumer.lag() > 0:
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        national = (await client.get("/v1/indicators", params={"scope": "national"})).json()["indicators"]
    print(json.dumps({
        "events": expected,
        "applied": consumer.applied_count,
        "seconds": round(elapsed, 2),
        "events_per_s": round(consumer.applied_count / elapsed),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "actions_count": national["actions.count"],
    }))


async def _parent(args: argparse.Namespace) -> int:
    from ti_shared.streams import generate_stream
    from ti_shared.testing import (
        create_database,
        create_topics,
        drop_database,
        new_topic_prefix,
        platform_settings,
        publish_events,
    )

    events = generate_stream(2024, territories=183, actions=args.actions, grants=args.grants, sites=args.sites)
    print(f"generated {len(events)} events", file=sys.stderr)
    url = await create_database("bench_reporting")
    prefix = new_topic_prefix()
    await create_topics(prefix)
    platform = platform_settings(topic_prefix=prefix)
    try:
        for i in range(0, len(events), 20000):
            await publish_events(platform, events[i : i + 20000])
        print("published; replaying in a child process", file=sys.stderr)
        proc = subprocess.run(  # noqa: ASYNC221 - the parent only waits
            [sys.executable, __file__, "--child", url, prefix, str(len(events))], check=False
        )
        return proc.returncode
    finally:
        await drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--actions", type=int, default=36000)
    parser.add_argument("--grants", type=int, default=3000)
    parser.add_argument("--sites", type=int, default=2000)
    parser.add_argument("--child", nargs=3, metavar=("URL", "PREFIX", "EXPECTED"))
    args = parser.parse_args()
    if args.child:
        url, prefix, expected = args.child
        asyncio.run(_child(url, prefix, int(expected)))
        return
    raise SystemExit(asyncio.run(_parent(args)))


if __name__ == "__main__":
    main()
