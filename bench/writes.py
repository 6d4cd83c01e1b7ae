"""0. Writes: latency, throughput and CPU of one PUT in each write service, against a bare FastAPI PUT.

The four write services run as they are deployed (each its uvicorn process and its ``ti relay``
process) on fresh databases; ``TERRITORIES`` territories are registered first, so the replicas that
check territory ids are fed. For each service, then for the baseline (``baseline_app``: bare FastAPI,
one asyncpg ``INSERT`` in a transaction, same uvicorn options), ``wrk`` (``put.lua``) sends PUTs read
from a file of distinct requests:

- sequentially (one connection) for ``seconds``: p50 / p99 latency and requests/s;
- at ``CONCURRENCY`` connections for ``seconds``: requests/s, and the baseline's at once after it (the
  ratio of the two: side by side on the machine as it is then, its load moving between services);
- open-loop for ``seconds``: PUTs at the instants of a Poisson process of the goal's rate
  (``scale.write_rate``, 200/s), whatever the answers (a slow answer never delays the next arrival;
  at most ``OPEN_LOOP_CONNECTIONS`` in flight), each latency counted from its scheduled instant (the
  wait for a connection included): p50 / p99 and the rate achieved;

and, per request, the CPU time of the service's uvicorn process while the requests ran, of its relay
and of the PostgreSQL server processes of its database until its outbox has drained.
The PUTs: a new action, a new grant, a new site; for territories (ids are bounded: two digits per
region) an update of an existing one (its launch COPIL toggled), a real change each time.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from common import ROOT, BackendCpu, Platform, Scale, cpu_seconds, percentile
from ti_shared.auth import mint_token
from ti_shared.geo import REGIONS
from ti_shared.streams import action_payloads, grant_payloads, site_payloads, territory_payloads
from ti_shared.testing import create_database, drop_database

CONCURRENCY = 8
#: requests in flight at most in the open-loop run (a Poisson arrival finding them all busy waits for one)
OPEN_LOOP_CONNECTIONS = 64
#: territories registered first (their ids are the ones the actions, grants and sites refer to)
PER_REGION = 11
#: distinct requests written per service: more than any run sends at these rates
REQUESTS = 40_000
SERVICES = ("territory-registry", "action-tracker", "funding-ledger", "site-catalog")
BARE = "bare"


def seconds_of(scale: Scale) -> int:
    return 5 if scale.name == "small" else 15


def request_lines(service: str, territories: dict[str, dict[str, Any]], count: int) -> list[str]:
    """``count`` distinct PUTs ("PATH<TAB>BODY") of ``service`` (the baseline: the site bodies)."""
    rng = random.Random(18)
    regions = {tid: body["region_code"] for tid, body in territories.items()}
    if service == "territory-registry":
        ids = sorted(territories)
        lines = []
        for n in range(count):  # each PUT toggles the territory's launch COPIL: a change every time
            tid = ids[n % len(ids)]
            held = (n // len(ids)) % 2 == 0
            body = {**territories[tid], "launch_copil_held_on": None if held == (territories[tid]["launch_copil_held_on"] is not None) else "2024-03-01"}
            lines.append(f"/v1/territories/{tid}\t{json.dumps(body)}")
        return lines
    if service == "action-tracker":
        return [f"/v1/actions/{aid}\t{json.dumps(b)}" for aid, b in action_payloads(rng, sorted(territories), count, tag="BW").items()]
    if service == "funding-ledger":
        grants = grant_payloads(rng, "ADEME", regions, count, tag="BW")
        return [f"/v1/grants/{op}/{ref}\t{json.dumps(b)}" for (op, ref), b in grants.items()]
    sites = site_payloads(rng, regions, count, tag="BW")
    prefix = "/v1/sites/" if service == "site-catalog" else "/v1/bare/"
    return [f"{prefix}{sid}\t{json.dumps(b)}" for sid, b in sites.items()]


def wrk(url: str, file: Path, token: str, *, connections: int, seconds: int) -> dict[str, Any]:
    threads = min(2, connections)
    done = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(ROOT / "bench" / "put.lua"), url,
         "--", str(file), f"Bearer {token}", str(threads)],
        capture_output=True, text=True, timeout=seconds + 120, check=True,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result:\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    assert not result["wrapped"], f"{file.name}: more requests sent than written"
    return result


async def warm_up(platform: Platform, name: str, url: str, territories: dict[str, dict[str, Any]], token: str) -> None:
    """Connections, prepared statements and caches warm: PUTs of other entities (for territories: an even
    number of toggles of each, which leaves them as they were)."""
    if name == "territory-registry":
        lines = request_lines(name, territories, 2 * len(territories))
    else:
        lines = [line.replace("\t", "-warm\t", 1) for line in request_lines(name, territories, 200)]
    async with httpx.AsyncClient(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        for line in lines:
            path, body = line.split("\t", 1)
            r = await client.put(path, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code in (200, 201), (name, r.status_code, r.text[:300])
    if name != BARE:
        await platform.wait_settled()


async def open_loop(url: str, lines: list[str], token: str, *, rate: float, seconds: int, seed: int = 18) -> dict[str, Any]:
    """PUTs of ``lines`` at the instants of a Poisson process of ``rate`` per second for ``seconds``; the
    same result keys as :func:`wrk` (latencies from each scheduled instant)."""
    rng = random.Random(seed)
    latencies: list[float] = []
    failed = 0
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=OPEN_LOOP_CONNECTIONS)
    async with aiohttp.ClientSession(url, connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def put(path: str, body: bytes, at: float) -> None:
            nonlocal failed
            try:
                async with session.put(path, data=body) as response:
                    await response.read()
                    failed += response.status >= 300
            except (aiohttp.ClientError, TimeoutError):
                failed += 1
            latencies.append(time.monotonic() - at)

        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        at, sent = start + rng.expovariate(rate), 0
        while at < start + seconds:
            if sent == len(lines):
                raise RuntimeError("more open-loop requests due than written")
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            path, body = lines[sent].split("\t", 1)
            task = asyncio.create_task(put(path, body.encode(), at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
            at += rng.expovariate(rate)
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
    us = [x * 1e6 for x in latencies]
    return {
        "requests": sent, "duration_us": elapsed * 1e6, "p50_us": percentile(us, 0.5), "p90_us": percentile(us, 0.9),
        "p99_us": percentile(us, 0.99), "non2xx": failed, "socket_errors": 0, "wrapped": False,
    }


async def run_once(
    platform: Platform, name: str, url: str, pids: list[int], database: str, file: Path, token: str, *, connections: int, seconds: int,
    rate: float | None = None, lines: list[str] | None = None,
) -> dict[str, Any]:
    """One wrk run of ``file`` (or, with ``rate``, one open-loop run of ``lines``). CPU: the service's
    process (``pids[0]``) while the requests ran — not while the bench then polls every ``/readyz`` until
    the platform has settled, which would add that polling to a slow run's requests —, its relay
    (``pids[1:]``) and the PostgreSQL processes of its database until its outbox has drained."""
    backends = BackendCpu(database)
    cpu0, relay0 = cpu_seconds(pids[:1]), cpu_seconds(pids[1:])
    backends.start()
    if rate is None or lines is None:
        result = await asyncio.to_thread(wrk, url, file, token, connections=connections, seconds=seconds)
    else:
        result = await open_loop(url, lines, token, rate=rate, seconds=seconds)
    service_cpu = cpu_seconds(pids[:1]) - cpu0
    if name != BARE:
        await platform.wait_settled()
    relay = cpu_seconds(pids[1:]) - relay0
    cpu = service_cpu + relay
    pg = backends.stop()
    n = result["requests"]
    return {
        "service_only_cpu_ms_per_request": round(service_cpu / n * 1000, 3) if n else None,
        "relay_cpu_ms_per_request": round(relay / n * 1000, 3) if n else None,
        "requests": n,
        "rps": round(n / (result["duration_us"] / 1e6), 1),
        "p50_ms": round(result["p50_us"] / 1000, 2),
        "p90_ms": round(result["p90_us"] / 1000, 2),
        "p99_ms": round(result["p99_us"] / 1000, 2),
        "failed": result["non2xx"] + result["socket_errors"],
        "cpu_ms_per_request": round(cpu / n * 1000, 3) if n else None,
        "postgres_cpu_ms_per_request": round(pg / n * 1000, 3) if n else None,
    }


async def measure_writes(
    platform: Platform, scale: Scale, *, services: tuple[str, ...] = SERVICES, env: dict[str, str] | None = None,
    spy: Path | None = None,
) -> dict[str, Any]:
    """``services``: those measured (territory-registry always runs: the others' territories come from it);
    ``env``: the services' environment (``PYTHONPATH`` of another checkout); ``spy``: a folder where
    py-spy records each service's process during its sequential run."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (make bench installs it)")
    started = tuple(dict.fromkeys(("territory-registry", *services)))
    settings = await platform.prepare(started)
    bare_url = await create_database("bench_bare_write")
    try:
        for name in started:
            platform.start(name, env=env)
        platform.start(BARE, module_app="baseline_app:create_app", env={"BENCH_BASELINE_DATABASE_URL": bare_url})
        await platform.wait_ready()
        rng = random.Random(2026)
        territories = territory_payloads(rng, list(REGIONS), PER_REGION, first_seq=20)
        admin = mint_token(settings, sub="bench-writer", scopes=["admin"], ttl_seconds=7200)
        async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {admin}"}) as client:
            base = platform.services["territory-registry"].url
            for tid, body in territories.items():
                r = await client.put(f"{base}/v1/territories/{tid}", json=body)
                assert r.status_code in (200, 201), r.text
        await platform.wait_settled()
        seconds = seconds_of(scale)
        out: dict[str, Any] = {
            "concurrency": CONCURRENCY, "seconds": seconds, "rate": scale.write_rate, "territories": len(territories), "services": {},
        }
        bare = platform.services[BARE]
        bare_database = bare_url.rsplit("/", 1)[1]
        await warm_up(platform, BARE, bare.url, territories, admin)
        for name in (*services, BARE):
            service = platform.services[name]
            file = platform.run_dir / f"puts-{name}.tsv"
            file.write_text("\n".join(request_lines(name, territories, REQUESTS)) + "\n", encoding="utf-8")
            database = (platform.databases.get(name) or bare_url).rsplit("/", 1)[1]
            if name != BARE:
                await warm_up(platform, name, service.url, territories, admin)
            recorder = _record(service.proc.pid, spy, name) if spy is not None and name != BARE else None
            try:
                sequential = await run_once(platform, name, service.url, service.pids, database, file, admin, connections=1, seconds=seconds)
            finally:
                if recorder is not None:
                    recorder.send_signal(signal.SIGINT)
                    recorder.wait(30)
            # the concurrent run takes the lines after those the sequential run sent (and the one it may
            # have had in flight when it stopped); a territory's lines toggle it, so none is skipped there
            skip = sequential["requests"] + (1 if name == "territory-registry" else 10)
            rest = platform.run_dir / f"puts-{name}-c{CONCURRENCY}.tsv"
            rest.write_text("\n".join(file.read_text(encoding="utf-8").splitlines()[skip:]) + "\n", encoding="utf-8")
            concurrent = await run_once(
                platform, name, service.url, service.pids, database, rest, admin, connections=CONCURRENCY, seconds=seconds
            )
            entry: dict[str, Any] = {"sequential": sequential, f"c{CONCURRENCY}": concurrent}
            if name != BARE:
                # the baseline's concurrent run right after the service's, on the machine as it is then
                # (its own ids for each service: new rows, as the services' PUTs)
                paired_file = platform.run_dir / f"puts-bare-after-{name}.tsv"
                paired_file.write_text(
                    "\n".join(line.replace("/v1/bare/", f"/v1/bare/{name}-", 1) for line in request_lines(BARE, territories, REQUESTS))
                    + "\n",
                    encoding="utf-8",
                )
                paired = await run_once(
                    platform, BARE, bare.url, bare.pids, bare_database, paired_file, admin, connections=CONCURRENCY, seconds=seconds
                )
                entry[f"bare_c{CONCURRENCY}_rps"] = paired["rps"]
                entry[f"c{CONCURRENCY}_ratio"] = round(concurrent["rps"] / paired["rps"], 3) if paired["rps"] else None
            # the open-loop run: the lines after any the concurrent run may have sent (its threads take
            # alternate lines, each at most all of the run's requests)
            after = skip + 2 * concurrent["requests"] + 10
            entry["open_loop"] = await run_once(
                platform, name, service.url, service.pids, database, file, admin, connections=0, seconds=seconds,
                rate=scale.write_rate, lines=file.read_text(encoding="utf-8").splitlines()[after:],
            )
            out["services"][name] = entry
        return out
    finally:
        platform.stop(BARE)
        await drop_database(bare_url)


def _record(pid: int, spy: Path, label: str) -> subprocess.Popen[bytes]:
    """py-spy recording ``pid`` (raw, 200 Hz) into ``spy/<label>.raw`` until interrupted."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    spy.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--output", str(spy / f"{label}.raw"), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def summary_of(result: dict[str, Any]) -> dict[str, Any]:
    """The headline figures: the worst of the four services for each goal."""
    services = {k: v for k, v in result["services"].items() if k != BARE}
    key = f"c{CONCURRENCY}"
    return {
        "put_cpu_ms": max(v["sequential"]["cpu_ms_per_request"] for v in services.values()),
        "put_p50_ms": max(v["sequential"]["p50_ms"] for v in services.values()),
        "put_c8_ratio": min(v[f"{key}_ratio"] for v in services.values()),
        "bare_put_cpu_ms": result["services"][BARE]["sequential"]["cpu_ms_per_request"],
        "bare_put_p50_ms": result["services"][BARE]["sequential"]["p50_ms"],
        "bare_put_c8_rps": result["services"][BARE][key]["rps"],
        "put_open_loop_p99_ms": max(v["open_loop"]["p99_ms"] for v in services.values()),
        "bare_put_open_loop_p99_ms": result["services"][BARE]["open_loop"]["p99_ms"],
    }


def markdown_rows(result: dict[str, Any]) -> list[str]:
    key = f"c{CONCURRENCY}"
    rows = [
        "", f"Writes (sequential {result['seconds']} s, then {CONCURRENCY} connections {result['seconds']} s; CPU per request:"
        " the service's process while the requests ran + its relay's until the outbox drained):", "",
        "| PUT | req/s c=1 | p50 ms | p99 ms | CPU ms/req: service + relay (relay) | PostgreSQL CPU ms/req | req/s c=8 | bare req/s c=8 just after"
        " | c=8 / bare | failed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in result["services"].items():
        s, c = v["sequential"], v[key]
        rows.append(
            f"| {name} | {s['rps']} | {s['p50_ms']} | {s['p99_ms']} | {s['cpu_ms_per_request']} ({s['relay_cpu_ms_per_request']})"
            f" | {s['postgres_cpu_ms_per_request']} | {c['rps']} | {v.get('bare_' + key + '_rps', '')} | {v.get(key + '_ratio', '')} | {s['failed'] + c['failed']} |"
        )
    rows += [
        "", f"Writes open-loop (Poisson arrivals at {result.get('rate')}/s for {result['seconds']} s; latency from each scheduled instant):", "",
        "| PUT | req/s achieved | p50 ms | p90 ms | p99 ms | CPU ms/req: service + relay (relay) | PostgreSQL CPU ms/req | failed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, v in result["services"].items():
        o = v.get("open_loop")
        if o is not None:
            rows.append(
                f"| {name} | {o['rps']} | {o['p50_ms']} | {o['p90_ms']} | {o['p99_ms']} | {o['cpu_ms_per_request']} ({o['relay_cpu_ms_per_request']})"
                f" | {o['postgres_cpu_ms_per_request']} | {o['failed']} |"
            )
    return rows


if __name__ == "__main__":  # one section alone: python bench/writes.py [--services …] [--code DIR] [--py-spy DIR]
    import argparse
    import os
    import tempfile

    from common import RssSampler, scale_from_env

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--services", default=",".join(SERVICES), help="the services measured, comma-separated (default: all four)")
    parser.add_argument(
        "--code", type=Path, default=None,
        help="run the services with another checkout's code (its shared/src and services/*/src first on PYTHONPATH)",
    )
    parser.add_argument("--py-spy", type=Path, default=None, help="record each service's sequential run with py-spy (raw) into this folder")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON too")
    args = parser.parse_args()
    chosen = tuple(s for s in args.services.split(",") if s)
    unknown = set(chosen) - set(SERVICES)
    if unknown:
        raise SystemExit(f"unknown services: {', '.join(sorted(unknown))}")
    code_env = None
    if args.code is not None:
        tree = args.code.resolve()
        code_env = {"PYTHONPATH": os.pathsep.join(str(p) for p in [tree / "shared" / "src", *sorted((tree / "services").glob("*/src"))])}

    async def _main() -> None:
        with tempfile.TemporaryDirectory(prefix="ti-bench-") as tmp:
            sampler = RssSampler()
            sampler.start()
            platform = Platform(run_dir=Path(tmp), sampler=sampler)
            try:
                result = await measure_writes(platform, scale_from_env(), services=chosen, env=code_env, spy=args.py_spy)
            finally:
                await platform.close()
            result["code"] = str(args.code or ROOT)
            if args.json:
                print(json.dumps(result, indent=2))
            print("\n".join(markdown_rows(result)))

    asyncio.run(_main())
