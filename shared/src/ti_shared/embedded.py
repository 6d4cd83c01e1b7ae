"""The embedded mode: the five services in one ASGI process, dispatched by their path prefixes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.metadata import entry_points
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from ti_shared.assets import install_docs
from ti_shared.cors import install_cors
from ti_shared.openapi import install_openapi, platform_document
from ti_shared.problems import install_problem_handlers
from ti_shared.settings import PlatformSettings, ServiceSettings

PLATFORM_TITLE = "Territoires d'industrie platform"
SERVICES = ("territory-registry", "action-tracker", "funding-ledger", "site-catalog", "reporting")


def load_service_spec(name: str) -> Any:
    """The ``ServiceSpec`` of a service, found through the ``ti.services`` entry points."""
    for ep in entry_points(group="ti.services"):
        if ep.name == name:
            return ep.load()
    installed = ", ".join(ep.name for ep in entry_points(group="ti.services"))
    raise SystemExit(f"unknown service {name!r}; installed: {installed}")


def load_service_app(name: str, platform: PlatformSettings | None = None, database_url: str | None = None) -> FastAPI:
    """The app of a service; with ``platform``, on those settings and ``database_url`` (by default its SQLite
    file under their ``var_dir``), whatever the environment says; else on the settings the environment gives."""
    from ti_shared.app import create_service_app

    settings = None
    if platform is not None:
        url = database_url or f"sqlite+aiosqlite:///{platform.var_dir / (name.replace('-', '_') + '.db')}"
        settings = ServiceSettings(name=name, database_url=url, platform=platform)
    return create_service_app(load_service_spec(name), settings)


class PrefixDispatcher:
    """Routes each request to the service owning its path prefix (CONTRACT §1)."""

    def __init__(self, apps: dict[str, FastAPI], root: FastAPI) -> None:
        self.routes: list[tuple[str, ASGIApp]] = []
        for name, app in apps.items():
            for prefix in _prefixes(app):
                self.routes.append((prefix, app))
            self.routes.append((f"/{name}/", _strip(f"/{name}", app)))
        self.routes.sort(key=lambda r: -len(r[0]))
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["ti.platform"] = self  # pages built on the public API (the dashboard) read it in process
            path: str = scope["path"]
            for prefix, app in self.routes:
                if path == prefix.rstrip("/") or path.startswith(prefix.rstrip("/") + "/") or path.startswith(prefix):
                    await app(scope, receive, send)
                    return
        await self.root(scope, receive, send)


def _route_paths(routes: list[Any], prefix: str = "") -> list[str]:
    """Every route path, including those of routers FastAPI keeps as included-router entries."""
    paths: list[str] = []
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            context = getattr(route, "include_context", None)
            paths += _route_paths(list(original.routes), prefix + str(getattr(context, "prefix", "") or ""))
        else:
            paths.append(prefix + str(getattr(route, "path", "")))
    return paths


def _prefixes(app: FastAPI) -> set[str]:
    out = set()
    for path in _route_paths(list(app.routes)):
        if path.startswith("/v1/") or path.startswith("/dashboard"):
            parts = path.split("/")
            out.add("/".join(parts[:3]) if path.startswith("/v1/") else "/dashboard")
    return out


def _strip(prefix: str, app: ASGIApp) -> ASGIApp:
    """``app`` mounted under ``prefix``: the ASGI ``root_path`` (the path keeps it, as the ASGI
    specification says, so that URLs and problems' ``instance`` name what the client asked for)."""

    async def _app(scope: Scope, receive: Receive, send: Send) -> None:
        scope = dict(scope)
        scope["root_path"] = scope.get("root_path", "") + prefix
        await app(scope, receive, send)

    return _app


def create_embedded_app(platform: PlatformSettings | None = None, database_urls: Mapping[str, str] | None = None) -> Any:
    """The five services in one ASGI app; ``platform`` and ``database_urls`` (service → URL) as in ``load_service_app``."""
    apps = {name: load_service_app(name, platform, (database_urls or {}).get(name)) for name in SERVICES}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for app in apps.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            yield

    root = FastAPI(title=PLATFORM_TITLE, lifespan=lifespan, docs_url=None, redoc_url=None, root_path_in_servers=False)
    # the single base URL's document: every service's paths, as the root serves them
    install_openapi(root, lambda: platform_document({n: a.openapi() for n, a in apps.items()}, title=PLATFORM_TITLE))
    install_problem_handlers(root)  # a path no service owns (404) or a wrong method (405): problem+json too
    install_cors(root, next(iter(apps.values())).state.platform)
    install_docs(root)

    @root.get("/livez", include_in_schema=False)
    async def livez() -> dict[str, str]:
        return {"status": "alive"}

    @root.get("/readyz", include_in_schema=False)
    async def readyz() -> Any:
        from fastapi.responses import JSONResponse

        from ti_shared.app import readiness

        pending = lag = 0
        checks: dict[str, Any] = {}
        ok = True
        for name, app in apps.items():
            response = await readiness(app.state.ctx)
            import json

            body = json.loads(bytes(response.body))
            pending += body["outbox_pending"]
            lag += body["consumer_lag"]
            checks[name] = body["status"]
            ok = ok and response.status_code == 200
        return JSONResponse(
            {"status": "ready" if ok else "unavailable", "checks": checks, "outbox_pending": pending, "consumer_lag": lag},
            status_code=200 if ok else 503,
        )

    @root.get("/metrics", include_in_schema=False)
    async def metrics() -> Any:
        from fastapi.responses import Response
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @root.get("/", include_in_schema=False)
    async def index() -> dict[str, Any]:
        return {
            "platform": "Territoires d'industrie",
            "services": {name: {"docs": f"/{name}/docs", "openapi": f"/{name}/openapi.json"} for name in SERVICES},
            "indicators": "/v1/indicators?scope=national",
        }

    return _Embedded(PrefixDispatcher(apps, root), root)


class _Embedded:
    """ASGI app whose lifespan is the root's (which starts the five services)."""

    def __init__(self, dispatcher: PrefixDispatcher, root: FastAPI) -> None:
        self.dispatcher = dispatcher
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.root(scope, receive, send)
            return
        await self.dispatcher(scope, receive, send)
