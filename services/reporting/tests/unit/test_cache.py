"""The response cache of the indicators and the layer answering from it before routing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from reporting import cache
from reporting.fastpath import CachedIndicators


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    cache.clear()
    cache._validated.clear()


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
    cache.refresh(
        id(DB.engine),
        {"region:84": ('W/"3-abc"', b'{"scope":"region:84"}'), "national": ('W/"3-def"', b'{"scope":"national"}')},
        None,
    )
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



# --- validation against what other processes may have written ---------------------------------------

T1 = datetime(2026, 1, 1, tzinfo=UTC)
T2 = datetime(2026, 1, 2, tzinfo=UTC)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_entries_are_dropped_when_the_database_mark_differs_from_what_this_process_knows() -> None:
    marks = [(1, T1)]
    reads = 0

    async def read_mark() -> cache.Mark:
        nonlocal reads
        reads += 1
        return marks[-1]

    cache.refresh(1, {"national": ('W/"1-a"', b"a")}, (1, T1))
    cache.validate_soon(1, read_mark)
    await settle()
    assert reads == 1 and cache.get(1, "national") == ('W/"1-a"', b"a")  # same mark: kept
    cache.validate_soon(1, read_mark)  # validated less than MAX_AGE_S ago: no query
    await settle()
    assert reads == 1
    marks.append((1, T2))  # another process wrote documents
    cache._validated[1] -= cache.MAX_AGE_S + 0.01
    cache.validate_soon(1, read_mark)
    await settle()
    assert reads == 2 and cache.get(1, "national") is None


async def test_a_commit_of_another_generation_drops_the_entries_of_the_previous_one() -> None:
    cache.refresh(1, {"national": ('W/"1-a"', b"a"), "region:84": ('W/"1-b"', b"b")}, (1, T1))
    cache.refresh(1, {"national": ('W/"2-c"', b"c")}, (2, T2))
    assert cache.get(1, "national") == ('W/"2-c"', b"c")
    assert cache.get(1, "region:84") is None
    cache.refresh(1, {"region:84": ('W/"2-d"', b"d")}, None)  # nothing else changed
    assert cache.get(1, "national") == ('W/"2-c"', b"c")


async def test_a_validation_overtaken_by_a_commit_of_this_process_changes_nothing() -> None:
    gate = asyncio.Event()

    async def read_mark() -> cache.Mark:
        await gate.wait()
        return (1, T1)  # read before this process's commit below

    cache.refresh(1, {"national": ('W/"1-a"', b"a")}, (1, T1))
    cache.validate_soon(1, read_mark)
    await settle()
    cache.refresh(1, {"national": ('W/"1-b"', b"b")}, (1, T2))
    gate.set()
    await settle()
    assert cache.get(1, "national") == ('W/"1-b"', b"b")


async def test_a_failed_validation_keeps_the_entries_and_is_tried_again_at_the_next_read() -> None:
    async def failing() -> cache.Mark:
        raise RuntimeError("database down")

    cache.refresh(1, {"national": ('W/"1-a"', b"a")}, (1, T1))
    cache.validate_soon(1, failing)
    await settle()
    assert cache.get(1, "national") == ('W/"1-a"', b"a")
    assert 1 not in cache._validated  # due again at once


async def test_a_starting_service_forgets_what_was_cached_under_its_engine_id() -> None:
    cache.refresh(1, {"national": ('W/"1-a"', b"a")}, (1, T1))
    cache.refresh(2, {"national": ('W/"1-b"', b"b")}, (1, T1))
    cache._validated[1] = 0.0
    cache.forget(1)
    assert cache.get(1, "national") is None and 1 not in cache._marks and 1 not in cache._validated
    assert cache.get(2, "national") == ('W/"1-b"', b"b")
