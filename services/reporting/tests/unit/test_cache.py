"""The response cache of the indicators and the layer answering from it before routing."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from reporting import cache
from reporting.fastpath import CachedIndicators


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    cache.clear()


async def test_concurrent_misses_load_once_and_share_the_answer() -> None:
    loads = 0
    gate = asyncio.Event()

    async def load() -> cache.Entry:
        nonlocal loads
        loads += 1
        await gate.wait()
        return 'W/"1-a"', b"{}"

    tasks = [asyncio.create_task(cache.get_or_load(1, "national", load)) for _ in range(20)]
    await asyncio.sleep(0)
    gate.set()
    assert set(await asyncio.gather(*tasks)) == {('W/"1-a"', b"{}")}
    assert loads == 1
    assert cache.get(1, "national") == ('W/"1-a"', b"{}")
    assert cache.get(2, "national") is None  # another database, another entry


async def test_an_answer_loaded_across_a_clear_is_returned_but_not_kept() -> None:
    async def load() -> cache.Entry:
        cache.clear()  # new figures committed while the old ones were being read
        return 'W/"1-old"', b"{}"

    assert await cache.get_or_load(1, "region:84", load) == ('W/"1-old"', b"{}")
    assert cache.get(1, "region:84") is None


async def test_a_failed_load_fails_its_caller_and_the_waiters_load_on_their_own() -> None:
    gate = asyncio.Event()

    async def failing() -> cache.Entry:
        await gate.wait()
        raise RuntimeError("database down")

    async def working() -> cache.Entry:
        return 'W/"2-b"', b"[]"

    first = asyncio.create_task(cache.get_or_load(1, "national", failing))
    await asyncio.sleep(0)
    second = asyncio.create_task(cache.get_or_load(1, "national", working))
    await asyncio.sleep(0)
    gate.set()
    with pytest.raises(RuntimeError):
        await first
    assert await second == ('W/"2-b"', b"[]")


async def test_nothing_stored_is_not_cached() -> None:
    async def load() -> None:
        return None

    assert await cache.get_or_load(1, "national", load) is None
    assert cache.get(1, "national") is None


def test_entries_expire() -> None:
    cache.put(1, "national", 'W/"1-a"', b"{}")
    assert cache.get(1, "national") is not None
    _expire(1, "national")
    assert cache.get(1, "national") is None


# --- the layer before routing -----------------------------------------------------------------------


class Inner:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"routed"})


DB = SimpleNamespace(engine=object())


async def call(layer: CachedIndicators, path: str, query: bytes, headers: list[tuple[bytes, bytes]] | None = None,
               method: str = "GET", root_path: str = "") -> tuple[int, dict[bytes, bytes], bytes, dict[str, Any]]:
    app = SimpleNamespace(state=SimpleNamespace(ctx=SimpleNamespace(db=DB)))
    scope: dict[str, Any] = {"type": "http", "method": method, "path": root_path + path, "root_path": root_path,
                             "query_string": query, "headers": headers or [], "app": app}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await layer(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"], scope


async def test_cached_scopes_are_answered_before_routing_and_the_rest_is_routed() -> None:
    inner = Inner()
    layer = CachedIndicators(inner)
    # nothing cached yet: routed
    assert (await call(layer, "/v1/indicators", b"scope=region:84"))[0] == 299
    cache.put(id(DB.engine), "region:84", 'W/"3-abc"', b'{"scope":"region:84"}')
    cache.put(id(DB.engine), "national", 'W/"3-def"', b'{"scope":"national"}')
    status, headers, body, scope = await call(layer, "/v1/indicators", b"scope=region%3A84")
    assert (status, body) == (200, b'{"scope":"region:84"}')
    assert headers[b"etag"] == b'W/"3-abc"' and headers[b"content-type"] == b"application/json"
    assert headers[b"content-length"] == str(len(body)).encode()
    assert scope["route"].path == "/v1/indicators"  # what the edge labels its metrics with
    assert (await call(layer, "/v1/indicators", b""))[2] == b'{"scope":"national"}'
    assert (await call(layer, "/v1/indicators", b"scope=national", root_path="/reporting"))[2] == b'{"scope":"national"}'
    status, headers, body, _ = await call(layer, "/v1/indicators", b"scope=region:84", [(b"if-none-match", b'W/"3-abc"')])
    assert (status, body) == (304, b"") and headers[b"etag"] == b'W/"3-abc"'
    assert (await call(layer, "/v1/indicators", b"scope=region:84", [(b"if-none-match", b'"other"')]))[0] == 200
    assert inner.calls == 1
    # as_of, extra or repeated parameters, invalid scopes, other paths and methods: routed
    for query in (b"scope=region:84&as_of=2024-01-01", b"scope=region:84&x=1", b"scope=national&scope=region:84",
                  b"scope=region:99", b"scope=nation", b"as_of=2024-01-01"):
        assert (await call(layer, "/v1/indicators", query))[0] == 299, query
    assert (await call(layer, "/v1/indicators/catalogue", b""))[0] == 299
    assert (await call(layer, "/v1/indicators", b"scope=national", method="POST"))[0] == 299
    assert inner.calls == 9


def _expire(owner: int, scope: str) -> None:
    stamp, entry = cache._entries[(owner, scope)]
    cache._entries[(owner, scope)] = (stamp - cache.MAX_AGE_S - 0.01, entry)


async def test_an_expired_entry_is_answered_at_once_while_one_background_load_refreshes_it() -> None:
    cache.put(1, "national", 'W/"1-old"', b"old")
    _expire(1, "national")
    gate = asyncio.Event()
    loads = 0

    async def load() -> cache.Entry:
        nonlocal loads
        loads += 1
        await gate.wait()
        return 'W/"1-new"', b"new"

    answers = [await cache.get_or_load(1, "national", load) for _ in range(5)]
    assert answers == [('W/"1-old"', b"old")] * 5  # nobody waited for the database
    await asyncio.sleep(0)
    assert loads == 1
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert cache.get(1, "national") == ('W/"1-new"', b"new")


async def test_a_failed_background_refresh_keeps_the_entry_and_the_next_read_tries_again() -> None:
    cache.put(1, "national", 'W/"1-old"', b"old")
    _expire(1, "national")

    async def failing() -> cache.Entry:
        raise RuntimeError("database down")

    assert await cache.get_or_load(1, "national", failing) == ('W/"1-old"', b"old")
    for _ in range(3):
        await asyncio.sleep(0)
    assert cache._entries[(1, "national")][1] == ('W/"1-old"', b"old")

    async def working() -> cache.Entry:
        return 'W/"2-new"', b"new"

    assert await cache.get_or_load(1, "national", working) == ('W/"1-old"', b"old")
    for _ in range(3):
        await asyncio.sleep(0)
    assert cache.get(1, "national") == ('W/"2-new"', b"new")
