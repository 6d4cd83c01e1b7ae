"""The handle's plumbing against test doubles: requests routed by path prefix, and reading one's writes
through ``after=<event-id>`` when the platform offers it, ``/readyz`` otherwise."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ti_shared.endpoints import Endpoints, service_of_path
from ti_shared.settings import PlatformSettings
from ti_testkit import Platform


def double(*, offers_after: bool, applied: set[str], seen: list[httpx.URL]) -> httpx.MockTransport:
    """A platform whose writes answer ``TI-Event-Id`` (when ``offers_after``) and whose indicators endpoint
    waits for ``after`` (504 for an event not in ``applied``) or ignores it."""
    counter = iter(range(1, 1000))

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        if request.method != "GET":
            headers = {"TI-Event-Id": f"ev-{next(counter)}"} if offers_after else {}
            return httpx.Response(201, json={"version": 1}, headers=headers)
        after = request.url.params.get("after")
        if offers_after and after is not None and after not in applied:
            return httpx.Response(504, json={"title": "not applied yet"})
        return httpx.Response(200, json={"scope": "national", "indicators": {"grants.count": len(applied)}})

    return httpx.MockTransport(handle)


@pytest.fixture
def settles(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    calls: list[float] = []
    monkeypatch.setattr(Platform, "settle", lambda self, timeout_s=120.0: calls.append(timeout_s))
    return calls


@contextlib.contextmanager
def handle_on(transport: httpx.BaseTransport, endpoints: Endpoints | None = None) -> Iterator[Platform]:
    platform = Platform(endpoints or Endpoints.single("http://platform.test"), PlatformSettings(env="test"), transport=transport)
    try:
        yield platform
    finally:
        platform.close()


def test_requests_go_to_the_service_owning_their_path() -> None:
    seen: list[httpx.URL] = []
    services = {"funding-ledger": "http://127.0.0.1:8003", "reporting": "http://127.0.0.1:8005/base"}
    with handle_on(double(offers_after=False, applied=set(), seen=seen), Endpoints("http://proxy.test", services)) as platform:
        client = platform.client("operator", operator="ADEME")
        client.put("/v1/grants/ADEME/FV-1", json={})
        client.get("/v1/indicators", params={"scope": "region:84"})
        client.get("/v1/territories")
    assert [str(u) for u in seen] == [
        "http://127.0.0.1:8003/v1/grants/ADEME/FV-1",
        "http://127.0.0.1:8005/base/v1/indicators?scope=region%3A84",
        "http://proxy.test/v1/territories",
    ]
    assert service_of_path("/v1/grant-batches/b-1") == "funding-ledger" and service_of_path("/v1/grantsx") is None


def test_writes_are_read_back_through_after_when_the_platform_offers_it(settles: list[float]) -> None:
    seen: list[httpx.URL] = []
    applied = {"ev-1", "ev-2"}
    with handle_on(double(offers_after=True, applied=applied, seen=seen)) as platform:
        client = platform.client("admin")
        first = client.put("/v1/sites/S-1", json={})
        client.put("/v1/sites/S-2", json={})
        assert platform.indicators("national") == {"grants.count": 2}
        assert platform.offers_read_your_writes()
        afters = [u.params["after"] for u in seen if "after" in u.params]
        assert afters[1:] == ["ev-1", "ev-2"]  # after the probe: each write's event, waited for in turn
        platform.wait_for(first)
        client.put("/v1/sites/S-3", json={})  # ev-3 is never applied
        with pytest.raises(TimeoutError, match="ev-3"):
            platform.indicators("national")
    assert settles == []


def test_readyz_is_the_fallback(settles: list[float]) -> None:
    seen: list[httpx.URL] = []
    with handle_on(double(offers_after=False, applied=set(), seen=seen)) as platform:
        assert platform.indicators("national") == {"grants.count": 0}
        assert settles == []  # nothing written through the handle: nothing to wait for
        platform.client("admin").put("/v1/sites/S-1", json={})
        platform.indicators("national")
        assert not platform.offers_read_your_writes()
        assert len(settles) == 1
        platform.wait_for()  # asked explicitly: waits whatever was written, and however
        assert len(settles) == 2


def test_tokens_carry_the_role_scopes() -> None:
    import jwt

    def claims(token: str) -> dict[str, Any]:
        decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
        return decoded

    with handle_on(httpx.MockTransport(lambda r: httpx.Response(200))) as platform:
        assert claims(platform.token("operator", operator="BPI"))["ti_operator"] == "BPI"
        lead = claims(platform.token("project_lead", territories=["ti-8401"]))
        assert (lead["scope"], lead["ti_territories"]) == ("actions:write", ["ti-8401"])
        assert claims(platform.token())["scope"] == "admin"
        with pytest.raises(ValueError, match="unknown role"):
            platform.token("superuser")
