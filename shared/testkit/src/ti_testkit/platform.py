"""A handle on a running platform for tests: tokens per role, HTTP clients, pushes, replays, and waiting
until what was written is reflected in the indicators.

The handle is synchronous (plain ``def`` tests, any HTTP client); what needs an event loop (publishing
a stream, polling ``/readyz``) runs on a loop thread of its own — for the embedded platform, the loop
that serves it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import httpx
from ti_shared.auth import mint_token
from ti_shared.endpoints import Endpoints, readiness, wait_settled
from ti_shared.geo import DEPARTEMENTS
from ti_shared.settings import PlatformSettings
from ti_shared.streams import publish_stream, stream_messages, to_json_lines

T = TypeVar("T")

#: role → scopes of its tokens (CONTRACT §3); ``operator`` needs ``operator=``, ``project_lead`` needs ``territories=``
ROLES: dict[str, tuple[str, ...]] = {
    "admin": ("admin",),
    "registry": ("territories:write",),
    "operator": ("grants:write",),
    "project_lead": ("actions:write",),
    "site_owner": ("sites:write",),
}

WRITE_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE"})
EVENT_ID_HEADER = "TI-Event-Id"
#: the longest ``wait=`` a request of ``after=`` may ask (CONTRACT §8, reporting's bound)
MAX_WAIT_S = 30.0
#: an event id no platform has: asked with ``wait=0`` it tells whether ``after=`` is understood
_PROBE_EVENT_ID = "00000000-0000-4000-8000-000000000000"


class LoopThread:
    """An event loop running in a daemon thread; ``call`` runs a coroutine there and waits for it."""

    def __init__(self, name: str = "ti-testkit") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        return self.submit(coro).result(timeout_s)

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        if not self.loop.is_running():
            self.loop.close()


class _RouteByPrefix(httpx.BaseTransport):
    """Sends each request to the service owning its path (one base URL or one URL per service)."""

    def __init__(self, endpoints: Endpoints, inner: httpx.BaseTransport) -> None:
        self.endpoints = endpoints
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target = httpx.URL(self.endpoints.url_for_path(request.url.path))
        prefix = target.path.rstrip("/")
        request.url = request.url.copy_with(scheme=target.scheme, host=target.host, port=target.port, path=prefix + request.url.path)
        request.headers["Host"] = target.netloc.decode()
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class Platform:
    """A running platform, embedded or distributed, seen from a test."""

    def __init__(
        self,
        endpoints: Endpoints,
        settings: PlatformSettings,
        *,
        runner: LoopThread | None = None,
        can_replay: bool = True,
        name: str = "platform",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.settings = settings
        self.name = name
        self.can_replay = can_replay
        self._runner = runner or LoopThread(f"ti-testkit-{name}")
        self._clients: list[httpx.Client] = []
        self._pending: list[str | None] = []
        self._read_your_writes: bool | None = None
        self._transport = transport
        self._http = self.client()

    def __repr__(self) -> str:
        return f"<Platform {self.name} {self.base_url}>"

    @property
    def base_url(self) -> str:
        """The URL a browser or another client uses (with one URL per service: the reporting service's)."""
        return self.endpoints.base

    # -- tokens and clients ------------------------------------------------------------------------

    def token(
        self, role: str = "admin", *, sub: str | None = None, operator: str | None = None,
        territories: Sequence[str] = (), ttl_s: int = 3600,
    ) -> str:
        """A bearer token for ``role`` (``admin``, ``registry``, ``operator`` with ``operator=``,
        ``project_lead`` with ``territories=``, ``site_owner``), signed as the platform expects."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: {', '.join(ROLES)}")
        if role == "operator" and not operator:
            raise ValueError("an operator token needs operator=, e.g. operator='ADEME'")
        if role == "project_lead" and not territories:
            raise ValueError("a project lead token needs territories=, e.g. territories=['ti-8401']")
        subject = sub or ("-".join([role, *([operator] if operator else [])]).lower())
        return mint_token(
            self.settings, sub=subject, scopes=list(ROLES[role]), operator=operator, territories=tuple(territories), ttl_seconds=ttl_s
        )

    def headers(self, role: str = "admin", **kwargs: Any) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.token(role, **kwargs)}

    def client(self, role: str | None = None, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` on the platform (paths as in the contract: ``/v1/grants/…``), with the token
        of ``role`` when given. Its accepted writes are remembered, so that ``indicators()`` waits for them."""
        client = httpx.Client(
            base_url="http://platform",
            transport=_RouteByPrefix(self.endpoints, self._transport or httpx.HTTPTransport()),
            headers=self.headers(role, **kwargs) if role else None,
            timeout=60.0,
            event_hooks={"response": [self._remember_write]},
        )
        self._clients.append(client)
        return client

    def _remember_write(self, response: httpx.Response) -> None:
        if response.request.method in WRITE_METHODS and response.status_code < 300:
            self._pending.append(response.headers.get(EVENT_ID_HEADER))

    # -- writes --------------------------------------------------------------------------------------

    def _ok(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 300:
            raise AssertionError(f"{response.request.method} {response.request.url.path} → {response.status_code}: {response.text[:2000]}")
        return response

    def register_territory(self, territory_id: str, region_code: str, *, wait: bool = True, **fields: Any) -> dict[str, Any]:
        """Register (or update) a territory with valid defaults for what ``fields`` does not give; by default
        waits until every service knows it (action-tracker, funding-ledger and site-catalog check territory ids)."""
        body: dict[str, Any] = {
            "name": f"Territoire d'industrie {territory_id}",
            "region_code": region_code,
            "departement_codes": sorted(d for d, (_name, r) in DEPARTEMENTS.items() if r == region_code)[:1],
            "epcis": [],
            "phase": "temps-2",
            "labelled_on": "2023-11-09",
            "project_lead": None,
            "launch_copil_held_on": None,
            "status": "active",
            **fields,
        }
        response = self._ok(self._http.put(f"/v1/territories/{territory_id}", json=body, headers=self.headers("registry")))
        if wait:
            self.settle()
        result: dict[str, Any] = response.json()
        return result

    def push_plan(self, territory_id: str, plan: Mapping[str, Mapping[str, Any]] | str, *, mode: str = "partial") -> Any:
        """A territory's action plan, as its project lead sends it: ``{action_id: body}`` (one PUT each;
        ``territory_id`` filled in) or the text of a CSV plan import (returns the import report)."""
        lead = self.headers("project_lead", territories=[territory_id])
        if isinstance(plan, str):
            response = self._http.post(
                "/v1/actions/plan-imports", params={"territory_id": territory_id, "mode": mode},
                content=plan.encode(), headers={**lead, "Content-Type": "text/csv"},
            )
            return self._ok(response).json()
        return [self._ok(self._http.put(f"/v1/actions/{aid}", json={"territory_id": territory_id, **body}, headers=lead)).json()
                for aid, body in plan.items()]

    def push_grants(self, operator: str, grants: Mapping[str, Mapping[str, Any]], *, mode: str = "atomic") -> dict[str, Any]:
        """One ``POST /v1/grant-batches`` of ``operator``'s grants ``{operator_ref: body}``; returns the batch report."""
        items = [{"operator": operator, "operator_ref": ref, **body} for ref, body in grants.items()]
        response = self._http.post("/v1/grant-batches", json={"mode": mode, "items": items}, headers=self.headers("operator", operator=operator))
        report: dict[str, Any] = self._ok(response).json()
        return report

    def put_grant(self, operator: str, operator_ref: str, body: Mapping[str, Any]) -> httpx.Response:
        return self._ok(self._http.put(f"/v1/grants/{operator}/{operator_ref}", json=dict(body), headers=self.headers("operator", operator=operator)))

    def put_site(self, site_id: str, body: Mapping[str, Any]) -> httpx.Response:
        return self._ok(self._http.put(f"/v1/sites/{site_id}", json=dict(body), headers=self.headers("site_owner")))

    # -- recorded streams ----------------------------------------------------------------------------

    def replay(self, stream: Path | str | Iterable[Mapping[str, Any]], *, wait: bool = True, timeout_s: float = 300.0) -> int:
        """Publish a recorded stream (a JSON-lines file, its text, or CloudEvent dicts) on the platform's bus,
        as ``ti replay`` does; by default waits until it is applied. Returns the number of events."""
        if not self.can_replay:
            raise RuntimeError(f"{self.name}: no bus to replay into (give the Kafka bootstrap: --ti-kafka)")
        if isinstance(stream, Path):
            text = stream.read_text(encoding="utf-8")
        elif isinstance(stream, str):
            text = stream
        else:
            text = to_json_lines(stream)
        messages = stream_messages(text.splitlines())
        self._runner.call(publish_stream(self.settings, messages, "ti-testkit"))
        if wait:
            self.settle(timeout_s)
        return len(messages)

    # -- reading your writes -------------------------------------------------------------------------

    def settle(self, timeout_s: float = 120.0) -> None:
        """Wait until every service's ``/readyz`` shows ``outbox_pending`` 0 and ``consumer_lag`` 0."""

        async def _go() -> None:
            async with httpx.AsyncClient() as client:
                await wait_settled(client, self.endpoints, timeout_s, streak=2, interval_s=0.05)

        self._runner.call(_go())
        self._pending.clear()

    def readiness(self) -> dict[str, dict[str, Any]]:
        async def _go() -> dict[str, dict[str, Any]]:
            async with httpx.AsyncClient() as client:
                return await readiness(client, self.endpoints)

        return self._runner.call(_go())

    def offers_read_your_writes(self) -> bool:
        """Whether the indicators endpoint understands ``after=<event-id>&wait=<s>`` (then writes answer
        ``TI-Event-Id``): asked for an event no platform has with ``wait=0``, such a server answers 504 at
        once (CONTRACT §8); one that ignores ``after`` answers 200, one that refuses it a 4xx."""
        if self._read_your_writes is None:
            probe = self._http.get("/v1/indicators", params={"scope": "national", "after": _PROBE_EVENT_ID, "wait": "0"})
            self._read_your_writes = probe.status_code == 504
        return self._read_your_writes

    def wait_for(self, *writes: httpx.Response | str, timeout_s: float = 60.0) -> None:
        """Wait until the given writes (responses, or event ids) are reflected in the indicators — without
        arguments, every write accepted through this handle's clients so far. Uses ``after=<event-id>`` when
        the platform offers it and every write answered an event id, ``/readyz`` otherwise."""
        ids = [w if isinstance(w, str) else w.headers.get(EVENT_ID_HEADER) for w in writes] if writes else list(self._pending)
        if ids and all(ids) and self.offers_read_your_writes():
            self._wait_after(ids, timeout_s)
            if not writes:
                self._pending.clear()
            return
        self.settle(timeout_s)

    def _wait_after(self, ids: list[str | None], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for event_id in ids:
            while True:  # one request waits at most MAX_WAIT_S (the server's bound): ask again until the deadline
                asked = time.monotonic()
                wait = max(0.0, min(MAX_WAIT_S, deadline - asked))
                params = {"scope": "national", "after": str(event_id), "wait": f"{wait:.3f}"}
                response = self._http.get("/v1/indicators", params=params, timeout=wait + 10)
                if response.status_code != 504:
                    self._ok(response)
                    break
                now = time.monotonic()
                if now >= deadline or now - asked < wait:  # the whole time waited, or the server's final answer
                    raise TimeoutError(f"event {event_id} not reflected after {timeout_s:g} s: {response.text[:500]}")

    def indicators(self, scope: str = "national", as_of: str | None = None, *, wait: bool = True) -> dict[str, Any]:
        """``GET /v1/indicators`` of ``scope`` (and ``as_of``): the ``indicators`` object. By default first waits
        until every write accepted through this handle's clients is reflected (writes made otherwise:
        call ``wait_for()`` first)."""
        if wait and self._pending:
            self.wait_for()
        params = {"scope": scope, **({"as_of": as_of} if as_of else {})}
        indicators: dict[str, Any] = self._ok(self._http.get("/v1/indicators", params=params)).json()["indicators"]
        return indicators

    # -- the end -------------------------------------------------------------------------------------

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        self._runner.close()


def connect(
    url: str,
    *,
    services: Mapping[str, str] | None = None,
    kafka: str | None = None,
    topic_prefix: str = "",
    jwt_secret: str | None = None,
    settings: PlatformSettings | None = None,
) -> Platform:
    """A handle on a running platform: one base URL (``services`` overrides the URL of some services),
    replays over Kafka when ``kafka`` (a bootstrap ``host:port``) is given. Tokens are signed with
    ``jwt_secret`` (else ``TI_JWT_SECRET``, ``TI_JWT_ISS`` and ``TI_JWT_AUD`` as the platform reads them)."""
    base = settings or PlatformSettings()
    overrides: dict[str, Any] = {"topic_prefix": topic_prefix}
    if jwt_secret:
        overrides["jwt_secret"] = jwt_secret
    if kafka:
        overrides.update(bus="kafka", kafka_bootstrap=kafka)
    endpoints = Endpoints(url.rstrip("/"), {k: v.rstrip("/") for k, v in (services or {}).items()})
    return Platform(endpoints, base.model_copy(update=overrides), can_replay=bool(kafka), name="remote")

