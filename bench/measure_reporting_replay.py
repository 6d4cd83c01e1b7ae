"""Replay a generated stream through Kafka into the reporting service; report events/s and peak RSS,
then the read path: GETs of one scope's materialised indicators over HTTP, against a constant-JSON
endpoint served the same way.

    source var/local.env && .venv/bin/python bench/measure_reporting_replay.py [--events 100000]
        [--actions 36000 --grants 3000 --sites 2000] [--reads 2000 --concurrency 32 --scope region:84]
        [--baseline DIR [--baseline DIR2…] [--rounds 2]] [--trace-memory FRAMES] [--rss-every SECONDS]

The parent generates the stream (≈100,000 events with the defaults; ``--events N`` scales the
programme to about N events), publishes it to fresh topics and creates a fresh PostgreSQL database;
a child process runs the reporting service, which replays everything from offset 0. The child
reports the events applied per second and its peak RSS, then serves the app with uvicorn on loopback
and a separate load process measures requests/s and latency percentiles (``--reads 0`` skips it).

``--baseline DIR``: the same replay of the same topics first with the services' code of another
checkout (``git archive main | tar -x -C DIR`` will do: its ``shared/src`` and ``services/*/src`` put
first on the child's ``PYTHONPATH``), then with this one, each into a fresh database, ``--rounds``
times alternately (several ``--baseline``: each in turn, then this one); a line per baseline gives
this code's figures over its own (the lowest peak RSS, the highest events/s of the rounds). ``--trace-memory
FRAMES``: the child traces its allocations (``tracemalloc``, that many frames, several times slower)
and prints, at the largest traced size seen during the replay, the lines and tracebacks holding most;
``--rss-every S`` prints its resident set and the events applied every S seconds. The child serves the
app as deployed: its responses are not checked against the OpenAPI document (the tests' validator keeps
the parsed document, ≈ 27 MiB, in the process measured).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_EVENTS = 100_414  # what the default programme size generates


async def _serve(app: Any, port: int) -> tuple[Any, asyncio.Task[None]]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
                                           access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    return server, task


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _load_of(url: str, reads: int, concurrency: int) -> dict[str, Any]:
    """Run the load generator in another process (so that it does not share the server's loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--load", url, str(reads), str(concurrency), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    result: dict[str, Any] = json.loads(out)
    return result


async def _read_path(app: Any, scope: str, reads: int, concurrency: int) -> dict[str, Any]:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    port = _free_port()
    server, task = await _serve(app, port)
    url = f"http://127.0.0.1:{port}/v1/indicators?scope={scope}"
    try:
        import httpx

        async with httpx.AsyncClient() as client:
            body = (await client.get(url)).json()
        measured = await _load_of(url, reads, concurrency)
    finally:
        server.should_exit = True
        await task
    constant = FastAPI()

    @constant.get("/constant")
    async def get_constant() -> JSONResponse:
        return JSONResponse(body)

    port = _free_port()
    server, task = await _serve(constant, port)
    try:
        reference = await _load_of(f"http://127.0.0.1:{port}/constant", reads, concurrency)
    finally:
        server.should_exit = True
        await task
    return {
        "read_scope": scope,
        "read_rps": measured["rps"],
        "read_p50_ms": measured["p50_ms"],
        "read_p99_ms": measured["p99_ms"],
        "read_errors": measured["errors"],
        "constant_rps": reference["rps"],
        "constant_p99_ms": reference["p99_ms"],
        "read_vs_constant": round(measured["rps"] / reference["rps"], 2),
    }


async def _load(url: str, reads: int, concurrency: int) -> None:
    import httpx

    latencies: list[float] = []
    errors = 0
    remaining = reads
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        for _ in range(min(50, reads)):  # warm up connections and caches
            (await client.get(url)).raise_for_status()

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                try:
                    response = await client.get(url)
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                errors += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    print(json.dumps({"requests": len(latencies), "errors": errors, "rps": round(len(latencies) / elapsed), "p50_ms": pct(0.5), "p99_ms": pct(0.99)}))


async def _bare(prefix: str, expected: int) -> dict[str, Any]:
    """A bare aiokafka consumer over the same topics that only reads and JSON-decodes (the reference)."""
    import orjson
    from aiokafka import AIOKafkaConsumer
    from ti_shared.events import DOMAIN_TOPICS
    from ti_shared.testing import platform_settings

    platform = platform_settings(topic_prefix=prefix)
    consumer = AIOKafkaConsumer(
        *(prefix + t for t in DOMAIN_TOPICS), bootstrap_servers=platform.kafka_bootstrap, group_id=None,
        enable_auto_commit=False, auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        started = time.perf_counter()
        seen = 0
        while seen < expected:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=10000)).values():
                for r in records:
                    orjson.loads(r.value)
                seen += len(records)
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
    return {"bare_events_per_s": round(seen / elapsed)}


def _rss_mib(field: str = "VmHWM") -> int:
    """This process's resident-set high-water mark (``VmHWM``), or its resident set now (``VmRSS``). Not
    ``getrusage``'s ``ru_maxrss``: on Linux that keeps the peak of the parent's memory copied by ``fork``
    before ``exec``."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024)
    return -1


class _MemoryTracer:
    """Samples the traced size every second; keeps a snapshot each time it grows past the last one's by 5 %."""

    def __init__(self, frames: int) -> None:
        import tracemalloc

        self.tracemalloc = tracemalloc
        tracemalloc.start(frames)
        self.snapshot: Any = None
        self.snapshot_size = 0
        self.task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(1)
            size = self.tracemalloc.get_traced_memory()[0]
            if size > self.snapshot_size * 1.05:
                self.snapshot, self.snapshot_size = self.tracemalloc.take_snapshot(), size

    def report(self) -> dict[str, Any]:
        self.task.cancel()
        current, peak = self.tracemalloc.get_traced_memory()
        snapshot = self.snapshot or self.tracemalloc.take_snapshot()
        snapshot = snapshot.filter_traces([self.tracemalloc.Filter(False, self.tracemalloc.__file__)])
        mib = 1024 * 1024
        print(f"[trace] traced now {current / mib:.1f} MiB, peak {peak / mib:.1f} MiB; "
              f"snapshot at {self.snapshot_size / mib:.1f} MiB:", file=sys.stderr)
        for stat in snapshot.statistics("lineno")[:25]:
            frame = stat.traceback[0]
            print(f"[trace] {stat.size / mib:8.1f} MiB {stat.count:9d} blocks  {frame.filename}:{frame.lineno}", file=sys.stderr)
        for stat in snapshot.statistics("traceback")[:8]:
            print(f"[trace] {stat.size / mib:8.1f} MiB {stat.count:9d} blocks", file=sys.stderr)
            for line in stat.traceback.format(limit=8, most_recent_first=True):
                print(f"[trace]     {line}", file=sys.stderr)
        return {"traced_peak_mib": round(peak / mib, 1), "traced_at_snapshot_mib": round(self.snapshot_size / mib, 1)}


def _malloc_mib() -> tuple[int, int]:
    """glibc's heap: what its chunks hold in use and what it keeps free (``mallinfo2``), MiB; (-1, -1) elsewhere."""
    import ctypes

    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return -1, -1
    mallinfo2.restype = Info
    info = mallinfo2()
    mib = 1024 * 1024
    return round((info.uordblks + info.hblkhd) / mib), round(info.fordblks / mib)


async def _sample_rss(consumer: Any, every_s: float) -> None:
    """Print the resident set, glibc's heap in use and free, and the events applied so far every
    ``every_s`` seconds (stderr)."""
    started = time.perf_counter()
    while True:
        await asyncio.sleep(every_s)
        used, free = _malloc_mib()
        print(f"[rss] {time.perf_counter() - started:7.1f} s  applied {consumer.applied_count:9d}  "
              f"RSS {_rss_mib('VmRSS'):5d} MiB  peak {_rss_mib():5d} MiB  malloc in use {used} MiB, free {free} MiB",
              file=sys.stderr, flush=True)


async def _child(url: str, prefix: str, expected: int, reads: int, concurrency: int, scope: str, frames: int,
                 rss_every: float) -> None:
    import reporting
    from reporting.main import create_app
    from ti_shared.testing import platform_settings, running, service_settings

    platform = platform_settings(topic_prefix=prefix)
    app = create_app(service_settings("reporting", url, platform))
    imported = _rss_mib("VmRSS")
    # the service as deployed: no check of its responses against the OpenAPI document (the tests'
    # validator holds the parsed document, ≈ 27 MiB, in this process)
    async with running(app, validate=False) as client:
        started_rss = _rss_mib("VmRSS")
        tracer = _MemoryTracer(frames) if frames else None
        consumer = app.state.ctx.consumer("reporting")
        sampler = asyncio.create_task(_sample_rss(consumer, rss_every)) if rss_every else None
        started = time.perf_counter()
        while consumer.applied_count + consumer.skipped_count < expected or await consumer.lag() > 0:
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        if sampler is not None:
            sampler.cancel()
        traced = tracer.report() if tracer is not None else {}
        national = (await client.get("/v1/indicators", params={"scope": "national"})).json()["indicators"]
        result: dict[str, Any] = {
            "events": expected,
            "applied": consumer.applied_count,
            "seconds": round(elapsed, 2),
            "events_per_s": round(consumer.applied_count / elapsed),
            "peak_rss_mib": _rss_mib(),
            "rss_imported_mib": imported,
            "rss_started_mib": started_rss,
            "actions_count": national["actions.count"],
            "reporting_code": str(Path(reporting.__file__).parent),
            **traced,
        }
        if reads > 0:
            result |= await _read_path(app, scope, reads, concurrency)
    print(json.dumps(result))


def _pythonpath(tree: Path) -> str:
    paths = [tree / "shared" / "src", *sorted((tree / "services").glob("*/src"))]
    return os.pathsep.join(str(p) for p in [*paths, *filter(None, [os.environ.get("PYTHONPATH")])])


async def _replay(args: argparse.Namespace, prefix: str, count: int, tree: Path | None) -> dict[str, Any]:
    """One replay of the topics by a child process (with another checkout's code if ``tree``), into a fresh database."""
    from ti_shared.testing import create_database, drop_database

    url = await create_database("bench_reporting")
    env = {**os.environ, "PYTHONPATH": _pythonpath(tree)} if tree is not None else None
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--child", url, prefix, str(count), "--reads", str(args.reads),
            "--concurrency", str(args.concurrency), "--scope", args.scope, "--trace-memory", str(args.trace_memory),
            "--rss-every", str(args.rss_every), stdout=asyncio.subprocess.PIPE, env=env,
        )
        out, _ = await proc.communicate()
        if proc.returncode:
            raise SystemExit(f"the replay child failed ({proc.returncode})")
        result: dict[str, Any] = {"code": str(tree) if tree is not None else "this", **json.loads(out.splitlines()[-1])}
        print(json.dumps(result), flush=True)
        return result
    finally:
        await drop_database(url)


async def _parent(args: argparse.Namespace) -> int:
    from ti_shared.streams import generate_stream
    from ti_shared.testing import create_topics, new_topic_prefix, platform_settings, publish_events

    if args.events is not None:
        factor = args.events / DEFAULT_EVENTS
        args.actions, args.grants, args.sites = (max(1, round(n * factor)) for n in (36000, 3000, 2000))
    events = generate_stream(2024, territories=183, actions=args.actions, grants=args.grants, sites=args.sites)
    print(f"generated {len(events)} events", file=sys.stderr)
    prefix = new_topic_prefix()
    await create_topics(prefix)
    platform = platform_settings(topic_prefix=prefix)
    for i in range(0, len(events), 20000):
        await publish_events(platform, events[i : i + 20000])
    count = len(events)
    del events
    print(json.dumps(await _bare(prefix, count)), file=sys.stderr)
    print("published; replaying in a child process", file=sys.stderr)
    baselines = [tree.resolve() for tree in args.baseline]
    trees: list[Path | None] = [*baselines, None]
    runs: dict[str, list[dict[str, Any]]] = {str(tree or "this"): [] for tree in trees}
    for _ in range(args.rounds if baselines else 1):
        for tree in trees:
            runs[str(tree or "this")].append(await _replay(args, prefix, count, tree))
    for tree in baselines:
        base, this = runs[str(tree)], runs["this"]
        print(json.dumps({
            "baseline": str(tree),
            "rss_this_over_baseline": round(min(r["peak_rss_mib"] for r in this) / min(r["peak_rss_mib"] for r in base), 3),
            "events_per_s_this_over_baseline": round(
                max(r["events_per_s"] for r in this) / max(r["events_per_s"] for r in base), 3),
        }))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=None, help="scale the programme to about this many events")
    parser.add_argument("--actions", type=int, default=36000)
    parser.add_argument("--grants", type=int, default=3000)
    parser.add_argument("--sites", type=int, default=2000)
    parser.add_argument("--reads", type=int, default=2000, help="GETs of the read-path measurement (0: none)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--scope", default="region:84")
    parser.add_argument("--child", nargs=3, metavar=("URL", "PREFIX", "EXPECTED"))
    parser.add_argument("--load", nargs=3, metavar=("URL", "REQUESTS", "CONCURRENCY"))
    parser.add_argument("--baseline", type=Path, action="append", default=[],
                        help="another checkout, replayed first (repeatable: each in turn, then this one)")
    parser.add_argument("--rounds", type=int, default=1, help="with --baseline: baseline, this, so many times")
    parser.add_argument("--trace-memory", type=int, default=0, metavar="FRAMES",
                        help="trace the child's allocations with so many frames (0: not)")
    parser.add_argument("--rss-every", type=float, default=0, metavar="SECONDS",
                        help="print the child's resident set and events applied every so many seconds (0: not)")
    args = parser.parse_args()
    if args.load:
        asyncio.run(_load(args.load[0], int(args.load[1]), int(args.load[2])))
        return
    if args.child:
        url, prefix, expected = args.child
        asyncio.run(_child(url, prefix, int(expected), args.reads, args.concurrency, args.scope, args.trace_memory,
                           args.rss_every))
        return
    raise SystemExit(asyncio.run(_parent(args)))


if __name__ == "__main__":
    main()
