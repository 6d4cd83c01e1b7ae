"""Write rate limits: per token ``sub``, per client address without a valid token; 429 problem+json
with ``Retry-After``; reads never limited; the verified principal handed to authentication."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from ti_shared.auth import PrincipalDep, TokenVerifier, mint_token
from ti_shared.problems import install_problem_handlers
from ti_shared.ratelimit import RateLimitMiddleware, WriteRateLimiter, parse_limits
from ti_shared.settings import PlatformSettings

SETTINGS = PlatformSettings(env="test", jwt_secret="rate-limit-test-secret-0123456789abcdef")


def _app(token_limits: str, anonymous_limits: str) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.token_verifier = verifier = TokenVerifier(SETTINGS)

    @app.put("/thing")
    async def put_thing(principal: PrincipalDep) -> dict[str, str]:
        return {"sub": principal.sub}

    @app.get("/thing")
    async def get_thing() -> dict[str, str]:
        return {"ok": "yes"}

    app.add_middleware(RateLimitMiddleware, limiter=WriteRateLimiter(token_limits, anonymous_limits), verifier=verifier)
    return app


def _bearer(sub: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + mint_token(SETTINGS, sub=sub, scopes=["admin"])}


async def test_a_token_over_its_write_limit_gets_a_429_with_retry_after() -> None:
    transport = httpx.ASGITransport(app=_app("3/minute", "2/minute"))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        alice, bob = _bearer("alice"), _bearer("bob")
        assert [(await client.put("/thing", headers=alice)).status_code for _ in range(3)] == [200, 200, 200]
        refused = await client.put("/thing", headers=alice)
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.json()["status"] == 429 and refused.json()["type"].endswith("/rate-limited")
        # a fresh token of the same sub is the same client; another sub is not; reads are free
        assert (await client.put("/thing", headers=_bearer("alice"))).status_code == 429
        assert (await client.put("/thing", headers=bob)).status_code == 200
        assert [(await client.get("/thing", headers=alice)).status_code for _ in range(10)] == [200] * 10


async def test_anonymous_writes_count_per_address_and_invalid_tokens_are_anonymous() -> None:
    transport = httpx.ASGITransport(app=_app("100/minute", "2/minute"), client=("10.0.0.7", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.put("/thing")).status_code == 401
        assert (await client.put("/thing", headers={"Authorization": "Bearer forged"})).status_code == 401
        refused = await client.put("/thing", headers={"Authorization": "Bearer another-forged"})
        assert refused.status_code == 429 and "address" in refused.json()["detail"]
        assert (await client.put("/thing", headers=_bearer("carol"))).status_code == 200


async def test_an_empty_limit_turns_limiting_off() -> None:
    transport = httpx.ASGITransport(app=_app("", ""))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert [(await client.put("/thing", headers=_bearer("dave"))).status_code for _ in range(20)] == [200] * 20


def test_limits_are_validated_in_the_settings() -> None:
    assert [str(item) for item in parse_limits("2000/second;30000/minute")] == ["2000 per 1 second", "30000 per 1 minute"]
    with pytest.raises(ValueError):
        PlatformSettings(rate_limit_writes="lots")


def test_the_defaults_leave_room_for_the_demo_and_the_benchmarks() -> None:
    per_minute = {item.GRANULARITY.name: item.amount for item in parse_limits(PlatformSettings().rate_limit_writes)}
    assert per_minute["minute"] >= 12_000  # make bench: 200 writes/s for 60 s, all lanes together
    assert per_minute["second"] >= 500


async def test_counting_writes_starts_no_thread() -> None:
    """A steady trickle of writes: no thread per write (limits' synchronous storage started a timer
    thread whenever the previous one had ended, 10 ms after it started)."""
    import asyncio
    import threading

    limiter = WriteRateLimiter("1000/second;10000/minute", "10/second")
    await limiter.retry_after("sub:warm", anonymous=False)
    before = set(threading.enumerate())  # other tests' threads may end meanwhile: only a new one counts
    for _ in range(15):
        assert await limiter.retry_after("sub:trickle", anonymous=False) is None
        assert set(threading.enumerate()) <= before
        await asyncio.sleep(0.012)
