"""Helpers for the services' integration tests: real PostgreSQL databases and real Kafka topics.

``make test`` starts PostgreSQL and Kafka (``deploy/local/up.sh``) and exports ``TI_KAFKA_BOOTSTRAP``
and ``TI_TEST_POSTGRES_URL``. Each test gets a fresh database and its own topic prefix, so tests never
see each other's data.
"""

from __future__ import annotations

import asyncio
import compileall
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import httpx
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.datastructures import Headers, QueryParams

from ti_shared.auth import mint_token
from ti_shared.bus import ensure_kafka_topics
from ti_shared.events import ALL_TOPICS
from ti_shared.settings import PlatformSettings, ServiceSettings

DEFAULT_PG = "postgresql+asyncpg://ti:ti@127.0.0.1:54329/postgres"


def postgres_admin_url() -> str:
    return os.environ.get("TI_TEST_POSTGRES_URL", DEFAULT_PG)


def kafka_bootstrap() -> str:
    return os.environ.get("TI_KAFKA_BOOTSTRAP", "127.0.0.1:59092")


async def create_database(prefix: str = "test") -> str:
    """Create a fresh PostgreSQL database; returns its asyncpg URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = create_async_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return postgres_admin_url().rsplit("/", 1)[0] + "/" + name


async def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    engine = create_async_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


async def create_topics(prefix: str, partitions: int = 3) -> None:
    await ensure_kafka_topics(kafka_bootstrap(), [prefix + t for t in ALL_TOPICS], partitions=partitions)


def new_topic_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:10]}."


def platform_settings(**overrides: Any) -> PlatformSettings:
    values: dict[str, Any] = {
        "env": "test",
        "bus": "kafka",
        "kafka_bootstrap": kafka_bootstrap(),
        "relay_idle_seconds": 0.05,
    }
    values.update(overrides)
    return PlatformSettings(**values)


def service_settings(service: str, database_url: str, platform: PlatformSettings) -> ServiceSettings:
    return ServiceSettings(name=service, database_url=database_url, platform=platform)


@asynccontextmanager
async def running(app: FastAPI, *, validate: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan and give an HTTP client talking to it in-process; every response it
    receives is checked against the app's OpenAPI document (:class:`ResponseValidator`) unless
    ``validate`` is False (or ``TI_TEST_OPENAPI_VALIDATION=off``, to measure what it costs)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        validate = validate and os.environ.get("TI_TEST_OPENAPI_VALIDATION", "on") != "off"
        hooks: dict[str, list[Callable[..., Any]]] = {"response": [ResponseValidator.of(app.openapi())]} if validate else {}
        async with httpx.AsyncClient(transport=transport, base_url="http://test", event_hooks=hooks) as client:
            yield client


def _headers(headers: httpx.Headers) -> Headers:
    """httpx's headers as Starlette's, which openapi-core reads (ASGI: lower-case names)."""
    return Headers(raw=[(k.lower(), v) for k, v in headers.raw])


class _OpenAPIRequest:
    """An httpx request as openapi-core reads one (to find its operation)."""

    def __init__(self, request: httpx.Request) -> None:
        from openapi_core.datatypes import RequestParameters

        self.host_url = f"{request.url.scheme}://{request.url.netloc.decode()}"
        self.path = request.url.path
        self.method = request.method.lower()
        self.body = None
        self.content_type = request.headers.get("content-type", "application/octet-stream")
        self.parameters = RequestParameters(
            query=QueryParams(request.url.query.decode()), header=_headers(request.headers), cookie={}
        )


class _OpenAPIResponse:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.content_type = response.headers.get("content-type", "")
        self.headers = _headers(response.headers)
        self.data = response.content


#: served by every service outside its OpenAPI document (CONTRACT §1)
UNDOCUMENTED_PATHS = frozenset({"/livez", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc"})


class ResponseValidator:
    """An httpx response hook checking each response against an OpenAPI document (openapi-core): its
    status is documented for the operation, its body matches the documented schema of its media type,
    its documented required headers are there. Requests the document does not describe (``/readyz``,
    an unknown path or method) are not checked: the tests send those on purpose."""

    _cache: ClassVar[dict[str, ResponseValidator]] = {}

    def __init__(self, document: dict[str, Any]) -> None:
        from openapi_core import OpenAPI
        from openapi_core.configurations import Config

        # problem+json is JSON (openapi-core reads only application/json as JSON by itself)
        config = Config(extra_media_type_deserializers={"application/problem+json": json.loads})
        self.openapi = OpenAPI.from_dict(document, config=config)
        self._checked: set[bytes] = set()

    @classmethod
    def of(cls, document: dict[str, Any]) -> ResponseValidator:
        """One validator per document (building one reads the whole document)."""
        key = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
        if key not in cls._cache:
            cls._cache[key] = cls(document)
        return cls._cache[key]

    def check(self, response: httpx.Response) -> None:
        from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound

        if response.status_code == 500 or response.request.url.path in UNDOCUMENTED_PATHS:
            return  # a crash is never documented (the tests that provoke one assert on it); health is outside
        # the same answer to the same request is checked once (a test polling a resource gets it many times)
        seen = hashlib.sha256(repr((
            response.request.method, str(response.request.url), response.status_code,
            sorted((k, v) for k, v in response.headers.items() if k not in ("x-request-id", "date")), response.content,
        )).encode()).digest()
        if seen in self._checked:
            return
        request = _OpenAPIRequest(response.request)
        if response.status_code == 404 and (request.path.endswith("/") or "//" in request.path):
            return  # an empty segment is no route's path (a path parameter is never empty), whatever the
            # document's path matcher makes of it
        try:
            self.openapi.validate_response(request, _OpenAPIResponse(response))  # type: ignore[arg-type]
        except (PathNotFound, OperationNotFound):
            return
        except Exception as exc:
            causes = getattr(exc, "schema_errors", None) or [exc.__cause__ or exc]
            details = "; ".join(str(getattr(c, "message", c))[:300] for c in causes)
            raise AssertionError(
                f"{response.request.method} {response.request.url.path} → {response.status_code} "
                f"{response.headers.get('content-type', '')} is not what the OpenAPI document says: "
                f"{type(exc).__name__}: {details}\nbody: {response.text[:500]}"
            ) from exc
        self._checked.add(seen)

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        self.check(response)


def bearer(platform: PlatformSettings, sub: str = "tester", *scopes: str, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": "Bearer " + mint_token(platform, sub=sub, scopes=list(scopes), **kwargs)}


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 30.0, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if await predicate():
            return
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval_s)


async def wait_settled(client: httpx.AsyncClient, timeout_s: float = 30.0) -> dict[str, Any]:
    """Wait until ``/readyz`` reports no pending outbox row and no consumer lag."""
    last: dict[str, Any] = {}

    async def _settled() -> bool:
        nonlocal last
        response = await client.get("/readyz")
        last = response.json()
        return response.status_code == 200 and last["outbox_pending"] == 0 and last["consumer_lag"] == 0

    try:
        await wait_until(_settled, timeout_s)
    except TimeoutError as exc:
        raise TimeoutError(f"not settled: {last}") from exc
    return last


async def publish_events(platform: PlatformSettings, events: list[Any], *, publisher: Any = None) -> None:
    """Publish CloudEvents straight to the bus (as another service, or a recorded stream, would); with
    ``publisher`` (started, e.g. by ``make_publisher``), on it (many small publications, one producer)."""
    from ti_shared.bus import OutgoingMessage, make_publisher
    from ti_shared.events import CONTENT_TYPE, CloudEvent, encode_event, topic_for_type

    given = publisher is not None
    if not given:
        publisher = make_publisher(platform, "ti-test")
        await publisher.start()
    try:
        messages = []
        for event in events:
            ev = event if isinstance(event, CloudEvent) else CloudEvent.model_validate(event)
            topic = topic_for_type(ev.type)
            assert topic is not None, ev.type
            messages.append(OutgoingMessage(topic, ev.subject, encode_event(ev), (("content-type", CONTENT_TYPE.encode()),)))
        await publisher.publish(messages)
    finally:
        if not given:
            await publisher.stop()


def territory_event(
    territory_id: str,
    region_code: str,
    *,
    version: int = 1,
    status: str = "active",
    departement_codes: list[str] | None = None,
    change: str | None = None,
    time: str = "2024-01-15T10:00:00Z",
    **fields: Any,
) -> dict[str, Any]:
    """A ``territory.*`` CloudEvent as territory-registry publishes it (for other services' tests)."""
    from ti_shared.events import event_type

    data: dict[str, Any] = {
        "id": territory_id,
        "name": f"Territoire {territory_id}",
        "region_code": region_code,
        "departement_codes": departement_codes or [],
        "epcis": [],
        "phase": "temps-2",
        "labelled_on": "2023-11-09",
        "project_lead": None,
        "launch_copil_held_on": None,
        "status": status,
        "version": version,
        "updated_at": time,
    }
    data.update(fields)
    change = change or ("registered" if version == 1 else "withdrawn" if status == "withdrawn" else "updated")
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/services/territory-registry",
        "type": event_type("territory", change),
        "subject": territory_id,
        "time": time,
        "datacontenttype": "application/json",
        "entityversion": version,
        "tiactor": "tester",
        "data": data,
    }


# --- official schemas (Table Schema, validated with frictionless) ------------------------------

SCHEMAS_ENV = "TI_SCHEMAS_DIR"
COG_ENV = "TI_COG_DIR"


def official_schemas_dir() -> Path:
    """The official schemas and their examples, never copied into the repository: ``$TI_SCHEMAS_DIR``,
    else ``shared/data/schemas/`` in the first folder above the repository that has it (the programme's
    ``shared/`` lies beside the repository's clone)."""
    return _programme_data("schemas", SCHEMAS_ENV)


def official_cog_dir() -> Path:
    """INSEE's COG (``communes.csv``: code, departement_code, region_code, name; ``departements.csv``,
    ``regions.csv``) for realistic test files, never copied into the repository: ``$TI_COG_DIR``, else
    ``shared/data/cog/`` beside the repository's clone, as :func:`official_schemas_dir`."""
    return _programme_data("cog", COG_ENV)


def _programme_data(name: str, env: str) -> Path:
    given = os.environ.get(env)
    if given:
        return Path(given)
    here = Path(__file__).resolve()
    for folder in here.parents[4:]:  # shared/src/ti_shared/testing.py → above the repository
        candidate = folder / "shared" / "data" / name
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the programme's data is not found: set {env} (…/shared/data/{name})")


@dataclass(frozen=True)
class SchemaError:
    """One error frictionless finds: its type (``type-error``, ``constraint-error``, ``missing-label``…),
    the file's row (the header is row 1; None for the header or the file), the field and its note."""

    type: str
    row: int | None
    field: str | None
    note: str


def table_schema_errors(data: bytes, schema: Path | dict[str, Any], *, delimiter: str = ",") -> list[SchemaError]:
    """Every error of a CSV (UTF-8) against a Table Schema (a file or its descriptor), as frictionless
    validates it (the test dependency pinned in constraints.txt)."""
    from frictionless import Resource, Schema
    from frictionless.formats import CsvControl

    descriptor = json.loads(schema.read_text(encoding="utf-8")) if isinstance(schema, Path) else schema
    resource = Resource(
        data=data,
        format="csv",
        encoding="utf-8",
        schema=Schema.from_descriptor(descriptor),
        control=CsvControl(delimiter=delimiter),
    )
    report = resource.validate()
    return [
        SchemaError(
            error.type,
            getattr(error, "row_number", None),
            getattr(error, "field_name", None) or getattr(error, "label", None),
            error.note,
        )
        for task in report.tasks
        for error in task.errors
    ]


# --- clients generated from the OpenAPI documents, as an integrator generates them ---------------

#: where generated clients are kept between test sessions, one directory per document's digest
CLIENTS_DIR = Path(__file__).resolve().parents[3] / "var" / "openapi-clients"
#: openapi-python-client's configuration: CSV and XLSX bodies are bytes (it reads no other media as a file)
CLIENT_CONFIG = (
    "post_hooks: []\ncontent_type_overrides:\n  text/csv: application/octet-stream\n"
    "  application/vnd.openxmlformats-officedocument.spreadsheetml.sheet: application/octet-stream\n"
)


def generated_client(document: dict[str, Any], package: str) -> ModuleType:
    """The package openapi-python-client generates from ``document`` (named ``package``), imported.

    Generated once per document: kept under ``var/openapi-clients/<package>-<digest>/`` (the digest of
    the document, the generator's version and its configuration). A warning of the generator (an
    operation or a body it could not generate) is a failure: an integrator would get a client that
    silently lacks it."""
    from importlib.metadata import version

    text = json.dumps(document, sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(f"{text}\n{version('openapi-python-client')}\n{CLIENT_CONFIG}".encode()).hexdigest()[:16]
    home = CLIENTS_DIR / f"{package}-{digest}"
    if not (home / package / "__init__.py").is_file():
        CLIENTS_DIR.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{package}-", dir=CLIENTS_DIR))
        (work / "openapi.json").write_text(text, encoding="utf-8")
        (work / "config.yaml").write_text(CLIENT_CONFIG + f"package_name_override: {package}\n", encoding="utf-8")
        done = subprocess.run(  # noqa: S603 - the generator installed in this environment
            [str(Path(sys.executable).parent / "openapi-python-client"), "generate", "--path", str(work / "openapi.json"),
             "--config", str(work / "config.yaml"), "--meta", "none", "--output-path", str(work / package)],
            capture_output=True, text=True, timeout=300, check=False,
        )
        output = done.stdout + done.stderr
        if done.returncode != 0 or "warning" in output.lower():
            raise AssertionError(f"openapi-python-client could not generate {package} whole:\n{output[-6000:]}")
        if not compileall.compile_dir(str(work / package), quiet=1):
            raise AssertionError(f"the generated {package} does not compile")
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir()
        (work / package).rename(home / package)  # whole or not at all: a session cut short leaves none
        shutil.rmtree(work, ignore_errors=True)
    if str(home) not in sys.path:
        sys.path.insert(0, str(home))
    return importlib.import_module(package)
class MemorySource:
    """An in-memory bus source for unit tests of consumers: the given messages, published in that order
    on partitions numbered by the caller; fetches return them in that order (each partition in offset
    order), and ``seek`` goes back to given positions as Kafka's does."""

    def __init__(self, messages: list[Any]) -> None:
        from ti_shared.bus import IncomingMessage

        self.messages: list[IncomingMessage] = messages
        self._positions: dict[tuple[str, int], int] = {}
        self._cursor = 0

    @staticmethod
    def of_events(events: list[dict[str, Any]], partitions: int = 3) -> MemorySource:
        """The events published to their topics, keyed (and partitioned) by subject."""
        import zlib

        import orjson

        from ti_shared.bus import IncomingMessage
        from ti_shared.events import topic_for_type

        offsets: dict[tuple[str, int], int] = {}
        out = []
        for e in events:
            topic = topic_for_type(e["type"]) or "ti.unknown"
            partition = zlib.crc32(str(e.get("subject")).encode()) % partitions
            offset = offsets.get((topic, partition), 0)
            offsets[(topic, partition)] = offset + 1
            out.append(IncomingMessage(topic, partition, offset, e.get("subject"), orjson.dumps(e)))
        return MemorySource(out)

    async def start(self, topics: Any, positions: dict[tuple[str, int], int]) -> None:
        await self.seek(positions)

    async def stop(self) -> None:
        return None

    async def seek(self, positions: dict[tuple[str, int], int]) -> None:
        self._positions = dict(positions)
        self._cursor = 0

    async def fetch(self, max_records: int, timeout_s: float) -> list[Any]:
        out: list[Any] = []
        while self._cursor < len(self.messages) and len(out) < max_records:
            message = self.messages[self._cursor]
            self._cursor += 1
            tp = (message.topic, message.partition)
            if message.offset >= self._positions.get(tp, 0):
                out.append(message)
                self._positions[tp] = message.offset + 1
        return out

    async def lag(self) -> int:
        return sum(1 for m in self.messages[self._cursor :] if m.offset >= self._positions.get((m.topic, m.partition), 0))
