"""The dashboard's only way to the data: the platform's public HTTP API, as any client reads it.

Indicators and the catalogue come from reporting's own endpoints (called in process when the page is
served by reporting, over HTTP from the command line); territory names and lists from the territory
registry's public reads. Nothing here touches a database, so every figure a page shows is one
anyone can fetch with the same query.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request
from starlette.types import ASGIApp
from ti_shared.problems import Problem

#: base URL of the platform's public API for the territory registry's reads, when the dashboard is
#: not served in the embedded mode (docker-compose: the reverse proxy; services.sh: territory-registry)
API_URL_ENV = "TI_DASHBOARD_API_URL"
#: set by the embedded dispatcher on each request: the whole platform, callable in process
PLATFORM_SCOPE_KEY = "ti.platform"


class ApiError(Exception):
    """The API answered with an error the page cannot do without."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class Territory:
    id: str
    name: str
    region_code: str | None = None


@dataclass
class PlatformReader:
    reporting: httpx.AsyncClient
    registry: httpx.AsyncClient | None
    notices: list[str] = field(default_factory=list)

    async def _get(self, client: httpx.AsyncClient, path: str, params: dict[str, str] | None = None) -> Any:
        response = await client.get(path, params=params)
        if response.status_code != 200:
            detail = response.text
            if response.headers.get("content-type", "").startswith("application/problem+json"):
                detail = str(response.json().get("detail") or detail)
            raise ApiError(response.status_code, detail)
        return response.json()

    async def indicators(self, scope: str, as_of: str | None = None) -> dict[str, Any]:
        """The whole ``GET /v1/indicators`` document of ``scope`` (as of ``as_of`` when given)."""
        params = {"scope": scope} | ({"as_of": as_of} if as_of else {})
        document: dict[str, Any] = await self._get(self.reporting, "/v1/indicators", params)
        return document

    async def many_indicators(self, scopes: list[str], as_of: str | None = None) -> dict[str, dict[str, Any]]:
        documents = await asyncio.gather(*(self.indicators(s, as_of) for s in scopes))
        return dict(zip(scopes, documents, strict=True))

    async def explain(
        self, scope: str, code: str, key: str | None, as_of: str | None, cursor: str | None, limit: int
    ) -> dict[str, Any]:
        """One page of the entities that make a figure (``GET /v1/indicators/explain``)."""
        params = {"scope": scope, "code": code, "limit": str(limit)}
        params |= {k: v for k, v in (("key", key), ("as_of", as_of), ("cursor", cursor)) if v}
        document: dict[str, Any] = await self._get(self.reporting, "/v1/indicators/explain", params)
        return document

    async def catalogue(self) -> dict[str, dict[str, Any]]:
        body = await self._get(self.reporting, "/v1/indicators/catalogue")
        return {item["code"]: item for item in body["items"]}

    async def quality(self, scope: str, as_of: str | None = None, sort: str = "score") -> dict[str, Any]:
        """The data quality of a scope's territories (``GET /v1/quality``)."""
        params = {"scope": scope, "sort": sort} | ({"as_of": as_of} if as_of else {})
        document: dict[str, Any] = await self._get(self.reporting, "/v1/quality", params)
        return document

    async def editions(self) -> list[dict[str, Any]]:
        """The frozen editions of the Bilan (``GET /v1/reports/editions``), newest first."""
        params = {"limit": "1000"}
        out: list[dict[str, Any]] = []
        while True:
            page = await self._get(self.reporting, "/v1/reports/editions", params)
            out += page["items"]
            if not page.get("next_cursor"):
                return out
            params["cursor"] = page["next_cursor"]

    async def edition(self, edition_id: str) -> dict[str, Any]:
        edition: dict[str, Any] = await self._get(self.reporting, f"/v1/reports/editions/{edition_id}")
        return edition

    async def restatements(self, edition_id: str) -> dict[str, Any]:
        restated: dict[str, Any] = await self._get(self.reporting, f"/v1/reports/editions/{edition_id}/restatements")
        return restated

    async def territories(self, region_code: str | None = None) -> list[Territory] | None:
        """Every territory (of a region), or None when the registry cannot be read (the pages then show ids)."""
        if self.registry is None:
            return None
        params = {"limit": "1000"} | ({"region_code": region_code} if region_code else {})
        out: list[Territory] = []
        try:
            while True:
                page = await self._get(self.registry, "/v1/territories", params)
                out += [Territory(t["id"], t["name"], t.get("region_code")) for t in page["items"]]
                if not page.get("next_cursor"):
                    return out
                params["cursor"] = page["next_cursor"]
        except (ApiError, httpx.HTTPError) as exc:
            self.notices.append(f"Les noms des territoires n'ont pas pu être lus ({exc}).")
            return None

    async def territory(self, territory_id: str) -> Territory | None:
        if self.registry is None:
            return None
        try:
            t = await self._get(self.registry, f"/v1/territories/{territory_id}")
        except ApiError as exc:
            if exc.status != 404:
                self.notices.append(f"Le registre des territoires n'a pas répondu ({exc.detail}).")
            return None
        except httpx.HTTPError as exc:
            self.notices.append(f"Le registre des territoires n'a pas répondu ({exc}).")
            return None
        return Territory(t["id"], t["name"], t.get("region_code"))


def _in_process(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://platform.internal", timeout=60.0)


@asynccontextmanager
async def reader_for_request(request: Request) -> AsyncIterator[PlatformReader]:
    """A reader for a page served by reporting: reporting in process; the registry in process in the
    embedded mode, else over HTTP at ``TI_DASHBOARD_API_URL`` (names left out when it is not set)."""
    platform: ASGIApp | None = request.scope.get(PLATFORM_SCOPE_KEY)
    url = os.environ.get(API_URL_ENV)
    async with _in_process(request.app) as reporting:
        if url:
            async with httpx.AsyncClient(base_url=url, timeout=10.0) as registry:
                yield PlatformReader(reporting, registry)
        elif platform is not None:
            async with _in_process(platform) as registry:
                yield PlatformReader(reporting, registry)
        else:
            yield PlatformReader(reporting, None)


@asynccontextmanager
async def reader_for_url(base_url: str) -> AsyncIterator[PlatformReader]:
    """A reader of a running platform at ``base_url`` (embedded mode or reverse proxy)."""
    async with httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=120.0) as client:
        yield PlatformReader(client, client)


def problem_of(exc: ApiError) -> Problem:
    return Problem(exc.status if 400 <= exc.status < 500 else 502, exc.detail)
