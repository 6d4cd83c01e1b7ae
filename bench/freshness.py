"""2. Freshness: a sustained mixed write load, and for each write the time until the indicators show it.

The five services run as they are deployed (each its uvicorn process and its ``ti relay`` process).
Writes arrive open-loop: a Poisson process at the goal's rate, whatever the platform's answers (a slow
answer never delays the next arrival), each arrival taken by an idle lane — ``LANES_PER_WRITE_S`` ×
rate lanes, one territory each, a lane writing once at a time — or counted as refused when every lane
is busy. A lane knows every indicator of its territory scope: after each 2xx (client side), the value
that write must produce is awaited — by default (``VIA = "after"``) as a front end reads its own write,
one ``/v1/indicators?scope=territory:<id>&after=<its TI-Event-Id>&wait=…`` whose answer must show it
(a mismatch counts as not visible); with ``BENCH_FRESHNESS_VIA=poll`` by ``POLLERS`` workers reading
the scopes of the pending writes in turn (conditional requests, each scope at most every ``POLL_S``).
Server side, reporting's ``ti_consumer_event_age_seconds``
histogram gives, for every event it applied in the window, its time (the write's) to the commit that
applied it. The mix cycles over: action PUT (new action), grant PUT (new grant), territory PUT (launch
COPIL toggled), action PATCH (status), site PUT (new site). The CPU time of each service's processes
(uvicorn and relay) over the window is reported per write it took, and the bench's own (the client's: a
figure of the platform only while it stays well under one core).

``BENCH_PROFILE=<dir>``: py-spy (on the PATH or next to the interpreter) records every service process,
every relay and the bench itself during the window, one raw (collapsed-stack) file each in ``<dir>``.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
from common import PYTHON, Platform, Scale, cpu_seconds, metric_samples, percentile
from ti_shared.auth import mint_token
from ti_shared.geo import REGIONS
from ti_shared.streams import (
    action_payloads,
    grant_payloads,
    site_payloads,
    territory_payloads,
)
from ti_shared.vocabulary import ACTION_STATUSES

#: how a write's visibility is seen: "after" (one request waiting for its event) or "poll"
VIA = os.environ.get("BENCH_FRESHNESS_VIA", "after")
POLL_S = 0.05
#: concurrent indicator reads of the visibility check, whatever the number of writes in flight
POLLERS = 4
VISIBLE_TIMEOUT_S = 15.0
#: lanes per write/s of the target rate: at a freshness of ~0.1-0.5 s a lane is idle most of the time
LANES_PER_WRITE_S = 1
KINDS = ("action_put", "grant", "territory", "action_patch", "site")
SERVICES = ("territory-registry", "action-tracker", "funding-ledger", "site-catalog", "reporting")
#: where the window's py-spy profiles go (none when unset)
PROFILE_DIR = os.environ.get("BENCH_PROFILE")
SERVICE_OF = {"action_put": "action-tracker", "action_patch": "action-tracker", "grant": "funding-ledger",
              "territory": "territory-registry", "site": "site-catalog"}


@dataclass
class Lane:
    """One territory and everything its scope's indicators must show."""

    index: int
    territory_id: str
    region: str
    body: dict[str, Any]
    rng: random.Random
    actions: dict[str, str] = field(default_factory=dict)
    grants: int = 0
    sites: int = 0
    writes: int = 0

    def by_status(self) -> dict[str, int]:
        counts = dict.fromkeys(ACTION_STATUSES, 0)
        for status in self.actions.values():
            counts[status] += 1
        return counts


#: the content type of the writes' bodies
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Answer:
    """What the bench keeps of a write's response."""

    status: int
    event_id: str | None


@dataclass
class Sample:
    kind: str
    write_ms: float
    visible_ms: float | None
    status: int


class Load:
    def __init__(self, platform: Platform, lanes: list[Lane]) -> None:
        assert platform.settings is not None
        s = platform.settings
        urls = {name: platform.services[name].url for name in SERVICES}
        self.urls = urls
        tids = [lane.territory_id for lane in lanes]
        self.headers = {
            "territory": {"Authorization": "Bearer " + mint_token(s, sub="bench-anct", scopes=["territories:write"])},
            "action": {
                "Authorization": "Bearer " + mint_token(s, sub="bench-lead", scopes=["actions:write"], territories=tids)
            },
            "grant": {
                "Authorization": "Bearer " + mint_token(s, sub="bench-ademe", scopes=["grants:write"], operator="ADEME")
            },
            "site": {"Authorization": "Bearer " + mint_token(s, sub="bench-sites", scopes=["sites:write"])},
        }
        #: setup, /readyz and /metrics (a few requests a second)
        self.client = httpx.AsyncClient(timeout=30)
        #: the writes and the visibility checks, the bulk of the requests, go through aiohttp: httpx's pool
        #: scans every connection on each request (≈ 10 ms of client CPU per write with 200 lanes, a quarter
        #: of a core at 25 writes/s), on a machine the services share with the load generator
        self.write_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=len(lanes) + 20), timeout=aiohttp.ClientTimeout(total=30),
        )
        self.poll_session = aiohttp.ClientSession(  # after=: one waiting read per write in flight
            connector=aiohttp.TCPConnector(limit=2 * POLLERS if VIA == "poll" else len(lanes) + 20),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        self.samples: list[Sample] = []
        self.backlog: dict[str, list[tuple[int, int]]] = {}
        self.pending: dict[str, tuple[tuple[str, Any], asyncio.Future[bool]]] = {}
        self.polling: set[str] = set()
        self.last_polled: dict[str, float] = {}
        self.etags: dict[str, str] = {}
        self.arrived = self.refused = 0
        #: answers of after= that did not show the write (the event applied, the figure not as expected)
        self.after_mismatches = 0
        self.service_writes: dict[str, int] = {}

    async def send(self, method: str, url: str, body: Any, headers: dict[str, str]) -> Answer:
        """One write; retried on a dropped keep-alive connection (every write here is idempotent)."""
        data = orjson.dumps(body)
        for attempt in range(3):
            try:
                async with self.write_session.request(method, url, data=data, headers={**headers, **JSON}) as r:
                    await r.read()
                    return Answer(r.status, r.headers.get("ti-event-id"))
            except (aiohttp.ClientConnectionError, aiohttp.ServerDisconnectedError):
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def write(self, lane: Lane, kind: str) -> tuple[Answer, Any]:
        """Send one write; returns the response and the check its visibility needs."""
        n = lane.writes
        tag = f"L{lane.index:03d}W{n:04d}"
        tid = lane.territory_id
        if kind == "action_patch" and not lane.actions:
            kind = "action_put"
        if kind == "action_put":
            aid, body = next(iter(action_payloads(lane.rng, [tid], 1, tag=tag).items()))
            r = await self.send("PUT", f"{self.urls['action-tracker']}/v1/actions/{aid}", body, self.headers["action"])
            lane.actions[aid] = body["status"]
            return r, ("actions.by_status", lane.by_status())
        if kind == "action_patch":
            aid = lane.rng.choice(sorted(lane.actions))
            status = lane.rng.choice([s for s in ACTION_STATUSES if s != lane.actions[aid]])
            r = await self.send(
                "PATCH", f"{self.urls['action-tracker']}/v1/actions/{aid}", {"status": status}, self.headers["action"]
            )
            lane.actions[aid] = status
            return r, ("actions.by_status", lane.by_status())
        if kind == "grant":
            (op, ref), body = next(iter(grant_payloads(lane.rng, "ADEME", {tid: lane.region}, 1, tag=tag).items()))
            r = await self.send("PUT", f"{self.urls['funding-ledger']}/v1/grants/{op}/{ref}", body, self.headers["grant"])
            if body["status"] == "committed":
                lane.grants += 1
            return r, ("grants.count", lane.grants)
        if kind == "site":
            sid, body = next(iter(site_payloads(lane.rng, {tid: lane.region}, 1, tag=tag).items()))
            r = await self.send("PUT", f"{self.urls['site-catalog']}/v1/sites/{sid}", body, self.headers["site"])
            lane.sites += 1
            return r, ("sites.count", lane.sites)
        held = lane.body["launch_copil_held_on"] is None
        lane.body = {**lane.body, "launch_copil_held_on": "2024-03-01" if held else None}
        r = await self.send(
            "PUT", f"{self.urls['territory-registry']}/v1/territories/{tid}", lane.body, self.headers["territory"]
        )
        return r, ("territories.launch_copil_held", 1 if held else 0)

    async def visible_after(self, lane: Lane, check: tuple[str, Any], event_id: str) -> bool:
        """One read waiting for the write's event: its answer must show ``check`` (False on a 504 or a mismatch)."""
        params = {"scope": "territory:" + lane.territory_id, "after": event_id, "wait": f"{VISIBLE_TIMEOUT_S:g}"}
        try:
            async with self.poll_session.get(f"{self.urls['reporting']}/v1/indicators", params=params) as r:
                status, body = r.status, await r.read()
        except aiohttp.ClientError:
            return False
        if status != 200:
            return False
        if not _holds(check, orjson.loads(body)["indicators"]):
            self.after_mismatches += 1
            return False
        return True

    async def visible(self, lane: Lane, check: tuple[str, Any]) -> bool:
        """Wait until the poller has seen ``check`` hold in the lane's scope (False after the timeout)."""
        seen = asyncio.get_running_loop().create_future()
        self.pending[lane.territory_id] = (check, seen)
        try:
            return await asyncio.wait_for(seen, VISIBLE_TIMEOUT_S)
        except TimeoutError:
            return False
        finally:
            self.pending.pop(lane.territory_id, None)

    async def poller(self) -> None:
        """One of ``POLLERS`` workers: polls the pending scopes in turn (a bounded load on reporting)."""
        url = f"{self.urls['reporting']}/v1/indicators"
        while True:
            scopes = [tid for tid in self.pending if tid not in self.polling]
            if not scopes:
                await asyncio.sleep(POLL_S / 4)
                continue
            tid = min(scopes, key=lambda t: self.last_polled.get(t, 0.0))
            self.polling.add(tid)
            etag = self.etags.get(tid)
            try:
                # conditional, as a front end polls: 304 while the scope's figures have not changed
                async with self.poll_session.get(
                    url, params={"scope": "territory:" + tid}, headers={"If-None-Match": etag} if etag else None
                ) as r:
                    status, new_etag, body = r.status, r.headers.get("etag"), await r.read()
            except aiohttp.ClientError:
                continue
            finally:
                self.polling.discard(tid)
                self.last_polled[tid] = time.monotonic()
            entry = self.pending.get(tid)
            if entry is None or status != 200:
                continue
            if new_etag:
                self.etags[tid] = new_etag
            check, seen = entry
            if _holds(check, orjson.loads(body)["indicators"]) and not seen.done():
                seen.set_result(True)
            wait = POLL_S - (time.monotonic() - self.last_polled.get(tid, 0.0))
            if len(self.pending) <= POLLERS and wait > 0:
                await asyncio.sleep(wait)

    async def backlog_sampler(self, every_s: float = 0.5) -> None:
        """Samples each service's ``outbox_pending`` and ``consumer_lag`` (where a write waits)."""
        while True:
            for name, url in self.urls.items():
                try:
                    doc = (await self.client.get(url + "/readyz")).json()
                except (httpx.HTTPError, ValueError):
                    continue
                self.backlog.setdefault(name, []).append((int(doc.get("outbox_pending", 0)), int(doc.get("consumer_lag", 0))))
            await asyncio.sleep(every_s)

    async def lane_write(self, lane: Lane, idle: asyncio.Queue[Lane]) -> None:
        """One write of ``lane``, then the wait until it is visible; the lane is idle again after."""
        kind = KINDS[(lane.writes + lane.index) % len(KINDS)]
        t0 = time.monotonic()
        try:
            response, check = await self.write(lane, kind)
        except (aiohttp.ClientError, TimeoutError):
            self.samples.append(Sample(kind, (time.monotonic() - t0) * 1000, None, 0))
            idle.put_nowait(lane)
            return
        t1 = time.monotonic()
        lane.writes += 1
        self.service_writes[SERVICE_OF[kind]] = self.service_writes.get(SERVICE_OF[kind], 0) + 1
        if response.status >= 300:
            self.samples.append(Sample(kind, (t1 - t0) * 1000, None, response.status))
        else:
            event_id = response.event_id
            if VIA == "after" and event_id:
                seen = await self.visible_after(lane, check, event_id)
            else:
                seen = await self.visible(lane, check)
            t2 = time.monotonic()
            self.samples.append(Sample(kind, (t1 - t0) * 1000, (t2 - t1) * 1000 if seen else None, response.status))
        idle.put_nowait(lane)

    async def arrivals(self, lanes: list[Lane], rate: float, seconds: float, seed: int = 18) -> None:
        """Open-loop: writes at the instants of a Poisson process of ``rate`` per second, for ``seconds``."""
        rng = random.Random(seed)
        idle: asyncio.Queue[Lane] = asyncio.Queue()
        for lane in lanes:
            idle.put_nowait(lane)
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        at = start + rng.expovariate(rate)
        while at < start + seconds:
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.arrived += 1
            if idle.empty():
                self.refused += 1  # every lane is still waiting for its last write
            else:
                task = asyncio.create_task(self.lane_write(idle.get_nowait(), idle))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            at += rng.expovariate(rate)
        await asyncio.gather(*tasks)


def _holds(check: tuple[str, Any], indicators: dict[str, Any]) -> bool:
    code, expected = check
    value = indicators.get(code)
    if isinstance(expected, dict) and isinstance(value, dict):
        return all(value.get(k, 0) == v for k, v in expected.items())
    return bool(value == expected)


async def event_ages(client: httpx.AsyncClient, url: str) -> dict[str, float]:
    """The reporting consumer's event-age histogram (``le`` bound → cumulative count, plus sum and count)."""
    text = (await client.get(url + "/metrics")).text
    out: dict[str, float] = {}
    for name, labels, value in metric_samples(text, "ti_consumer_event_age_seconds"):
        kind = name.rsplit("_", 1)[1]
        if labels.get("service") == "reporting" and labels.get("consumer") == "reporting" and kind in ("bucket", "sum", "count"):
            out[labels["le"] if kind == "bucket" else kind] = value
    return out


def age_summary(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Events applied by reporting during the window: how old each was when its batch committed (from the
    histogram: the mean, and the bucket bound under which 50 % and 99 % of them fell)."""
    count = after.get("count", 0.0) - before.get("count", 0.0)
    if count <= 0:
        return {"events": 0}
    bounds = sorted((float(le), after[le] - before.get(le, 0.0)) for le in after if le not in ("sum", "count"))

    def under(q: float) -> float:
        return next((b for b, n in bounds if n >= q * count), float("inf"))

    return {
        "events": int(count),
        "mean_ms": round((after["sum"] - before.get("sum", 0.0)) / count * 1000, 1),
        "p50_at_most_ms": under(0.5) * 1000,
        "p99_at_most_ms": under(0.99) * 1000,
    }


def start_profiles(platform: Platform, seconds: float) -> list[subprocess.Popen[bytes]]:
    """py-spy on every process of the platform and on this one, for ``seconds`` (``BENCH_PROFILE``)."""
    if not PROFILE_DIR:
        return []
    spy = shutil.which("py-spy") or str(Path(PYTHON).with_name("py-spy"))
    os.makedirs(PROFILE_DIR, exist_ok=True)
    targets = {"bench-client": os.getpid()}
    for name in SERVICES:
        service = platform.services[name]
        targets[name] = service.proc.pid
        if service.relay is not None:
            targets[name + "-relay"] = service.relay.pid
    return [
        subprocess.Popen(
            [spy, "record", "-r", "100", "-f", "raw", "-d", str(int(seconds)), "-o", f"{PROFILE_DIR}/{label}.raw", "-p", str(pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        for label, pid in targets.items()
    ]


async def measure_freshness(platform: Platform, scale: Scale) -> dict[str, Any]:
    await platform.prepare(SERVICES)
    for name in SERVICES:
        platform.start(name)
    await platform.wait_ready()
    rng = random.Random(2024)
    lanes_n = scale.write_rate * LANES_PER_WRITE_S
    per_region = math.ceil(lanes_n / len(REGIONS))
    bodies = list(territory_payloads(rng, list(REGIONS), per_region, first_seq=10).items())[:lanes_n]
    lanes = [
        Lane(i, tid, body["region_code"], body, random.Random(i)) for i, (tid, body) in enumerate(bodies)
    ]
    load = Load(platform, lanes)
    try:
        for lane in lanes:
            r = await load.client.put(
                f"{load.urls['territory-registry']}/v1/territories/{lane.territory_id}",
                json=lane.body,
                headers=load.headers["territory"],
            )
            assert r.status_code in (200, 201), r.text
        await platform.wait_settled()
        ages_before = await event_ages(load.client, load.urls["reporting"])
        pollers = [asyncio.create_task(load.poller()) for _ in range(POLLERS if VIA == "poll" else 0)]
        pollers.append(asyncio.create_task(load.backlog_sampler()))
        cpu_before = {name: cpu_seconds(platform.services[name].pids) for name in SERVICES}
        client_before = time.process_time()
        profiles = start_profiles(platform, scale.write_seconds)
        started = time.monotonic()
        await load.arrivals(lanes, float(scale.write_rate), scale.write_seconds)
        elapsed = time.monotonic() - started
        cpu = {name: cpu_seconds(platform.services[name].pids) - cpu_before[name] for name in SERVICES}
        client_cpu = time.process_time() - client_before
        for spy in profiles:
            spy.wait()
        for task in pollers:
            task.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
        await platform.wait_settled()
        ages = age_summary(ages_before, await event_ages(load.client, load.urls["reporting"]))
    finally:
        await load.client.aclose()
        await load.write_session.close()
        await load.poll_session.close()
    ok = [s for s in load.samples if s.status < 300]
    visible = [s.visible_ms for s in ok if s.visible_ms is not None]
    by_kind: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        values = [s.visible_ms for s in ok if s.kind == kind and s.visible_ms is not None]
        if values:
            by_kind[kind] = {
                "writes": len(values),
                "p50_ms": round(percentile(values, 0.5), 1),
                "p99_ms": round(percentile(values, 0.99), 1),
            }
    return {
        "target_writes_per_s": scale.write_rate,
        "seconds": scale.write_seconds,
        "arrivals": load.arrived,
        "refused_no_idle_lane": load.refused,
        "lanes": len(lanes),
        "writes": len(load.samples),
        "achieved_writes_per_s": round(len(load.samples) / elapsed, 1),
        "failed_writes": len(load.samples) - len(ok),
        "failed_statuses": sorted({s.status for s in load.samples if s.status >= 300}),
        "not_visible_within_s": VISIBLE_TIMEOUT_S,
        "not_visible": len(ok) - len(visible),
        "visible_via": VIA,
        "after_mismatches": load.after_mismatches,
        "poll_interval_ms": POLL_S * 1000 if VIA == "poll" else None,
        "pollers": POLLERS if VIA == "poll" else 0,
        "write_p50_ms": round(percentile([s.write_ms for s in ok], 0.5), 1),
        "write_p99_ms": round(percentile([s.write_ms for s in ok], 0.99), 1),
        "p50_ms": round(percentile(visible, 0.5), 1),
        "p99_ms": round(percentile(visible, 0.99), 1),
        "max_ms": round(max(visible), 1) if visible else None,
        "by_kind": by_kind,
        "write_p50_ms_by_kind": {
            kind: round(percentile([s.write_ms for s in ok if s.kind == kind], 0.5), 1) for kind in KINDS if any(s.kind == kind for s in ok)
        },
        # CPU of each service's processes (uvicorn + relay) over the window, per write it took (reporting: per write in all)
        "cpu_ms_per_write": {
            name: round(cpu[name] / (load.service_writes.get(name) or len(load.samples) or 1) * 1000, 2) for name in SERVICES
        },
        # the bench's own CPU (its client) per write, and its share of one core over the window
        "client_cpu_ms_per_write": round(client_cpu / (len(load.samples) or 1) * 1000, 2),
        "client_core_share": round(client_cpu / elapsed, 2),
        # from each event's time (its write's commit) to the commit of the reporting batch that applied it
        "reporting_event_age": ages,
        "backlog": {
            name: {
                "outbox_pending_mean": round(sum(o for o, _ in v) / len(v), 1),
                "outbox_pending_max": max(o for o, _ in v),
                "consumer_lag_mean": round(sum(c for _, c in v) / len(v), 1),
                "consumer_lag_max": max(c for _, c in v),
            }
            for name, v in load.backlog.items()
            if v
        },
    }
