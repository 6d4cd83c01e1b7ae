"""What every benchmark needs: the scale, service processes on loopback, RSS sampling, percentiles.

Each service under test runs as its own ``uvicorn`` process (the options of deploy/local/services.sh)
beside its outbox relay (``ti relay SERVICE``, as deployed), on a fresh PostgreSQL database and a fresh
Kafka topic prefix, on ports no other run uses.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from ti_shared.events import topic_for_type
from ti_shared.settings import PlatformSettings
from ti_shared.testing import (
    create_database,
    create_topics,
    drop_database,
    kafka_bootstrap,
    new_topic_prefix,
    platform_settings,
)

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
UVICORN = str(Path(PYTHON).with_name("uvicorn"))
TI = str(Path(PYTHON).with_name("ti"))
#: the options deploy/local/services.sh gives every service (the read baseline gets the same)
UVICORN_OPTIONS = ["--host", "127.0.0.1", "--no-access-log", "--timeout-graceful-shutdown", "5"]

#: partitions of each topic of a run (as deploy/local creates them)
PARTITIONS = 3

MODULES = {
    "territory-registry": "territory_registry",
    "action-tracker": "action_tracker",
    "funding-ledger": "funding_ledger",
    "site-catalog": "site_catalog",
    "reporting": "reporting",
}


@dataclass(frozen=True)
class Scale:
    name: str
    ingest_grants: int
    batch_size: int
    write_rate: int
    write_seconds: int
    replay_events: int
    curve: tuple[int, ...]
    read_seconds: int


SCALES = {
    "small": Scale("small", 10_000, 5_000, 200, 15, 100_000, (10_000, 100_000), 5),
    "full": Scale("full", 100_000, 5_000, 200, 60, 1_000_000, (10_000, 100_000, 1_000_000), 15),
}


def scale_from_env() -> Scale:
    name = os.environ.get("BENCH_SCALE", "full")
    if name not in SCALES:
        raise SystemExit(f"BENCH_SCALE must be one of {', '.join(SCALES)} (got {name!r})")
    return SCALES[name]


def percentile(values: Iterable[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def metric_samples(text: str, name: str) -> list[tuple[str, dict[str, str], float]]:
    """The samples (sample name, labels, value) of the metric family ``name`` in a ``/metrics`` page."""
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        if family.name == name
        for sample in family.samples
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine() -> dict[str, Any]:
    load1, load5, load15 = os.getloadavg()
    return {
        "cores": os.cpu_count(),
        "memory_mb": round(psutil.virtual_memory().total / 2**20),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(load1, 2), round(load5, 2), round(load15, 2)],
    }


class RssSampler:
    """Peak resident memory of named processes, sampled every ``interval_s`` in a thread."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.peaks_mb: dict[str, float] = {}
        self._procs: dict[str, list[psutil.Process]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def watch(self, name: str, pid: int) -> None:
        with self._lock:
            self._procs.setdefault(name, []).append(psutil.Process(pid))

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                watched = {n: list(ps) for n, ps in self._procs.items()}
            for name, procs in watched.items():
                for p in procs:
                    try:
                        mb = p.memory_info().rss / 2**20
                    except psutil.Error:
                        continue
                    if mb > self.peaks_mb.get(name, 0.0):
                        self.peaks_mb[name] = round(mb, 1)
            self._stop.wait(self.interval_s)


@dataclass
class ServiceProcess:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    #: its outbox relay's process (``ti relay``), when it has one
    relay: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid] + ([self.relay.pid] if self.relay is not None else [])


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time used so far by these processes."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


class BackendCpu:
    """CPU time of the PostgreSQL processes serving ``database`` between :meth:`start` and :meth:`stop`:
    those there at the start and those that appeared since (a pool's overflow connections). A process
    that ended meanwhile took its CPU time with it: it counts for nothing (an undercount, never a
    negative figure)."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._start: dict[int, float] = {}

    def start(self) -> None:
        self._start = {pid: cpu_seconds([pid]) for pid in postgres_backends(self.database)}

    def stop(self) -> float:
        total = 0.0
        for pid in set(self._start) | set(postgres_backends(self.database)):
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            total += max(0.0, times.user + times.system - self._start.get(pid, 0.0))
        return total


def postgres_backends(database: str) -> list[int]:
    """The PostgreSQL server processes serving ``database`` now (one per connection): those whose title
    is ``postgres: USER DATABASE HOST(PORT) STATE``. A title that fills the whole of the server's
    original command line has no NUL left in it, and psutil then splits it on its spaces: the parts
    are joined again before matching."""
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        title = " ".join(part for part in proc.info["cmdline"] or [] if part)
        if title.startswith("postgres: ") and f" {database} " in title + " ":
            out.append(proc.pid)
    return out


@dataclass
class Platform:
    """Fresh databases, a fresh topic prefix and the service processes started on them."""

    run_dir: Path
    sampler: RssSampler
    prefix: str = field(default_factory=new_topic_prefix)
    databases: dict[str, str] = field(default_factory=dict)
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    settings: PlatformSettings | None = None

    async def prepare(self, names: Iterable[str]) -> PlatformSettings:
        await create_topics(self.prefix, partitions=PARTITIONS)
        for name in names:
            self.databases[name] = await create_database("bench_" + MODULES[name])
        self.settings = platform_settings(topic_prefix=self.prefix)
        return self.settings

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TI_") or k == "TI_TEST_POSTGRES_URL"}
        env.update(
            {
                "TI_ENV": "test",
                "TI_BUS": "kafka",
                "TI_KAFKA_BOOTSTRAP": kafka_bootstrap(),
                "TI_TOPIC_PREFIX": self.prefix,
                "TI_LOG_LEVEL": "WARNING",
                "TI_RELAY": "process",
                "PYTHONUNBUFFERED": "1",
            }
        )
        for name, url in self.databases.items():
            env["TI_" + name.upper().replace("-", "_") + "_DATABASE_URL"] = url
        return env

    def start(self, name: str, *, module_app: str | None = None, env: dict[str, str] | None = None) -> ServiceProcess:
        """A service (or, with ``module_app``, a bench app) and, for a service, its outbox relay."""
        port = free_port()
        target = module_app or f"{MODULES[name]}.main:create_app"
        app_dir = ["--app-dir", str(ROOT / "bench")] if module_app else []
        log_path = self.run_dir / f"{name}.log"
        environment = {**self.environment(), **(env or {})}
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [UVICORN, "--factory", target, "--port", str(port), *app_dir, *UVICORN_OPTIONS],
                env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
            relay = None
            if module_app is None:
                relay = subprocess.Popen(
                    [TI, "relay", name], env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
        service = ServiceProcess(name, port, proc, log_path, relay)
        self.services[name] = service
        self.sampler.watch(name, proc.pid)
        if relay is not None:
            self.sampler.watch(name + "-relay", relay.pid)
        return service

    async def wait_ready(self, timeout_s: float = 300) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            for service in self.services.values():
                deadline = time.monotonic() + timeout_s
                while True:
                    if service.proc.poll() is not None or (service.relay is not None and service.relay.poll() is not None):
                        raise RuntimeError(f"{service.name} or its relay exited: see {service.log_path}")
                    try:
                        if (await client.get(service.url + "/readyz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{service.name} not ready: see {service.log_path}")
                    await asyncio.sleep(0.1)

    async def wait_settled(self, timeout_s: float = 300) -> float:
        """Wait until every service reports no pending outbox row and no consumer lag; returns the seconds waited."""
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=10) as client:
            while True:
                docs = []
                for service in self.services.values():
                    response = await client.get(service.url + "/readyz")
                    docs.append(response.json() if response.status_code == 200 else None)
                if all(d is not None and d["outbox_pending"] == 0 and d["consumer_lag"] == 0 for d in docs):
                    return time.monotonic() - started
                if time.monotonic() - started > timeout_s:
                    raise TimeoutError(f"not settled after {timeout_s} s: {docs}")
                await asyncio.sleep(0.1)

    def stop(self, name: str | None = None) -> None:
        for service in [self.services[name]] if name else list(self.services.values()):
            for proc in (service.proc, service.relay):
                if proc is None or proc.poll() is not None:
                    continue
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self.services.pop(service.name, None)

    async def close(self) -> None:
        self.stop()
        self.sampler.stop()
        for url in self.databases.values():
            await drop_database(url)
        self.databases.clear()


async def publish_raw(settings: PlatformSettings, events: list[dict[str, Any]], chunk: int = 5000) -> float:
    """Publish CloudEvent dicts straight to their topics (key = subject); returns the seconds taken."""
    import orjson
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5, max_batch_size=1024 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    try:
        headers = [("content-type", b"application/cloudevents+json")]
        for i in range(0, len(events), chunk):
            futures = []
            for e in events[i : i + chunk]:
                topic = topic_for_type(e["type"])
                assert topic is not None, e["type"]
                futures.append(
                    await producer.send(
                        settings.topic_prefix + topic, value=orjson.dumps(e), key=e["subject"].encode(), headers=headers
                    )
                )
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def dumps(doc: Any) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True)
