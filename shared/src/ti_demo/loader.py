"""Loads the demo programme through the platform's public HTTP API, with admin tokens.

Territories first; once every service has applied them (``/readyz``: no pending outbox row, no
consumer lag), the actions (a plan file per territory and campaign), the grant batches and the sites
(CNIG « sites économiques » inventories). Each entity's writes are sent in the
order of their ``TI-Effective-At`` instants. A load that was interrupted can simply be run again:
writes that are already in place come back ``200`` unchanged (or ``409`` when a later version of the
entity is already there) and nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from ti_shared.auth import mint_token
from ti_shared.endpoints import SERVICE_PORTS as SERVICE_PORTS
from ti_shared.endpoints import Endpoints as Endpoints
from ti_shared.endpoints import wait_ready as wait_ready
from ti_shared.endpoints import wait_settled as wait_settled
from ti_shared.settings import PlatformSettings

from ti_demo import figures as F
from ti_demo.generator import ADMIN_SUB, DemoProgramme, Write, instant

Advance = Callable[[str, int], None]


class LoadError(Exception):
    """Some writes of the demo were refused by the platform."""


@dataclass
class LoadReport:
    skipped: bool = False
    sent: int = 0
    superseded: int = 0
    grants_rejected: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def admin_token(settings: PlatformSettings, ttl_seconds: int = 6 * 3600) -> str:
    return mint_token(settings, sub=ADMIN_SUB, scopes=["admin"], ttl_seconds=ttl_seconds)


async def national_indicators(client: httpx.AsyncClient, endpoints: Endpoints, as_of: str | None = None) -> dict[str, Any]:
    params = {"scope": "national"}
    if as_of:
        params["as_of"] = as_of
    response = await client.get(endpoints.url("reporting") + "/v1/indicators", params=params)
    response.raise_for_status()
    indicators: dict[str, Any] = response.json()["indicators"]
    return indicators


async def is_loaded(client: httpx.AsyncClient, endpoints: Endpoints, programme: DemoProgramme) -> bool:
    """Whether the whole demo is already there (territories listed and every count complete)."""
    response = await client.get(endpoints.url("territory-registry") + "/v1/territories", params={"limit": 1})
    if response.status_code != 200 or not response.json().get("items"):
        return False
    indicators = await national_indicators(client, endpoints)
    return (
        indicators.get("territories.count") == F.TERRITORIES
        and indicators.get("actions.count") == F.ACTIONS
        and indicators.get("grants.count") == len(programme.grants)
        and indicators.get("sites.count") == F.SITES
    )


async def already_loaded(programme: DemoProgramme, endpoints: Endpoints, timeout_s: float = 300.0) -> bool:
    """Wait until the platform is ready and settled, then tell whether the demo is already there."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as client:
        await wait_ready(client, endpoints)
        await wait_settled(client, endpoints, timeout_s)
        return await is_loaded(client, endpoints, programme)


def rounds(writes: Sequence[Write]) -> list[list[Write]]:
    """Round k holds the k-th write of every entity: entities in parallel, each one in order."""
    per_entity: dict[str, list[Write]] = defaultdict(list)
    for write in writes:
        per_entity[write.entity].append(write)
    out: list[list[Write]] = []
    for entity_writes in per_entity.values():
        entity_writes.sort(key=lambda w: w.effective_at)
        for k, write in enumerate(entity_writes):
            if len(out) <= k:
                out.append([])
            out[k].append(write)
    return out


class Loader:
    """Sends the demo's writes with a bounded number of requests in flight."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        endpoints: Endpoints,
        token: str,
        *,
        concurrency: int = 6,
        advance: Advance | None = None,
    ) -> None:
        self.client = client
        self.endpoints = endpoints
        self.token = token
        self.semaphore = asyncio.Semaphore(concurrency)
        self.advance = advance or (lambda _phase, _n: None)
        self.report = LoadReport()

    async def send(self, write: Write) -> httpx.Response:
        body = write.content()
        effective_at = instant(write.effective_at)
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": write.media_type,
            "TI-Effective-At": effective_at,
        }
        if write.method == "POST":
            digest = hashlib.sha256(write.path.encode() + effective_at.encode() + body).hexdigest()
            headers["Idempotency-Key"] = "ti-demo-" + digest[:40]
        url = self.endpoints.url(write.service) + write.path
        delay = 0.2
        for attempt in range(8):
            async with self.semaphore:
                try:
                    response = await self.client.request(write.method, url, content=body, headers=headers)
                except httpx.TransportError:
                    if attempt == 7:
                        raise
                    response = None
            if response is not None and response.status_code not in (429, 502, 503, 504):
                self.report.sent += 1
                return response
            retry_after = response.headers.get("retry-after") if response is not None else None
            await asyncio.sleep(float(retry_after) if retry_after and retry_after.isdigit() else delay)
            delay = min(delay * 2, 5.0)
        assert response is not None
        return response

    async def apply(self, phase: str, write: Write) -> None:
        response = await self.send(write)
        if response.status_code == 409:
            self.report.superseded += 1  # a later version of this entity is already loaded
        elif response.status_code not in (200, 201):
            self.report.errors.append(f"{write.method} {write.path}: {response.status_code} {response.text[:500]}")
        self.advance(phase, 1)

    async def apply_rounds(self, phase: str, writes: Sequence[Write]) -> None:
        for batch in rounds(writes):
            await asyncio.gather(*(self.apply(phase, w) for w in batch))

    async def apply_files(self, phase: str, files: Sequence[Write], rows_key: str) -> None:
        """Imports of files (a CNIG inventory): every row must go in (a rejected row is an error)."""
        for file in files:
            response = await self.send(file)
            count = len(file.body[rows_key])
            if response.status_code not in (200, 201):
                self.report.errors.append(f"POST {file.path} ({file.entity}): {response.status_code} {response.text[:500]}")
            else:
                for row in response.json().get("rows", []):
                    if row.get("outcome") == "rejected":
                        self.report.errors.append(f"{phase} row {row.get('row')} rejected: {json.dumps(row.get('errors'), ensure_ascii=False)}")
            self.advance(phase, count)

    async def apply_batches(self, phase: str, batches: Sequence[Write]) -> None:
        for batch in batches:
            response = await self.send(batch)
            items = batch.body["items"]
            if response.status_code not in (200, 201, 202):
                self.report.errors.append(f"POST {batch.path} ({batch.entity}): {response.status_code} {response.text[:500]}")
            else:
                doc = response.json()
                for row in doc.get("rows", []):
                    if row.get("outcome") == "rejected":
                        self.report.grants_rejected += 1
                        ref = items[row["row"] - 1]["operator_ref"] if 0 < row.get("row", 0) <= len(items) else "?"
                        self.report.errors.append(f"grant {ref} rejected: {json.dumps(row.get('errors'), ensure_ascii=False)}")
            self.advance(phase, len(items))


async def load_programme(
    programme: DemoProgramme,
    endpoints: Endpoints,
    settings: PlatformSettings,
    *,
    concurrency: int = 6,
    advance: Advance | None = None,
    on_phase: Callable[[str], Awaitable[None] | None] | None = None,
    force: bool = False,
    timeout_s: float = 600.0,
) -> LoadReport:
    """Load ``programme`` unless it is already there; returns what was done."""
    started = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0), limits=limits) as client:
        await wait_ready(client, endpoints)
        await wait_settled(client, endpoints, timeout_s)
        if not force and await is_loaded(client, endpoints, programme):
            return LoadReport(skipped=True, seconds=time.monotonic() - started)
        loader = Loader(client, endpoints, admin_token(settings), concurrency=concurrency, advance=advance)
        await _announce(on_phase, "territories")
        await loader.apply_rounds("territories", programme.territories)
        _raise_if_errors(loader.report)
        await _announce(on_phase, "waiting for the replicas")
        await wait_settled(client, endpoints, timeout_s)
        await _announce(on_phase, "actions, grants, sites")
        await asyncio.gather(
            loader.apply_rounds("actions", programme.actions),
            loader.apply_batches("grants", programme.grant_batches),
            loader.apply_files("sites", programme.site_files(), "sites"),
        )
        _raise_if_errors(loader.report)
        await _announce(on_phase, "waiting for the indicators")
        await wait_settled(client, endpoints, timeout_s)
        loader.report.seconds = time.monotonic() - started
        return loader.report


async def _announce(on_phase: Callable[[str], Awaitable[None] | None] | None, phase: str) -> None:
    if on_phase is None:
        return
    result = on_phase(phase)
    if result is not None:
        await result


def _raise_if_errors(report: LoadReport) -> None:
    if report.errors:
        shown = "\n  ".join(report.errors[:20])
        more = f"\n  … and {len(report.errors) - 20} more" if len(report.errors) > 20 else ""
        raise LoadError(f"{len(report.errors)} demo write(s) refused:\n  {shown}{more}")
