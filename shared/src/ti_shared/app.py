"""The application factory every service uses: one way to wire settings, database, outbox, consumers,
auth, errors, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar, cast

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ti_shared.assets import install_docs
from ti_shared.auth import TokenVerifier
from ti_shared.bus import Source, make_publisher, make_source
from ti_shared.consumer import EventConsumer, EventHandler
from ti_shared.cors import install_cors
from ti_shared.db import Database
from ti_shared.events import CloudEvent, EventSpec, NewEvent
from ti_shared.logging import bind_request, configure_logging, get_logger
from ti_shared.metrics import HTTP_LATENCY, HTTP_REQUESTS, OUTBOX_PENDING
from ti_shared.migrations import upgrade
from ti_shared.openapi import install_openapi, operation_id
from ti_shared.outbox import CommitNotifier, OutboxRelay, outbox_status, record_event, record_events
from ti_shared.problems import PROBLEM_MEDIA_TYPE, Problem, install_problem_handlers, is_database_unavailable
from ti_shared.ratelimit import RateLimitMiddleware, WriteRateLimiter
from ti_shared.settings import ServiceSettings, load_settings
from ti_shared.shared_source import SharedSource
from ti_shared.statements import DriverSession

log = get_logger(__name__)

R = TypeVar("R")


@dataclass(frozen=True)
class ConsumerSpec:
    """A consumer a service runs: its group name and a factory for its handler."""

    name: str
    handler: Callable[[], EventHandler]
    rebuild_when_empty: bool = False
    #: events per fetched batch for this consumer; ``PlatformSettings.consumer_batch_size`` when None
    batch_size: int | None = None
    #: while catching up (full batches), apply up to this many events in one transaction (0: batch by batch)
    window_events: int = 0
    #: and for this many seconds at most
    window_s: float = 30.0
    #: consumers of a service giving the same name here read one source (each message fetched and
    #: decoded once for all of them: ``ti_shared.shared_source``); None: a source of its own
    shared_source: str | None = None


@dataclass
class ServiceSpec:
    """What makes a service: its name, routes, tables, migrations, events and consumers."""

    name: str
    title: str
    description: str
    routers: Sequence[APIRouter]
    metadata: sa.MetaData
    migrations_dir: Path
    events: Sequence[EventSpec] = ()
    consumers: Sequence[ConsumerSpec] = ()
    openapi_tags: Sequence[dict[str, Any]] = ()
    on_startup: Sequence[Callable[[ServiceContext], Awaitable[None]]] = ()
    version: str = "1.0.0"
    #: where the JSON Schemas of this service's events are committed
    schemas_dir: Path | None = None
    #: ASGI middleware classes (constructed with the inner app only) placed inside the edge middleware
    middleware: Sequence[type[Any]] = ()
    #: the service's repository class (``repository.Repository``), built over each unit of work's session
    repository: Callable[[AsyncSession], Any] | None = None
    #: jobs run as tasks while the service runs (after its consumers start; cancelled at stop)
    background: Sequence[Callable[[ServiceContext], Coroutine[Any, Any, None]]] = ()

    @property
    def source(self) -> str:
        return f"/services/{self.name}"


@dataclass
class ServiceContext:
    """The running service's collaborators, reachable from every request."""

    spec: ServiceSpec
    settings: ServiceSettings
    db: Database
    #: the outbox relay when it runs in this process (``TI_RELAY=task``), else None (``ti relay SERVICE``)
    relay: OutboxRelay | None
    consumers: list[EventConsumer] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    #: wakes the relay of this database after a commit that added outbox rows
    outbox_committed: Callable[[], None] = lambda: None

    def consumer(self, name: str) -> EventConsumer:
        for c in self.consumers:
            if c.name == name:
                return c
        raise KeyError(name)


async def get_context(request: Request) -> ServiceContext:
    ctx = getattr(request.app.state, "ctx", None)
    if not isinstance(ctx, ServiceContext):
        raise RuntimeError("service context missing: is the lifespan running?")
    return ctx


ContextDep = Annotated[ServiceContext, Depends(get_context)]


#: the answer to a write that lost a race (two requests creating the same entity at the same time)
CONCURRENT_WRITE_DETAIL = "Another request wrote the same data at the same time; retry the request"


def concurrent_write() -> Problem:
    """The 409 of a write that lost a race (:func:`is_concurrent_write`)."""
    return Problem(409, CONCURRENT_WRITE_DETAIL, kind="concurrent-write")


def is_concurrent_write(exc: sa.exc.IntegrityError) -> bool:
    """A unique (or primary-key, or exclusion) violation: another transaction wrote the same key first.

    Other integrity errors (a NOT NULL or CHECK violation, a missing parent) are bugs, not races."""
    for cause in (exc.orig, getattr(exc.orig, "__cause__", None)):
        sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if sqlstate is not None:
            return str(sqlstate) in ("23505", "23P01")
        name = getattr(cause, "sqlite_errorname", None)
        if name is not None:
            return str(name) in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")
    return "unique" in str(exc.orig).lower()


class UnitOfWork(Generic[R]):
    """One request = one transaction: the changes and their outbox events, committed together.

    ``repo`` is the service's repository over this transaction (``ServiceSpec.repository``). A unique
    violation, whether raised by a statement or by the commit, is answered with the 409 of
    :func:`concurrent_write` (statements: by :func:`unit_of_work`, around the whole request)."""

    def __init__(self, ctx: ServiceContext, session: AsyncSession, repo: R) -> None:
        self.ctx = ctx
        self.session = session
        self.repo = repo
        self.now = datetime.now(UTC)
        self._events = 0

    async def record(
        self,
        *,
        topic: str,
        type_: str,
        subject: str,
        version: int,
        actor: str,
        data: dict[str, Any],
        time: datetime | None = None,
    ) -> CloudEvent:
        self._events += 1
        return await record_event(
            self.session,
            topic=topic,
            source=self.ctx.spec.source,
            type_=type_,
            subject=subject,
            version=version,
            actor=actor,
            time=time or self.now,
            data=data,
        )

    async def record_many(self, events: Sequence[NewEvent]) -> list[str]:
        """Record many events with one bulk insert (an event without ``time`` takes ``now``)."""
        if not events:
            return []
        self._events += len(events)
        return await record_events(self.session, events, source=self.ctx.spec.source, time=self.now)

    async def commit(self) -> None:
        """Commit the transaction; the relay then publishes its events at once."""
        try:
            await self.session.commit()
        except sa.exc.IntegrityError as exc:
            if is_concurrent_write(exc):
                raise concurrent_write() from exc
            raise
        if self._events:
            self._events = 0
            self.ctx.outbox_committed()

    async def rollback(self) -> None:
        """Give up what the transaction wrote (its events included)."""
        await self.session.rollback()
        self._events = 0


async def unit_of_work(ctx: ContextDep) -> AsyncIterator[UnitOfWork[Any]]:
    async with ctx.db.session() as session:
        factory = ctx.spec.repository
        try:
            yield UnitOfWork(ctx, session, factory(session) if factory is not None else None)
        except sa.exc.IntegrityError as exc:
            if is_concurrent_write(exc):
                raise concurrent_write() from exc
            raise


async def driver_unit_of_work(ctx: ContextDep) -> AsyncIterator[UnitOfWork[Any]]:
    """:func:`unit_of_work` for a route whose every statement is a prepared :class:`~ti_shared.statements.Sql`
    (the PUTs): on PostgreSQL its transaction runs straight on a pooled asyncpg connection
    (:class:`~ti_shared.statements.DriverSession`, no SQLAlchemy session); on SQLite, a session as usual."""
    driver = None if ctx.db.is_sqlite else DriverSession(ctx.db.engine)
    async with contextlib.AsyncExitStack() as stack:
        session = cast(AsyncSession, driver) if driver is not None else await stack.enter_async_context(ctx.db.session())
        if driver is not None:
            stack.push_async_callback(driver.close)
        factory = ctx.spec.repository
        try:
            yield UnitOfWork(ctx, session, factory(session) if factory is not None else None)
        except sa.exc.IntegrityError as exc:
            if is_concurrent_write(exc):
                raise concurrent_write() from exc
            raise


async def read_session(ctx: ContextDep) -> AsyncIterator[AsyncSession]:
    async with ctx.db.read_session() as session:
        yield session


async def read_repository(ctx: ContextDep) -> AsyncIterator[Any]:
    """The service's repository over a read session (``ServiceSpec.repository``), for GET routes."""
    if ctx.spec.repository is None:
        raise RuntimeError(f"service {ctx.spec.name} declares no repository")
    async with ctx.db.read_session() as session:
        yield ctx.spec.repository(session)


UowDep = Annotated[UnitOfWork[Any], Depends(unit_of_work)]
ReadSessionDep = Annotated[AsyncSession, Depends(read_session)]


class EdgeMiddleware:
    """Request id, access log, metrics, and a hard cap on body size (413) before anything is buffered."""

    def __init__(self, app: ASGIApp, *, service: str, max_body_bytes: int) -> None:
        self.app = app
        self.service = service
        self.max_body_bytes = max_body_bytes
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = length = None
        for key, value in scope.get("headers", ()):  # ASGI header names are lower-case bytes
            if key == b"x-request-id":
                request_id = value.decode(errors="replace")
            elif key == b"content-length":
                length = value.decode(errors="replace")
        request_id = request_id or uuid.uuid4().hex
        bind_request(request_id[:128])
        started = time.perf_counter()
        status_holder = {"status": 500}
        raw_target = scope.get("raw_path", b"") + b"?" + scope.get("query_string", b"")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await self._reject(send, request_id, 413, f"The body is larger than {self.max_body_bytes} bytes")
            status_holder["status"] = 413
        elif b"%00" in raw_target or b"\x00" in raw_target or "\x00" in scope.get("path", ""):
            # PostgreSQL text cannot hold NUL: refuse it at the edge rather than fail deep inside
            await self._reject(send, request_id, 422, "NUL characters (%00) are not accepted in the URL")
            status_holder["status"] = 422
        else:
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:
                        raise Problem(413, f"The body is larger than {self.max_body_bytes} bytes")
                return message

            response_started = False

            async def send_with_id(message: Message) -> None:
                nonlocal response_started
                if message["type"] == "http.response.start":
                    response_started = True
                    status_holder["status"] = message["status"]
                    message.setdefault("headers", [])
                    message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
                await send(message)

            try:
                await self.app(scope, limited_receive, send_with_id)
            except Exception as exc:
                # answered here rather than re-raised to the server, which would then close the
                # connection under a client that may reuse it (a keep-alive request lost)
                if response_started:
                    raise
                if is_database_unavailable(exc):
                    log.warning("database unavailable", error=repr(exc))
                    status_holder["status"] = 503
                    await self._reject(send, request_id, 503, "The service's database is unavailable; retry later")
                else:
                    log.exception("unhandled error", path=scope.get("path"))
                    status_holder["status"] = 500
                    await self._reject(send, request_id, 500, "An unexpected error occurred; it has been logged")
        elapsed = time.perf_counter() - started
        route = scope.get("route")
        route_path = getattr(route, "path", None) or ("/metrics" if scope.get("path") == "/metrics" else "unmatched")
        counter, histogram = self._metrics(scope["method"], route_path, status_holder["status"])
        counter.inc()
        histogram.observe(elapsed)

    def _metrics(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        """The labelled request counter and latency histogram (looked up once per label set)."""
        key = (method, route, status)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = (
                HTTP_REQUESTS.labels(self.service, method, route, str(status)),
                HTTP_LATENCY.labels(self.service, method, route),
            )
        return found

    async def _reject(self, send: Send, request_id: str, status: int, detail: str) -> None:
        payload = json.dumps(Problem(status, detail).body()).encode()
        extra = [(b"retry-after", b"2")] if status == 503 else []
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    *extra,
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(payload)).encode()),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def health_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/livez")
    async def livez() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/readyz")
    async def readyz(ctx: ContextDep) -> JSONResponse:
        return await readiness(ctx)

    @router.get("/metrics")
    async def metrics(ctx: ContextDep) -> Response:
        with contextlib.suppress(Exception):  # metrics still render
            await readiness(ctx)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def readiness(ctx: ServiceContext) -> JSONResponse:
    checks: dict[str, str] = {}
    ok = True
    pending = 0
    relay = ctx.relay
    bus_ok, bus_error, relay_active = True, None, relay is not None
    try:
        async with asyncio.timeout(3):
            async with ctx.db.read_session() as session:
                outbox = await outbox_status(session, ctx.spec.name)
        pending, bus_ok, bus_error = outbox.pending, outbox.bus_ok, outbox.last_error
        relay_active = relay_active or outbox.relay_active
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported as the failing check
        ok = False
        checks["database"] = "unavailable: " + type(exc).__name__
    if relay is not None:  # in this process: what it saw last
        bus_ok, bus_error = relay.bus_ok, relay.last_error
    OUTBOX_PENDING.labels(service=ctx.spec.name).set(pending)
    lag = 0
    for consumer in ctx.consumers:
        try:
            async with asyncio.timeout(3):
                lag += await consumer.lag()
        except Exception:  # noqa: BLE001
            lag += 0
        checks[f"consumer:{consumer.name}"] = "ok" if consumer.bus_ok else f"degraded: {consumer.last_error}"
    checks["bus"] = "ok" if bus_ok else f"degraded (events wait in the outbox): {bus_error}"
    checks["relay"] = "ok" if relay_active else "not running (events wait in the outbox): start `ti relay " + ctx.spec.name + "`"
    body = {
        "status": "ready" if ok else "unavailable",
        "service": ctx.spec.name,
        "checks": checks,
        "outbox_pending": pending,
        "consumer_lag": lag,
    }
    return JSONResponse(body, status_code=200 if ok else 503)


#: youngest-generation threshold of the garbage collector in a running service (CPython's default: 700)
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Fewer collections: a consumer batch allocates tens of thousands of objects, most of them
    acyclic and short-lived, and every full collection walks the whole heap. What is alive once
    the service has started (modules, tables, routes) is frozen out of the collections."""
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, max(gen1, 20), max(gen2, 50))


def make_relay(settings: ServiceSettings, db: Database | None = None) -> OutboxRelay:
    """The outbox relay of a service's database (``db``, or one of its own)."""
    platform = settings.platform
    return OutboxRelay(
        db or Database(settings.database_url, pool_size=1, max_overflow=1),
        make_publisher(platform, client_id=f"ti-{settings.name}"),
        service=settings.name,
        batch_size=platform.relay_batch_size,
        idle_s=platform.relay_idle_seconds,
    )


async def run_relay(settings: ServiceSettings) -> None:
    """``ti relay SERVICE``: the relay of one service in a process of its own, until cancelled."""
    relay = make_relay(settings)
    log.info("outbox relay started", service=settings.name, database=settings.database_url.split("@")[-1])
    await relay.start()
    try:
        await asyncio.Event().wait()
    finally:
        await relay.stop()


def create_service_app(spec: ServiceSpec, settings: ServiceSettings | None = None) -> FastAPI:
    """Build the FastAPI application of ``spec``; its lifespan starts the relay and the consumers."""
    settings = settings or load_settings(spec.name)
    platform = settings.platform
    configure_logging(json=platform.log_json, level=platform.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url, pool_size=platform.db_pool_size, max_overflow=platform.db_max_overflow)
        if platform.migrate_on_start:
            await upgrade(db, spec.migrations_dir)
        notifier = None
        relay: OutboxRelay | None = None
        if platform.relay == "task" or db.is_sqlite:
            relay = make_relay(settings, db)
            ctx = ServiceContext(spec=spec, settings=settings, db=db, relay=relay, outbox_committed=relay.notify)
        else:  # the relay is a process of its own (``ti relay``): wake it through PostgreSQL
            notifier = CommitNotifier(settings.database_url)
            ctx = ServiceContext(spec=spec, settings=settings, db=db, relay=None, outbox_committed=notifier.notify)
        shared: dict[str, SharedSource] = {}
        for cs in spec.consumers:
            if cs.shared_source is None:
                source: Source = make_source(platform, group=cs.name)
            else:
                if cs.shared_source not in shared:
                    shared[cs.shared_source] = SharedSource(make_source(platform, group=cs.shared_source))
                source = shared[cs.shared_source].view()
            ctx.consumers.append(
                EventConsumer(
                    name=cs.name,
                    service=spec.name,
                    db=db,
                    source=source,
                    handler=cs.handler(),
                    batch_size=cs.batch_size or platform.consumer_batch_size,
                    rebuild_when_empty=cs.rebuild_when_empty,
                    outbox_committed=ctx.outbox_committed,
                    window_events=cs.window_events,
                    window_s=cs.window_s,
                )
            )
        app.state.ctx = ctx
        for hook in spec.on_startup:
            await hook(ctx)
        tune_gc()
        if relay is not None:
            await relay.start()
        for consumer in ctx.consumers:
            await consumer.start()
        jobs = [asyncio.create_task(job(ctx), name=f"{spec.name}-{getattr(job, '__name__', 'job')}") for job in spec.background]
        log.info(
            "service started", service=spec.name, database=db.url.split("@")[-1], bus=platform.bus,
            relay="in process" if relay is not None else "ti relay " + spec.name,
        )
        try:
            yield
        finally:
            for task in jobs:
                task.cancel()
            for task in jobs:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for consumer in ctx.consumers:
                await consumer.stop()
            if relay is not None:
                await relay.stop()
            if notifier is not None:
                await notifier.close()
            await db.dispose()

    app = FastAPI(
        title=spec.title,
        description=spec.description,
        version=spec.version,
        lifespan=lifespan,
        openapi_tags=list(spec.openapi_tags) or None,
        docs_url=None,  # /docs and /redoc come from the local assets (ti_shared.assets)
        redoc_url=None,
        generate_unique_id_function=operation_id,
        root_path_in_servers=False,  # one server, "/", wherever the service is mounted (ti_shared.openapi)
    )
    install_openapi(app)
    app.state.token_verifier = verifier = TokenVerifier(platform)
    app.state.spec = spec
    app.state.platform = platform
    install_problem_handlers(app)
    for middleware in reversed(spec.middleware):  # the first listed is the outermost of them
        app.add_middleware(middleware)
    limiter = WriteRateLimiter(platform.rate_limit_writes, platform.rate_limit_anonymous_writes)
    app.add_middleware(RateLimitMiddleware, limiter=limiter, verifier=verifier)
    app.add_middleware(EdgeMiddleware, service=spec.name, max_body_bytes=platform.max_body_bytes)
    install_cors(app, platform)
    app.include_router(health_router())
    install_docs(app)
    for router in spec.routers:
        app.include_router(router)
    return app
