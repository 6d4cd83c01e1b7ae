"""Where a running platform answers, and how a client knows it has caught up (CONTRACT §1 and §7).

One base URL (the embedded mode, a reverse proxy) or one URL per service (the services on their own
ports); ``Endpoints.url_for_path`` finds the service owning a path by its prefix. ``wait_settled`` waits
until every service's ``/readyz`` shows no pending outbox row and no consumer lag: then every accepted
write is reflected in the indicators. Used by the demo loader, the end-to-end suite and the test kit.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

#: service → local port (CONTRACT §1)
SERVICE_PORTS: dict[str, int] = {
    "territory-registry": 8001,
    "action-tracker": 8002,
    "funding-ledger": 8003,
    "site-catalog": 8004,
    "reporting": 8005,
}

#: service → the path prefixes it serves (CONTRACT §1); prefixes never collide
PATH_PREFIXES: dict[str, tuple[str, ...]] = {
    "territory-registry": ("/v1/regions", "/v1/departements", "/v1/territories"),
    "action-tracker": ("/v1/actions",),
    "funding-ledger": ("/v1/operators", "/v1/programmes", "/v1/grants", "/v1/grant-batches"),
    "site-catalog": ("/v1/sites",),
    "reporting": ("/v1/indicators", "/dashboard"),
}


def service_of_path(path: str) -> str | None:
    """The service owning ``path`` (``/v1/grants/ADEME/FV-1`` → ``funding-ledger``), None for others."""
    for service, prefixes in PATH_PREFIXES.items():
        for prefix in prefixes:
            if path == prefix or path.startswith(prefix + "/") or path.startswith(prefix + "?"):
                return service
    return None


@dataclass(frozen=True)
class Endpoints:
    """Where each service answers: one base URL (embedded mode, reverse proxy) or one per service."""

    base: str
    services: dict[str, str] = field(default_factory=dict)

    @classmethod
    def single(cls, base: str) -> Endpoints:
        return cls(base.rstrip("/"))

    @classmethod
    def distributed(cls, host: str = "127.0.0.1") -> Endpoints:
        urls = {name: f"http://{host}:{port}" for name, port in SERVICE_PORTS.items()}
        return cls(urls["reporting"], urls)

    def url(self, service: str) -> str:
        return self.services.get(service, self.base)

    def url_for_path(self, path: str) -> str:
        service = service_of_path(path)
        return self.url(service) if service else self.base

    def all(self) -> list[str]:
        return sorted({self.base, *self.services.values()})


async def readiness(client: httpx.AsyncClient, endpoints: Endpoints) -> dict[str, dict[str, Any]]:
    """``/readyz`` of every distinct URL: ``{url: {"status_code": …, **body}}`` (status 0 when unreachable)."""

    async def one(base: str) -> dict[str, Any]:
        try:
            response = await client.get(base + "/readyz", timeout=10)
            body = response.json()
            return {"status_code": response.status_code, **(body if isinstance(body, dict) else {})}
        except (httpx.HTTPError, ValueError) as exc:
            return {"status_code": 0, "error": repr(exc)}

    bases = endpoints.all()
    return dict(zip(bases, await asyncio.gather(*(one(b) for b in bases)), strict=True))


def is_settled(state: dict[str, Any]) -> bool:
    return state.get("status_code") == 200 and state.get("outbox_pending") == 0 and state.get("consumer_lag") == 0


async def wait_ready(client: httpx.AsyncClient, endpoints: Endpoints, timeout_s: float = 120.0) -> None:
    """Wait until every service answers ``/readyz`` with 200."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = await readiness(client, endpoints)
        if all(s["status_code"] == 200 for s in states.values()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the platform is not ready after {timeout_s:.0f} s: {states}")
        await asyncio.sleep(0.2)


async def wait_settled(
    client: httpx.AsyncClient, endpoints: Endpoints, timeout_s: float = 300.0, *, streak: int = 1, interval_s: float = 0.1
) -> float:
    """Wait until every service has published every event and applied every event it consumes
    (``streak`` readings in a row); returns the seconds it took."""
    started = time.monotonic()
    in_a_row = 0
    while True:
        states = await readiness(client, endpoints)
        in_a_row = in_a_row + 1 if all(is_settled(s) for s in states.values()) else 0
        if in_a_row >= streak:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"the platform did not settle in {timeout_s:.0f} s (events still pending or unapplied): {states}")
        await asyncio.sleep(interval_s)
