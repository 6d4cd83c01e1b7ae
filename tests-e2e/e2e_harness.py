"""The end-to-end harness: its own PostgreSQL and Kafka, the five services as separate processes, a
counting HTTP client, the model of everything the suite wrote, and the run report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from ti_shared.auth import mint_token
from ti_shared.bus import make_source
from ti_shared.endpoints import Endpoints, wait_settled
from ti_shared.events import ALL_TOPICS, DOMAIN_TOPICS, TOPIC_DEAD_LETTERS
from ti_shared.settings import PlatformSettings
from ti_shared.testing import create_database, create_topics, drop_database, new_topic_prefix

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "deploy" / "local"
E2E_VAR = ROOT / "var" / "e2e"

#: service → default port (CONTRACT §1)
SERVICES: dict[str, int] = {
    "territory-registry": 8001,
    "action-tracker": 8002,
    "funding-ledger": 8003,
    "site-catalog": 8004,
    "reporting": 8005,
}


def env_name(service: str) -> str:
    return service.upper().replace("-", "_")


def _run(cmd: list[str], env: dict[str, str], timeout: float = 240) -> str:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def first_free(start: int) -> int:
    """The first port from ``start`` on which nothing listens."""
    port = start
    while not port_free(port):
        port += 1
    return port


# --- infrastructure ----------------------------------------------------------------------------


class Infra:
    """PostgreSQL and Kafka for the suite. ``own``: a PostgreSQL cluster and a Kafka node of the suite's
    own (under var/e2e/infra, other ports), started with deploy/local/pg.sh and kafka.sh, which the
    fault scenario may stop and restart without disturbing anyone else; otherwise the shared ones."""

    def __init__(self, own: bool) -> None:
        self.own = own
        self.var = E2E_VAR / "infra"
        if own:
            self.pg_port = int(os.environ.get("TI_E2E_PG_PORT") or first_free(54431))
            self.kafka_port = int(os.environ.get("TI_E2E_KAFKA_PORT") or first_free(59431))
            self.controller_port = int(os.environ.get("TI_E2E_KAFKA_CONTROLLER_PORT") or first_free(self.kafka_port + 1))
        else:
            self.pg_port = int(os.environ.get("TI_PG_PORT", "54329"))
            self.kafka_port = int(os.environ.get("TI_KAFKA_PORT", "59092"))
            self.controller_port = 0
        self.started: list[str] = []

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.own:
            env.update(
                TI_VAR=str(self.var),
                TI_PG_PORT=str(self.pg_port),
                TI_KAFKA_PORT=str(self.kafka_port),
                TI_KAFKA_CONTROLLER_PORT=str(self.controller_port),
                TI_KAFKA_HEAP="-Xms128m -Xmx384m",
            )
        return env

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def postgres_admin_url(self) -> str:
        return f"postgresql+asyncpg://ti:ti@127.0.0.1:{self.pg_port}/postgres"

    def start(self) -> None:
        if not self.own:
            return
        libs = self.var / "kafka" / "libs"
        shared_libs = ROOT / "var" / "kafka" / "libs"
        if not libs.exists() and shared_libs.is_dir():
            libs.parent.mkdir(parents=True, exist_ok=True)
            libs.symlink_to(shared_libs)  # the jars are the same; no second Maven download
        self.pg("start")
        self.kafka("start")

    def pg(self, command: str) -> None:
        _run(["bash", str(LOCAL / "pg.sh"), command], self.env)
        if command == "start" and "pg" not in self.started:
            self.started.append("pg")

    def kafka(self, command: str) -> None:
        _run(["bash", str(LOCAL / "kafka.sh"), command], self.env)
        if command == "start" and "kafka" not in self.started:
            self.started.append("kafka")

    def stop(self) -> None:
        for what in reversed(self.started):
            with contextlib.suppress(Exception):
                (self.kafka if what == "kafka" else self.pg)("stop")
        self.started.clear()


# --- the platform ------------------------------------------------------------------------------


@dataclass
class Platform:
    """Five service processes on loopback ports, on fresh databases and a fresh topic prefix."""

    infra: Infra
    name: str
    services: tuple[str, ...] = tuple(SERVICES)
    prefix: str = field(default_factory=new_topic_prefix)
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    ports: dict[str, int] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dir = E2E_VAR / self.name
        contract_ports = os.environ.get("TI_E2E_PORTS", "contract") == "contract"  # "free": on a shared machine
        for service in self.services:
            wanted = SERVICES[service]
            if contract_ports and port_free(wanted):
                self.ports[service] = wanted
            else:
                self.ports[service] = free_port()
                self.notes.append(f"port {wanted} busy: {service} on {self.ports[service]}")

    # settings and tokens

    @property
    def settings(self) -> PlatformSettings:
        return PlatformSettings(
            env="test", bus="kafka", kafka_bootstrap=self.infra.bootstrap, topic_prefix=self.prefix, jwt_secret=self.secret
        )

    def token(self, sub: str, *scopes: str, operator: str | None = None, territories: tuple[str, ...] = (), ttl: int = 3600) -> str:
        return mint_token(self.settings, sub=sub, scopes=list(scopes), operator=operator, territories=territories, ttl_seconds=ttl)

    def auth(self, sub: str, *scopes: str, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.token(sub, *scopes, **kwargs)}

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            TI_ENV="test",
            TI_BUS="kafka",
            TI_KAFKA_BOOTSTRAP=self.infra.bootstrap,
            TI_TOPIC_PREFIX=self.prefix,
            TI_JWT_SECRET=self.secret,
            TI_LOG_JSON="true",
            TI_SERVICES_RUN_DIR=str(self.dir / "run"),
            TI_SERVICES_LOG_DIR=str(self.dir / "log"),
            TI_SERVICES_ENV_FILE=str(self.dir / "none.env"),
            TI_SERVICES_READY_TIMEOUT="180",
        )
        for service in SERVICES:
            env.pop(f"TI_{env_name(service)}_DATABASE_URL", None)
        for service in self.services:
            env[f"TI_{env_name(service)}_PORT"] = str(self.ports[service])
            env[f"TI_{env_name(service)}_DATABASE_URL"] = self.databases[service]
        return env

    # lifecycle

    def create(self) -> None:
        async def _create() -> None:
            os.environ["TI_TEST_POSTGRES_URL"] = self.infra.postgres_admin_url
            os.environ["TI_KAFKA_BOOTSTRAP"] = self.infra.bootstrap
            for service in self.services:
                self.databases[service] = await create_database("e2e_" + env_name(service).lower())
            await create_topics(self.prefix)

        asyncio.run(_create())

    def services_sh(self, command: str, service: str | None = None) -> str:
        return _run(["bash", str(LOCAL / "services.sh"), command, *([service] if service else [])], self.env, timeout=400)

    def start(self, service: str | None = None) -> None:
        if service is None and set(self.services) != set(SERVICES):
            for one in self.services:
                self.services_sh("start", one)
        else:
            self.services_sh("start", service)

    def stop(self, service: str | None = None) -> None:
        self.services_sh("stop", service)

    def pid(self, service: str) -> int:
        return int((self.dir / "run" / f"{service}.pid").read_text().strip())

    def kill(self, service: str, sig: int = signal.SIGKILL) -> None:
        """Signal the service's own process (by its pid file)."""
        pid = self.pid(service)
        os.kill(pid, sig)
        deadline = time.monotonic() + 15
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

        async def _drop() -> None:
            for url in self.databases.values():
                with contextlib.suppress(Exception):
                    await drop_database(url)

        asyncio.run(_drop())

    def log_tail(self, service: str, lines: int = 30) -> str:
        path = self.dir / "log" / f"{service}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # observation

    async def readyz(self, client: httpx.AsyncClient, service: str) -> tuple[int, dict[str, Any]]:
        try:
            r = await client.get(self.url(service) + "/readyz", timeout=10)
            return r.status_code, r.json()
        except (httpx.HTTPError, ValueError) as exc:
            return 0, {"error": repr(exc)}

    async def wait_settled(self, timeout_s: float = 120.0) -> float:
        """Wait until every service reports outbox_pending 0 and consumer_lag 0 (twice in a row);
        returns the seconds it took."""
        urls = {s: self.url(s) for s in self.services}
        endpoints = Endpoints(urls[self.services[0]], urls)
        async with httpx.AsyncClient() as client:
            try:
                return await wait_settled(client, endpoints, timeout_s, streak=2, interval_s=0.25)
            except TimeoutError as exc:
                raise TimeoutError(f"platform {self.name}: {exc}") from exc

    async def indicators(self, scope: str, as_of: str | None = None) -> dict[str, Any]:
        params = {"scope": scope, **({"as_of": as_of} if as_of else {})}
        async with httpx.AsyncClient() as client:
            r = await client.get(self.url("reporting") + "/v1/indicators", params=params, timeout=30)
        assert r.status_code == 200, (scope, r.status_code, r.text[:500])
        return dict(r.json()["indicators"])

    async def topic_counts(self, topics: tuple[str, ...] = ALL_TOPICS) -> dict[str, int]:
        """How many messages each topic of this platform holds."""
        out: dict[str, int] = {}
        for topic in topics:
            source = make_source(self.settings, "e2e-count")
            await source.start([topic], {})
            try:
                out[topic] = await source.lag()
            finally:
                await source.stop()
        return out

    async def read_topic(self, topic: str, timeout_s: float = 20.0) -> list[bytes]:
        """Every message currently on ``topic``."""
        source = make_source(self.settings, "e2e-reader")
        await source.start([topic], {})
        values: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                batch = await source.fetch(5000, 0.5)
                values += [m.value for m in batch]
                if not batch and await source.lag() == 0:
                    break
        finally:
            await source.stop()
        return values

    async def dead_letters(self) -> list[dict[str, Any]]:
        return [json.loads(v) for v in await self.read_topic(TOPIC_DEAD_LETTERS)]

    async def events_published(self) -> int:
        counts = await self.topic_counts(DOMAIN_TOPICS)
        return sum(counts.values())


# --- the HTTP client that counts -----------------------------------------------------------------


class Api:
    """An HTTP client for one platform; counts the accepted writes and notes when the last one was."""

    WRITES = ("PUT", "POST", "PATCH", "DELETE")

    def __init__(self, platform: Platform, stats: Stats) -> None:
        self.platform = platform
        self.stats = stats
        self.client = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=40))

    async def request(self, method: str, service: str, path: str, **kwargs: Any) -> httpx.Response:
        r = await self.client.request(method, self.platform.url(service) + path, **kwargs)
        if method in self.WRITES:
            self.stats.requests += 1
            if r.status_code < 300:
                self.stats.accepted_writes += 1
                self.stats.last_write_at = time.monotonic()
        return r

    async def put(self, service: str, path: str, body: Any, headers: dict[str, str], *, expect: tuple[int, ...] = (200, 201)) -> httpx.Response:
        r = await self.request("PUT", service, path, json=body, headers=headers)
        assert r.status_code in expect, (path, r.status_code, r.text[:800])
        return r

    async def aclose(self) -> None:
        await self.client.aclose()


@contextlib.asynccontextmanager
async def api_of(platform: Platform, stats: Stats) -> AsyncIterator[Api]:
    api = Api(platform, stats)
    try:
        yield api
    finally:
        await api.aclose()


@dataclass
class Stats:
    """What the run did, for the report."""

    requests: int = 0
    accepted_writes: int = 0
    last_write_at: float = 0.0
    catch_up_s: list[float] = field(default_factory=list)
    scenarios: dict[str, Any] = field(default_factory=dict)

    async def settle(self, platform: Platform, label: str, timeout_s: float = 120.0) -> float:
        """Wait for the platform to settle; records the time from the last write to settled."""
        await platform.wait_settled(timeout_s)
        lag = time.monotonic() - self.last_write_at if self.last_write_at else 0.0
        self.catch_up_s.append(round(lag, 3))
        self.scenarios.setdefault(label, {})["catch_up_s"] = round(lag, 3)
        return lag


# --- the model of what was written ----------------------------------------------------------------


@dataclass
class Model:
    """The final state of every entity the suite wrote, as the suite itself knows it."""

    territories: dict[str, dict[str, Any]] = field(default_factory=dict)
    actions: dict[str, dict[str, Any]] = field(default_factory=dict)
    grants: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)

    def set_grant(self, key: tuple[str, str], body: dict[str, Any]) -> None:
        previous = self.grants.get(key)
        self.grants[key] = {**body, "disbursed_eur": previous["disbursed_eur"] if previous else "0.00"}

    def disburse(self, key: tuple[str, str], amount: str) -> None:
        grant = self.grants[key]
        grant["disbursed_eur"] = f"{Decimal(grant['disbursed_eur']) + Decimal(amount):.2f}"


def unique_tag() -> str:
    return uuid.uuid4().hex[:6].upper()
