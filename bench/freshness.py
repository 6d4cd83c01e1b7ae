"""2. Freshness: a sustained mixed write load, and for each write the time until the indicators show it.

The five services run as separate processes. The load is split over ``rate`` lanes, one territory
each, writing once a second (open schedule: a lane that fell behind writes at once). A lane knows
every indicator of its territory scope, so after each 2xx it polls
``/v1/indicators?scope=territory:<id>`` until the value that write must produce is there. The mix
cycles over: action PUT (new action), grant PUT (new grant), territory PUT (launch COPIL toggled),
action PATCH (status), site PUT (new site).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from ti_shared.auth import mint_token
from ti_shared.geo import REGIONS
from ti_shared.streams import (
    ACTION_STATUSES,
    action_payloads,
    grant_payloads,
    site_payloads,
    territory_payloads,
)

from common import Platform, Scale, percentile

POLL_S = 0.02
VISIBLE_TIMEOUT_S = 15.0
KINDS = ("action_put", "grant", "territory", "action_patch", "site")
SERVICES = ("territory-registry", "action-tracker", "funding-ledger", "site-catalog", "reporting")


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
        limits = httpx.Limits(max_connections=4 * len(lanes) + 20, max_keepalive_connections=4 * len(lanes) + 20)
        self.client = httpx.AsyncClient(timeout=30, limits=limits)
        self.samples: list[Sample] = []

    async def write(self, lane: Lane, kind: str) -> tuple[httpx.Response, Any]:
        """Send one write; returns the response and the check its visibility needs."""
        n = lane.writes
        tag = f"L{lane.index:03d}W{n:04d}"
        tid = lane.territory_id
        if kind == "action_patch" and not lane.actions:
            kind = "action_put"
        if kind == "action_put":
            aid, body = next(iter(action_payloads(lane.rng, [tid], 1, tag=tag).items()))
            r = await self.client.put(f"{self.urls['action-tracker']}/v1/actions/{aid}", json=body, headers=self.headers["action"])
            lane.actions[aid] = body["status"]
            return r, ("actions.by_status", lane.by_status())
        if kind == "action_patch":
            aid = lane.rng.choice(sorted(lane.actions))
            status = lane.rng.choice([s for s in ACTION_STATUSES if s != lane.actions[aid]])
            r = await self.client.patch(
                f"{self.urls['action-tracker']}/v1/actions/{aid}", json={"status": status}, headers=self.headers["action"]
            )
            lane.actions[aid] = status
            return r, ("actions.by_status", lane.by_status())
        if kind == "grant":
            (op, ref), body = next(iter(grant_payloads(lane.rng, "ADEME", {tid: lane.region}, 1, tag=tag).items()))
            r = await self.client.put(f"{self.urls['funding-ledger']}/v1/grants/{op}/{ref}", json=body, headers=self.headers["grant"])
            if body["status"] == "committed":
                lane.grants += 1
            return r, ("grants.count", lane.grants)
        if kind == "site":
            sid, body = next(iter(site_payloads(lane.rng, {tid: lane.region}, 1, tag=tag).items()))
            r = await self.client.put(f"{self.urls['site-catalog']}/v1/sites/{sid}", json=body, headers=self.headers["site"])
            lane.sites += 1
            return r, ("sites.count", lane.sites)
        held = lane.body["launch_copil_held_on"] is None
        lane.body = {**lane.body, "launch_copil_held_on": "2024-03-01" if held else None}
        r = await self.client.put(
            f"{self.urls['territory-registry']}/v1/territories/{tid}", json=lane.body, headers=self.headers["territory"]
        )
        return r, ("territories.launch_copil_held", 1 if held else 0)

    async def visible(self, lane: Lane, check: tuple[str, Any]) -> bool:
        code, expected = check
        url = f"{self.urls['reporting']}/v1/indicators"
        deadline = time.monotonic() + VISIBLE_TIMEOUT_S
        while time.monotonic() < deadline:
            r = await self.client.get(url, params={"scope": "territory:" + lane.territory_id})
            if r.status_code == 200:
                value = r.json()["indicators"].get(code)
                if isinstance(expected, dict) and isinstance(value, dict):
                    if all(value.get(k, 0) == v for k, v in expected.items()):
                        return True
                elif value == expected:
                    return True
            await asyncio.sleep(POLL_S)
        return False

    async def run_lane(self, lane: Lane, start: float, seconds: float, rate_per_lane: float) -> None:
        slot = start + lane.index / (len(KINDS) * 1000.0)
        end = start + seconds
        while slot < end:
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            kind = KINDS[(lane.writes + lane.index) % len(KINDS)]
            t0 = time.monotonic()
            response, check = await self.write(lane, kind)
            t1 = time.monotonic()
            lane.writes += 1
            if response.status_code >= 300:
                self.samples.append(Sample(kind, (t1 - t0) * 1000, None, response.status_code))
            else:
                seen = await self.visible(lane, check)
                t2 = time.monotonic()
                self.samples.append(Sample(kind, (t1 - t0) * 1000, (t2 - t1) * 1000 if seen else None, response.status_code))
            slot += 1.0 / rate_per_lane


async def measure_freshness(platform: Platform, scale: Scale) -> dict[str, Any]:
    await platform.prepare(SERVICES)
    for name in SERVICES:
        platform.start(name)
    await platform.wait_ready()
    rng = random.Random(2024)
    lanes_n = scale.write_rate
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
        started = time.monotonic()
        await asyncio.gather(*(load.run_lane(lane, started, scale.write_seconds, 1.0) for lane in lanes))
        elapsed = time.monotonic() - started
    finally:
        await load.client.aclose()
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
        "writes": len(load.samples),
        "achieved_writes_per_s": round(len(load.samples) / elapsed, 1),
        "failed_writes": len(load.samples) - len(ok),
        "failed_statuses": sorted({s.status for s in load.samples if s.status >= 300}),
        "not_visible_within_s": VISIBLE_TIMEOUT_S,
        "not_visible": len(ok) - len(visible),
        "poll_interval_ms": POLL_S * 1000,
        "write_p50_ms": round(percentile([s.write_ms for s in ok], 0.5), 1),
        "write_p99_ms": round(percentile([s.write_ms for s in ok], 0.99), 1),
        "p50_ms": round(percentile(visible, 0.5), 1),
        "p99_ms": round(percentile(visible, 0.99), 1),
        "max_ms": round(max(visible), 1) if visible else None,
        "by_kind": by_kind,
    }
